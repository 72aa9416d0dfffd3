//! The audit trail: the row every mutation writes in its own transaction ([`commit`], the only
//! way to write one), and listing the trail on behalf of a principal.

use kelvin_auth::TenantReach;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::entity::audit_event;
use crate::{Access, AuditEvent, AuditFilter, Error, Page, Result};

/// Who asked for a change, beyond the principal: recorded on the audit row.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub request_id: String,
    pub reason: String,
}

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

/// Writes the audit row of the mutation `txn` holds, then commits both: a change is never
/// stored without its row, nor a row without its change.
pub(crate) async fn commit(
    txn: DatabaseTransaction,
    actor: &str,
    ctx: &AuditContext,
    entry: Entry<'_>,
    now: i64,
) -> Result<()> {
    record(&txn, actor, ctx, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

async fn record<C: ConnectionTrait>(
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

impl Access<'_> {
    /// Audit events newest first, limited to what the principal reaches.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_audit_events", otel.kind = "client"))]
    pub async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<(Vec<AuditEvent>, String)> {
        let org = self.load_org(&filter.org_id).await?;
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org.id.clone()))
            .order_by_desc(audit_event::Column::Id);
        if !filter.tenant_id.is_empty() {
            let t = self.load_tenant(&filter.tenant_id, true).await?;
            if t.org_id != org.id {
                return Err(Error::not_found("tenant", &filter.tenant_id));
            }
            query = query.filter(audit_event::Column::TenantId.eq(t.id));
        } else if let TenantReach::Only(list) = self.principal.tenants() {
            query = query.filter(audit_event::Column::TenantId.is_in(list.clone()));
        }
        if !filter.model_id.is_empty() {
            let resource = format!("tenants/{}/models/{}", filter.tenant_id, filter.model_id);
            query = query.filter(
                Condition::any()
                    .add(audit_event::Column::Resource.eq(resource.clone()))
                    .add(has_prefix(audit_event::Column::Resource, format!("{resource}/"))),
            );
        }
        if !filter.actor.is_empty() {
            query = query.filter(audit_event::Column::Actor.eq(filter.actor.clone()));
        }
        if !filter.resource.is_empty() {
            query = query.filter(audit_event::Column::Resource.eq(filter.resource.clone()));
        }
        if !filter.action.is_empty() {
            query = query.filter(audit_event::Column::Action.eq(filter.action.clone()));
        }
        let mut time = Condition::all();
        if let Some(start) = filter.start_ms {
            time = time.add(audit_event::Column::Time.gte(start));
        }
        if let Some(end) = filter.end_ms {
            time = time.add(audit_event::Column::Time.lt(end));
        }
        query = query.filter(time);
        if let Some(after) = &page.after {
            query = query.filter(audit_event::Column::Id.lt(after.clone()));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.clone());
        Ok((rows.into_iter().map(Into::into).collect(), next))
    }
}

/// `column` starts with `prefix`, compared exactly: not `LIKE`, where the caller's `%` and `_`
/// would be wildcards (and SQLite would ignore ASCII case). `substr` counts characters on both
/// SQLite and PostgreSQL.
fn has_prefix(column: audit_event::Column, prefix: String) -> Expr {
    let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    let head = sea_orm::sea_query::Func::cust("substr")
        .arg(Expr::col((audit_event::Entity, column)))
        .arg(1)
        .arg(chars);
    sea_orm::sea_query::ExprTrait::eq(Expr::expr(head), prefix)
}

impl From<audit_event::Model> for AuditEvent {
    fn from(m: audit_event::Model) -> Self {
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        Self {
            id: m.id,
            org_id: m.org_id,
            tenant_id: m.tenant_id,
            actor: m.actor,
            action: m.action,
            resource: m.resource,
            before: parse(m.before_json),
            after: parse(m.after_json),
            request_id: m.request_id,
            reason: m.reason,
            time_ms: m.time,
        }
    }
}
