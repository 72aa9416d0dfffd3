//! `kelvinctl audit`: an organization's audit log.

use anyhow::Result;
use kelvin_proto::v1 as pb;
use serde_json::Value;

use super::Kelvin;
use crate::AuditArgs;
use crate::output::{self, Format};
use crate::resources as res;

pub(super) async fn audit_cmd(k: &Kelvin, args: AuditArgs, format: Format) -> Result<()> {
    let AuditArgs { org, tenant, model, action, limit } = args;
    let events = k
        .tenants()
        .list_audit_events(k.req(pb::ListAuditEventsRequest {
            organization_id: org,
            tenant_id: tenant,
            model_id: model,
            action,
            page_size: limit,
            ..Default::default()
        })?)
        .await?
        .into_inner();
    let rows: Vec<Value> = events.audit_events.into_iter().map(res::audit_event).collect();
    output::print(
        format,
        &Value::Array(rows),
        &[
            ("TIME", "time"),
            ("ACTOR", "actor"),
            ("ACTION", "action"),
            ("RESOURCE", "resource"),
            ("REASON", "reason"),
        ],
    )
}
