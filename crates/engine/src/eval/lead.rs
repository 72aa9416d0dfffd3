//! A lead's score: the full evaluation from all its events, and the assembly of fit,
//! engagement outcomes, combination, exclusions and band shared with the incremental path.

use super::engagement::{RuleOutcome, Selection, engagement_rule};
use super::{Contribution, ContributionKind, Disqualification, Score, adjustment, fit_lines, sat};
use crate::condition::Ctx;
use crate::fixed::{Points, div_round_half_even, hour_of};
use crate::input::{Company, Event, Lead, Timestamp};
use crate::model::{CBands, CompiledModel, DISQUALIFIED, pick};

/// An event that counts in a full evaluation: its time and its index in the input.
struct Item {
    time_ms: Timestamp,
    index: usize,
}

/// Per engagement rule: its outcome and, on the full path, the ids of its events.
pub(crate) type EngagementLines = Vec<(RuleOutcome, Vec<String>)>;

/// Engagement bounded, then combined with fit and bounded: the steps of [`CompiledModel::assemble`]
/// after the rules.
struct Combined {
    engagement: i64,
    plain: i64,
    combined: i64,
    total: i64,
}

/// The band a combination falls in (references into the model).
struct Picked<'a> {
    label: &'a str,
    action: Option<&'a str>,
    grade: Option<&'a str>,
}

/// What of a lead's score does not move with time: its bounded fit and whether an exclusion
/// applies. [`crate::LeadState::next_band_change`] computes it once and then only re-adds
/// engagement at each probed hour.
pub(crate) struct TimeFixed {
    fit: i64,
    disqualified: bool,
}

impl CompiledModel {
    fn combine(&self, fit: i64, eng_raw: i64) -> Combined {
        let engagement = self.engagement_bounds.apply(eng_raw);
        let plain = fit.saturating_add(engagement);
        let combined = match self.weights {
            None => plain,
            Some((wf, we)) => sat(div_round_half_even(
                i128::from(fit) * i128::from(wf) + i128::from(engagement) * i128::from(we),
                1000,
            )),
        };
        Combined { engagement, plain, combined, total: self.total_bounds.apply(combined) }
    }

