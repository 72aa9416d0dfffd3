//! Between the store's rows, the engine's inputs and the contract's score messages: shared by
//! the model service (SimulateScore) and the scoring service.

use kelvin_engine::{Company, Event, Lead};
use kelvin_proto::convert::timestamp;
use kelvin_proto::v1 as pb;
use kelvin_store::{CompanyRow, LeadRow, StoredEvent};

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

/// The cache key of a lead's erasure mark, in its tenant's namespace. EraseLead sets it before
/// its transaction; score reads that find it ignore the lead's cached scores and read the store.
/// It closes the window between EraseLead's reply and the scoring worker dropping the cached
/// scores, and it masks a write-through or refill that lands after that drop.
pub fn erased_key(lead_id: &str) -> String {
    format!("erased:{lead_id}")
}

/// How long an erasure mark lives: longer than any cached score written before the erasure
/// committed (a write-through or a refill lands at most one call after the mark), so no such
/// score can outlive it.
pub fn erased_ttl(cache_ttl_seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(cache_ttl_seconds.max(1).saturating_mul(2))
}
