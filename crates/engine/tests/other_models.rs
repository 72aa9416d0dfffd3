//! The B2C (weights, per-period caps, linear decay, geography exclusion) and BANT grid
//! (matrix bands) example models, checked by hand.

use std::path::PathBuf;

use kelvin_engine::{CompiledModel, Event, HOUR_MS, Lead, LeadState, ModelSpec, Points, Score};
use serde_json::json;

const H: i64 = 493_000;
const AS_OF: i64 = H * HOUR_MS + 30 * 60_000;

fn at(days_ago: i64, minute: i64) -> i64 {
    (H - 24 * days_ago) * HOUR_MS + minute * 60_000
}

fn model(name: &str) -> CompiledModel {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models").join(name);
    let text = std::fs::read_to_string(path).expect("model file");
    ModelSpec::from_yaml(&text).expect("model parses").compile().expect("model compiles")
}

fn line(s: &Score, id: &str) -> Option<Points> {
    s.contributions.iter().find(|c| c.rule_id == id).map(|c| c.points)
}

fn score(m: &CompiledModel, lead: &Lead, events: &[Event]) -> Score {
    let s = m.score(lead, None, events, AS_OF);
    let sum: i64 = s.contributions.iter().map(|c| c.points.milli()).sum();
    assert_eq!(sum, s.total.milli());
    let inc = LeadState::from_events(m, events).score(m, lead, None, AS_OF);
    assert_eq!((inc.total, &inc.band), (s.total, &s.band));
    s
}

fn shopper() -> Lead {
    Lead::from_pairs([
        ("country", json!("FR")),
        ("newsletter_optin", json!(true)),
        ("loyalty_tier", json!("gold")),
        ("email", json!("marie@gmail.com")),
        ("orders_last_year", json!(4)),
    ])
}

#[test]
fn b2c_weights_and_bounds() {
    let m = model("b2c-ecommerce.yaml");
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(Event::new(format!("cart{i}"), "add_to_cart", at(0, i)));
    }
    for i in 0..12 {
        events.push(Event::new(format!("v{i}"), "page_view", at(0, i)).with("url", "/products/42"));
    }
    let s = score(&m, &shopper(), &events);
    // Fit: opt-in 5 + gold 10 + free mail 2 + repeat buyer 15 = 32, bounded to 30 (-2).
    assert_eq!(line(&s, "bound:fit"), Some(Points::from_whole(-2)));
    assert_eq!(s.fit, Points::from_whole(30));
    // Engagement, all aged 0: carts 3 × 10 = 30 (cap 30); three carts in one day +10 (once);
    // product views 12 × 1 = 12, capped at 10 per day. 30 + 10 + 10 = 50.
    assert_eq!(line(&s, "add_to_cart"), Some(Points::from_whole(30)));
    assert_eq!(line(&s, "cart_abandoned_burst"), Some(Points::from_whole(10)));
    assert_eq!(line(&s, "product_view"), Some(Points::from_whole(10)));
    assert_eq!(s.engagement, Points::from_whole(50));
    // Weights: 30 × 0.4 + 50 × 0.6 = 42; the `weights` line is 42 - (30 + 50) = -38.
    assert_eq!(line(&s, "weights"), Some(Points::from_whole(-38)));
    assert_eq!(s.total, Points::from_whole(42));
    assert_eq!(s.band, "hot");
}

#[test]
fn b2c_per_day_cap_and_linear_decay() {
    let m = model("b2c-ecommerce.yaml");
    let mut events = vec![Event::new("cart", "add_to_cart", at(7, 0))];
    for i in 0..12 {
        events.push(Event::new(format!("t{i}"), "page_view", at(0, i)).with("url", "/products/1"));
        events.push(Event::new(format!("y{i}"), "page_view", at(1, i)).with("url", "/products/2"));
    }
    let lead = Lead::from_pairs([("country", "BE")]);
    let s = score(&m, &lead, &events);
    // add_to_cart 10, linear decay over 14 days, aged 7 days: 10 × (336 - 168) / 336 = 5.
    assert_eq!(line(&s, "add_to_cart"), Some(Points::from_whole(5)));
    // product_view: today 12 × 1 = 12 → 10; yesterday 12 × 2^(-24/168) = 10.8687 → 10 (its
    // own day, its own cap): 20.
    let pv = s.contributions.iter().find(|c| c.rule_id == "product_view").expect("product views");
    assert_eq!(pv.points, Points::from_whole(20));
    let detail = pv.engagement.as_ref().expect("detail");
    // Decayed before the caps: 12 + 10.869 (12 × 0.905723664… = 10.86868… → 10.869).
    assert_eq!(detail.decayed, Points::from_milli(22_869));
    assert_eq!(detail.raw, Points::from_whole(24));
    // Engagement 25; weighted total 0 × 0.4 + 25 × 0.6 = 15: warm.
    assert_eq!(s.engagement, Points::from_whole(25));
    assert_eq!(s.total, Points::from_whole(15));
    assert_eq!(s.band, "warm");
}

#[test]
fn b2c_geography_exclusion() {
    let m = model("b2c-ecommerce.yaml");
    let us = Lead::from_pairs([("country", "US")]);
    let s = score(&m, &us, &[]);
    assert_eq!(s.band, "disqualified");
    assert_eq!(s.disqualified.map(|d| d.reason).as_deref(), Some("country we do not ship to"));
    // No country at all: `in` is false on a missing field, so `not in` disqualifies too.
    let s = score(&m, &Lead::default(), &[]);
    assert_eq!(s.band, "disqualified");
    assert!(score(&m, &shopper(), &[]).disqualified.is_none());
}

#[test]
fn bant_matrix_grades() {
    let m = model("bant-grid.yaml");
    let strong = Lead::from_pairs([
        ("budget", json!(60_000)),
        ("decision_maker", json!(true)),
        ("need", json!("confirmed")),
    ]);
    let events = [
        Event::new("d1", "demo_request", at(0, 1)),
        Event::new("d2", "demo_request", at(0, 2)),
        Event::new("p", "page_view", at(0, 3)).with("url", "/pricing"),
    ];
    let s = score(&m, &strong, &events);
    // Fit: budget 25 + authority 25 + need 25 = 75: grade A (>= 75).
    // Engagement: demo request once 40 + pricing 10 = 50: grade 2 (30..60). A2 = hot.
    assert_eq!(s.fit, Points::from_whole(75));
    assert_eq!(line(&s, "demo_request"), Some(Points::from_whole(40)));
    assert_eq!(s.engagement, Points::from_whole(50));
    assert_eq!(s.grade.as_deref(), Some("A2"));
    assert_eq!(s.band, "hot");
    assert_eq!(s.action.as_deref(), Some("sales call within 24 business hours"));
    assert_eq!(s.total, Points::from_whole(125));

    let weak = Lead::from_pairs([("timeline_months", json!(2)), ("decision_maker", json!("yes"))]);
    let s = score(&m, &weak, &[Event::new("c", "email_click", at(30, 0))]);
    // Fit: timeline 25 (a string "yes" is not `is_true`): grade C. Engagement: click 5 aged
    // one half-life = 2.5: grade 4. C4 = cold.
    assert_eq!(s.fit, Points::from_whole(25));
    assert_eq!(s.engagement, Points::from_milli(2_500));
    assert_eq!(s.grade.as_deref(), Some("C4"));
    assert_eq!(s.band, "cold");
    assert_eq!(s.action.as_deref(), Some("automated email"));
}
