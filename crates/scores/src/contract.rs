//! Engine scores and stored scores as the contract's messages.

use kelvin_proto::convert::timestamp;
use kelvin_proto::v1 as pb;
use kelvin_store::{ScoreChangeRecord, StoredCompanyScore, StoredScore};

/// Milli-points as points.
pub fn points(milli: i64) -> f64 {
    kelvin_engine::Points(milli).as_f64()
}

/// An engine score as the contract's `Score`, with its explanation.
pub fn score_pb(score: kelvin_engine::Score, version: i64, as_of_ms: i64) -> pb::Score {
    pb::Score {
        fit: score.fit.as_f64(),
        engagement: score.engagement.as_f64(),
        total: score.total.as_f64(),
        band: score.band,
        grade: score.grade.unwrap_or_default(),
        action: score.action.unwrap_or_default(),
        disqualification_rule_id: score
            .disqualified
            .as_ref()
            .map(|d| d.rule_id.clone())
            .unwrap_or_default(),
        disqualification_reason: score.disqualified.map(|d| d.reason).unwrap_or_default(),
        contributions: score
            .contributions
            .into_iter()
            .map(|c| pb::Contribution {
                kind: serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                rule_id: c.rule_id,
                points: c.points.as_f64(),
                event_ids: c.events,
                detail: {
                    let engagement = c.engagement.map(|e| {
                        format!(
                            "{} award(s): {} raw, {} after decay",
                            e.awards,
                            e.raw.as_f64(),
                            e.decayed.as_f64()
                        )
                    });
                    let weight = c.weight.map(|w| format!("weight ×{}", w.as_f64()));
                    [engagement, weight].into_iter().flatten().collect::<Vec<_>>().join("; ")
                },
            })
            .collect(),
        model_version: version,
        as_of: Some(timestamp(as_of_ms)),
    }
}

/// A stored lead score as the contract's `LeadScore` (without contributions: those come from
/// ExplainScore, which scores again).
pub fn lead_score(s: &StoredScore) -> pb::LeadScore {
    pb::LeadScore {
        tenant_id: s.tenant_id.clone(),
        lead_id: s.lead_id.clone(),
        model_id: s.model_id.clone(),
        score: Some(pb::Score {
            fit: points(s.fit),
            engagement: points(s.engagement),
            total: points(s.total),
            band: s.band.clone(),
            disqualification_reason: s.disqualification.clone(),
            disqualification_rule_id: s.disqualification_rule.clone(),
            contributions: Vec::new(),
            model_version: s.model_version,
            as_of: Some(timestamp(s.as_of_ms)),
            grade: s.grade.clone(),
            action: s.action.clone(),
        }),
        company_id: s.company_id.clone().unwrap_or_default(),
        update_time: Some(timestamp(s.update_time_ms)),
    }
}

/// A stored company score as the contract's `CompanyScore`.
pub fn company_score(s: StoredCompanyScore) -> pb::CompanyScore {
    pb::CompanyScore {
        tenant_id: s.tenant_id,
        company_id: s.company_id,
        model_id: s.model_id,
        model_version: s.model_version,
        fit: points(s.fit),
        leads: points(s.leads),
        total: points(s.total),
        band: s.band,
        lead_count: s.lead_count,
        update_time: Some(timestamp(s.update_time_ms)),
    }
}

/// A stored score change as the contract's `ScoreChange` (its cursor is the change number).
pub fn change(c: ScoreChangeRecord) -> pb::ScoreChange {
    pb::ScoreChange {
        cursor: c.change_no,
        tenant_id: c.tenant_id,
        lead_id: c.lead_id,
        model_id: c.model_id,
        model_version: c.model_version,
        previous_band: c.previous_band,
        band: c.band,
        previous_total: points(c.previous_total),
        total: points(c.total),
        cause: c.cause,
        time: Some(timestamp(c.time_ms)),
        previous_grade: c.previous_grade,
        grade: c.grade,
        action: c.action,
    }
}
