//! Stored scores and changes as the contract's messages.

use kelvin_proto::convert::timestamp;
use kelvin_proto::v1 as pb;
use kelvin_server::scores::points;
use kelvin_store::{ScoreChangeRecord, StoredCompanyScore, StoredScore};

pub(crate) fn lead_score(s: &StoredScore) -> pb::LeadScore {
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

pub(crate) fn company_score(s: StoredCompanyScore) -> pb::CompanyScore {
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

pub(crate) fn change(c: ScoreChangeRecord) -> pb::ScoreChange {
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
