//! Exclusions with points (issue 15, seed 004: "email does not exist −1000, competitor −500"):
//! a matching exclusion disqualifies the lead and its points count in the total, after every
//! bound, as one explanation line; written once instead of twice.

#![allow(clippy::unwrap_used)]

use kelvin_engine::{ContributionKind, Lead, LeadState, ModelSpec, Points};
use serde_json::json;

fn model() -> kelvin_engine::CompiledModel {
    let spec = json!({
        "fit": [ { "id": "director", "when": { "field": "lead.title", "op": "eq", "value": "director" }, "points": 30 } ],
        "exclusions": [
            { "id": "bad_email", "reason": "email does not exist",
              "when": { "field": "lead.email_validity", "op": "eq", "value": "fail" }, "points": -1000 },
            { "id": "competitor", "reason": "works for a competitor",
              "when": { "field": "lead.competitor", "op": "is_true" }, "points": -500 },
            { "id": "student", "reason": "student",
              "when": { "field": "lead.student", "op": "is_true" } }
        ],
        "combination": { "total": { "min": 0, "max": 100 } },
        "bands": { "thresholds": [ { "label": "hot", "min": 20 }, { "label": "cold" } ] }
    });
    ModelSpec::from_json(&spec.to_string())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .compile()
        .unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn exclusion_points_count_after_the_bounds_and_are_explained() {
    let m = model();
    let lead = Lead::from_pairs([("title", json!("director")), ("email_validity", json!("fail"))]);
    let s = m.score(&lead, None, &[], 0);
    assert_eq!(s.band, "disqualified");
    assert_eq!(s.disqualified.as_ref().map(|d| d.rule_id.as_str()), Some("bad_email"));
    // 30 (bounded 0..100: unchanged), then −1000.
    assert_eq!(s.total, Points::from_whole(-970));
    let line =
        s.contributions.iter().find(|c| c.rule_id == "bad_email").unwrap_or_else(|| panic!("line"));
    assert_eq!((line.kind, line.points), (ContributionKind::Exclusion, Points::from_whole(-1000)));
    let sum: i64 = s.contributions.iter().map(|c| c.points.milli()).sum();
    assert_eq!(sum, s.total.milli());
    // The incremental path agrees.
    let state = LeadState::default().score(&m, &lead, None, 0);
    assert_eq!((state.total, &state.band), (s.total, &s.band));
}

#[test]
fn every_matching_exclusion_counts_and_the_first_names_the_reason() {
    let m = model();
    let lead = Lead::from_pairs([("email_validity", json!("fail")), ("competitor", json!(true))]);
    let s = m.score(&lead, None, &[], 0);
    assert_eq!(s.total, Points::from_whole(-1500));
    assert_eq!(s.disqualified.map(|d| d.reason), Some("email does not exist".to_owned()));
}

#[test]
fn an_exclusion_without_points_changes_no_total() {
    let m = model();
    let lead = Lead::from_pairs([("title", json!("director")), ("student", json!(true))]);
    let s = m.score(&lead, None, &[], 0);
    assert_eq!((s.band.as_str(), s.total), ("disqualified", Points::from_whole(30)));
    assert!(s.contributions.iter().all(|c| c.kind != ContributionKind::Exclusion));
}

#[test]
fn zero_points_on_an_exclusion_are_refused_with_the_path() {
    let spec = json!({
        "exclusions": [ { "id": "x", "reason": "r", "when": { "field": "lead.a", "op": "is_true" }, "points": 0 } ],
        "bands": { "thresholds": [ { "label": "all" } ] }
    });
    let err = ModelSpec::from_json(&spec.to_string())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .compile()
        .unwrap_err();
    assert!(format!("{err:?}").contains("exclusions[0].points"), "{err:?}");
}
