//! The sample B2B model scores hand-checked leads to values computed by hand from its rules.
//!
//! Time: `as_of` is 30 minutes into UTC hour `H`; an event at `at(days, minute)` is `days` whole
//! days before hour `H`, so its age is exactly `24 × days` hours (decay works on whole hours).
//! The model's half-life is 30 days = 720 h.

use std::path::PathBuf;

use kelvin_engine::{
    Company, CompiledModel, ContributionKind, Event, HOUR_MS, Lead, LeadState, ModelSpec, Points,
    Score,
};

const H: i64 = 493_000;
const AS_OF: i64 = H * HOUR_MS + 30 * 60_000;

fn at(days_ago: i64, minute: i64) -> i64 {
    (H - 24 * days_ago) * HOUR_MS + minute * 60_000
}

fn model() -> CompiledModel {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/b2b-saas.yaml");
    let text = std::fs::read_to_string(path).expect("model file");
    ModelSpec::from_yaml(&text).expect("model parses").compile().expect("model compiles")
}

fn page(id: &str, url: &str, time: i64) -> Event {
    Event::new(id, "page_view", time).with("url", url)
}

fn pts(milli: i64) -> Points {
    Points::from_milli(milli)
}

/// Points of one contribution line, by rule id.
fn line(s: &Score, id: &str) -> Option<Points> {
    s.contributions.iter().find(|c| c.rule_id == id).map(|c| c.points)
}

/// Every score checked here is also checked for: contributions add up to the total, and the
/// incremental path gives the same points.
fn check(m: &CompiledModel, lead: &Lead, company: Option<&Company>, events: &[Event]) -> Score {
    let s = m.score(lead, company, events, AS_OF);
    let sum: i64 = s.contributions.iter().map(|c| c.points.milli()).sum();
    assert_eq!(sum, s.total.milli(), "contributions add up: {s:#?}");
    let inc = LeadState::from_events(m, events).score(m, lead, company, AS_OF);
    let mut stripped = s.clone();
    for c in &mut stripped.contributions {
        c.events.clear();
    }
    assert_eq!(inc, stripped);
    s
}

#[test]
fn hot_director_in_france_with_pricing_visits() {
    let m = model();
    let lead = Lead::from_pairs([
        ("country", serde_json::json!("FR")),
        ("company_size", serde_json::json!(200)),
        ("job_title", serde_json::json!("Marketing Director")),
        ("industry", serde_json::json!("software")),
        ("budget", serde_json::json!(60_000)),
        ("timeline_months", serde_json::json!(2)),
    ]);
    let events = [
        page("p1", "https://acme.example/pricing", at(0, 5)),
        page("p2", "https://acme.example/pricing?plan=pro", at(0, 20)),
        page("p3", "https://acme.example/pricing", at(30, 0)),
    ];
    let s = check(&m, &lead, None, &events);
    // Fit: country 10 + size 50..500 20 + director 15 + software 10 + budget 25 + timeline 10 = 90.
    assert_eq!(s.fit, Points::from_whole(90));
    // Pricing: two views aged 0 h (10 + 10) and one aged 720 h = one half-life (10 / 2 = 5):
    // 25, under the cap of 30. Two page views today: no burst (needs 3 in one 72 h window).
    assert_eq!(line(&s, "pricing_page"), Some(pts(25_000)));
    assert_eq!(line(&s, "visit_burst"), None);
    assert_eq!(s.engagement, pts(25_000));
    // Total 90 + 25 = 115, bounded to 100: a `bound:total` line of -15.
    assert_eq!(line(&s, "bound:total"), Some(pts(-15_000)));
    assert_eq!(s.total, Points::from_whole(100));
    assert_eq!(s.band, "hot");
    assert_eq!(s.action.as_deref(), Some("sales call within 24 business hours"));
    let pricing =
        s.contributions.iter().find(|c| c.rule_id == "pricing_page").expect("pricing line");
    assert_eq!(pricing.events, ["p3", "p1", "p2"]);
    let detail = pricing.engagement.as_ref().expect("engagement detail");
    assert_eq!((detail.awards, detail.raw, detail.decayed), (3, pts(30_000), pts(25_000)));
}

