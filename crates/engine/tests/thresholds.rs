//! Exclusive thresholds (issue 15, seed 000's "more than 70 points"): `above: 70` is more than
//! 70, `min: 70` is 70 or more; both on bands and on matrix grades, and validated.

#![allow(clippy::unwrap_used)]

use kelvin_engine::{CompiledModel, Lead, ModelSpec};
use serde_json::json;

fn model(bands: serde_json::Value) -> Result<CompiledModel, String> {
    let spec = json!({
        "fit": [
            { "id": "seventy", "when": { "field": "lead.k", "op": "eq", "value": "70" }, "points": 70 },
            { "id": "seventy_and_a_bit", "when": { "field": "lead.k", "op": "eq", "value": "70.001" }, "points": 70.001 }
        ],
        "bands": bands,
    });
    let spec = ModelSpec::from_json(&spec.to_string()).map_err(|e| format!("{e:?}"))?;
    spec.compile().map_err(|e| format!("{e:?}"))
}

fn band(m: &CompiledModel, k: &str) -> String {
    let lead = Lead::from_pairs([("k", json!(k))]);
    m.score(&lead, None, &[], 0).band
}

#[test]
fn above_is_exclusive_and_min_inclusive() {
    let above = model(json!({ "thresholds": [
        { "label": "hot", "above": 70 }, { "label": "cold" } ] }))
    .unwrap();
    assert_eq!(band(&above, "70"), "cold", "exactly 70 is not more than 70");
    assert_eq!(band(&above, "70.001"), "hot");
    let min = model(json!({ "thresholds": [
        { "label": "hot", "min": 70 }, { "label": "cold" } ] }))
    .unwrap();
    assert_eq!(band(&min, "70"), "hot");
}

#[test]
fn above_works_on_matrix_grades_too() {
    let m = model(json!({ "matrix": {
        "fit_grades": [ { "grade": "A", "above": 70 }, { "grade": "B" } ],
        "engagement_grades": [ { "grade": "1" } ],
        "cells": { "A1": "hot", "B1": "cold" } } }))
    .unwrap();
    let lead = Lead::from_pairs([("k", json!("70"))]);
    assert_eq!(m.score(&lead, None, &[], 0).grade.as_deref(), Some("B1"));
    let lead = Lead::from_pairs([("k", json!("70.001"))]);
    assert_eq!(m.score(&lead, None, &[], 0).grade.as_deref(), Some("A1"));
}

#[test]
fn min_and_above_are_validated_with_their_paths() {
    let both = model(json!({ "thresholds": [
        { "label": "hot", "min": 70, "above": 70 }, { "label": "cold" } ] }))
    .unwrap_err();
    assert!(both.contains("bands.thresholds[0].above"), "{both}");
    let last = model(json!({ "thresholds": [
        { "label": "hot", "min": 70 }, { "label": "cold", "above": 10 } ] }))
    .unwrap_err();
    assert!(last.contains("bands.thresholds[1].above"), "{last}");
    let none =
        model(json!({ "thresholds": [ { "label": "hot" }, { "label": "cold" } ] })).unwrap_err();
    assert!(none.contains("bands.thresholds[0].min"), "{none}");
    // `min: 70` then `above: 70` overlap nothing (70 vs 70.001 and up) but are out of order.
    let order = model(json!({ "thresholds": [
        { "label": "a", "min": 70 }, { "label": "b", "above": 70 }, { "label": "c" } ] }))
    .unwrap_err();
    assert!(order.contains("bands.thresholds[1].above"), "{order}");
}
