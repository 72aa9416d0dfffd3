//! The SimulateScore requests of finding 3: the quiet tenant's small simulation of its
//! published model, and the noisy tenant's heavy one (the sample model plus regex rules, unsaved,
//! over many inline page views).

use anyhow::{Context, Result, bail};
use kelvin_proto::v1 as pb;
use serde_json::{Value, json};

use super::NOISY;
use crate::common;

/// A SimulateScore of `tenant`'s published model with three page views.
pub(super) fn small_simulation(tenant: &str) -> pb::SimulateScoreRequest {
    pb::SimulateScoreRequest {
        tenant_id: tenant.into(),
        model_id: "default".into(),
        version: 1,
        lead: Some(pb::LeadInput {
            attributes: Some(kelvin_proto::convert::json_struct(
                json!({"country": "FR", "job_title": "CEO"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )),
            ..Default::default()
        }),
        events: page_views(3),
        ..Default::default()
    }
}

/// The noisy tenant's simulation: the sample model plus regex engagement rules up to `rules`
/// rules in all, unsaved, over `events` inline page views; with the regex rules added.
pub(super) fn heavy_simulation(
    rules: usize,
    events: usize,
) -> Result<(pb::SimulateScoreRequest, usize)> {
    let yaml = include_str!("../../../../examples/models/b2b-saas.yaml");
    let spec = kelvin_engine::ModelSpec::from_yaml(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Value::Object(mut spec) = spec.to_json_value() else {
        bail!("the sample model is not an object")
    };
    let count = |spec: &serde_json::Map<String, Value>, section: &str| {
        spec.get(section).and_then(Value::as_array).map_or(0, Vec::len)
    };
    let present = count(&spec, "fit") + count(&spec, "exclusions") + count(&spec, "engagement");
    let engagement = spec
        .get_mut("engagement")
        .and_then(Value::as_array_mut)
        .context("the sample model has no engagement rules")?;
    let regexes = rules.saturating_sub(present);
    for i in 0..regexes {
        engagement.push(json!({
            "id": format!("regex_{i}"),
            "when": { "all": [
                { "field": "event.type", "op": "eq", "value": "page_view" },
                { "field": "event.url", "op": "matches",
                  "value": format!("(?i)/(docs|blog|pricing)/section-{i}/[a-z]+-(alpha|beta|gamma)") },
            ]},
            "points": 1,
        }));
    }
    let request = pb::SimulateScoreRequest {
        tenant_id: NOISY.into(),
        model_id: "default".into(),
        spec: Some(kelvin_proto::convert::json_struct(spec)),
        lead: Some(pb::LeadInput::default()),
        events: page_views(events),
        ..Default::default()
    };
    Ok((request, regexes))
}

fn page_views(n: usize) -> Vec<pb::EventInput> {
    let now = common::now_s();
    (0..n)
        .map(|i| pb::EventInput {
            event_id: format!("e{i}"),
            r#type: "page_view".into(),
            time: Some(prost_types::Timestamp { seconds: now - (i as i64 * 60), nanos: 0 }),
            properties: Some(kelvin_proto::convert::json_struct(
                json!({ "url": format!("https://x.example/docs/section-{}/page-{i}", i % 500) })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )),
            ..Default::default()
        })
        .collect()
}
