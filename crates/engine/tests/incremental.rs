//! Incremental state gives exactly what full evaluation gives, for random models, events,
//! arrival orders and `as_of` times.

use kelvin_engine::{
    Bands, Bounds, Cap, CompiledModel, Condition, DecayKind, DecaySpec, EngagementRule, Event,
    FitRule, HOUR_MS, Lead, LeadState, Method, ModelSpec, Score, Threshold, Weights, WindowKind,
    WindowSpec,
};
use proptest::prelude::*;
use serde_json::json;

const T0: i64 = 480_000 * HOUR_MS;
const KINDS: [&str; 3] = ["page_view", "email_open", "form_submit"];

fn leaf(field: &str, op: &str, value: serde_json::Value) -> Condition {
    Condition {
        field: Some(field.to_owned()),
        op: Some(op.to_owned()),
        value: Some(value),
        ..Condition::default()
    }
}

fn event_condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        (0..3usize).prop_map(|k| leaf("event.type", "eq", json!(KINDS[k]))),
        (0..3usize, prop::bool::ANY).prop_map(|(k, neg)| {
            let page = leaf("event.url", "starts_with", json!("/pricing"));
            let page = if neg {
                Condition { not: Some(Box::new(page)), ..Condition::default() }
            } else {
                page
            };
            Condition {
                all: Some(vec![leaf("event.type", "eq", json!(KINDS[k])), page]),
                ..Condition::default()
            }
        }),
        Just(leaf("event.type", "in", json!(["page_view", "email_open"]))),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![(1..200i64).prop_map(|h| format!("{h}h")), (1..20i64).prop_map(|d| format!("{d}d")),]
}

fn decay() -> impl Strategy<Value = DecaySpec> {
    prop_oneof![
        Just(DecaySpec { kind: DecayKind::None, duration: None }),
        (
            prop_oneof![
                Just(DecayKind::HalfLife),
                Just(DecayKind::Linear),
                Just(DecayKind::Expire)
            ],
            duration()
        )
            .prop_map(|(kind, d)| DecaySpec { kind, duration: Some(d) }),
    ]
}

/// Points with up to 3 decimals, never zero.
fn points() -> impl Strategy<Value = f64> {
    (-50_000i64..50_000).prop_filter("non-zero", |m| *m != 0).prop_map(|m| m as f64 / 1000.0)
}

fn engagement_rule(i: usize) -> impl Strategy<Value = EngagementRule> {
    (
        event_condition(),
        points(),
        prop::option::of((1i64..60_000, prop::option::of(duration()))),
        prop::option::of((2u32..5, duration(), 0u8..3)),
        prop::option::of(decay()),
        (
            prop::bool::weighted(0.2),
            prop::option::of(prop::sample::select(vec![0.5, 1.5, 2.0, 0.333])),
        ),
    )
        .prop_map(move |(when, points, cap, window, decay, (once, weight))| EngagementRule {
            id: format!("e{i}"),
            description: None,
            when,
            points,
            cap: cap.map(|(m, per)| Cap { points: m as f64 / 1000.0, per }),
            window: window.map(|(count, within, kind)| WindowSpec {
                count,
                within,
                kind: [WindowKind::Sliding, WindowKind::Tumbling, WindowKind::Rolling]
                    [usize::from(kind)],
            }),
            decay,
            once,
            weight,
            group: None,
        })
}

/// A rule's points per award after its weight, as the docs say: milli-points times the weight
/// in thousandths, rounded half to even to a milli-point.
fn weighted_points(rule: &EngagementRule) -> f64 {
    let p = (rule.points * 1000.0).round() as i128;
    let Some(w) = rule.weight else { return p as f64 / 1000.0 };
    let w = (w * 1000.0).round() as i128;
    let n = p * w;
    let (q, r) = (n.div_euclid(1000), n.rem_euclid(1000));
    let q = if r > 500 || (r == 500 && q % 2 != 0) { q + 1 } else { q };
    q as f64 / 1000.0
}

