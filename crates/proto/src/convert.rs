//! Conversions between the contract's well-known types and Rust values: timestamps as Unix
//! milliseconds, `google.protobuf.Struct` / `Value` as JSON.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};

/// A timestamp from Unix milliseconds.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Unix milliseconds of a timestamp; `None` when out of range or malformed.
pub fn millis(ts: &Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    ts.seconds.checked_mul(1000)?.checked_add(i64::from(ts.nanos / 1_000_000))
}

/// A Struct as a JSON object. Whole numbers become JSON integers, so that a document sent as a
/// Struct (where every number is a double) reads like the same document written by hand.
pub fn struct_json(s: Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields.into_iter().map(|(k, v)| (k, value_json(v))).collect()
}

/// A Value as JSON.
pub fn value_json(v: Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                J::from(n as i64)
            } else {
                serde_json::Number::from_f64(n).map(J::Number).unwrap_or(J::Null)
            }
        }
        Some(Kind::StringValue(s)) => J::String(s),
        Some(Kind::ListValue(l)) => J::Array(l.values.into_iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(struct_json(s)),
    }
}

/// JSON as a Value.
pub fn json_value(value: serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => {
            Kind::ListValue(ListValue { values: items.into_iter().map(json_value).collect() })
        }
        J::Object(map) => Kind::StructValue(json_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object as a Struct.
pub fn json_struct(map: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct { fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1] {
            assert_eq!(millis(&timestamp(ms)).unwrap(), ms);
        }
        assert!(millis(&Timestamp { seconds: 0, nanos: -1 }).is_none());
    }

    #[test]
    fn json_round_trips_through_struct_with_integers_kept() {
        let json = serde_json::json!({"a": 1, "b": [true, null, 2.5], "c": {"d": "e"}});
        let map = json.as_object().unwrap().clone();
        assert_eq!(serde_json::Value::Object(struct_json(json_struct(map))), json);
    }
}
