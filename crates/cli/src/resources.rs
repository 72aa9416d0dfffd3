//! The contract's resources as JSON, for output.

use kelvin_proto::convert::{millis, struct_json, value_json};
use kelvin_proto::v1 as pb;
use serde_json::{Value, json};

fn time(ts: Option<prost_types::Timestamp>) -> Value {
    ts.and_then(|t| millis(&t))
        .and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn object(s: Option<prost_types::Struct>) -> Value {
    s.map_or(Value::Null, |s| Value::Object(struct_json(s)))
}

fn role(r: i32) -> &'static str {
    match pb::Role::try_from(r) {
        Ok(pb::Role::Admin) => "admin",
        Ok(pb::Role::Editor) => "editor",
        Ok(pb::Role::Ingest) => "ingest",
        Ok(pb::Role::Reader) => "reader",
        _ => "",
    }
}

pub fn organization(o: pb::Organization) -> Value {
    json!({"organization_id": o.organization_id, "display_name": o.display_name, "create_time": time(o.create_time), "etag": o.etag})
}

pub fn tenant(t: pb::Tenant) -> Value {
    let state = match pb::TenantState::try_from(t.state) {
        Ok(pb::TenantState::Active) => "active",
        Ok(pb::TenantState::Deleted) => "deleted",
        _ => "",
    };
    json!({
        "tenant_id": t.tenant_id, "organization_id": t.organization_id, "display_name": t.display_name,
        "labels": t.labels, "state": state, "create_time": time(t.create_time), "purge_time": time(t.purge_time), "etag": t.etag,
    })
}

pub fn api_key(k: pb::ApiKey) -> Value {
    json!({
        "api_key_id": k.api_key_id, "organization_id": k.organization_id, "tenant_id": k.tenant_id,
        "role": role(k.role), "display_name": k.display_name, "expire_time": time(k.expire_time),
        "revoke_time": time(k.revoke_time), "creator": k.creator,
    })
}

pub fn model(m: pb::Model) -> Value {
    json!({
        "tenant_id": m.tenant_id, "model_id": m.model_id, "display_name": m.display_name,
        "active_version": m.active_version, "latest_version": m.latest_version, "etag": m.etag,
    })
}

pub fn version(v: pb::ModelVersion) -> Value {
    let state =
        if v.state == pb::ModelVersionState::Published as i32 { "published" } else { "draft" };
    json!({
        "version": v.version, "state": state, "active": v.active, "creator": v.creator,
        "create_time": time(v.create_time), "publish_time": time(v.publish_time), "comment": v.comment,
        "spec_sha256": v.spec_sha256,
    })
}

pub fn change(c: pb::ModelChange) -> Value {
    let kind = match pb::ChangeKind::try_from(c.kind) {
        Ok(pb::ChangeKind::Added) => "added",
        Ok(pb::ChangeKind::Removed) => "removed",
        Ok(pb::ChangeKind::Changed) => "changed",
        _ => "",
    };
    json!({
        "section": c.section, "rule_id": c.rule_id, "kind": kind, "field": c.field,
        "before": c.before.map(value_json), "after": c.after.map(value_json),
    })
}

pub fn audit_event(e: pb::AuditEvent) -> Value {
    json!({
        "time": time(e.time), "actor": e.actor, "action": e.action, "resource": e.resource,
        "tenant_id": e.tenant_id, "reason": e.reason, "request_id": e.request_id,
        "before": object(e.before), "after": object(e.after),
    })
}

pub fn lead_score(s: pb::LeadScore) -> Value {
    let score = s.score.unwrap_or_default();
    json!({
        "lead_id": s.lead_id, "model_id": s.model_id, "total": score.total, "band": score.band,
        "grade": score.grade, "action": score.action, "fit": score.fit, "engagement": score.engagement, "model_version": score.model_version,
        "disqualification": score.disqualification_reason,
        "disqualification_rule": score.disqualification_rule_id, "company_id": s.company_id,
        "as_of": time(score.as_of), "update_time": time(s.update_time),
    })
}

pub fn contribution(c: pb::Contribution) -> Value {
    json!({
        "rule_id": c.rule_id, "kind": c.kind, "points": c.points, "events": c.event_ids.len(),
        "event_ids": c.event_ids, "detail": c.detail,
    })
}

fn cause(c: i32) -> &'static str {
    match pb::ChangeCause::try_from(c) {
        Ok(pb::ChangeCause::Events) => "events",
        Ok(pb::ChangeCause::Attributes) => "attributes",
        Ok(pb::ChangeCause::Time) => "time",
        Ok(pb::ChangeCause::Rescore) => "rescore",
        _ => "",
    }
}

pub fn score_change(c: pb::ScoreChange) -> Value {
    json!({
        "cursor": c.cursor, "lead_id": c.lead_id, "model_id": c.model_id,
        "model_version": c.model_version, "previous_band": c.previous_band, "band": c.band,
        "previous_grade": c.previous_grade, "grade": c.grade, "action": c.action,
        "previous_total": c.previous_total, "total": c.total, "cause": cause(c.cause),
        "time": time(c.time),
    })
}

pub fn dead_letter(d: pb::DeadLetter) -> Value {
    json!({
        "dead_letter_id": d.dead_letter_id, "kind": d.kind, "subject_id": d.subject_id,
        "attempts": d.attempts, "error": d.error, "enqueue_time": time(d.enqueue_time),
        "dead_time": time(d.dead_time),
    })
}

pub fn rescore_status(s: pb::GetRescoreStatusResponse) -> Value {
    json!({
        "model_id": s.model_id, "model_version": s.model_version,
        "activate_time": time(s.activate_time), "total_leads": s.total_leads,
        "rescored_leads": s.rescored_leads, "done": s.done,
    })
}
