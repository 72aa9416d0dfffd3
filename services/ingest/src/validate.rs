//! Validation of incoming items: every problem names the field path of the item.

use kelvin_proto::convert;
use kelvin_proto::v1 as pb;
use kelvin_store::{CompanyUpsert, LeadUpsert, NewEvent, NewOutcome};
use serde_json::Map;

/// Why an item was rejected: the field path and the reason.
pub(crate) type Rejection = (String, String);

/// Events may not claim to happen more than this far in the future (clock skew allowance).
const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;
/// 2000-01-01: older timestamps are mistakes (seconds sent as milliseconds...).
const MIN_TIME_MS: i64 = 946_684_800_000;

fn id(path: String, value: &str) -> Result<(), Rejection> {
    if value.is_empty() {
        return Err((path, "is required".into()));
    }
    if value.len() > 256 {
        return Err((path, "must be at most 256 bytes".into()));
    }
    if value.chars().any(char::is_control) {
        return Err((path, "must not contain control characters".into()));
    }
    Ok(())
}

fn object(
    path: String,
    value: Option<prost_types::Struct>,
    max_bytes: usize,
) -> Result<Map<String, serde_json::Value>, Rejection> {
    let map = value.map(convert::struct_json).unwrap_or_default();
    let size = serde_json::Value::Object(map.clone()).to_string().len();
    if size > max_bytes {
        return Err((path, format!("is {size} bytes, over the limit of {max_bytes}")));
    }
    Ok(map)
}

pub(crate) fn event(
    i: usize,
    e: pb::EventInput,
    now_ms: i64,
    max_bytes: usize,
) -> Result<NewEvent, Rejection> {
    let at = |f: &str| format!("events[{i}].{f}");
    id(at("event_id"), &e.event_id)?;
    id(at("lead_id"), &e.lead_id)?;
    let kind_ok = e.r#type.len() <= 64
        && e.r#type.starts_with(|c: char| c.is_ascii_lowercase())
        && e.r#type.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !kind_ok {
        return Err((
            at("type"),
            "must be 1-64 characters of [a-z0-9_], starting with a letter".into(),
        ));
    }
    let time = e.time.ok_or_else(|| (at("time"), "is required".to_owned()))?;
    let time_ms = convert::millis(&time).ok_or_else(|| (at("time"), "is malformed".to_owned()))?;
    if time_ms > now_ms + MAX_FUTURE_MS {
        return Err((at("time"), "is more than a day in the future".into()));
    }
    if time_ms < MIN_TIME_MS {
        return Err((at("time"), "is before 2000-01-01".into()));
    }
    let properties = object(at("properties"), e.properties, max_bytes)?;
    Ok(NewEvent { event_id: e.event_id, lead_id: e.lead_id, kind: e.r#type, time_ms, properties })
}

pub(crate) fn lead(i: usize, l: pb::LeadInput, max_bytes: usize) -> Result<LeadUpsert, Rejection> {
    let at = |f: &str| format!("leads[{i}].{f}");
    id(at("lead_id"), &l.lead_id)?;
    if !l.company_id.is_empty() {
        id(at("company_id"), &l.company_id)?;
    }
    Ok(LeadUpsert {
        id: l.lead_id,
        company_id: (!l.company_id.is_empty()).then_some(l.company_id),
        attributes: object(at("attributes"), l.attributes, max_bytes)?,
        enriched: object(at("enriched"), l.enriched, max_bytes)?,
    })
}

pub(crate) fn company(
    i: usize,
    c: pb::CompanyInput,
    max_bytes: usize,
) -> Result<CompanyUpsert, Rejection> {
    let at = |f: &str| format!("companies[{i}].{f}");
    id(at("company_id"), &c.company_id)?;
    Ok(CompanyUpsert {
        id: c.company_id,
        attributes: object(at("attributes"), c.attributes, max_bytes)?,
    })
}

pub(crate) fn outcome(i: usize, o: pb::Outcome) -> Result<NewOutcome, Rejection> {
    let at = |f: &str| format!("outcomes[{i}].{f}");
    id(at("outcome_id"), &o.outcome_id)?;
    id(at("lead_id"), &o.lead_id)?;
    let kind = match pb::OutcomeKind::try_from(o.kind) {
        Ok(pb::OutcomeKind::Won) => "won",
        Ok(pb::OutcomeKind::Lost) => "lost",
        _ => return Err((at("kind"), "must be WON or LOST".into())),
    };
    if !o.value.is_finite() || o.value < 0.0 {
        return Err((at("value"), "must be a finite, non-negative amount".into()));
    }
    if o.currency.len() > 8 {
        return Err((at("currency"), "must be an ISO 4217 code".into()));
    }
    let time = o.time.ok_or_else(|| (at("time"), "is required".to_owned()))?;
    let time_ms = convert::millis(&time).ok_or_else(|| (at("time"), "is malformed".to_owned()))?;
    Ok(NewOutcome {
        id: o.outcome_id,
        lead_id: o.lead_id,
        kind: kind.into(),
        value: o.value,
        currency: o.currency,
        time_ms,
    })
}
