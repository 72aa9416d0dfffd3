//! Evaluation: a lead's score (full and from incremental state) and a company's score.

use serde::{Deserialize, Serialize};

use crate::condition::Ctx;
use crate::fixed::{Points, Q40_ONE, div_round_half_even, hour_of};
use crate::input::{Company, Event, Lead, Timestamp};
use crate::model::{CBands, CEngagement, CFit, CWindow, CompiledModel, DISQUALIFIED, pick};
use crate::spec::{Aggregate, WindowKind};

/// Why a contribution is in the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContributionKind {
    /// A fit rule matched.
    Fit,
    /// An engagement rule's (decayed, capped) points.
    Engagement,
    /// Adjustment of fit to `combination.fit` bounds (rule id `bound:fit`).
    FitBound,
    /// Adjustment of engagement to `combination.engagement` bounds (`bound:engagement`).
    EngagementBound,
    /// Effect of `combination.method.weights` (`weights`).
    Weighting,
    /// Adjustment of the total to `combination.total` bounds (`bound:total`).
    TotalBound,
    /// The points of a matching exclusion (rule id: the exclusion's), after every bound.
    Exclusion,
    /// A company fit rule matched.
    CompanyFit,
    /// Aggregate of the company's leads (`leads`).
    Leads,
    /// Adjustment of a company total to `company.total` bounds (`bound:total`).
    CompanyBound,
}

/// How an engagement rule's points came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementDetail {
    /// Awards counted: matching events, or qualifying windows for a window rule.
    pub awards: u64,
    /// Points before decay and cap (awards × points).
    pub raw: Points,
    /// Points after decay, before the cap.
    pub decayed: Points,
}

/// One line of the explanation. All contributions of a score add up exactly to its total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Rule id, or `bound:fit`, `bound:engagement`, `weights`, `bound:total`, `leads`.
    pub rule_id: String,
    /// What kind of line this is.
    pub kind: ContributionKind,
    /// Points this line adds to the total.
    pub points: Points,
    /// For engagement rules: awards, raw and decayed points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<EngagementDetail>,
    /// Ids of the events behind an engagement line, by (time, id); empty on the incremental
    /// path ([`crate::LeadState::score`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The weight (rule × group) the rule's points were multiplied by, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Points>,
}

/// Why a lead is disqualified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disqualification {
    /// Id of the first matching exclusion, in model order.
    pub rule_id: String,
    /// Its reason.
    pub reason: String,
}

/// A lead's score under one model version at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// Fit after `combination.fit` bounds.
    pub fit: Points,
    /// Engagement after `combination.engagement` bounds.
    pub engagement: Points,
    /// Total after weighting and `combination.total` bounds.
    pub total: Points,
    /// Band label; `disqualified` when an exclusion matched.
    pub band: String,
    /// Action of the band (none when disqualified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Matrix cell (`A1`) when the model bands with a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<String>,
    /// Set when an exclusion matched; the numbers are still computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disqualified: Option<Disqualification>,
    /// The explanation; sums exactly to `total`.
    pub contributions: Vec<Contribution>,
}

/// A company's score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyScore {
    /// Sum of the company fit rules.
    pub fit: Points,
    /// Aggregate of its (not disqualified) leads' totals.
    pub leads: Points,
    /// fit + leads, bounded by `company.total`.
    pub total: Points,
    /// Band label when `company.bands` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// Action of the band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The explanation; sums exactly to `total`.
    pub contributions: Vec<Contribution>,
}

/// Which awards of a rule were counted, to name their events.
pub(crate) enum Selection {
    All,
    First,
    /// Window awards: the inclusive hour ranges of the events each award counted.
    Ranges(Vec<(i32, i32)>),
}

impl Selection {
    /// Whether a matching event at `hour` is named by the selection (for `All` and `First`,
    /// the caller decides).
    pub(crate) fn covers(ranges: &[(i32, i32)], hour: i32) -> bool {
        ranges.iter().any(|&(a, b)| a <= hour && hour <= b)
    }
}