#[test]
fn student_is_cold_and_bounded_at_zero() {
    let m = model();
    let lead = Lead::from_pairs([("country", "BE"), ("job_title", "Étudiant en master marketing")]);
    let s = check(&m, &lead, None, &[]);
    // Fit: country 10 + student -50 = -40; no engagement; total -40 bounded to 0 (+40).
    assert_eq!(s.fit, Points::from_whole(-40));
    assert_eq!(line(&s, "student_or_intern"), Some(Points::from_whole(-50)));
    assert_eq!(line(&s, "bound:total"), Some(Points::from_whole(40)));
    assert_eq!(s.total, Points::ZERO);
    assert_eq!(s.band, "cold");
    assert!(s.disqualified.is_none());
}

#[test]
fn intern_and_international_are_told_apart() {
    let m = model();
    let intern = check(&m, &Lead::from_pairs([("job_title", "Marketing Intern")]), None, &[]);
    assert_eq!(intern.fit, Points::from_whole(-50));
    let intl =
        check(&m, &Lead::from_pairs([("job_title", "Head of International Sales")]), None, &[]);
    // "Head" is a decision maker (+15); "International" is not "intern".
    assert_eq!(intl.fit, Points::from_whole(15));
}

#[test]
fn competitor_domain_is_disqualified() {
    let m = model();
    let lead = Lead::from_pairs([
        ("country", "FR"),
        ("job_title", "CEO"),
        ("email", "jane@Sales.RivalSoft.example"),
    ]);
    let s = check(&m, &lead, None, &[]);
    // Numbers are still computed: country 10 + CEO 15 = 25.
    assert_eq!(s.total, Points::from_whole(25));
    assert_eq!(s.band, "disqualified");
    assert_eq!(s.action, None);
    let d = s.disqualified.expect("disqualified");
    assert_eq!(d.rule_id, "competitor");
    assert_eq!(d.reason, "email domain of a competitor");
}

#[test]
fn failed_email_validity_is_disqualified_first() {
    let m = model();
    let lead = Lead::from_pairs([
        ("country", "CH"),
        ("email_validity", "fail"),
        ("email", "x@competitor.example"),
    ]);
    let s = check(&m, &lead, None, &[]);
    assert_eq!(s.total, Points::from_whole(10));
    assert_eq!(s.band, "disqualified");
    // Both exclusions match: the first in model order gives the reason.
    assert_eq!(s.disqualified.map(|d| d.rule_id).as_deref(), Some("email_invalid"));
}

#[test]
fn old_events_decay_by_half_life() {
    let m = model();
    let lead = Lead::from_pairs([("country", "US")]);
    let events = [
        Event::new("f", "form_submit", at(30, 10)),
        Event::new("d", "content_download", at(60, 59)),
        Event::new("w", "webinar_attended", at(15, 0)),
    ];
    let s = check(&m, &lead, None, &events);
    // form_submit 20 aged 720 h (one half-life): 20 × 1/2 = 10.
    assert_eq!(line(&s, "form_submit"), Some(pts(10_000)));
    // content_download 15 aged 1440 h (two half-lives): 15 × 1/4 = 3.75.
    assert_eq!(line(&s, "content_download"), Some(pts(3_750)));
    // webinar_attended 15 aged 360 h (half a half-life): 15 × 2^-0.5 = 10.6066… → 10.607.
    assert_eq!(line(&s, "webinar_attended"), Some(pts(10_607)));
    // 10 + 3.75 + 10.607 = 24.357: cold.
    assert_eq!(s.engagement, pts(24_357));
    assert_eq!(s.total, pts(24_357));
    assert_eq!(s.band, "cold");
}

