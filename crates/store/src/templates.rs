//! An organization's model templates: specs with named parameters that its tenants' models
//! start from. Reach-checked through [`Access`]; only organization-wide principals see them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::audit::{self, AuditContext, Entry};
use crate::entity::template;
use crate::models::canonical_json;
use crate::{Access, DisplayName, Error, Page, ResourceId, Result};

/// A named template parameter.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TemplateParam {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `None`: required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
}

/// An organization's model template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateRecord {
    pub org_id: String,
    pub id: String,
    pub display_name: String,
    pub spec: serde_json::Value,
    pub parameters: Vec<TemplateParam>,
    pub creator: String,
    pub create_time_ms: i64,
}

/// A template to create, its id and name validated at the service edge.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub org_id: String,
    pub id: ResourceId,
    pub display_name: DisplayName,
    pub spec: serde_json::Value,
    pub parameters: Vec<TemplateParam>,
}

fn template_record(m: template::Model) -> Result<TemplateRecord> {
    let unreadable = |e: serde_json::Error| {
        Error::FailedPrecondition(format!("stored template unreadable: {e}"))
    };
    Ok(TemplateRecord {
        spec: serde_json::from_str(&m.spec_json).map_err(unreadable)?,
        parameters: serde_json::from_str(&m.parameters_json).map_err(unreadable)?,
        org_id: m.org_id,
        id: m.id,
        display_name: m.display_name,
        creator: m.creator,
        create_time_ms: m.create_time,
    })
}

impl Access<'_> {
    async fn org_wide(&self, org_id: &str, what: &str) -> Result<()> {
        let org = self.load_org(org_id).await?;
        if !self.principal.is_org_wide(&org.id) {
            return Err(Error::PermissionDenied(format!(
                "{what} needs an organization-wide token"
            )));
        }
        Ok(())
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_template", otel.kind = "client"))]
    pub async fn create_template(
        &self,
        template: NewTemplate,
        ctx: &AuditContext,
    ) -> Result<TemplateRecord> {
        self.org_wide(&template.org_id, "creating a template").await?;
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let key = (template.org_id.clone(), template.id.as_str().to_owned());
        if template::Entity::find_by_id(key).one(&txn).await?.is_some() {
            return Err(Error::AlreadyExists { kind: "template", id: template.id.into_string() });
        }
        let row = template::ActiveModel {
            org_id: Set(template.org_id.clone()),
            id: Set(template.id.as_str().to_owned()),
            display_name: Set(template.display_name.as_str().to_owned()),
            spec_json: Set(canonical_json(&template.spec)),
            parameters_json: Set(
                serde_json::to_string(&template.parameters).unwrap_or_else(|_| "[]".into())
            ),
            creator: Set(self.principal.actor().to_owned()),
            create_time: Set(now),
        }
        .insert(&txn)
        .await?;
        let created = template_record(row)?;
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(&created.org_id),
                tenant_id: None,
                action: "template.create",
                resource: format!("organizations/{}/templates/{}", created.org_id, created.id),
                before: None,
                after: audit::json(&created),
            },
            now,
        )
        .await?;
        Ok(created)
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.get_template", otel.kind = "client"))]
    pub async fn get_template(&self, org_id: &str, template_id: &str) -> Result<TemplateRecord> {
        self.org_wide(org_id, "reading templates").await?;
        let row = template::Entity::find_by_id((org_id.to_owned(), template_id.to_owned()))
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("template", template_id))?;
        template_record(row)
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_templates", otel.kind = "client"))]
    pub async fn list_templates(
        &self,
        org_id: &str,
        page: &Page,
    ) -> Result<(Vec<TemplateRecord>, String)> {
        self.org_wide(org_id, "listing templates").await?;
        let mut query = template::Entity::find()
            .filter(template::Column::OrgId.eq(org_id))
            .order_by_asc(template::Column::Id);
        if let Some(after) = &page.after {
            query = query.filter(template::Column::Id.gt(after.clone()));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.clone());
        Ok((rows.into_iter().map(template_record).collect::<Result<_>>()?, next))
    }
}
