//! Tenants (an organization's client companies): their life cycle from creation to soft
//! deletion (the purge sweeper, `purge.rs`, erases them later).

use std::collections::BTreeMap;

use kelvin_auth::TenantReach;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::audit::{self, AuditContext, Entry, json};
use crate::entity::tenant;
use crate::types::{etag, generated_id};
use crate::{Access, Error, NewTenant, Page, Result, Tenant, TenantPatch, TenantState};

impl Access<'_> {
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_tenant", otel.kind = "client"))]
    pub async fn create_tenant(&self, new: NewTenant, ctx: &AuditContext) -> Result<Tenant> {
        let org = self.load_org(&new.org_id).await?;
        if !self.principal.is_org_wide(&org.id) {
            return Err(Error::PermissionDenied(
                "creating a tenant needs an organization-wide token".into(),
            ));
        }
        if !new.request_id.is_empty() {
            let existing = tenant::Entity::find()
                .filter(tenant::Column::OrgId.eq(org.id.clone()))
                .filter(tenant::Column::CreateRequestId.eq(new.request_id.clone()))
                .one(self.db)
                .await?;
            if let Some(t) = existing {
                return t.try_into();
            }
        }
        let id = new.id.as_ref().map_or_else(|| generated_id("t"), |id| id.as_str().to_owned());
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        if tenant::Entity::find_by_id(id.clone()).one(&txn).await?.is_some() {
            return Err(Error::AlreadyExists { kind: "tenant", id });
        }
        let row = tenant::ActiveModel {
            id: Set(id),
            org_id: Set(org.id.clone()),
            display_name: Set(new.display_name.as_str().to_owned()),
            labels: Set(labels_json(new.labels.as_map())),
            state: Set("active".into()),
            create_request_id: Set((!new.request_id.is_empty()).then(|| new.request_id.clone())),
            create_time: Set(now),
            update_time: Set(now),
            delete_time: Set(None),
            purge_time: Set(None),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
        let t: Tenant = row.try_into()?;
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&t.org_id),
                tenant_id: Some(&t.id),
                action: "tenant.create",
                resource: format!("tenants/{}", t.id),
                before: None,
                after: json(&t),
            },
            now,
        )
        .await?;
        Ok(t)
    }

    /// A tenant, deleted ones included until they are purged.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.get_tenant", otel.kind = "client"))]
    pub async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        self.load_tenant(id, true).await?.try_into()
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_tenants", otel.kind = "client"))]
    pub async fn list_tenants(
        &self,
        org_id: &str,
        page: &Page,
        show_deleted: bool,
    ) -> Result<(Vec<Tenant>, String)> {
        let org = self.load_org(org_id).await?;
        let mut query = tenant::Entity::find()
            .filter(tenant::Column::OrgId.eq(org.id))
            .order_by_asc(tenant::Column::Id);
        if let TenantReach::Only(list) = self.principal.tenants() {
            query = query.filter(tenant::Column::Id.is_in(list.clone()));
        }
        if !show_deleted {
            query = query.filter(tenant::Column::State.eq("active"));
        }
        if let Some(after) = &page.after {
            query = query.filter(tenant::Column::Id.gt(after.clone()));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.clone());
        let tenants = rows.into_iter().map(TryInto::try_into).collect::<Result<_>>()?;
        Ok((tenants, next))
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.update_tenant", otel.kind = "client"))]
    pub async fn update_tenant(
        &self,
        id: &str,
        patch: TenantPatch,
        ctx: &AuditContext,
    ) -> Result<Tenant> {
        let current = self.load_tenant(id, false).await?;
        let before: Tenant = current.clone().try_into()?;
        if !patch.etag.is_empty() && patch.etag != before.etag {
            return Err(Error::Aborted(format!(
                "tenant `{id}` changed since etag {} was read",
                patch.etag
            )));
        }
        let now = self.clock.now_ms();
        let mut update = tenant::Entity::update_many()
            .col_expr(tenant::Column::UpdateTime, Expr::value(now))
            .col_expr(tenant::Column::Version, Expr::value(current.version + 1))
            .filter(tenant::Column::Id.eq(current.id.clone()))
            .filter(tenant::Column::Version.eq(current.version))
            .filter(tenant::Column::State.eq("active"));
        if let Some(name) = &patch.display_name {
            update =
                update.col_expr(tenant::Column::DisplayName, Expr::value(name.as_str().to_owned()));
        }
        if let Some(labels) = &patch.labels {
            update =
                update.col_expr(tenant::Column::Labels, Expr::value(labels_json(labels.as_map())));
        }
        let txn = crate::write_txn(self.db).await?;
        if update.exec(&txn).await?.rows_affected != 1 {
            return Err(Error::Aborted(format!("tenant `{id}` was changed concurrently")));
        }
        self.commit_change(txn, &current.id, "tenant.update", &before, ctx, now).await
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_tenant", otel.kind = "client"))]
    pub async fn delete_tenant(
        &self,
        id: &str,
        etag: &str,
        purge_after_ms: i64,
        ctx: &AuditContext,
    ) -> Result<Tenant> {
        let current = self.load_tenant(id, false).await?;
        if !self.principal.is_org_wide(&current.org_id) {
            return Err(Error::PermissionDenied(
                "deleting a tenant needs an organization-wide token".into(),
            ));
        }
        let before: Tenant = current.clone().try_into()?;
        if !etag.is_empty() && etag != before.etag {
            return Err(Error::Aborted(format!(
                "tenant `{id}` changed since etag {etag} was read"
            )));
        }
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let done = tenant::Entity::update_many()
            .col_expr(tenant::Column::State, Expr::value("deleted"))
            .col_expr(tenant::Column::DeleteTime, Expr::value(now))
            .col_expr(tenant::Column::PurgeTime, Expr::value(now + purge_after_ms))
            .col_expr(tenant::Column::UpdateTime, Expr::value(now))
            .col_expr(tenant::Column::Version, Expr::value(current.version + 1))
            .filter(tenant::Column::Id.eq(current.id.clone()))
            .filter(tenant::Column::Version.eq(current.version))
            .exec(&txn)
            .await?;
        if done.rows_affected != 1 {
            return Err(Error::Aborted(format!("tenant `{id}` was changed concurrently")));
        }
        self.commit_change(txn, &current.id, "tenant.delete", &before, ctx, now).await
    }

    /// Reads the tenant back inside `txn`, audits `action` from `before` to it and commits.
    async fn commit_change(
        &self,
        txn: DatabaseTransaction,
        id: &str,
        action: &'static str,
        before: &Tenant,
        ctx: &AuditContext,
        now: i64,
    ) -> Result<Tenant> {
        let after: Tenant = tenant::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?
            .try_into()?;
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&after.org_id),
                tenant_id: Some(&after.id),
                action,
                resource: format!("tenants/{}", after.id),
                before: json(before),
                after: json(&after),
            },
            now,
        )
        .await?;
        Ok(after)
    }
}

fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

impl TryFrom<tenant::Model> for Tenant {
    type Error = Error;
    fn try_from(m: tenant::Model) -> Result<Self> {
        let labels = serde_json::from_str(&m.labels)
            .map_err(|e| Error::FailedPrecondition(format!("stored labels unreadable: {e}")))?;
        let state = match m.state.as_str() {
            "active" => TenantState::Active,
            _ => TenantState::Deleted,
        };
        Ok(Self {
            id: m.id,
            org_id: m.org_id,
            display_name: m.display_name,
            labels,
            state,
            create_time_ms: m.create_time,
            update_time_ms: m.update_time,
            delete_time_ms: m.delete_time,
            purge_time_ms: m.purge_time,
            etag: etag(m.version),
        })
    }
}