#[test]
fn caps_and_burst_window() {
    let m = model();
    let lead = Lead::from_pairs([
        ("industry", serde_json::json!("retail")),
        ("company_size", serde_json::json!(5)),
    ]);
    let mut events = Vec::new();
    for i in 0..15 {
        events.push(Event::new(format!("o{i}"), "email_open", at(0, i)));
    }
    for i in 0..4 {
        events.push(Event::new(format!("c{i}"), "email_click", at(0, i)));
    }
    for i in 0..12 {
        events.push(page(&format!("v{i}"), "/blog/post", at(0, i)));
    }
    let s = check(&m, &lead, None, &events);
    // Fit: retail 10 + fewer than 10 employees -10 = 0.
    assert_eq!(s.fit, Points::ZERO);
    // email_open: 15 × 1 = 15, capped at 10.
    let open = s.contributions.iter().find(|c| c.rule_id == "email_open").expect("email_open line");
    assert_eq!(open.points, Points::from_whole(10));
    let d = open.engagement.as_ref().expect("detail");
    assert_eq!((d.raw, d.decayed), (Points::from_whole(15), Points::from_whole(15)));
    // email_click: 4 × 3 = 12, under its cap of 15.
    assert_eq!(line(&s, "email_click"), Some(Points::from_whole(12)));
    // other_page: 12 × 1 = 12, capped at 10.
    assert_eq!(line(&s, "other_page"), Some(Points::from_whole(10)));
    // visit_burst: 12 page views in one 72 h window: +15 once for that window.
    assert_eq!(line(&s, "visit_burst"), Some(Points::from_whole(15)));
    // 10 + 12 + 10 + 15 = 47: warm.
    assert_eq!(s.engagement, Points::from_whole(47));
    assert_eq!(s.total, Points::from_whole(47));
    assert_eq!(s.band, "warm");
}

#[test]
fn negative_engagement_and_bounds() {
    let m = model();
    let lead = Lead::from_pairs([("job_title", "VP Sales"), ("country", "LU")]);
    let events = [
        Event::new("u", "unsubscribe", at(0, 0)),
        Event::new("s1", "social_comment", at(0, 1)).with("sentiment", "negative"),
        Event::new("s2", "social_comment", at(0, 2)).with("sentiment", "positive"),
    ];
    let s = check(&m, &lead, None, &events);
    // Fit: VP 15 + LU 10 = 25. Engagement: unsubscribe -20, negative comment -10 = -30
    // (the positive comment matches no rule). Total -5 bounded to 0 (+5).
    assert_eq!(s.fit, Points::from_whole(25));
    assert_eq!(s.engagement, Points::from_whole(-30));
    assert_eq!(line(&s, "bound:total"), Some(Points::from_whole(5)));
    assert_eq!(s.total, Points::ZERO);
    assert_eq!(s.band, "cold");
}

#[test]
fn burst_counts_once_per_window_and_is_dated_at_its_third_view() {
    let m = model();
    let lead = Lead::default();
    // H = 493000 is a multiple of 72 h windows? 493000 / 72 = 6847.2…: the window holding H
    // starts at hour 6847 × 72 = 492984, so H - 16 h and H are in the same window.
    let w0 = (H - 16) * HOUR_MS;
    let events = [
        page("a", "/", w0),
        page("b", "/", w0 + 1),
        page("c", "/", AS_OF - 60_000),
        // 30 days earlier, another window with 3 views: 15 × 1/2 = 7.5 (dated at "f", 720 h old).
        page("d", "/", at(30, 0)),
        page("e", "/", at(30, 1)),
        page("f", "/", at(30, 2)),
        // Only two views in this window: nothing.
        page("g", "/", at(10, 0)),
        page("h", "/", at(10, 1)),
    ];
    let s = check(&m, &lead, None, &events);
    // Today's window: third view at hour H, age 0: 15. Total burst 15 + 7.5 = 22.5.
    assert_eq!(line(&s, "visit_burst"), Some(pts(22_500)));
    let burst = s.contributions.iter().find(|c| c.rule_id == "visit_burst").expect("burst line");
    assert_eq!(burst.events, ["d", "e", "f", "a", "b", "c"]);
    // other_page: 8 views; ages 16 h (×2), 0, 720 h (×3), 240 h (×2), all decayed, under cap 10:
    // 2 × 2^(-16/720) + 1 + 3 × 0.5 + 2 × 2^(-240/720) = 1.96937… + 1 + 1.5 + 1.58740… = 6.05683… → 6.057.
    assert_eq!(line(&s, "other_page"), Some(pts(6_057)));
}

