//! One engagement rule's points from its matching events' hourly counts: window awards,
//! decay, caps per period, and which awards were counted (to name their events).

use super::{EngagementDetail, sat};
use crate::fixed::{Points, Q40_ONE, div_round_half_even};
use crate::model::{CEngagement, CWindow};
use crate::spec::WindowKind;

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

/// `(hour, count)` pairs: a rule's matching events per hour, or its awards.
type HourCounts = Vec<(i32, u64)>;
/// Inclusive hour ranges: the events behind each window award.
type HourRanges = Vec<(i32, i32)>;

/// Window awards of a rule (see `WindowKind`): `(hour, 1)` awards and the hour range of the
/// events behind each, from the matching events' hourly counts (increasing hours, at or before
/// `as_of_hour`). Only these counts are read, so the result does not depend on the order events
/// arrived in, and the incremental state gives exactly what a full evaluation gives.
fn window_awards(w: CWindow, buckets: &[(i32, u64)], as_of_hour: i32) -> (HourCounts, HourRanges) {
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
