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
    let request = pb::ListAuditEventsRequest {
        organization_id: org,
        tenant_id: tenant,
        model_id: model,
        action,
        ..Default::default()
    };
    let events = k
        .list_all(Some(limit as usize), |page_token, page_size| {
            let request = pb::ListAuditEventsRequest { page_size, page_token, ..request.clone() };
            async move {
                let r = k.tenants().list_audit_events(k.req(request)?).await?.into_inner();
                Ok((r.audit_events, r.next_page_token))
            }
        })
        .await?;
    let rows: Vec<Value> = events.into_iter().map(res::audit_event).collect();
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
