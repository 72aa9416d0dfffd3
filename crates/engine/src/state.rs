//! Incremental state: what a lead's events leave behind, enough to score it exactly.

use serde::{Deserialize, Serialize};

use crate::condition::Ctx;
use crate::eval::{EngagementLines, Score, engagement_rule};
use crate::fixed::hour_of;
use crate::input::{Company, Event, Lead, Timestamp};
use crate::model::CompiledModel;
use crate::spec::WindowKind;

const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const HOUR_BITS: u32 = 32;

/// Per-lead incremental state for one compiled model.
///
/// It keeps, for every engagement rule, how many matching events fell in each UTC hour: one
/// packed `u64` per (rule, hour) pair that has events — `rule` (12 bits) | `hour` (32 bits) |
/// `count` (20 bits), sorted. Since decay, windows, caps and `as_of` all work on whole hours,
/// these counts determine the engagement points exactly, whatever order events arrive in.
/// Fit rules and exclusions are evaluated at scoring time from the lead's current attributes.
///
/// The state is only meaningful with the model (version) it was built with: rebuild it from
/// the stored events when the model changes. The engine does not deduplicate events: absorb
/// each event id once (ingest deduplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u64>", into = "Vec<u64>")]
pub struct LeadState {
    entries: Vec<u64>,
}

fn key_of(rule: usize, hour: i32) -> u64 {
    let h = (i64::from(hour) - i64::from(i32::MIN)) as u64;
    ((rule as u64) << HOUR_BITS) | h
}

fn unpack(entry: u64) -> (usize, i32) {
    let key = entry >> COUNT_BITS;
    let rule = (key >> HOUR_BITS) as usize;
    let hour = ((key & ((1 << HOUR_BITS) - 1)) as i64 + i64::from(i32::MIN)) as i32;
    (rule, hour)
}

