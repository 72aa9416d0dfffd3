//! Weights per rule and per group of rules (issue 15, seed 004's weighted criteria): the points
//! a line shows are the rule's points times its weight (rule × group), and the line says which
//! weight it applied.

#![allow(clippy::unwrap_used)]

use kelvin_engine::{Event, Lead, LeadState, ModelSpec, Points};
use serde_json::json;

fn model(extra: serde_json::Value) -> Result<kelvin_engine::CompiledModel, String> {
    let mut spec = json!({
        "groups": { "contact": { "weight": 1.5, "description": "contact data quality" } },
        "fit": [
            { "id": "budget", "when": { "field": "lead.budget", "op": "gte", "value": 50000 }, "points": 10, "weight": 3 },
            { "id": "phone_ok", "when": { "field": "lead.phone_validity", "op": "eq", "value": "ok" }, "points": 4, "group": "contact", "weight": 2 }
        ],
        "engagement": [
            { "id": "visit", "when": { "field": "event.type", "op": "eq", "value": "page_view" }, "points": 1, "group": "contact", "cap": { "points": 4 } }
        ],
        "bands": { "thresholds": [ { "label": "all" } ] }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    ModelSpec::from_json(&spec.to_string())
        .map_err(|e| format!("{e:?}"))?
        .compile()
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn weighted_points_are_explained_line_by_line() {
    let m = model(json!({})).unwrap_or_else(|e| panic!("{e}"));
    let lead = Lead::from_pairs([("budget", json!(60000)), ("phone_validity", json!("ok"))]);
    let events: Vec<Event> = (0..4).map(|i| Event::new(format!("v{i}"), "page_view", 0)).collect();
    let s = m.score(&lead, None, &events, 0);
    let line = |id: &str| {
        s.contributions.iter().find(|c| c.rule_id == id).unwrap_or_else(|| panic!("{id}"))
    };
    // budget: 10 × 3 = 30; phone: 4 × (2 × 1.5) = 12; visits: 4 × 1.5 = 6, capped at 4.
    assert_eq!(
        (line("budget").points, line("budget").weight),
        (Points::from_whole(30), Some(Points::from_whole(3)))
    );
    assert_eq!(
        (line("phone_ok").points, line("phone_ok").weight),
        (Points::from_whole(12), Some(Points::from_whole(3)))
    );
    assert_eq!(line("visit").points, Points::from_whole(4));
    assert_eq!(line("visit").weight, Some(Points::from_milli(1500)));
    assert_eq!(s.total, Points::from_whole(46));
    let inc = LeadState::from_events(&m, &events).score(&m, &lead, None, 0);
    assert_eq!(inc.total, s.total);
}

#[test]
fn bad_weights_and_unknown_groups_are_refused_with_paths() {
    let err = model(json!({ "groups": { "contact": { "weight": 0 } } })).unwrap_err();
    assert!(err.contains("groups.contact.weight"), "{err}");
    let err = model(json!({ "groups": {} })).unwrap_err();
    assert!(err.contains("fit[1].group"), "{err}");
    let err = model(json!({ "fit": [ { "id": "x", "when": { "field": "lead.a", "op": "is_true" }, "points": 1, "weight": -2 } ] }))
        .unwrap_err();
    assert!(err.contains("fit[0].weight"), "{err}");
}
