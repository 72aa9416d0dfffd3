//! Evaluation: a lead's score (full and from incremental state) and a company's score.

use serde::{Deserialize, Serialize};

use crate::condition::Ctx;
use crate::fixed::{Points, Q40_ONE, div_round_half_even, hour_of};
use crate::input::{Company, Event, Lead, Timestamp};
use crate::model::{CBands, CEngagement, CFit, CompiledModel, DISQUALIFIED, pick};
use crate::spec::Aggregate;

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
    Windows(Vec<i64>),
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
    let mut awards: Vec<(i32, u64)> = Vec::new();
    let mut windows = Vec::new();
    if let Some(w) = rule.window {
        let mut current: Option<(i64, u64)> = None;
        for &(hour, count) in buckets {
            let idx = i64::from(hour).div_euclid(w.hours);
            let seen = match current {
                Some((i, c)) if i == idx => c,
                _ => 0,
            };
            let now = seen.saturating_add(count);
            if seen < u64::from(w.count) && now >= u64::from(w.count) {
                awards.push((hour, 1));
                windows.push(idx);
            }
            current = Some((idx, now));
        }
    } else {
        awards.extend_from_slice(buckets);
    }
    let selection = if rule.once {
        awards.truncate(1);
        windows.truncate(1);
        if let Some(a) = awards.first_mut() {
            a.1 = 1;
        }
        if rule.window.is_some() { Selection::Windows(windows) } else { Selection::First }
    } else if rule.window.is_some() {
        Selection::Windows(windows)
    } else {
        Selection::All
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
    for &(hour, count) in &awards {
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

fn fit_lines(rules: &[CFit], ctx: &Ctx<'_>, kind: ContributionKind) -> (i64, Vec<Contribution>) {
    let mut sum: i64 = 0;
    let mut lines = Vec::new();
    for r in rules {
        if r.cond.eval(ctx) {
            sum = sum.saturating_add(r.points);
            lines.push(Contribution {
                rule_id: r.id.clone(),
                kind,
                points: Points(r.points),
                engagement: None,
                events: Vec::new(),
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
    })
}

/// Per engagement rule: its outcome and, on the full path, the ids of its events.
pub(crate) type EngagementLines = Vec<(RuleOutcome, Vec<String>)>;

impl CompiledModel {
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
        let mut lines: EngagementLines = Vec::with_capacity(self.engagement.len());
        for rule in &self.engagement {
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
                Selection::Windows(ws) => {
                    let hours = rule.window.map_or(1, |w| w.hours);
                    matched
                        .iter()
                        .filter(|(h, _)| ws.contains(&i64::from(*h).div_euclid(hours)))
                        .map(|(_, e)| e.id.clone())
                        .collect()
                }
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
        let (fit_raw, mut contributions) = fit_lines(&self.fit, &ctx, ContributionKind::Fit);
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
            });
        }
        let engagement = self.engagement_bounds.apply(eng_raw);
        contributions.extend(adjustment(
            "bound:engagement",
            ContributionKind::EngagementBound,
            engagement - eng_raw,
        ));

        let plain = fit.saturating_add(engagement);
        let combined = match self.weights {
            None => plain,
            Some((wf, we)) => sat(div_round_half_even(
                i128::from(fit) * i128::from(wf) + i128::from(engagement) * i128::from(we),
                1000,
            )),
        };
        contributions.extend(adjustment("weights", ContributionKind::Weighting, combined - plain));
        let total = self.total_bounds.apply(combined);
        contributions.extend(adjustment(
            "bound:total",
            ContributionKind::TotalBound,
            total - combined,
        ));

        let disqualified = self
            .exclusions
            .iter()
            .find(|x| x.cond.eval(&ctx))
            .map(|x| Disqualification { rule_id: x.id.clone(), reason: x.reason.clone() });
        let (mut band, mut action, grade) = match &self.bands {
            CBands::Thresholds(ts) => {
                let t = pick(ts, total);
                (
                    t.map(|t| t.label.clone()).unwrap_or_default(),
                    t.and_then(|t| t.action.clone()),
                    None,
                )
            }
            CBands::Matrix { fit: fg, engagement: eg, cells, actions } => {
                let fi = fg.iter().position(|t| t.min.is_none_or(|m| fit >= m));
                let ei = eg.iter().position(|t| t.min.is_none_or(|m| engagement >= m));
                match (fi, ei) {
                    (Some(f), Some(e)) => match cells.get(f).and_then(|r| r.get(e)) {
                        Some((grade, label)) => {
                            (label.clone(), actions.get(label).cloned(), Some(grade.clone()))
                        }
                        None => (String::new(), None, None),
                    },
                    _ => (String::new(), None, None),
                }
            }
        };
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
        let (fit, mut contributions) = fit_lines(&spec.fit, &ctx, ContributionKind::CompanyFit);
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