fn bounds() -> impl Strategy<Value = Option<Bounds>> {
    prop::option::of((prop::option::of(-100i64..0), prop::option::of(0i64..100))).prop_map(|b| {
        b.map(|(min, max)| Bounds { min: min.map(|x| x as f64), max: max.map(|x| x as f64) })
    })
}

fn model() -> impl Strategy<Value = CompiledModel> {
    (
        prop::option::of(decay()),
        prop::collection::vec(any::<u8>(), 0..6).prop_flat_map(|v| {
            v.iter().enumerate().map(|(i, _)| engagement_rule(i)).collect::<Vec<_>>()
        }),
        (bounds(), bounds(), bounds()),
        prop::option::of(0i64..=1000),
        prop::collection::vec((-20i64..20).prop_filter("non-zero", |x| *x != 0), 0..3),
    )
        .prop_map(|(decay, engagement, (fb, eb, tb), weight, fit)| {
            let spec = ModelSpec {
                description: None,
                decay,
                fit: fit
                    .iter()
                    .enumerate()
                    .map(|(i, p)| FitRule {
                        id: format!("f{i}"),
                        description: None,
                        when: leaf("lead.tier", "gte", json!(i)),
                        points: *p as f64,
                        weight: None,
                        group: None,
                    })
                    .collect(),
                exclusions: Vec::new(),
                groups: Default::default(),
                engagement,
                combination: kelvin_engine::Combination {
                    fit: fb,
                    engagement: eb,
                    method: match weight {
                        None => Method::Sum,
                        Some(w) => Method::Weights(Weights {
                            fit: w as f64 / 1000.0,
                            engagement: (1000 - w) as f64 / 1000.0,
                        }),
                    },
                    total: tb,
                },
                bands: Bands::Thresholds(vec![
                    Threshold { label: "hot".into(), min: Some(20.0), above: None, action: None },
                    Threshold { label: "cold".into(), min: None, above: None, action: None },
                ]),
                company: None,
            };
            match spec.compile() {
                Ok(m) => m,
                Err(e) => panic!("generated model is invalid: {e:?}\n{spec:#?}"),
            }
        })
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0..3usize, prop::bool::ANY, -600 * HOUR_MS..50 * HOUR_MS), 0..40)
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (k, pricing, dt))| {
                    let url = if pricing { "/pricing/pro" } else { "/blog" };
                    Event::new(format!("ev{i}"), KINDS[k], T0 + dt).with("url", url)
                })
                .collect()
        })
}

fn without_events(mut s: Score) -> Score {
    for c in &mut s.contributions {
        c.events.clear();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_equals_full(
        model in model(),
        (events, shuffled) in events().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle())),
        as_of_offsets in prop::collection::vec(-700 * HOUR_MS..100 * HOUR_MS, 1..4),
        tier in 0i64..4,
    ) {
        let lead = Lead::from_pairs([("tier", json!(tier))]);
        // Absorb in a different (random) order than the full evaluation sees, one by one.
        let mut state = LeadState::new();
        for e in &shuffled {
            state.absorb(&model, e);
        }
        // A state round-trips through its serialized form.
        let text = serde_json::to_string(&state).expect("state serializes");
        let state: LeadState = serde_json::from_str(&text).expect("state deserializes");
        for off in as_of_offsets {
            let as_of = T0 + off;
            let full = model.score(&lead, None, &events, as_of);
            let sum: i64 = full.contributions.iter().map(|c| c.points.milli()).sum();
            prop_assert_eq!(sum, full.total.milli());
            // Full evaluation is order-independent, explanation included.
            prop_assert_eq!(&model.score(&lead, None, &shuffled, as_of), &full);
            let inc = state.score(&model, &lead, None, as_of);
            prop_assert_eq!(inc, without_events(full));
        }
    }

    #[test]
    fn splitting_absorption_between_states_does_not_matter(
        model in model(),
        events in events(),
        cut in 0usize..40,
    ) {
        // Absorbing a prefix, then the rest later (late events included), is the same as all
        // at once.
        let cut = cut.min(events.len());
        let mut late = LeadState::from_events(&model, &events[cut..]);
        for e in &events[..cut] {
            late.absorb(&model, e);
        }
        prop_assert_eq!(late, LeadState::from_events(&model, &events));
    }
}