#[test]
fn events_after_as_of_hour_do_not_count() {
    let m = model();
    let lead = Lead::default();
    let later = Event::new("late", "form_submit", (H + 1) * HOUR_MS);
    let same_hour = Event::new("same", "form_submit", AS_OF + 60_000);
    let s = check(&m, &lead, None, std::slice::from_ref(&later));
    assert_eq!(s.engagement, Points::ZERO);
    // An event in as_of's own hour counts, even a few minutes after as_of.
    let s = check(&m, &lead, None, &[later, same_hour]);
    assert_eq!(s.engagement, Points::from_whole(20));
}

#[test]
fn company_score_aggregates_its_best_lead() {
    let m = model();
    let company = Company::from_pairs([
        ("industry", serde_json::json!("software")),
        ("employees", serde_json::json!(120)),
    ]);
    let director = Lead::from_pairs([
        ("country", serde_json::json!("FR")),
        ("job_title", serde_json::json!("CEO")),
    ]);
    let competitor = Lead::from_pairs([
        ("country", serde_json::json!("FR")),
        ("company_size", serde_json::json!(100)),
        ("job_title", serde_json::json!("CEO")),
        ("email", serde_json::json!("a@competitor.example")),
    ]);
    let a = check(&m, &director, Some(&company), &[]);
    let b = check(&m, &competitor, Some(&company), &[]);
    assert_eq!(a.total, Points::from_whole(25));
    assert_eq!(b.total, Points::from_whole(45));
    let c = m.score_company(&company, &[a, b]).expect("model scores companies");
    // Company fit: software 10 + 50..500 employees 20 = 30. Best lead not disqualified: 25
    // (the competitor's 45 is left out). Total 55: below 60, so `watch`.
    assert_eq!(c.fit, Points::from_whole(30));
    assert_eq!(c.leads, Points::from_whole(25));
    assert_eq!(c.total, Points::from_whole(55));
    assert_eq!(c.band.as_deref(), Some("watch"));
    let sum: i64 = c.contributions.iter().map(|x| x.points.milli()).sum();
    assert_eq!(sum, c.total.milli());
    assert!(c.contributions.iter().any(|x| x.kind == ContributionKind::Leads));
}

/// Issue 15 (seed 000, "visits in the last 72 hours"): three views at 23:01, 00:01 and 01:01
/// straddle what used to be a 72 h block boundary; the sliding window counts them.
#[test]
fn a_burst_across_midnight_and_any_block_boundary_counts() {
    let m = model();
    let lead = Lead::default();
    // Hour 493056 = 6848 × 72 starts an epoch-aligned 72 h block.
    let boundary = 6848 * 72;
    let t = |hour: i64, minute: i64| hour * HOUR_MS + minute * 60_000;
    let events = [
        page("a", "/", t(boundary - 1, 1)),
        page("b", "/", t(boundary, 1)),
        page("c", "/", t(boundary + 1, 1)),
    ];
    let as_of = t(boundary + 1, 30);
    let s = m.score(&lead, None, &events, as_of);
    assert_eq!(line(&s, "visit_burst"), Some(Points::from_whole(15)));
    let burst = s.contributions.iter().find(|c| c.rule_id == "visit_burst").expect("burst line");
    assert_eq!(burst.events, ["a", "b", "c"]);
    let state = LeadState::from_events(&m, &events).score(&m, &lead, None, as_of);
    assert_eq!(state.total, s.total);
}

/// Visits on three consecutive days are three views within 72 hours: one burst (+15), where the
/// epoch-aligned blocks could give nothing.
#[test]
fn views_on_three_consecutive_days_make_one_burst() {
    let m = model();
    let lead = Lead::default();
    let events =
        [page("a", "/", at(2, 0)), page("b", "/", at(1, 0)), page("c", "/", AS_OF - 60_000)];
    let s = m.score(&lead, None, &events, AS_OF);
    // Dated at the third view (age 0): 15.
    assert_eq!(line(&s, "visit_burst"), Some(Points::from_whole(15)));
}