/// A stored state that is not a valid [`LeadState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid lead state: {0}")]
pub struct StateError(&'static str);

impl TryFrom<Vec<u64>> for LeadState {
    type Error = StateError;

    fn try_from(entries: Vec<u64>) -> Result<Self, StateError> {
        if entries.iter().any(|e| e & COUNT_MAX == 0) {
            return Err(StateError("an entry has a zero count"));
        }
        if entries.windows(2).any(|w| w[0] >> COUNT_BITS > w[1] >> COUNT_BITS) {
            return Err(StateError("entries are not sorted"));
        }
        Ok(LeadState { entries })
    }
}

impl From<LeadState> for Vec<u64> {
    fn from(state: LeadState) -> Self {
        state.entries
    }
}

impl LeadState {
    /// The state as bytes (8 little-endian bytes per entry), e.g. to store it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.to_le_bytes()).collect()
    }

    /// A state from [`LeadState::to_bytes`]; checks its shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        if !bytes.len().is_multiple_of(8) {
            return Err(StateError("length is not a multiple of 8"));
        }
        let entries = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect::<Vec<_>>();
        LeadState::try_from(entries)
    }

    /// An empty state.
    pub fn new() -> Self {
        LeadState::default()
    }

    /// A state with every event of `events` absorbed, without unused capacity.
    pub fn from_events(model: &CompiledModel, events: &[Event]) -> Self {
        Self::from_events_of(model, &Lead::default(), None, events)
    }

    /// [`LeadState::from_events`] for models whose engagement conditions read the lead's or
    /// its company's attributes too (see [`CompiledModel::engagement_reads_attributes`]).
    pub fn from_events_of(
        model: &CompiledModel,
        lead: &Lead,
        company: Option<&Company>,
        events: &[Event],
    ) -> Self {
        let mut s = LeadState::new();
        for e in events {
            s.absorb_of(model, lead, company, e);
        }
        s.shrink_to_fit();
        s
    }

    /// Takes one event into account, whatever its time (late events included).
    pub fn absorb(&mut self, model: &CompiledModel, event: &Event) {
        self.absorb_of(model, &Lead::default(), None, event);
    }

    /// [`LeadState::absorb`] with the lead's and company's current attributes. When they
    /// change, a model that reads them rebuilds the state from all the events.
    pub fn absorb_of(
        &mut self,
        model: &CompiledModel,
        lead: &Lead,
        company: Option<&Company>,
        event: &Event,
    ) {
        let ctx = Ctx {
            event: Some(event),
            lead: Some(&lead.attributes),
            company: company.map(|c| &c.attributes),
        };
        let hour = hour_of(event.time_ms);
        for (i, rule) in model.engagement.iter().enumerate() {
            if rule.cond.eval(&ctx) {
                self.add(i, hour);
            }
        }
    }

    fn add(&mut self, rule: usize, hour: i32) {
        let key = key_of(rule, hour);
        let mut idx = self.entries.partition_point(|e| (e >> COUNT_BITS) < key);
        while let Some(e) = self.entries.get_mut(idx) {
            if *e >> COUNT_BITS != key {
                break;
            }
            if *e & COUNT_MAX < COUNT_MAX {
                *e += 1;
                return;
            }
            idx += 1;
        }
        self.entries.insert(idx, (key << COUNT_BITS) | 1);
    }

    /// Drops what can no longer give points at any `as_of` at or after `not_before`: entries
    /// whose decay weight is exactly zero from then on (for a tumbling window rule, judged at
    /// the last hour of the entry's window, so whole windows go together), and entries of a
    /// rolling window rule older than its window at `not_before`. Rules with `once`, rules
    /// without decay and sliding window rules keep everything (a sliding window's awards depend
    /// on every earlier event, including late ones that may still arrive). Returns the number
    /// of entries dropped.
    ///
    /// Afterwards, for every `as_of >= not_before`, points (every rule's, fit, engagement,
    /// total, band) are still exactly those of the full evaluation; only the explanation
    /// details of fully decayed awards (`awards`, `raw`, zero-point lines) may differ.
    pub fn prune(&mut self, model: &CompiledModel, not_before: Timestamp) -> usize {
        let horizon = i64::from(hour_of(not_before));
        let before = self.entries.len();
        self.entries.retain(|&e| {
            let (rule, hour) = unpack(e);
            let Some(r) = model.engagement.get(rule) else {
                return true;
            };
            if r.once {
                return true;
            }
            let last = match r.window {
                Some(w) if w.kind == WindowKind::Sliding => return true,
                Some(w) if w.kind == WindowKind::Rolling => {
                    // Counted only while within the last `hours` before `as_of`.
                    return i64::from(hour) > horizon - w.hours;
                }
                Some(w) => (i64::from(hour).div_euclid(w.hours) + 1) * w.hours - 1,
                None => i64::from(hour),
            };
            horizon < last || r.decay.factor_q40(horizon - last) != 0
        });
        before - self.entries.len()
    }

    /// Number of packed (rule, hour) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no event matched any engagement rule yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes on the heap (the entries' buffer capacity).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>()
    }

    /// Frees unused capacity (e.g. before storing the state).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    /// The score at `as_of`: the same as [`CompiledModel::score`] over every absorbed event,
    /// except that contributions carry no event ids.
    pub fn score(
        &self,
        model: &CompiledModel,
        lead: &Lead,
        company: Option<&Company>,
        as_of: Timestamp,
    ) -> Score {
        let as_of_hour = hour_of(as_of);
        let lines: EngagementLines = model
            .engagement
            .iter()
            .zip(&self.buckets(model, as_of_hour))
            .map(|(rule, buckets)| (engagement_rule(rule, buckets, as_of_hour), Vec::new()))
            .collect();
        model.assemble(lead, company, lines)
    }

    /// Counts per (rule, hour) up to `as_of_hour`, rule by rule.
    fn buckets(&self, model: &CompiledModel, as_of_hour: i32) -> Vec<Vec<(i32, u64)>> {
        let mut per_rule: Vec<Vec<(i32, u64)>> = vec![Vec::new(); model.engagement.len()];
        for &e in &self.entries {
            let (rule, hour) = unpack(e);
            let count = e & COUNT_MAX;
            if hour > as_of_hour {
                continue;
            }
            if let Some(b) = per_rule.get_mut(rule) {
                match b.last_mut() {
                    Some((h, c)) if *h == hour => *c += count,
                    _ => b.push((hour, count)),
                }
            }
        }
        per_rule
    }

    /// The band at `as_of` given the lead's time-independent part: what
    /// [`LeadState::score`] would give, without fit rules or explanations.
    fn band_at<'m>(
        &self,
        model: &'m CompiledModel,
        fixed: &crate::eval::TimeFixed,
        as_of: Timestamp,
    ) -> &'m str {
        let as_of_hour = hour_of(as_of);
        let eng_raw = model
            .engagement
            .iter()
            .zip(&self.buckets(model, as_of_hour))
            .map(|(rule, buckets)| engagement_rule(rule, buckets, as_of_hour))
            .filter(|o| o.detail.awards != 0)
            .fold(0_i64, |sum, o| sum.saturating_add(o.points));
        model.band_of(fixed, eng_raw)
    }
}

