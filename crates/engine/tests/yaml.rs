//! YAML specifics: plain scalars, syntax errors.

use kelvin_engine::{Lead, ModelSpec};

const BANDS: &str = "bands:\n  thresholds:\n    - { label: all }\n";

#[test]
fn country_codes_stay_strings() {
    let spec = ModelSpec::from_yaml(&format!(
        "fit:\n  - {{ id: nordic, when: {{ field: lead.country, op: in, value: [NO, SE, FI, ON, Y] }}, points: 5 }}\n{BANDS}"
    ))
    .expect("parses");
    let m = spec.compile().expect("compiles");
    for c in ["NO", "Y", "ON"] {
        let s = m.score(&Lead::from_pairs([("country", c)]), None, &[], 0);
        assert_eq!(s.fit.milli(), 5_000, "{c}");
    }
}

#[test]
fn syntax_errors_are_parse_errors() {
    let e = ModelSpec::from_yaml("fit: [\n  - id: a\n").expect_err("not yaml");
    assert_eq!(e.path, ".");
    assert!(e.message.contains("line"), "{}", e.message);
    let e = ModelSpec::from_yaml("").expect_err("empty");
    assert!(!e.message.is_empty());
}

#[test]
fn oversized_documents_are_refused() {
    let big = format!("description: '{}'\n{BANDS}", "x".repeat(kelvin_engine::MAX_MODEL_BYTES));
    let e = ModelSpec::from_yaml(&big).expect_err("too big");
    assert!(e.message.contains("larger than"));
    let e = ModelSpec::from_json(&format!("\"{}\"", "x".repeat(kelvin_engine::MAX_MODEL_BYTES)))
        .expect_err("too big");
    assert!(e.message.contains("larger than"));
}

#[test]
fn duplicate_keys_are_refused() {
    let e = ModelSpec::from_yaml(&format!("description: a\ndescription: b\n{BANDS}"))
        .expect_err("duplicate");
    assert!(!e.message.is_empty());
}

#[test]
fn compiled_model_errors_say_which_stage_failed() {
    use kelvin_engine::{CompiledModel, Error};
    match CompiledModel::from_yaml("bands: { thresholds: [] }\n") {
        Err(Error::Invalid(errors)) => assert_eq!(errors[0].path, "bands.thresholds"),
        other => panic!("expected invalid, got {other:?}"),
    }
    match CompiledModel::from_json("{\"bands\": 1}") {
        Err(Error::Parse(e)) => assert_eq!(e.path, "bands"),
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(
        CompiledModel::from_json_value(
            serde_json::json!({"bands": {"thresholds": [{"label": "x"}]}})
        )
        .is_ok()
    );
}

#[test]
fn events_serialize_their_kind_as_type() {
    let e = kelvin_engine::Event::new("1", "page_view", 5).with("url", "/");
    let v = serde_json::to_value(&e).expect("serializes");
    assert_eq!(v["type"], "page_view");
    let back: kelvin_engine::Event = serde_json::from_value(v).expect("parses");
    assert_eq!(back, e);
    let alias: kelvin_engine::Event =
        serde_json::from_str(r#"{"id": "2", "kind": "email_open", "time_ms": 1}"#).expect("alias");
    assert_eq!(alias.kind, "email_open");
}
