//! Reach-checked reads and writes on behalf of one principal.

use std::collections::BTreeMap;

use kelvin_auth::{Principal, Role, TenantReach};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::audit::{self, Entry, json};
use crate::entity::{api_key, audit_event, organization, tenant};
use crate::types::{
    ApiKeyState, generated_id, now_ms, validate_display_name, validate_id, validate_labels,
};
use crate::{
    ApiKey, AuditEvent, AuditFilter, Error, NewApiKey, NewTenant, Organization, Page, Result,
    Tenant, TenantPatch, TenantState,
};

/// Who asked for a change, beyond the principal: recorded on the audit row.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub request_id: String,
    pub reason: String,
}

/// Proof that the current principal reaches one active tenant. Only [`Access::tenant_scope`]
/// builds one; repositories of tenant-owned data take it instead of a bare tenant id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    org_id: String,
    tenant_id: String,
    incarnation: i64,
}

impl TenantScope {
    /// Which life of the tenant id this is (its creation time): a tenant purged and created
    /// again under the same id is another incarnation, so anything keyed by it (cache
    /// namespaces) starts empty.
    pub fn incarnation(&self) -> i64 {
        self.incarnation
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
}

/// Everything one principal may read and change.
pub struct Access<'a> {
    pub(crate) db: &'a DatabaseConnection,
    pub(crate) principal: &'a Principal,
    /// Key of the HMAC naming erased leads in audit rows.
    pub(crate) pseudonym_key: &'a [u8],
}

const MAX_KEY_LIFETIME_MS: i64 = 2 * 366 * 24 * 3600 * 1000;