    fn pick_band(&self, fit: i64, engagement: i64, total: i64) -> Picked<'_> {
        const NONE: Picked<'static> = Picked { label: "", action: None, grade: None };
        match &self.bands {
            CBands::Thresholds(ts) => pick(ts, total).map_or(NONE, |t| Picked {
                label: &t.label,
                action: t.action.as_deref(),
                grade: None,
            }),
            CBands::Matrix { fit: fg, engagement: eg, cells, actions } => {
                let fi = fg.iter().position(|t| t.min.is_none_or(|m| fit >= m));
                let ei = eg.iter().position(|t| t.min.is_none_or(|m| engagement >= m));
                match (fi, ei) {
                    (Some(f), Some(e)) => match cells.get(f).and_then(|r| r.get(e)) {
                        Some((grade, label)) => Picked {
                            label,
                            action: actions.get(label).map(String::as_str),
                            grade: Some(grade),
                        },
                        None => NONE,
                    },
                    _ => NONE,
                }
            }
        }
    }

    /// See [`TimeFixed`].
    pub(crate) fn time_fixed(&self, lead: &Lead, company: Option<&Company>) -> TimeFixed {
        let ctx = Ctx {
            lead: Some(&lead.attributes),
            company: company.map(|c| &c.attributes),
            event: None,
        };
        let (fit_raw, _) = fit_lines(&self.fit, &ctx, ContributionKind::Fit, 0);
        TimeFixed {
            fit: self.fit_bounds.apply(fit_raw),
            disqualified: self.exclusions.iter().any(|x| x.cond.eval(&ctx)),
        }
    }

    /// The band [`CompiledModel::assemble`] gives for `fixed` and the raw engagement `eng_raw`,
    /// without building the explanation.
    pub(crate) fn band_of<'a>(&'a self, fixed: &TimeFixed, eng_raw: i64) -> &'a str {
        if fixed.disqualified {
            return DISQUALIFIED;
        }
        let c = self.combine(fixed.fit, eng_raw);
        self.pick_band(fixed.fit, c.engagement, c.total).label
    }

    /// The bit of an event type among [`CompiledModel::event_types`] (0 when not there).
    fn type_bit(&self, kind: &str) -> u64 {
        if self.event_types.is_empty() {
            return 0;
        }
        // At most 64 short names: a linear scan, lengths first, beats a binary search.
        self.event_types
            .iter()
            .position(|t| t.len() == kind.len() && t.bytes().eq(kind.bytes()))
            .map_or(0, |i| 1 << i)
    }

    /// Full evaluation: scores `lead` (of `company`) from all its `events` at `as_of`.
    ///
    /// Events stamped in a later UTC hour than `as_of` are not counted. The result does not
    /// depend on the order of `events`.
    pub fn score(
        &self,
        lead: &Lead,
        company: Option<&Company>,
        events: &[Event],
        as_of: Timestamp,
    ) -> Score {
        let as_of_hour = hour_of(as_of);
        // The events that count, once, by (time, id) — ties keep their input order, as a
        // stable sort would — and the bit of each one's type.
        let mut items: Vec<Item> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                (hour_of(e.time_ms) <= as_of_hour).then_some(Item { time_ms: e.time_ms, index: i })
            })
            .collect();
        // By (time, index) first — cheap keys, and often already in order — then runs of equal
        // times by id (a stable sort keeps their input order).
        if !items.is_sorted_by_key(|it| (it.time_ms, it.index)) {
            items.sort_unstable_by_key(|it| (it.time_ms, it.index));
        }
        let mut start = 0;
        while start < items.len() {
            let t = items[start].time_ms;
            let end = start + items[start..].iter().take_while(|it| it.time_ms == t).count();
            if end - start > 1 {
                items[start..end].sort_by(|a, b| events[a.index].id.cmp(&events[b.index].id));
            }
            start = end;
        }
        let bits: Vec<u64> = if self.event_types.is_empty() {
            Vec::new()
        } else {
            items.iter().map(|it| self.type_bit(&events[it.index].kind)).collect()
        };
        let mut lines: EngagementLines = Vec::with_capacity(self.engagement.len());
        // Positions in `items` of the current rule's events (so in (time, id) order).
        let mut matched: Vec<usize> = Vec::with_capacity(items.len());
        let mut buckets: Vec<(i32, u64)> = Vec::with_capacity(items.len());
        for rule in &self.engagement {
            matched.clear();
            let holds = |c: &crate::condition::Cond, e: &Event| {
                c.eval(&Ctx {
                    event: Some(e),
                    lead: Some(&lead.attributes),
                    company: company.map(|c| &c.attributes),
                })
            };
            match &rule.types {
                Some(f) => matched.extend(bits.iter().zip(&items).enumerate().filter_map(
                    |(k, (bit, it))| {
                        (bit & f.mask != 0
                            && f.rest.as_ref().is_none_or(|c| holds(c, &events[it.index])))
                        .then_some(k)
                    },
                )),
                None => matched.extend(
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(k, it)| holds(&rule.cond, &events[it.index]).then_some(k)),
                ),
            }
            buckets.clear();
            for &k in &matched {
                let h = hour_of(items[k].time_ms);
                match buckets.last_mut() {
                    Some((lh, c)) if *lh == h => *c += 1,
                    _ => buckets.push((h, 1)),
                }
            }
            let outcome = engagement_rule(rule, &buckets, as_of_hour);
            let id = |k: &usize| events[items[*k].index].id.clone();
            let ids: Vec<String> = match &outcome.selection {
                Selection::All => matched.iter().map(id).collect(),
                Selection::First => matched.first().map(id).into_iter().collect(),
                Selection::Ranges(rs) => matched
                    .iter()
                    .filter(|k| Selection::covers(rs, hour_of(items[**k].time_ms)))
                    .map(id)
                    .collect(),
            };
            lines.push((outcome, ids));
        }
        self.assemble(lead, company, lines)
    }

    /// Combines fit (evaluated now) with per-rule engagement outcomes into a score.
    pub(crate) fn assemble(
        &self,
        lead: &Lead,
        company: Option<&Company>,
        engagement: EngagementLines,
    ) -> Score {
        let ctx = Ctx {
            lead: Some(&lead.attributes),
            company: company.map(|c| &c.attributes),
            event: None,
        };
        // Room for the engagement lines and the four adjustments.
        let more = engagement.iter().filter(|(o, _)| o.detail.awards != 0).count() + 4;
        let (fit_raw, mut contributions) = fit_lines(&self.fit, &ctx, ContributionKind::Fit, more);
        let fit = self.fit_bounds.apply(fit_raw);
        contributions.extend(adjustment("bound:fit", ContributionKind::FitBound, fit - fit_raw));

        let mut eng_raw: i64 = 0;
        for ((outcome, ids), rule) in engagement.into_iter().zip(&self.engagement) {
            if outcome.detail.awards == 0 {
                continue;
            }
            eng_raw = eng_raw.saturating_add(outcome.points);
            contributions.push(Contribution {
                rule_id: rule.id.clone(),
                kind: ContributionKind::Engagement,
                points: Points(outcome.points),
                engagement: Some(outcome.detail),
                events: ids,
                weight: rule.weight.map(Points),
            });
        }
        let Combined { engagement, plain, combined, total } = self.combine(fit, eng_raw);
        contributions.extend(adjustment(
            "bound:engagement",
            ContributionKind::EngagementBound,
            engagement - eng_raw,
        ));
        contributions.extend(adjustment("weights", ContributionKind::Weighting, combined - plain));
        contributions.extend(adjustment(
            "bound:total",
            ContributionKind::TotalBound,
            total - combined,
        ));

        // Every matching exclusion disqualifies (the first names the reason) and counts its
        // points, if it has any, after the bounds: a spreadsheet's −1000 stays −1000.
        let mut disqualified = None;
        let mut total = total;
        for x in self.exclusions.iter().filter(|x| x.cond.eval(&ctx)) {
            disqualified.get_or_insert_with(|| Disqualification {
                rule_id: x.id.clone(),
                reason: x.reason.clone(),
            });
            if x.points != 0 {
                total = total.saturating_add(x.points);
                contributions.push(Contribution {
                    rule_id: x.id.clone(),
                    kind: ContributionKind::Exclusion,
                    points: Points(x.points),
                    engagement: None,
                    events: Vec::new(),
                    weight: x.weight.map(Points),
                });
            }
        }
        let picked = self.pick_band(fit, engagement, total);
        let (mut band, mut action, grade) = (
            picked.label.to_owned(),
            picked.action.map(str::to_owned),
            picked.grade.map(str::to_owned),
        );
        if disqualified.is_some() {
            band = DISQUALIFIED.to_owned();
            action = None;
        }
        Score {
            fit: Points(fit),
            engagement: Points(engagement),
            total: Points(total),
            band,
            action,
            grade,
            disqualified,
            contributions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Cond;

    /// The straightforward full evaluation: every rule scans every event with its whole
    /// condition and sorts its own matches by (time, id) with a stable sort.
    fn reference(m: &CompiledModel, lead: &Lead, events: &[Event], as_of: Timestamp) -> Score {
        let as_of_hour = hour_of(as_of);
        let mut lines: EngagementLines = Vec::new();
        for rule in &m.engagement {
            let mut matched: Vec<(i32, &Event)> = events
                .iter()
                .filter(|e| hour_of(e.time_ms) <= as_of_hour)
                .filter(|e| rule.cond.eval(&Ctx { event: Some(e), ..Ctx::default() }))
                .map(|e| (hour_of(e.time_ms), e))
                .collect();
            matched.sort_by(|a, b| (a.1.time_ms, &a.1.id).cmp(&(b.1.time_ms, &b.1.id)));
            let mut buckets: Vec<(i32, u64)> = Vec::new();
            for (h, _) in &matched {
                match buckets.last_mut() {
                    Some((lh, c)) if lh == h => *c += 1,
                    _ => buckets.push((*h, 1)),
                }
            }
            let outcome = engagement_rule(rule, &buckets, as_of_hour);
            let ids: Vec<String> = match &outcome.selection {
                Selection::All => matched.iter().map(|(_, e)| e.id.clone()).collect(),
                Selection::First => {
                    matched.first().map(|(_, e)| e.id.clone()).into_iter().collect()
                }
                Selection::Ranges(rs) => matched
                    .iter()
                    .filter(|(h, _)| Selection::covers(rs, *h))
                    .map(|(_, e)| e.id.clone())
                    .collect(),
            };
            lines.push((outcome, ids));
        }
        m.assemble(lead, None, lines)
    }

    const MODEL: &str = r#"
decay: { type: half_life, duration: 7d }
fit:
  - { id: big, when: { field: lead.size, op: gte, value: 10 }, points: 5 }
engagement:
  - { id: pv, when: { field: event.type, op: eq, value: page_view }, points: 1, cap: { points: 4, per: 1d } }
  - id: pricing
    when: { all: [ { field: event.url, op: contains, value: /pricing }, { field: event.type, op: in, value: [page_view, email_click, 3] } ] }
    points: 3
  - id: not_pricing
    when: { all: [ { field: event.type, op: eq, value: page_view }, { not: { field: event.url, op: contains, value: /pricing } }, { field: event.url, op: exists } ] }
    points: 2
  - { id: mail, when: { field: event.type, op: in, value: [email_open, email_click] }, points: 1, once: true }
  - { id: never, when: { field: event.type, op: eq, value: 7 }, points: 9 }
  - id: any
    when: { any: [ { field: event.type, op: eq, value: form_submit }, { field: event.url, op: starts_with, value: /docs } ] }
    points: 4
  - { id: burst, when: { field: event.type, op: eq, value: page_view }, points: 10, window: { count: 3, within: 2h } }
  - { id: first_form, when: { field: event.type, op: eq, value: form_submit }, points: 6, window: { count: 2, within: 1d }, once: true }
combination: { method: sum }
bands:
  thresholds:
    - { label: hot, min: 20 }
    - { label: cold }
"#;

    #[test]
    fn type_filters_are_derived() {
        let m = CompiledModel::from_yaml(MODEL).expect("valid model");
        assert_eq!(m.event_types, ["email_click", "email_open", "form_submit", "page_view"]);
        let masks: Vec<Option<u64>> =
            m.engagement.iter().map(|r| r.types.as_ref().map(|f| f.mask)).collect();
        assert_eq!(masks, [Some(8), Some(9), Some(8), Some(3), Some(0), None, Some(8), Some(4)]);
        assert!(m.engagement[0].types.as_ref().is_some_and(|f| f.rest.is_none()));
        assert!(matches!(
            m.engagement[1].types.as_ref().and_then(|f| f.rest.as_ref()),
            Some(Cond::Leaf(..))
        ));
        assert!(
            matches!(m.engagement[2].types.as_ref().and_then(|f| f.rest.as_ref()), Some(Cond::All(cs)) if cs.len() == 2)
        );
    }

    #[test]
    fn full_evaluation_matches_the_straightforward_one() {
        let models = [
            CompiledModel::from_yaml(MODEL).expect("valid model"),
            CompiledModel::from_yaml(include_str!("../../../../examples/models/b2b-saas.yaml"))
                .expect("valid model"),
            CompiledModel::from_yaml(include_str!(
                "../../../../examples/models/b2c-ecommerce.yaml"
            ))
            .expect("valid model"),
            CompiledModel::from_yaml(include_str!("../../../../examples/models/bant-grid.yaml"))
                .expect("valid model"),
        ];
        let kinds = ["page_view", "email_open", "email_click", "form_submit", "other", "PAGE_VIEW"];
        let urls = ["/pricing", "/pricing/x", "/docs/a", "/", "/blog/pricing"];
        let mut seed: u64 = 7;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let t0: Timestamp = 500_000 * crate::HOUR_MS;
        for round in 0..400 {
            let n = next(40) as usize;
            // Coarse times (many ties), repeated ids, some events after `as_of`.
            let events: Vec<Event> = (0..n)
                .map(|i| {
                    let id = if next(5) == 0 { "dup".to_owned() } else { format!("e{}", next(30)) };
                    let t = t0 + (next(60) as i64 - 50) * 1_800_000 + (i as i64 % 2);
                    let mut e = Event::new(id, kinds[next(kinds.len() as u64) as usize], t);
                    if next(4) != 0 {
                        e = e.with("url", urls[next(urls.len() as u64) as usize]);
                    }
                    e
                })
                .collect();
            let lead = Lead::from_pairs([("size", serde_json::json!(next(20)))]);
            for m in &models {
                let got = m.score(&lead, None, &events, t0);
                assert_eq!(got, reference(m, &lead, &events, t0), "round {round}");
            }
        }
    }
}
