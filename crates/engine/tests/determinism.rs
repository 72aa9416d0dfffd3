//! Scores are a deterministic function of (model, lead, company, events, as_of), and the
//! incremental state stays small.

use std::path::PathBuf;

use kelvin_engine::{CompiledModel, Event, HOUR_MS, Lead, LeadState, ModelSpec};

fn model(name: &str) -> CompiledModel {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models").join(name);
    let text = std::fs::read_to_string(path).expect("model file");
    ModelSpec::from_yaml(&text).expect("model parses").compile().expect("model compiles")
}

const H: i64 = 490_000;

/// A busy lead's month: page views, emails, a webinar, spread over many hours.
fn month_of_events() -> Vec<Event> {
    let mut out = Vec::new();
    let urls = ["/pricing", "/case-studies/acme", "/blog/a", "/", "/docs"];
    for i in 0..60i64 {
        let t = (H - 24 * 30 + i * 11) * HOUR_MS + (i * 7919 % 3_600_000);
        let e = match i % 6 {
            0..=2 => Event::new(format!("e{i}"), "page_view", t)
                .with("url", urls[(i as usize) % urls.len()]),
            3 => Event::new(format!("e{i}"), "email_open", t),
            4 => Event::new(format!("e{i}"), "email_click", t),
            _ => Event::new(format!("e{i}"), "webinar_registered", t),
        };
        out.push(e);
    }
    out
}

#[test]
fn same_inputs_same_score_in_any_order() {
    let m = model("b2b-saas.yaml");
    let lead = Lead::from_pairs([("country", "FR"), ("job_title", "Head of Growth")]);
    let events = month_of_events();
    let as_of = H * HOUR_MS;
    let first = m.score(&lead, None, &events, as_of);
    let mut reversed = events.clone();
    reversed.reverse();
    let mut rotated = events.clone();
    rotated.rotate_left(17);
    for order in [&reversed, &rotated] {
        assert_eq!(m.score(&lead, None, order, as_of), first);
    }
    // A model compiled again from its JSON form scores the same.
    let again = ModelSpec::from_json_value(m.spec().to_json_value())
        .expect("json form parses")
        .compile()
        .expect("json form compiles");
    assert_eq!(again.score(&lead, None, &events, as_of), first);
    // The score serializes to the same JSON every time.
    let a = serde_json::to_string(&first).expect("score serializes");
    let b = serde_json::to_string(&m.score(&lead, None, &reversed, as_of)).expect("serializes");
    assert_eq!(a, b);
    assert!(first.engagement.milli() > 0);
}

#[test]
fn state_of_a_b2b_lead_is_small() {
    let m = model("b2b-saas.yaml");
    assert_eq!(m.engagement_rule_count(), 12);
    // A typical lead: 20 events over a few visits (several events share an hour).
    let mut events = Vec::new();
    for visit in 0..5i64 {
        let t = (H - 24 * 7 * visit) * HOUR_MS;
        events.push(Event::new(format!("a{visit}"), "page_view", t).with("url", "/pricing"));
        events.push(Event::new(format!("b{visit}"), "page_view", t + 60_000).with("url", "/"));
        events.push(Event::new(format!("c{visit}"), "page_view", t + 120_000).with("url", "/blog"));
        events.push(Event::new(format!("d{visit}"), "email_open", t - 5 * HOUR_MS));
    }
    let mut state = LeadState::from_events(&m, &events);
    state.shrink_to_fit();
    // Per visit: (pricing, other_page, visit_burst) in one hour and (email_open) in another.
    assert_eq!(state.len(), 5 * 4);
    let bytes = std::mem::size_of::<LeadState>() + state.heap_bytes();
    assert_eq!(std::mem::size_of::<LeadState>(), 24);
    assert_eq!(bytes, 24 + 20 * 8);
    assert!(bytes < 256);
}