impl<'a> Access<'a> {
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        principal: &'a Principal,
        pseudonym_key: &'a [u8],
    ) -> Self {
        Self { db, principal, pseudonym_key }
    }

    pub fn principal(&self) -> &Principal {
        self.principal
    }

    pub(crate) fn require_role(&self, role: Role, what: &str) -> Result<()> {
        if self.principal.role() == role {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("{what} needs the {} role", role.as_str())))
        }
    }

    pub(crate) async fn load_org(&self, id: &str) -> Result<organization::Model> {
        if id.is_empty() {
            return Err(Error::invalid("organization_id", "is required"));
        }
        if !self.principal.reaches_org(id) {
            return Err(Error::not_found("organization", id));
        }
        organization::Entity::find_by_id(id.to_owned())
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))
    }

    async fn load_tenant(&self, id: &str, include_deleted: bool) -> Result<tenant::Model> {
        if id.is_empty() {
            return Err(Error::invalid("tenant_id", "is required"));
        }
        let row = tenant::Entity::find_by_id(id.to_owned()).one(self.db).await?;
        match row {
            Some(t)
                if self.principal.reaches_tenant(&t.org_id, &t.id)
                    && (include_deleted || t.state == "active") =>
            {
                Ok(t)
            }
            _ => Err(Error::not_found("tenant", id)),
        }
    }

    /// A scope for tenant-owned data of `tenant_id`: NOT_FOUND when the tenant is absent,
    /// deleted, or out of reach.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.tenant_scope", otel.kind = "client"))]
    pub async fn tenant_scope(&self, tenant_id: &str) -> Result<TenantScope> {
        let t = self.load_tenant(tenant_id, false).await?;
        Ok(TenantScope { org_id: t.org_id, tenant_id: t.id, incarnation: t.create_time })
    }

    // Organizations ---------------------------------------------------------------------------

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_organization", otel.kind = "client"))]
    pub async fn create_organization(
        &self,
        id: &str,
        display_name: &str,
        request_id: &str,
        ctx: &AuditContext,
    ) -> Result<Organization> {
        self.require_role(Role::Admin, "creating an organization")?;
        if !self.principal.is_platform() {
            return Err(Error::PermissionDenied(
                "creating an organization needs a platform token".into(),
            ));
        }
        if !id.is_empty() {
            validate_id("organization_id", id)?;
        }
        validate_display_name("display_name", display_name)?;
        if !request_id.is_empty() {
            let existing = organization::Entity::find()
                .filter(organization::Column::CreateRequestId.eq(request_id))
                .one(self.db)
                .await?;
            if let Some(org) = existing {
                return Ok(org.into());
            }
        }
        let id = if id.is_empty() { generated_id("org") } else { id.to_owned() };
        let now = now_ms();
        let txn = crate::write_txn(self.db).await?;
        if organization::Entity::find_by_id(id.clone()).one(&txn).await?.is_some() {
            return Err(Error::AlreadyExists { kind: "organization", id });
        }
        let row = organization::ActiveModel {
            id: Set(id.clone()),
            display_name: Set(display_name.to_owned()),
            create_request_id: Set((!request_id.is_empty()).then(|| request_id.to_owned())),
            create_time: Set(now),
            update_time: Set(now),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
        let org: Organization = row.into();
        audit::record(
            &txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&org.id),
                tenant_id: None,
                action: "organization.create",
                resource: format!("organizations/{}", org.id),
                before: None,
                after: json(&org),
            },
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(org)
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.get_organization", otel.kind = "client"))]
    pub async fn get_organization(&self, id: &str) -> Result<Organization> {
        Ok(self.load_org(id).await?.into())
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_organizations", otel.kind = "client"))]
    pub async fn list_organizations(&self, page: &Page) -> Result<(Vec<Organization>, String)> {
        let mut query = organization::Entity::find().order_by_asc(organization::Column::Id);
        if let kelvin_auth::OrgReach::Org(own) = self.principal.org() {
            query = query.filter(organization::Column::Id.eq(own.clone()));
        }
        if let Some(after) = &page.after {
            query = query.filter(organization::Column::Id.gt(after.clone()));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.clone());
        Ok((rows.into_iter().map(Into::into).collect(), next))
    }

    // Tenants ---------------------------------------------------------------------------------

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_tenant", otel.kind = "client"))]
    pub async fn create_tenant(&self, new: NewTenant, ctx: &AuditContext) -> Result<Tenant> {
        self.require_role(Role::Admin, "creating a tenant")?;
        let org = self.load_org(&new.org_id).await?;
        if !self.principal.is_org_wide(&org.id) {
            return Err(Error::PermissionDenied(
                "creating a tenant needs an organization-wide token".into(),
            ));
        }
        if !new.id.is_empty() {
            validate_id("tenant_id", &new.id)?;
        }
        validate_display_name("display_name", &new.display_name)?;
        validate_labels(&new.labels)?;
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
        let id = if new.id.is_empty() { generated_id("t") } else { new.id.clone() };
        let now = now_ms();
        let txn = crate::write_txn(self.db).await?;
        if tenant::Entity::find_by_id(id.clone()).one(&txn).await?.is_some() {
            return Err(Error::AlreadyExists { kind: "tenant", id });
        }
        let row = tenant::ActiveModel {
            id: Set(id),
            org_id: Set(org.id.clone()),
            display_name: Set(new.display_name.clone()),
            labels: Set(labels_json(&new.labels)),
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
        audit::record(
            &txn,
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
        txn.commit().await?;
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
        self.require_role(Role::Admin, "updating a tenant")?;
        let current = self.load_tenant(id, false).await?;
        if let Some(name) = &patch.display_name {
            validate_display_name("tenant.display_name", name)?;
        }
        if let Some(labels) = &patch.labels {
            validate_labels(labels)?;
        }
        let before: Tenant = current.clone().try_into()?;
        if !patch.etag.is_empty() && patch.etag != before.etag {
            return Err(Error::Aborted(format!(
                "tenant `{id}` changed since etag {} was read",
                patch.etag
            )));
        }
        let now = now_ms();
        let mut update = tenant::Entity::update_many()
            .col_expr(tenant::Column::UpdateTime, Expr::value(now))
            .col_expr(tenant::Column::Version, Expr::value(current.version + 1))
            .filter(tenant::Column::Id.eq(current.id.clone()))
            .filter(tenant::Column::Version.eq(current.version))
            .filter(tenant::Column::State.eq("active"));
        if let Some(name) = &patch.display_name {
            update = update.col_expr(tenant::Column::DisplayName, Expr::value(name.clone()));
        }
        if let Some(labels) = &patch.labels {
            update = update.col_expr(tenant::Column::Labels, Expr::value(labels_json(labels)));
        }
        let txn = crate::write_txn(self.db).await?;
        if update.exec(&txn).await?.rows_affected != 1 {
            return Err(Error::Aborted(format!("tenant `{id}` was changed concurrently")));
        }
        let after: Tenant = tenant::Entity::find_by_id(current.id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?
            .try_into()?;
        audit::record(
            &txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&after.org_id),
                tenant_id: Some(&after.id),
                action: "tenant.update",
                resource: format!("tenants/{}", after.id),
                before: json(&before),
                after: json(&after),
            },
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_tenant", otel.kind = "client"))]
    pub async fn delete_tenant(
        &self,
        id: &str,
        etag: &str,
        purge_after_ms: i64,
        ctx: &AuditContext,
    ) -> Result<Tenant> {
        self.require_role(Role::Admin, "deleting a tenant")?;
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
        let now = now_ms();
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
        let after: Tenant = tenant::Entity::find_by_id(current.id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?
            .try_into()?;
        audit::record(
            &txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&after.org_id),
                tenant_id: Some(&after.id),
                action: "tenant.delete",
                resource: format!("tenants/{}", after.id),
                before: json(&before),
                after: json(&after),
            },
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }

    // API keys --------------------------------------------------------------------------------

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
        self.require_role(Role::Admin, "creating an API key")?;
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
        validate_display_name("display_name", &key.display_name)?;
        let now = now_ms();
        if key.expire_time_ms <= now {
            return Err(Error::invalid("expire_time", "must be in the future"));
        }
        if key.expire_time_ms > now + MAX_KEY_LIFETIME_MS {
            return Err(Error::invalid("expire_time", "must be at most 2 years ahead"));
        }
        let txn = crate::write_txn(self.db).await?;
        let row = api_key::ActiveModel {
            id: Set(key.id.clone()),
            org_id: Set(Some(org.id.clone())),
            tenant_id: Set(key.tenant_id.clone()),
            role: Set(key.role.as_str().to_owned()),
            display_name: Set(key.display_name.clone()),
            creator: Set(self.principal.actor().to_owned()),
            create_time: Set(now),
            expire_time: Set(key.expire_time_ms),
            revoke_time: Set(None),
        }
        .insert(&txn)
        .await?;
        let created: ApiKey = row.try_into()?;
        audit::record(
            &txn,
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
        txn.commit().await?;
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
        self.require_role(Role::Admin, "listing API keys")?;
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
        self.require_role(Role::Admin, "revoking an API key")?;
        if id.is_empty() {
            return Err(Error::invalid("api_key_id", "is required"));
        }
        let row = api_key::Entity::find_by_id(id.to_owned()).one(self.db).await?;
        let row = match row {
            Some(k) if self.sees_key(&k) => k,
            _ => return Err(Error::not_found("API key", id)),
        };
        if row.revoke_time.is_some() {
            return row.try_into();
        }
        let before: ApiKey = row.clone().try_into()?;
        let now = now_ms();
        let txn = crate::write_txn(self.db).await?;
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokeTime, Expr::value(now))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokeTime.is_null())
            .exec(&txn)
            .await?;
        let after = ApiKey { revoke_time_ms: Some(now), ..before.clone() };
        audit::record(
            &txn,
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
        txn.commit().await?;
        Ok(after)
    }

    // Audit -----------------------------------------------------------------------------------

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
            if filter.tenant_id.is_empty() {
                return Err(Error::invalid("tenant_id", "is required with model_id"));
            }
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

fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

// Conversions --------------------------------------------------------------------------------

fn etag(version: i64) -> String {
    format!("v{version}")
}

impl From<organization::Model> for Organization {
    fn from(m: organization::Model) -> Self {
        Self {
            id: m.id,
            display_name: m.display_name,
            create_time_ms: m.create_time,
            update_time_ms: m.update_time,
            etag: etag(m.version),
        }
    }
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
        return Err(Error::invalid("tenant_id", "operator keys reach every tenant"));
    }
    let now = now_ms();
    if key.expire_time_ms <= now {
        return Err(Error::invalid("expire_time", "must be in the future"));
    }
    if key.expire_time_ms > now + MAX_KEY_LIFETIME_MS {
        return Err(Error::invalid("expire_time", "must be at most 2 years ahead"));
    }
    validate_display_name("display_name", &key.display_name)?;
    let txn = crate::write_txn(db).await?;
    let row = api_key::ActiveModel {
        id: Set(key.id.clone()),
        org_id: Set(org_id.clone()),
        tenant_id: Set(None),
        role: Set(key.role.as_str().to_owned()),
        display_name: Set(key.display_name.clone()),
        creator: Set(actor.to_owned()),
        create_time: Set(now),
        expire_time: Set(key.expire_time_ms),
        revoke_time: Set(None),
    }
    .insert(&txn)
    .await?;
    let created: ApiKey = row.try_into()?;
    audit::record(
        &txn,
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
    txn.commit().await?;
    Ok(created)
}
