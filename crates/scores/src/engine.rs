//! Stored rows as the engine reads them.

use kelvin_engine::{Company, Disqualification, Event, Lead, Points, Score};
use kelvin_store::{CompanyRow, LeadRow, StoredEvent, StoredScore};

/// A stored lead as the engine reads it: enriched attributes first, explicit ones over them
/// (the lead's own word wins).
pub fn engine_lead(lead: &LeadRow) -> Lead {
    let mut attributes: std::collections::BTreeMap<_, _> =
        lead.enriched.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    attributes.extend(lead.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
    Lead { attributes }
}

/// A stored company as the engine reads it.
pub fn engine_company(company: &CompanyRow) -> Company {
    Company { attributes: company.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect() }
}

/// A stored event as the engine reads it.
pub fn engine_event(event: &StoredEvent) -> Event {
    Event {
        id: event.event_id.clone(),
        kind: event.kind.clone(),
        time_ms: event.time_ms,
        properties: event.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// A stored score as the engine's company aggregation reads it (totals and exclusions).
pub fn score_summary(s: &StoredScore) -> Score {
    Score {
        fit: Points(s.fit),
        engagement: Points(s.engagement),
        total: Points(s.total),
        band: s.band.clone(),
        action: None,
        grade: None,
        disqualified: (!s.disqualification.is_empty()).then(|| Disqualification {
            rule_id: s.disqualification_rule.clone(),
            reason: s.disqualification.clone(),
        }),
        contributions: Vec::new(),
    }
}
