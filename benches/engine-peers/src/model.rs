//! The benchmark's one model, written once per engine, and its deterministic inputs.
//!
//! The model is a 12-rule adaptation of `examples/models/b2b-saas.yaml`: 5 fit rules on lead
//! attributes and 7 engagement rules on events (points per event, 5 of them capped), summed and
//! bounded to 0..100, with hot/warm/cold bands. It has **no decay and no frequency window**: the
//! peer engines cannot reproduce Kelvin's exact Q40 half-life arithmetic or its epoch-aligned
//! tumbling windows without re-implementing them, so the cross-engine comparison uses a
//! decay-free model (see README.md).

use std::collections::BTreeMap;

use kelvin_engine::{Event, HOUR_MS, Lead, Timestamp, Value};

/// The Kelvin version of the model.
pub const KELVIN_MODEL: &str = r#"
description: engine bench — 12 rules adapted from examples/models/b2b-saas.yaml, no decay
decay: { type: none }
fit:
  - { id: country_served, when: { field: lead.country, op: in, value: [FR, BE, CH, LU] }, points: 10 }
  - { id: company_size_mid, when: { field: lead.company_size, op: between, value: [50, 500] }, points: 20 }
  - { id: company_size_tiny, when: { field: lead.company_size, op: lt, value: 10 }, points: -10 }
  - { id: target_industry, when: { field: lead.industry, op: in, value: [software, retail, manufacturing] }, points: 10 }
  - { id: bant_budget, when: { field: lead.budget, op: gte, value: 50000 }, points: 25 }
engagement:
  - id: pricing_page
    when:
      all:
        - { field: event.type, op: eq, value: page_view }
        - { field: event.url, op: contains, value: /pricing }
    points: 10
    cap: { points: 30 }
  - id: other_page
    when:
      all:
        - { field: event.type, op: eq, value: page_view }
        - not: { field: event.url, op: contains, value: /pricing }
    points: 1
    cap: { points: 10 }
  - id: content_download
    when: { field: event.type, op: eq, value: content_download }
    points: 15
    cap: { points: 45 }
  - id: webinar_attended
    when: { field: event.type, op: eq, value: webinar_attended }
    points: 15
  - id: email_open
    when: { field: event.type, op: eq, value: email_open }
    points: 1
    cap: { points: 10 }
  - id: email_click
    when: { field: event.type, op: eq, value: email_click }
    points: 3
    cap: { points: 15 }
  - id: unsubscribe
    when: { field: event.type, op: eq, value: unsubscribe }
    points: -20
combination:
  method: sum
  total: { min: 0, max: 100 }
bands:
  thresholds:
    - { label: hot, min: 70, action: sales call within 24 business hours }
    - { label: warm, min: 30, action: nurture }
    - { label: cold, action: automated email }
"#;

/// What every implementation must agree on (points in milli-points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
}

/// `as_of` of every evaluation: 2026-11-01T12:30:00Z.
pub const AS_OF: Timestamp = 1_793_536_200_000;

/// SplitMix64: a tiny deterministic generator (no `rand` needed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A lead with every attribute the fit rules read (all present: the engines' semantics for
/// missing attributes differ and are not what this bench measures).
pub fn lead(rng: &mut Rng) -> Lead {
    let country = rng.pick(&["FR", "BE", "CH", "LU", "DE", "US", "ES"]);
    let company_size = [3, 8, 40, 50, 120, 500, 501, 2000][rng.below(8) as usize];
    let industry = rng.pick(&["software", "retail", "manufacturing", "healthcare", "education"]);
    let budget = rng.below(100) as i64 * 1000;
    Lead::from_pairs([
        ("country", Value::from(country)),
        ("company_size", Value::from(company_size)),
        ("industry", Value::from(industry)),
        ("budget", Value::from(budget)),
    ])
}

/// `n` events in visits of up to 5 events each: a visit falls in one UTC hour of the 60 days
/// before `as_of`; its events are minutes apart. With `future`, about one event in ten is
/// stamped in an hour after `as_of` (the engines must ignore it).
pub fn events(rng: &mut Rng, n: usize, future: bool) -> Vec<Event> {
    const URLS: &[&str] = &[
        "/pricing",
        "/pricing/enterprise",
        "/docs/api",
        "/blog/scoring",
        "/case-studies/acme",
        "/",
    ];
    let as_of_hour = AS_OF.div_euclid(HOUR_MS);
    let mut out = Vec::with_capacity(n);
    let mut hour = as_of_hour;
    for i in 0..n {
        if i % 5 == 0 {
            hour = as_of_hour - rng.below(60 * 24) as i64;
        }
        let h =
            if future && rng.below(10) == 0 { as_of_hour + 1 + rng.below(48) as i64 } else { hour };
        let time_ms = h * HOUR_MS + rng.below(HOUR_MS as u64) as i64;
        let kind = match rng.below(100) {
            0..=44 => "page_view",
            45..=59 => "email_open",
            60..=69 => "email_click",
            70..=77 => "content_download",
            78..=83 => "webinar_registered",
            84..=89 => "webinar_attended",
            90..=96 => "form_submit",
            _ => "unsubscribe",
        };
        let mut e = Event::new(format!("e{i}"), kind, time_ms);
        match kind {
            "page_view" => e = e.with("url", rng.pick(URLS)),
            "email_click" => e = e.with("link", "https://kelvin.example/offer"),
            _ => {}
        }
        out.push(e);
    }
    out
}

/// The timed lead: seed 1, 50 events, none after `as_of`.
pub fn bench_input() -> (Lead, Vec<Event>) {
    let mut rng = Rng::new(1);
    let lead = lead(&mut rng);
    let events = events(&mut rng, 50, false);
    (lead, events)
}

/// Inputs of the equivalence check: many leads, 0 to 80 events, some in the future.
pub fn check_inputs(count: u64) -> Vec<(Lead, Vec<Event>)> {
    (0..count)
        .map(|seed| {
            let mut rng = Rng::new(1000 + seed);
            let lead = lead(&mut rng);
            let n = rng.below(81) as usize;
            let events = events(&mut rng, n, true);
            (lead, events)
        })
        .collect()
}

/// A lead and its events as one JSON document (the zen input; CEL gets the same shape).
pub fn to_json(lead: &Lead, events: &[Event]) -> serde_json::Value {
    let events: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let mut m: BTreeMap<String, Value> = e.properties.clone();
            m.insert("id".into(), Value::from(e.id.clone()));
            m.insert("type".into(), Value::from(e.kind.clone()));
            m.insert("time_ms".into(), Value::from(e.time_ms));
            Value::Object(m.into_iter().collect())
        })
        .collect();
    serde_json::json!({
        "lead": lead.attributes,
        "events": events,
        "as_of": AS_OF,
    })
}