impl LeadState {
    /// When the band will next differ from the band at `as_of` if no new event arrives: the
    /// start of the first UTC hour after `as_of` (within `horizon_hours`) whose band differs,
    /// or `None` when the band stays the same up to the horizon.
    ///
    /// Only time moves the score here (decay, expiry), so the search probes hours 1, 2, 4, 8…
    /// ahead and bisects between the last unchanged probe and the first changed one: about
    /// 2·log2(horizon) evaluations. Exact whenever the band changes at most once over the
    /// horizon, which holds when engagement points all decay towards zero from one side (the
    /// usual model); with positive and negative decaying rules both moving, a band left and
    /// re-entered between two probes can be missed. Callers re-evaluate at the returned time and
    /// ask again, so a later change is never skipped.
    pub fn next_band_change(
        &self,
        model: &CompiledModel,
        lead: &Lead,
        company: Option<&Company>,
        as_of: Timestamp,
        horizon_hours: i64,
    ) -> Option<Timestamp> {
        if self.entries.is_empty() || horizon_hours < 1 {
            return None;
        }
        let start = i64::from(hour_of(as_of));
        // Fit and exclusions do not move with time: evaluated once, not at every probe.
        let fixed = model.time_fixed(lead, company);
        let band_at =
            |hour: i64| self.band_at(model, &fixed, hour.saturating_mul(crate::fixed::HOUR_MS));
        let now = band_at(start);
        let (mut same, mut step) = (0_i64, 1_i64);
        let changed = loop {
            let probe = step.min(horizon_hours);
            if band_at(start + probe) != now {
                break probe;
            }
            if probe == horizon_hours {
                return None;
            }
            same = probe;
            step = step.saturating_mul(2);
        };
        let (mut lo, mut hi) = (same, changed);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if band_at(start + mid) == now {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some((start + hi).saturating_mul(crate::fixed::HOUR_MS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast band of `next_band_change` is the band `score` gives, for every sample model
    /// (thresholds, a grade matrix, weights, exclusions, fit regexes), at every probed hour.
    #[test]
    fn band_at_agrees_with_score() {
        use crate::{Company, Event, Lead};
        let samples = [
            include_str!("../../../examples/models/b2b-saas.yaml"),
            include_str!("../../../examples/models/b2c-ecommerce.yaml"),
            include_str!("../../../examples/models/bant-grid.yaml"),
        ];
        let leads = [
            serde_json::json!({}),
            serde_json::json!({"job_title": "VP Marketing", "email": "ana@acme.example",
                "company_size": 400, "country": "FR", "budget": "confirmed"}),
            serde_json::json!({"job_title": "Student", "email": "bob@gmail.com"}),
            serde_json::json!({"email": "x@rivalsoft.example", "email_validity": "fail"}),
        ];
        let kinds = [
            "page_view",
            "email_open",
            "email_click",
            "demo_request",
            "form_submit",
            "content_download",
            "webinar",
            "pricing_view",
            "purchase",
            "cart_add",
        ];
        let start = 1_763_000_000_000_i64;
        for yaml in samples {
            let model = CompiledModel::from_yaml(yaml).expect("sample model compiles");
            for (li, attributes) in leads.iter().enumerate() {
                let lead: Lead =
                    serde_json::from_value(serde_json::json!({"attributes": attributes}))
                        .expect("lead");
                let company: Option<Company> = None;
                let events: Vec<Event> = (0..(li * 7 + 5))
                    .map(|i| Event {
                        id: format!("e{i}"),
                        kind: kinds[(i * 3 + li) % kinds.len()].into(),
                        time_ms: start - (i as i64 % 40) * 6 * crate::fixed::HOUR_MS,
                        properties: [("url".to_owned(), serde_json::json!("/pricing"))].into(),
                    })
                    .collect();
                let state = LeadState::from_events(&model, &events);
                let fixed = model.time_fixed(&lead, company.as_ref());
                for h in (0..2000).step_by(7) {
                    let at = start + h * crate::fixed::HOUR_MS;
                    assert_eq!(
                        state.band_at(&model, &fixed, at),
                        state.score(&model, &lead, company.as_ref(), at).band,
                        "lead {li} at hour {h}"
                    );
                }
            }
        }
    }

    #[test]
    fn bytes_round_trip_and_are_checked() {
        let mut s = LeadState::new();
        s.add(3, 100);
        s.add(3, 100);
        s.add(0, -5);
        let back = LeadState::from_bytes(&s.to_bytes());
        assert_eq!(back.as_ref(), Ok(&s));
        assert!(LeadState::from_bytes(&[1, 2, 3]).is_err());
        let mut swapped = s.entries.clone();
        swapped.reverse();
        assert!(LeadState::try_from(swapped).is_err());
        assert!(LeadState::try_from(vec![key_of(1, 1) << COUNT_BITS]).is_err());
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(serde_json::from_str::<LeadState>(&json).expect("parses"), s);
        assert!(serde_json::from_str::<LeadState>("[0]").is_err());
    }

    #[test]
    fn counts_overflow_into_a_new_entry() {
        let mut s = LeadState::new();
        for _ in 0..COUNT_MAX + 2 {
            s.add(1, 7);
        }
        assert_eq!(s.len(), 2);
        let total: u64 = s.entries.iter().map(|e| e & COUNT_MAX).sum();
        assert_eq!(total, COUNT_MAX + 2);
    }

    #[test]
    fn packing_round_trips() {
        for (rule, hour) in [(0, 0), (5, -1), (4095, i32::MAX), (17, i32::MIN), (3, 493_000)] {
            let e = (key_of(rule, hour) << COUNT_BITS) | 7;
            assert_eq!(unpack(e), (rule, hour));
        }
        assert!(key_of(1, i32::MIN) > key_of(0, i32::MAX));
        assert!(key_of(0, -1) < key_of(0, 0));
    }
}