/// Window awards of a rule (see `WindowKind`): `(hour, 1)` awards and the hour range of the
/// events behind each, from the matching events' hourly counts (increasing hours, at or before
/// `as_of_hour`). Only these counts are read, so the result does not depend on the order events
/// arrived in, and the incremental state gives exactly what a full evaluation gives.
fn window_awards(
    w: CWindow,
    buckets: &[(i32, u64)],
    as_of_hour: i32,
) -> (Vec<(i32, u64)>, Vec<(i32, i32)>) {
    let need = u64::from(w.count);
    let mut awards = Vec::new();
    let mut ranges = Vec::new();
    match w.kind {
        WindowKind::Tumbling => {
            let mut current: Option<(i64, u64)> = None;
            for &(hour, count) in buckets {
                let idx = i64::from(hour).div_euclid(w.hours);
                let seen = match current {
                    Some((i, c)) if i == idx => c,
                    _ => 0,
                };
                let now = seen.saturating_add(count);
                if seen < need && now >= need {
                    awards.push((hour, 1));
                    let start = idx.saturating_mul(w.hours);
                    let end = start.saturating_add(w.hours - 1);
                    ranges.push((clamp_hour(start), clamp_hour(end)));
                }
                current = Some((idx, now));
            }
        }
        WindowKind::Sliding => {
            // Events not used by an award yet, within `hours` of the newest: (hour, count).
            let mut open: std::collections::VecDeque<(i32, u64)> = Default::default();
            let mut total: u64 = 0;
            for &(hour, count) in buckets {
                while let Some(&(h, c)) = open.front() {
                    if i64::from(hour) - i64::from(h) >= w.hours {
                        open.pop_front();
                        total -= c;
                    } else {
                        break;
                    }
                }
                open.push_back((hour, count));
                total = total.saturating_add(count);
                if total >= need {
                    awards.push((hour, 1));
                    ranges.push((open.front().map_or(hour, |&(h, _)| h), hour));
                    open.clear();
                    total = 0;
                }
            }
        }
        WindowKind::Rolling => {
            let from = i64::from(as_of_hour) - w.hours;
            let recent: u64 = buckets
                .iter()
                .filter(|&&(h, _)| i64::from(h) > from)
                .map(|&(_, c)| c)
                .fold(0, u64::saturating_add);
            if recent >= need {
                awards.push((as_of_hour, 1));
                ranges.push((clamp_hour(from + 1), as_of_hour));
            }
        }
    }
    (awards, ranges)
}

