//! `LeadState::next_band_change`: when time alone will move a lead to another band.

#![allow(clippy::unwrap_used)]

use kelvin_engine::{CompiledModel, Event, HOUR_MS, Lead, LeadState};

const MODEL: &str = r#"
engagement:
  - id: demo
    when: { field: event.type, op: eq, value: demo_request }
    points: 80
    decay: { type: half_life, duration: 24h }
  - id: expiring
    when: { field: event.type, op: eq, value: webinar }
    points: 40
    decay: { type: expire, duration: 10h }
bands:
  thresholds:
    - { label: hot, min: 70 }
    - { label: warm, min: 30 }
    - { label: cold }
"#;

fn band(state: &LeadState, model: &CompiledModel, at: i64) -> String {
    state.score(model, &Lead::default(), None, at).band
}

#[test]
fn the_first_hour_with_another_band_is_found_exactly() {
    let model = CompiledModel::from_yaml(MODEL).unwrap();
    let t0 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;
    let state = LeadState::from_events(&model, &[Event::new("e1", "demo_request", t0)]);
    assert_eq!(band(&state, &model, t0), "hot");
    // 80 halves every 24 h: below 70 after a few hours, below 30 after about 34 hours.
    let mut at = t0;
    let mut seen = vec!["hot".to_owned()];
    while let Some(next) = state.next_band_change(&model, &Lead::default(), None, at, 24 * 400) {
        assert!(next > at);
        // The band is unchanged up to the hour before, and changed at it.
        assert_eq!(band(&state, &model, next - HOUR_MS), band(&state, &model, at));
        assert_ne!(band(&state, &model, next), band(&state, &model, at));
        seen.push(band(&state, &model, next));
        at = next;
    }
    assert_eq!(seen, ["hot", "warm", "cold"]);
}

#[test]
fn expiry_and_no_change_are_reported() {
    let model = CompiledModel::from_yaml(MODEL).unwrap();
    let t0 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;
    let state = LeadState::from_events(&model, &[Event::new("w", "webinar", t0)]);
    assert_eq!(band(&state, &model, t0), "warm");
    let next = state.next_band_change(&model, &Lead::default(), None, t0, 1000).unwrap();
    assert_eq!(next, t0 + 10 * HOUR_MS);
    assert_eq!(band(&state, &model, next), "cold");
    // Cold forever after: nothing to wait for; an empty state neither.
    assert_eq!(state.next_band_change(&model, &Lead::default(), None, next, 1000), None);
    assert_eq!(LeadState::new().next_band_change(&model, &Lead::default(), None, t0, 1000), None);
    // A horizon too short to see the change.
    assert_eq!(state.next_band_change(&model, &Lead::default(), None, t0, 5), None);
}
