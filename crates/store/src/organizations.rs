//! Organizations (agencies): creating, reading and listing them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::audit::{self, AuditContext, Entry, json};
use crate::entity::organization;
use crate::types::{etag, generated_id};
use crate::{Access, DisplayName, Error, Organization, Page, ResourceId, Result};

impl Access<'_> {
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_organization", otel.kind = "client"))]
    pub async fn create_organization(
        &self,
        id: Option<&ResourceId>,
        display_name: &DisplayName,
        request_id: &str,
        ctx: &AuditContext,
    ) -> Result<Organization> {
        if !self.principal.is_platform() {
            return Err(Error::PermissionDenied(
                "creating an organization needs a platform token".into(),
            ));
        }
        if !request_id.is_empty() {
            let existing = organization::Entity::find()
                .filter(organization::Column::CreateRequestId.eq(request_id))
                .one(self.db)
                .await?;
            if let Some(org) = existing {
                return Ok(org.into());
            }
        }
        let id = id.map_or_else(|| generated_id("org"), |id| id.as_str().to_owned());
        let display_name = display_name.as_str();
        let now = self.clock.now_ms();
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
        audit::commit(
            txn,
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
