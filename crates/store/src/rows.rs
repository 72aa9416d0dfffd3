//! The rows the store hands out and the scoring worker reads and writes: leads, companies and
//! events as stored, stored lead and company scores, and the change stream. Plain data, with
//! their conversions from the entities; imported by ingest, export, scores and scoring alike.

use sea_orm::Set;
use serde_json::{Map, Value};

use crate::entity::{company, company_score, event, lead, lead_score, score_change};
use crate::queue::partition_of;

/// A stored lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRow {
    pub id: String,
    pub company_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub enriched: Map<String, Value>,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
}

/// A stored company.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyRow {
    pub id: String,
    pub attributes: Map<String, Value>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Ingestion order across Kelvin.
    pub seq: i64,
    pub event_id: String,
    pub lead_id: String,
    pub kind: String,
    pub time_ms: i64,
    pub properties: Map<String, Value>,
    pub ingest_time_ms: i64,
}

pub(crate) fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

pub(crate) fn lead_row(m: lead::Model) -> LeadRow {
    LeadRow {
        id: m.id,
        company_id: m.company_id,
        attributes: object(&m.attributes),
        enriched: object(&m.enriched),
        create_time_ms: m.create_time,
        update_time_ms: m.update_time,
    }
}

pub(crate) fn company_row(m: company::Model) -> CompanyRow {
    CompanyRow { id: m.id, attributes: object(&m.attributes) }
}

pub(crate) fn event_row(m: event::Model) -> StoredEvent {
    StoredEvent {
        seq: m.seq,
        event_id: m.event_id,
        lead_id: m.lead_id,
        kind: m.kind,
        time_ms: m.time,
        properties: object(&m.properties),
        ingest_time_ms: m.ingest_time,
    }
}

/// A model version scoring must apply: the active version of a tenant's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVersion {
    pub tenant_id: String,
    /// See [`crate::TenantScope::incarnation`].
    pub tenant_incarnation: i64,
    pub model_id: String,
    pub version: i64,
}

/// A stored lead score (points in milli-points), read and written by the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredScore {
    pub tenant_id: String,
    pub model_id: String,
    pub lead_id: String,
    pub company_id: Option<String>,
    pub model_version: i64,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    /// Fit × engagement cell of matrix models (`A2`), empty otherwise.
    pub grade: String,
    /// The band's action, empty when the model gives none.
    pub action: String,
    /// Reason of the exclusion that disqualified the lead; empty otherwise.
    pub disqualification: String,
    /// Id of that exclusion; empty otherwise (and on scores stored before it was kept).
    pub disqualification_rule: String,
    /// The engine's incremental state (`LeadState::to_bytes`).
    pub state: Vec<u8>,
    /// Events absorbed into `state`.
    pub event_count: i64,
    pub as_of_ms: i64,
    /// When time alone will next move the band (decay, expiry), if it will.
    pub next_check_ms: Option<i64>,
    /// When the score last changed.
    pub update_time_ms: i64,
}

pub(crate) fn score_row(m: lead_score::Model) -> StoredScore {
    StoredScore {
        tenant_id: m.tenant_id,
        model_id: m.model_id,
        lead_id: m.lead_id,
        company_id: m.company_id,
        model_version: m.model_version,
        fit: m.fit,
        engagement: m.engagement,
        total: m.total,
        band: m.band,
        grade: m.grade,
        action: m.action,
        disqualification: m.disqualification,
        disqualification_rule: m.disqualification_rule,
        state: m.state,
        event_count: m.event_count,
        as_of_ms: m.as_of,
        next_check_ms: m.next_check,
        update_time_ms: m.update_time,
    }
}

pub(crate) fn score_model(s: StoredScore) -> lead_score::ActiveModel {
    lead_score::ActiveModel {
        partition: Set(partition_of(&s.tenant_id, &s.lead_id)),
        tenant_id: Set(s.tenant_id),
        model_id: Set(s.model_id),
        lead_id: Set(s.lead_id),
        company_id: Set(s.company_id),
        model_version: Set(s.model_version),
        fit: Set(s.fit),
        engagement: Set(s.engagement),
        total: Set(s.total),
        band: Set(s.band),
        grade: Set(s.grade),
        action: Set(s.action),
        disqualification: Set(s.disqualification),
        disqualification_rule: Set(s.disqualification_rule),
        state: Set(s.state),
        event_count: Set(s.event_count),
        as_of: Set(s.as_of_ms),
        next_check: Set(s.next_check_ms),
        update_time: Set(s.update_time_ms),
    }
}

/// A stored company score (milli-points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCompanyScore {
    pub tenant_id: String,
    pub model_id: String,
    pub company_id: String,
    pub model_version: i64,
    pub fit: i64,
    pub leads: i64,
    pub total: i64,
    pub band: String,
    pub lead_count: i32,
    pub update_time_ms: i64,
}

pub(crate) fn company_score_row(m: company_score::Model) -> StoredCompanyScore {
    StoredCompanyScore {
        tenant_id: m.tenant_id,
        model_id: m.model_id,
        company_id: m.company_id,
        model_version: m.model_version,
        fit: m.fit,
        leads: m.leads,
        total: m.total,
        band: m.band,
        lead_count: m.lead_count,
        update_time_ms: m.update_time,
    }
}

/// Why a score changed (stored as its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    Events = 1,
    Attributes = 2,
    Time = 3,
    Rescore = 4,
}

/// A change to append to a tenant's change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub tenant_id: String,
    pub lead_id: String,
    pub model_id: String,
    pub model_version: i64,
    pub previous_band: String,
    pub band: String,
    pub previous_grade: String,
    pub grade: String,
    /// The new band's action.
    pub action: String,
    pub previous_total: i64,
    pub total: i64,
    pub cause: ChangeCause,
    pub time_ms: i64,
}

/// A change of the stream, with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreChangeRecord {
    pub change_no: i64,
    pub tenant_id: String,
    pub lead_id: String,
    pub model_id: String,
    pub model_version: i64,
    pub previous_band: String,
    pub band: String,
    pub previous_grade: String,
    pub grade: String,
    pub action: String,
    pub previous_total: i64,
    pub total: i64,
    /// `ChangeCause` as a number (1 events, 2 attributes, 3 time, 4 rescore).
    pub cause: i32,
    pub time_ms: i64,
}

pub(crate) fn change_row(m: score_change::Model) -> ScoreChangeRecord {
    ScoreChangeRecord {
        change_no: m.change_no,
        tenant_id: m.tenant_id,
        lead_id: m.lead_id,
        model_id: m.model_id,
        model_version: m.model_version,
        previous_band: m.previous_band,
        band: m.band,
        previous_grade: m.previous_grade,
        grade: m.grade,
        action: m.action,
        previous_total: m.previous_total,
        total: m.total,
        cause: m.cause,
        time_ms: m.time,
    }
}
