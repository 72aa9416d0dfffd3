//! Engagement conditions that also test lead or company attributes (issue 15, seed 001: "a
//! student who reads your job offers" loses points): past awards follow the lead's current
//! attributes, on the full and the incremental paths alike.

use kelvin_engine::{Company, Event, HOUR_MS, Lead, LeadState, ModelSpec, Points};
use serde_json::json;

fn model() -> kelvin_engine::CompiledModel {
    let spec = json!({
        "engagement": [
            { "id": "job_offers_by_students", "points": -10,
              "when": { "all": [
                  { "field": "event.type", "op": "eq", "value": "page_view" },
                  { "field": "event.url", "op": "contains", "value": "/jobs" },
                  { "field": "lead.student", "op": "is_true" } ] } },
            { "id": "pricing_at_big_companies", "points": 5,
              "when": { "all": [
                  { "field": "event.url", "op": "contains", "value": "/pricing" },
                  { "field": "company.size", "op": "gte", "value": 50 } ] } }
        ],
        "bands": { "thresholds": [ { "label": "all" } ] }
    });
    ModelSpec::from_json(&spec.to_string())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .compile()
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn events() -> Vec<Event> {
    vec![
        Event::new("j1", "page_view", HOUR_MS).with("url", "/jobs/1"),
        Event::new("j2", "page_view", 2 * HOUR_MS).with("url", "/jobs/2"),
        Event::new("p1", "page_view", 3 * HOUR_MS).with("url", "/pricing"),
    ]
}

#[test]
fn awards_follow_the_current_attributes_on_both_paths() {
    let m = model();
    assert!(m.engagement_reads_attributes());
    let as_of = 10 * HOUR_MS;
    let big = Company::from_pairs([("size", json!(200))]);
    for (student, company, expected) in [
        (true, Some(&big), -15), // two job offers -20, pricing at a big company +5
        (false, Some(&big), 5),  // not a student: the job offers count nothing
        (true, None, -20),       // no company: the pricing rule reads nothing
    ] {
        let lead = Lead::from_pairs([("student", json!(student))]);
        let full = m.score(&lead, company, &events(), as_of);
        assert_eq!(full.total, Points::from_whole(expected), "student {student}");
        let inc = LeadState::from_events_of(&m, &lead, company, &events())
            .score(&m, &lead, company, as_of);
        assert_eq!(inc.total, full.total);
    }
}
