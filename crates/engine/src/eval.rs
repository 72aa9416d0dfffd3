//! Evaluation: a lead's score (full and from incremental state) and a company's score. The
//! result types and company scoring live here; `eval/engagement.rs` scores one engagement rule
//! from its events' hours (both paths call it) and `eval/lead.rs` scores a lead.

mod engagement;
mod lead;

use serde::{Deserialize, Serialize};

pub(crate) use engagement::engagement_rule;
pub(crate) use lead::{EngagementLines, TimeFixed};

use crate::condition::Ctx;
use crate::fixed::{Points, div_round_half_even};
use crate::input::Company;
use crate::model::{CFit, CompiledModel, pick};
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

fn sat(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
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

impl CompiledModel {
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