fn clamp_hour(h: i64) -> i32 {
    h.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

pub(crate) struct RuleOutcome {
    pub points: i64,
    pub detail: EngagementDetail,
    pub selection: Selection,
}

fn sat(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Scores one engagement rule from its matching events' hours: `buckets` holds
/// `(hour, count)` in increasing hour order (one entry per hour), already restricted to hours
/// at or before `as_of_hour`. Both the full and the incremental path call this.
pub(crate) fn engagement_rule(
    rule: &CEngagement,
    buckets: &[(i32, u64)],
    as_of_hour: i32,
) -> RuleOutcome {
    // 1. Awards: (hour, count).
    let (windowed, mut ranges) = match rule.window {
        Some(w) => window_awards(w, buckets, as_of_hour),
        None => (Vec::new(), Vec::new()),
    };
    let all: &[(i32, u64)] = if rule.window.is_some() { &windowed } else { buckets };
    let first: Option<(i32, u64)>;
    let (awards, selection): (&[(i32, u64)], Selection) = if rule.once {
        ranges.truncate(1);
        first = all.first().map(|&(hour, _)| (hour, 1));
        let sel = if rule.window.is_some() { Selection::Ranges(ranges) } else { Selection::First };
        (first.as_slice(), sel)
    } else if rule.window.is_some() {
        (all, Selection::Ranges(ranges))
    } else {
        (all, Selection::All)
    };
    // 2. Decay each award in Q40, group by cap period, round each group half-even to milli.
    let mut total_awards: u64 = 0;
    let mut decayed: i64 = 0;
    let mut points: i64 = 0;
    let mut group: Option<(i64, i128)> = None;
    let per = rule.cap.and_then(|c| c.per_hours);
    let close = |sum_q40: i128, decayed: &mut i64, points: &mut i64| {
        let milli = sat(div_round_half_even(sum_q40, i128::from(Q40_ONE)));
        *decayed = decayed.saturating_add(milli);
        let kept = match rule.cap {
            Some(c) => milli.clamp(-c.milli, c.milli),
            None => milli,
        };
        *points = points.saturating_add(kept);
    };
    for &(hour, count) in awards {
        total_awards = total_awards.saturating_add(count);
        let age = i64::from(as_of_hour) - i64::from(hour);
        let factor = rule.decay.factor_q40(age);
        let value = i128::from(rule.points)
            .saturating_mul(i128::from(count))
            .saturating_mul(i128::from(factor));
        let key = per.map_or(0, |p| i64::from(hour).div_euclid(p));
        group = match group {
            Some((k, s)) if k == key => Some((k, s.saturating_add(value))),
            Some((_, s)) => {
                close(s, &mut decayed, &mut points);
                Some((key, value))
            }
            None => Some((key, value)),
        };
    }
    if let Some((_, s)) = group {
        close(s, &mut decayed, &mut points);
    }
    RuleOutcome {
        points,
        detail: EngagementDetail {
            awards: total_awards,
            raw: Points(sat(i128::from(rule.points).saturating_mul(i128::from(total_awards)))),
            decayed: Points(decayed),
        },
        selection,
    }
}

/// Fit lines, in a vector with room for `more` lines after them.
fn fit_lines(
    rules: &[CFit],
    ctx: &Ctx<'_>,
    kind: ContributionKind,
    more: usize,
) -> (i64, Vec<Contribution>) {
    let mut sum: i64 = 0;
    let mut lines = Vec::with_capacity(rules.len() + more);
    for r in rules {
        if r.cond.eval(ctx) {
            sum = sum.saturating_add(r.points);
            lines.push(Contribution {
                rule_id: r.id.clone(),
                kind,
                points: Points(r.points),
                engagement: None,
                events: Vec::new(),
                weight: r.weight.map(Points),
            });
        }
    }
    (sum, lines)
}

fn adjustment(id: &str, kind: ContributionKind, delta: i64) -> Option<Contribution> {
    (delta != 0).then(|| Contribution {
        rule_id: id.to_owned(),
        kind,
        points: Points(delta),
        engagement: None,
        events: Vec::new(),
        weight: None,
    })
}

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
                c.eval(&Ctx { event: Some(e), ..Ctx::default() })
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

    /// Scores a company from its own fit rules and its leads' scores (disqualified leads are
    /// left out). `None` when the model has no `company` section.
    pub fn score_company(&self, company: &Company, leads: &[Score]) -> Option<CompanyScore> {
        let spec = self.company.as_ref()?;
        let ctx = Ctx { lead: None, company: Some(&company.attributes), event: None };
        let (fit, mut contributions) = fit_lines(&spec.fit, &ctx, ContributionKind::CompanyFit, 2);
        let mut totals: Vec<i64> =
            leads.iter().filter(|s| s.disqualified.is_none()).map(|s| s.total.0).collect();
        totals.sort_unstable_by(|a, b| b.cmp(a));
        let leads_points = match spec.leads {
            None => 0,
            Some((Aggregate::Max, _)) => totals.first().copied().unwrap_or(0),
            Some((Aggregate::Sum, top)) => {
                let n = top.map_or(totals.len(), |t| t as usize);
                sat(totals.iter().take(n).map(|t| i128::from(*t)).sum())
            }
            Some((Aggregate::MeanTopN, top)) => {
                let n = top.map_or(totals.len(), |t| t as usize).min(totals.len());
                if n == 0 {
                    0
                } else {
                    let s: i128 = totals.iter().take(n).map(|t| i128::from(*t)).sum();
                    sat(div_round_half_even(s, n as i128))
                }
            }
        };
        contributions.extend(adjustment("leads", ContributionKind::Leads, leads_points));
        let plain = fit.saturating_add(leads_points);
        let total = spec.total.apply(plain);
        contributions.extend(adjustment(
            "bound:total",
            ContributionKind::CompanyBound,
            total - plain,
        ));
        let band = spec.bands.as_ref().and_then(|b| pick(b, total));
        Some(CompanyScore {
            fit: Points(fit),
            leads: Points(leads_points),
            total: Points(total),
            band: band.map(|b| b.label.clone()),
            action: band.and_then(|b| b.action.clone()),
            contributions,
        })
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
            CompiledModel::from_yaml(include_str!("../../../examples/models/b2b-saas.yaml"))
                .expect("valid model"),
            CompiledModel::from_yaml(include_str!("../../../examples/models/b2c-ecommerce.yaml"))
                .expect("valid model"),
            CompiledModel::from_yaml(include_str!("../../../examples/models/bant-grid.yaml"))
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
