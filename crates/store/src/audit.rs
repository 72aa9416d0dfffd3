//! Writing audit rows, always inside the transaction of the mutation they describe.

use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;

use crate::entity::audit_event;
use crate::{AuditContext, Result};

/// One audit row to write.
pub(crate) struct Entry<'a> {
    pub org_id: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub action: &'a str,
    pub resource: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

pub(crate) fn json<T: Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    actor: &str,
    ctx: &AuditContext,
    entry: Entry<'_>,
    now: i64,
) -> Result<()> {
    audit_event::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        org_id: Set(entry.org_id.map(str::to_owned)),
        tenant_id: Set(entry.tenant_id.map(str::to_owned)),
        actor: Set(actor.to_owned()),
        action: Set(entry.action.to_owned()),
        resource: Set(entry.resource),
        before_json: Set(entry.before.map(|v| v.to_string())),
        after_json: Set(entry.after.map(|v| v.to_string())),
        request_id: Set(ctx.request_id.clone()),
        reason: Set(ctx.reason.clone()),
        time: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}
