//! Kelvin API keys: created, listed and revoked through [`Access`], plus the two unscoped
//! entry points authentication and the operator commands need (a key's state by id, and the
//! operator's own keys).

use kelvin_auth::{Role, TenantReach};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::audit::{self, AuditContext, Entry, json};
use crate::entity::{api_key, organization, tenant};
use crate::types::ApiKeyState;
use crate::{Access, ApiKey, Error, NewApiKey, Page, Result};

impl Access<'_> {
    /// Whether the principal may see (and manage) the key `k`.
    fn sees_key(&self, k: &api_key::Model) -> bool {
        match (&k.org_id, &k.tenant_id) {
            (None, _) => self.principal.is_platform(),
            (Some(org), None) => self.principal.is_org_wide(org),
            (Some(org), Some(t)) => self.principal.reaches_tenant(org, t),
        }
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_api_key", otel.kind = "client"))]
    pub async fn create_api_key(&self, key: NewApiKey, ctx: &AuditContext) -> Result<ApiKey> {
        let org = self.load_org(&key.org_id).await?;
        match &key.tenant_id {
            Some(t) => {
                let t = self.load_tenant(t, false).await?;
                if t.org_id != org.id {
                    return Err(Error::not_found("tenant", t.id));
                }
            }
            None => {
                if !self.principal.is_org_wide(&org.id) {
                    return Err(Error::PermissionDenied(
                        "an organization-wide key needs an organization-wide token".into(),
                    ));
                }
            }
        }
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let row = api_key::ActiveModel {
            id: Set(key.id.clone()),
            org_id: Set(Some(org.id.clone())),
            tenant_id: Set(key.tenant_id.clone()),
            role: Set(key.role.as_str().to_owned()),
            display_name: Set(key.display_name.as_str().to_owned()),
            creator: Set(self.principal.actor().to_owned()),
            create_time: Set(now),
            expire_time: Set(key.expire_time_ms),
            revoke_time: Set(None),
        }
        .insert(&txn)
        .await?;
        let created: ApiKey = row.try_into()?;
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&org.id),
                tenant_id: key.tenant_id.as_deref(),
                action: "api_key.create",
                resource: format!("apiKeys/{}", created.id),
                before: None,
                after: json(&created),
            },
            now,
        )
        .await?;
        Ok(created)
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_api_keys", otel.kind = "client"))]
    pub async fn list_api_keys(
        &self,
        org_id: &str,
        tenant_id: &str,
        page: &Page,
        show_revoked: bool,
    ) -> Result<(Vec<ApiKey>, String)> {
        let org = self.load_org(org_id).await?;
        let mut query = api_key::Entity::find()
            .filter(api_key::Column::OrgId.eq(org.id.clone()))
            .order_by_asc(api_key::Column::Id);
        if !tenant_id.is_empty() {
            let t = self.load_tenant(tenant_id, true).await?;
            if t.org_id != org.id {
                return Err(Error::not_found("tenant", tenant_id));
            }
            query = query.filter(api_key::Column::TenantId.eq(t.id));
        } else if let TenantReach::Only(list) = self.principal.tenants() {
            query = query.filter(api_key::Column::TenantId.is_in(list.clone()));
        }
        if !show_revoked {
            query = query.filter(api_key::Column::RevokeTime.is_null());
        }
        if let Some(after) = &page.after {
            query = query.filter(api_key::Column::Id.gt(after.clone()));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.clone());
        let keys = rows.into_iter().map(TryInto::try_into).collect::<Result<_>>()?;
        Ok((keys, next))
    }

    /// Revokes a key (idempotent: revoking a revoked key returns it unchanged).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_api_key", otel.kind = "client"))]
    pub async fn revoke_api_key(&self, id: &str, ctx: &AuditContext) -> Result<ApiKey> {
        let row = api_key::Entity::find_by_id(id.to_owned()).one(self.db).await?;
        let row = match row {
            Some(k) if self.sees_key(&k) => k,
            _ => return Err(Error::not_found("API key", id)),
        };
        if row.revoke_time.is_some() {
            return row.try_into();
        }
        let before: ApiKey = row.clone().try_into()?;
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokeTime, Expr::value(now))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokeTime.is_null())
            .exec(&txn)
            .await?;
        let after = ApiKey { revoke_time_ms: Some(now), ..before.clone() };
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: row.org_id.as_deref(),
                tenant_id: row.tenant_id.as_deref(),
                action: "api_key.revoke",
                resource: format!("apiKeys/{id}"),
                before: json(&before),
                after: json(&after),
            },
            now,
        )
        .await?;
        Ok(after)
    }
}

impl TryFrom<api_key::Model> for ApiKey {
    type Error = Error;
    fn try_from(m: api_key::Model) -> Result<Self> {
        let role = Role::parse(&m.role).ok_or_else(|| {
            Error::FailedPrecondition(format!("stored role `{}` unknown", m.role))
        })?;
        Ok(Self {
            id: m.id,
            org_id: m.org_id,
            tenant_id: m.tenant_id,
            role,
            display_name: m.display_name,
            creator: m.creator,
            create_time_ms: m.create_time,
            expire_time_ms: m.expire_time,
            revoke_time_ms: m.revoke_time,
        })
    }
}

// Unscoped system operations (authentication and bootstrap) ----------------------------------

pub(crate) async fn api_key_state<C: ConnectionTrait>(
    db: &C,
    id: &str,
    now: i64,
) -> Result<ApiKeyState> {
    let Some(k) = api_key::Entity::find_by_id(id.to_owned()).one(db).await? else {
        return Ok(ApiKeyState::Unknown);
    };
    if k.revoke_time.is_some() {
        return Ok(ApiKeyState::Revoked);
    }
    if k.expire_time <= now {
        return Ok(ApiKeyState::Expired);
    }
    if let Some(t) = &k.tenant_id {
        let active = tenant::Entity::find_by_id(t.clone())
            .one(db)
            .await?
            .is_some_and(|t| t.state == "active");
        if !active {
            return Ok(ApiKeyState::TenantInactive);
        }
    }
    Ok(ApiKeyState::Active)
}

pub(crate) async fn create_system_key(
    db: &DatabaseConnection,
    key: NewApiKey,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<ApiKey> {
    let org_id = if key.org_id.is_empty() || key.org_id == "*" {
        None
    } else {
        organization::Entity::find_by_id(key.org_id.clone())
            .one(db)
            .await?
            .ok_or_else(|| Error::not_found("organization", &key.org_id))?;
        Some(key.org_id.clone())
    };
    if key.tenant_id.is_some() {
        return Err(Error::FailedPrecondition("operator keys reach every tenant".into()));
    }
    let txn = crate::write_txn(db).await?;
    let row = api_key::ActiveModel {
        id: Set(key.id.clone()),
        org_id: Set(org_id.clone()),
        tenant_id: Set(None),
        role: Set(key.role.as_str().to_owned()),
        display_name: Set(key.display_name.as_str().to_owned()),
        creator: Set(actor.to_owned()),
        create_time: Set(now),
        expire_time: Set(key.expire_time_ms),
        revoke_time: Set(None),
    }
    .insert(&txn)
    .await?;
    let created: ApiKey = row.try_into()?;
    audit::commit(
        txn,
        actor,
        &AuditContext { request_id: String::new(), reason: reason.to_owned() },
        Entry {
            org_id: org_id.as_deref(),
            tenant_id: None,
            action: "api_key.create",
            resource: format!("apiKeys/{}", created.id),
            before: None,
            after: json(&created),
        },
        now,
    )
    .await?;
    Ok(created)
}
