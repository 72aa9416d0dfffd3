//! Reach-checked reads and writes on behalf of one principal: [`Access`], the [`TenantScope`]
//! it hands out, and the reach checks every repository starts with. The repositories
//! themselves are `impl Access` blocks in their own modules (organizations, tenants, API keys,
//! audit, models, templates, ingest, export, erasure, scores, dead letters).

use kelvin_auth::Principal;
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::entity::{organization, tenant};
use crate::{Error, Result};

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
    pub(crate) clock: &'a kelvin_clock::Clock,
}

impl<'a> Access<'a> {
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        principal: &'a Principal,
        pseudonym_key: &'a [u8],
        clock: &'a kelvin_clock::Clock,
    ) -> Self {
        Self { db, principal, pseudonym_key, clock }
    }

    pub fn principal(&self) -> &Principal {
        self.principal
    }

    pub(crate) async fn load_org(&self, id: &str) -> Result<organization::Model> {
        if !self.principal.reaches_org(id) {
            return Err(Error::not_found("organization", id));
        }
        organization::Entity::find_by_id(id.to_owned())
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))
    }

    pub(crate) async fn load_tenant(
        &self,
        id: &str,
        include_deleted: bool,
    ) -> Result<tenant::Model> {
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
}