/// An independent, floating-point reading of the engagement semantics of one rule (awards,
/// windows, `once`, decay, caps per period) from `docs/model-format.md`.
fn oracle(
    rule: &EngagementRule,
    model_decay: Option<&DecaySpec>,
    events: &[Event],
    as_of: i64,
) -> (u64, f64) {
    let hour = |t: i64| t.div_euclid(HOUR_MS);
    let as_of_hour = hour(as_of);
    let kind = rule.when.value.as_ref().and_then(|v| v.as_str()).unwrap_or_default();
    let mut hours: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == kind && hour(e.time_ms) <= as_of_hour)
        .map(|e| hour(e.time_ms))
        .collect();
    hours.sort_unstable();
    let mut awards: Vec<i64> = match &rule.window {
        None => hours,
        Some(w) if w.kind == WindowKind::Tumbling => {
            let len = kelvin_engine::parse_duration_hours(&w.within).unwrap_or(1);
            let mut out = Vec::new();
            let mut i = 0;
            while i < hours.len() {
                let win = hours[i].div_euclid(len);
                let in_window: Vec<i64> =
                    hours[i..].iter().take_while(|h| h.div_euclid(len) == win).copied().collect();
                if in_window.len() >= w.count as usize {
                    out.push(in_window[w.count as usize - 1]);
                }
                i += in_window.len();
            }
            out
        }
        // Sliding, read from the docs: go through the events in time order; an award each time
        // `count` events not used by an earlier award lie within `within` hours (the newest
        // minus the oldest < within); the award is dated at the newest, every event of its
        // hour is used with it.
        Some(w) if w.kind == WindowKind::Sliding => {
            let len = kelvin_engine::parse_duration_hours(&w.within).unwrap_or(1);
            let mut out = Vec::new();
            let mut open: Vec<i64> = Vec::new();
            let mut i = 0;
            while i < hours.len() {
                let h = hours[i];
                let same = hours[i..].iter().take_while(|x| **x == h).count();
                open.retain(|o| h - o < len);
                open.extend(std::iter::repeat_n(h, same));
                if open.len() >= w.count as usize {
                    out.push(h);
                    open.clear();
                }
                i += same;
            }
            out
        }
        // Rolling: one award at `as_of` while the last `within` hours hold `count` events.
        Some(w) => {
            let len = kelvin_engine::parse_duration_hours(&w.within).unwrap_or(1);
            let recent = hours.iter().filter(|h| **h > as_of_hour - len).count();
            if recent >= w.count as usize { vec![as_of_hour] } else { Vec::new() }
        }
    };
    if rule.once {
        awards.truncate(1);
    }
    let decay = rule.decay.as_ref().or(model_decay);
    let factor = |age: i64| -> f64 {
        let Some(d) = decay else { return 1.0 };
        let len = d
            .duration
            .as_deref()
            .and_then(|s| kelvin_engine::parse_duration_hours(s).ok())
            .unwrap_or(1) as f64;
        let age = age as f64;
        match d.kind {
            DecayKind::None => 1.0,
            DecayKind::HalfLife => (-age / len).exp2(),
            DecayKind::Linear => ((len - age) / len).max(0.0),
            DecayKind::Expire => f64::from(u8::from(age < len)),
        }
    };
    let per = rule
        .cap
        .as_ref()
        .and_then(|c| c.per.as_deref())
        .and_then(|p| kelvin_engine::parse_duration_hours(p).ok());
    let mut groups: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    for h in &awards {
        let key = per.map_or(0, |p| h.div_euclid(p));
        *groups.entry(key).or_default() += weighted_points(rule) * factor(as_of_hour - h);
    }
    let total = groups
        .values()
        .map(|v| match &rule.cap {
            Some(c) => v.clamp(-c.points, c.points),
            None => *v,
        })
        .sum();
    (awards.len() as u64, total)
}

fn single_rule_model() -> impl Strategy<Value = (ModelSpec, EngagementRule)> {
    (engagement_rule(0), 0..3usize, prop::option::of(decay())).prop_map(|(mut rule, k, decay)| {
        rule.when = leaf("event.type", "eq", json!(KINDS[k]));
        let spec = ModelSpec {
            description: None,
            decay,
            fit: Vec::new(),
            exclusions: Vec::new(),
            groups: Default::default(),
            engagement: vec![rule.clone()],
            combination: kelvin_engine::Combination::default(),
            bands: Bands::Thresholds(vec![Threshold {
                label: "all".into(),
                min: None,
                above: None,
                action: None,
            }]),
            company: None,
        };
        (spec, rule)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn engine_agrees_with_a_float_oracle(
        (spec, rule) in single_rule_model(),
        events in events(),
        off in -700 * HOUR_MS..100 * HOUR_MS,
    ) {
        let model = spec.compile().expect("valid model");
        let as_of = T0 + off;
        let score = model.score(&Lead::default(), None, &events, as_of);
        let (awards, expected) = oracle(&rule, spec.decay.as_ref(), &events, as_of);
        let line = score.contributions.iter().find(|c| c.rule_id == "e0");
        match line {
            None => prop_assert_eq!(awards, 0),
            Some(c) => {
                let detail = c.engagement.as_ref().expect("detail");
                prop_assert_eq!(detail.awards, awards);
                let raw = (weighted_points(&rule) * 1000.0).round() as i64 * awards as i64;
                prop_assert_eq!(detail.raw.milli(), raw);
                // Rounding to a milli-point per cap group, and the half-life fraction
                // quantised to 1/65536 (relative error < 1.1e-5).
                let got = c.points.milli() as f64 / 1000.0;
                let tolerance = 0.001 * (awards as f64 + 1.0) + 2e-5 * (rule.points.abs() * awards as f64);
                prop_assert!(
                    (got - expected).abs() <= tolerance,
                    "engine {} oracle {} tolerance {}", got, expected, tolerance
                );
            }
        }
    }
}

/// Points of every engagement rule (0 when it has no line), fit, engagement, total, band.
fn points_view(s: &Score, model: &ModelSpec) -> (Vec<i64>, i64, i64, i64, String) {
    let rules = model
        .engagement
        .iter()
        .map(|r| s.contributions.iter().find(|c| c.rule_id == r.id).map_or(0, |c| c.points.milli()))
        .collect();
    (rules, s.fit.milli(), s.engagement.milli(), s.total.milli(), s.band.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pruning_keeps_points_exact_from_its_horizon_on(
        model in model(),
        events in events(),
        late in events(),
        horizon in -100 * HOUR_MS..2000 * HOUR_MS,
        after in prop::collection::vec(0..3000 * HOUR_MS, 1..4),
    ) {
        let lead = Lead::default();
        let mut state = LeadState::from_events(&model, &events);
        let before = state.len();
        let dropped = state.prune(&model, T0 + horizon);
        prop_assert_eq!(state.len() + dropped, before);
        // Events may still arrive after pruning, old ones included.
        for e in &late {
            state.absorb(&model, e);
        }
        let all: Vec<Event> = events
            .iter()
            .cloned()
            .chain(late.iter().cloned().map(|mut e| {
                e.id = format!("late-{}", e.id);
                e
            }))
            .collect();
        for a in after {
            let as_of = T0 + horizon + a;
            let full = model.score(&lead, None, &all, as_of);
            let inc = state.score(&model, &lead, None, as_of);
            prop_assert_eq!(points_view(&inc, model.spec()), points_view(&full, model.spec()));
        }
    }
}

fn yaml_model(engagement: &str) -> CompiledModel {
    let text = format!("engagement:\n{engagement}bands:\n  thresholds:\n    - {{ label: all }}\n");
    match ModelSpec::from_yaml(&text).map(|s| s.compile()) {
        Ok(Ok(m)) => m,
        other => panic!("test model: {other:?}"),
    }
}

fn at_hour(id: &str, hour: i64) -> Event {
    Event::new(id, "page_view", hour * HOUR_MS)
}

#[test]
fn pruning_keeps_the_first_award_of_a_once_rule() {
    let m = yaml_model(
        "  - id: first\n    when: { field: event.type, op: eq, value: page_view }\n    points: 10\n    once: true\n    decay: { type: expire, duration: 10h }\n",
    );
    let events = [at_hour("old", 0), at_hour("new", 100)];
    let mut state = LeadState::from_events(&m, &events);
    assert_eq!(state.prune(&m, 50 * HOUR_MS), 0);
    // The once-award is the hour-0 view, long expired at hour 100: no points, on both paths.
    let full = m.score(&Lead::default(), None, &events, 100 * HOUR_MS);
    assert_eq!(full.engagement.milli(), 0);
    assert_eq!(state.score(&m, &Lead::default(), None, 100 * HOUR_MS), without_events(full));
}

#[test]
fn pruning_drops_whole_windows_only() {
    let m = yaml_model(
        "  - id: burst\n    when: { field: event.type, op: eq, value: page_view }\n    points: 10\n    window: { count: 2, within: 10h, kind: tumbling }\n    decay: { type: expire, duration: 5h }\n",
    );
    // Window [0, 10) holds views at hours 1 and 8: the award is dated at hour 8.
    let events = [at_hour("a", 1), at_hour("b", 8), at_hour("c", 21), at_hour("d", 22)];
    let mut state = LeadState::from_events(&m, &events);
    // At horizon 7 the hour-1 view alone has expired, but its window has not ended: kept.
    assert_eq!(state.prune(&m, 7 * HOUR_MS), 0);
    let full = m.score(&Lead::default(), None, &events, 8 * HOUR_MS);
    assert_eq!(full.engagement.milli(), 10_000);
    assert_eq!(state.score(&m, &Lead::default(), None, 8 * HOUR_MS), without_events(full));
    // At horizon 14 the window's last hour (9) is 5 h old: the whole window goes; the window
    // [20, 30) stays.
    assert_eq!(state.prune(&m, 14 * HOUR_MS), 2);
    assert_eq!(state.len(), 2);
    let s = state.score(&m, &Lead::default(), None, 22 * HOUR_MS);
    assert_eq!(s.engagement.milli(), 10_000);
}

#[test]
fn sliding_windows_are_never_pruned_and_rolling_ones_forget_what_left_the_window() {
    let sliding = yaml_model(
        "  - id: burst\n    when: { field: event.type, op: eq, value: page_view }\n    points: 10\n    window: { count: 2, within: 10h }\n    decay: { type: expire, duration: 5h }\n",
    );
    let events = [at_hour("a", 1), at_hour("b", 8), at_hour("c", 21), at_hour("d", 22)];
    let mut state = LeadState::from_events(&sliding, &events);
    // A late old event could still pair with kept ones: a sliding window keeps everything.
    assert_eq!(state.prune(&sliding, 1000 * HOUR_MS), 0);
    let rolling = yaml_model(
        "  - id: recent\n    when: { field: event.type, op: eq, value: page_view }\n    points: 10\n    window: { count: 2, within: 10h, kind: rolling }\n",
    );
    let mut state = LeadState::from_events(&rolling, &events);
    // At horizon 25 the window is hours 16..=25: the views at 1 and 8 can never count again.
    assert_eq!(state.prune(&rolling, 25 * HOUR_MS), 2);
    let full = rolling.score(&Lead::default(), None, &events, 25 * HOUR_MS);
    assert_eq!(full.engagement.milli(), 10_000);
    assert_eq!(state.score(&rolling, &Lead::default(), None, 25 * HOUR_MS), without_events(full));
    // At hour 32 only the view at 22 is within the last 10 hours: the points are gone.
    let later = rolling.score(&Lead::default(), None, &events, 32 * HOUR_MS);
    assert_eq!(later.engagement.milli(), 0);
}
