//! A tenant's scoring models, their immutable versions and activations: reach-checked like
//! everything else, through [`Access`] and a [`TenantScope`]. Also the canonical JSON that
//! versions (and templates) are stored and hashed as.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditContext, Entry};
use crate::entity::{model, model_activation, model_version};
use crate::{Access, DisplayName, Error, Page, ResourceId, Result, TenantScope};

/// A tenant's named scoring model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoringModel {
    pub tenant_id: String,
    pub id: String,
    pub display_name: String,
    pub active_version: i64,
    pub latest_version: i64,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
    pub etag: String,
}

/// One immutable version of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersionRecord {
    pub tenant_id: String,
    pub model_id: String,
    pub version: i64,
    pub spec: serde_json::Value,
    pub spec_sha256: String,
    pub creator: String,
    pub comment: String,
    pub create_time_ms: i64,
    pub publish_time_ms: Option<i64>,
    pub active: bool,
}

/// How a version became active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationKind {
    Publish,
    Rollback,
}

impl ActivationKind {
    fn as_str(self) -> &'static str {
        match self {
            ActivationKind::Publish => "publish",
            ActivationKind::Rollback => "rollback",
        }
    }
}

/// A durable "model activated" entry, consumed by scoring to rescore the tenant's leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub id: String,
    pub tenant_id: String,
    pub model_id: String,
    pub version: i64,
    pub previous_version: i64,
    pub kind: String,
    pub actor: String,
    pub time_ms: i64,
}

/// JSON with object keys sorted at every level: equal values give equal text (and hashes).
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<_> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(key) {
                        write(v, out);
                    }
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn model_resource(tenant: &str, model: &str) -> String {
    format!("tenants/{tenant}/models/{model}")
}

impl From<model::Model> for ScoringModel {
    fn from(m: model::Model) -> Self {
        Self {
            tenant_id: m.tenant_id,
            id: m.id,
            display_name: m.display_name,
            active_version: m.active_version,
            latest_version: m.latest_version,
            create_time_ms: m.create_time,
            update_time_ms: m.update_time,
            etag: format!("r{}", m.revision),
        }
    }
}

fn version_record(m: model_version::Model, active_version: i64) -> Result<ModelVersionRecord> {
    let spec = serde_json::from_str(&m.spec_json)
        .map_err(|e| Error::FailedPrecondition(format!("stored spec unreadable: {e}")))?;
    Ok(ModelVersionRecord {
        active: m.version == active_version,
        tenant_id: m.tenant_id,
        model_id: m.model_id,
        version: m.version,
        spec,
        spec_sha256: m.spec_sha256,
        creator: m.creator,
        comment: m.comment,
        create_time_ms: m.create_time,
        publish_time_ms: m.publish_time,
    })
}

impl Access<'_> {
    async fn load_model<C: sea_orm::ConnectionTrait>(
        db: &C,
        scope: &TenantScope,
        model_id: &str,
    ) -> Result<model::Model> {
        model::Entity::find_by_id((scope.tenant_id().to_owned(), model_id.to_owned()))
            .one(db)
            .await?
            .ok_or_else(|| Error::not_found("model", model_id))
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_model", otel.kind = "client"))]
    pub async fn create_model(
        &self,
        scope: &TenantScope,
        model_id: &ResourceId,
        display_name: &DisplayName,
        ctx: &AuditContext,
    ) -> Result<ScoringModel> {
        let (model_id, display_name) = (model_id.as_str(), display_name.as_str());
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let key = (scope.tenant_id().to_owned(), model_id.to_owned());
        if model::Entity::find_by_id(key).one(&txn).await?.is_some() {
            return Err(Error::AlreadyExists { kind: "model", id: model_id.to_owned() });
        }
        let row = model::ActiveModel {
            tenant_id: Set(scope.tenant_id().to_owned()),
            id: Set(model_id.to_owned()),
            display_name: Set(display_name.to_owned()),
            active_version: Set(0),
            latest_version: Set(0),
            create_time: Set(now),
            update_time: Set(now),
            revision: Set(1),
        }
        .insert(&txn)
        .await?;
        let created: ScoringModel = row.into();
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(scope.org_id()),
                tenant_id: Some(scope.tenant_id()),
                action: "model.create",
                resource: model_resource(scope.tenant_id(), model_id),
                before: None,
                after: audit::json(&created),
            },
            now,
        )
        .await?;
        Ok(created)
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.get_model", otel.kind = "client"))]
    pub async fn get_model(&self, scope: &TenantScope, model_id: &str) -> Result<ScoringModel> {
        Ok(Self::load_model(self.db, scope, model_id).await?.into())
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_models", otel.kind = "client"))]
    pub async fn list_models(
        &self,
        scope: &TenantScope,
        page: &Page,
    ) -> Result<(Vec<ScoringModel>, String)> {
        let mut query = model::Entity::find()
            .filter(model::Column::TenantId.eq(scope.tenant_id()))
            .order_by_asc(model::Column::Id);
        if let Some(after) = &page.after {
            query = query.filter(model::Column::Id.gt(after.clone()));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.clone());
        Ok((rows.into_iter().map(Into::into).collect(), next))
    }

    /// Stores a new draft version; `spec` must already be valid.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_model_version", otel.kind = "client"))]
    pub async fn create_model_version(
        &self,
        scope: &TenantScope,
        model_id: &str,
        spec: &serde_json::Value,
        comment: &str,
        ctx: &AuditContext,
    ) -> Result<ModelVersionRecord> {
        let spec_json = canonical_json(spec);
        let sha = sha256_hex(&spec_json);
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let current = Self::load_model(&txn, scope, model_id).await?;
        let version = current.latest_version + 1;
        let bumped = model::Entity::update_many()
            .col_expr(model::Column::LatestVersion, Expr::value(version))
            .col_expr(model::Column::UpdateTime, Expr::value(now))
            .filter(model::Column::TenantId.eq(scope.tenant_id()))
            .filter(model::Column::Id.eq(model_id))
            .filter(model::Column::LatestVersion.eq(current.latest_version))
            .exec(&txn)
            .await?;
        if bumped.rows_affected != 1 {
            return Err(Error::Aborted(format!(
                "model `{model_id}` got another version concurrently; retry"
            )));
        }
        let row = model_version::ActiveModel {
            tenant_id: Set(scope.tenant_id().to_owned()),
            model_id: Set(model_id.to_owned()),
            version: Set(version),
            spec_json: Set(spec_json),
            spec_sha256: Set(sha),
            creator: Set(self.principal.actor().to_owned()),
            comment: Set(comment.to_owned()),
            create_time: Set(now),
            publish_time: Set(None),
        }
        .insert(&txn)
        .await?;
        let record = version_record(row, current.active_version)?;
        audit::commit(
            txn,
            self.principal.actor(),
            &AuditContext { reason: comment.to_owned(), ..ctx.clone() },
            Entry {
                org_id: Some(scope.org_id()),
                tenant_id: Some(scope.tenant_id()),
                action: "model_version.create",
                resource: format!(
                    "{}/versions/{version}",
                    model_resource(scope.tenant_id(), model_id)
                ),
                before: None,
                after: audit::json(&record),
            },
            now,
        )
        .await?;
        Ok(record)
    }

    /// One version; `version == 0` means the active one.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.get_model_version", otel.kind = "client"))]
    pub async fn get_model_version(
        &self,
        scope: &TenantScope,
        model_id: &str,
        version: i64,
    ) -> Result<ModelVersionRecord> {
        let model = Self::load_model(self.db, scope, model_id).await?;
        let wanted = if version == 0 { model.active_version } else { version };
        if wanted == 0 {
            return Err(Error::not_found("active version of model", model_id));
        }
        let row = model_version::Entity::find_by_id((
            scope.tenant_id().to_owned(),
            model_id.to_owned(),
            wanted,
        ))
        .one(self.db)
        .await?
        .ok_or_else(|| Error::not_found("model version", format!("{model_id}@{wanted}")))?;
        version_record(row, model.active_version)
    }

    /// Versions newest first.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_model_versions", otel.kind = "client"))]
    pub async fn list_model_versions(
        &self,
        scope: &TenantScope,
        model_id: &str,
        page: &Page,
    ) -> Result<(Vec<ModelVersionRecord>, String)> {
        let model = Self::load_model(self.db, scope, model_id).await?;
        let mut query = model_version::Entity::find()
            .filter(model_version::Column::TenantId.eq(scope.tenant_id()))
            .filter(model_version::Column::ModelId.eq(model_id))
            .order_by_desc(model_version::Column::Version);
        if let Some(after) = &page.after {
            let after: i64 = after.parse().map_err(|_| Error::MalformedPageToken)?;
            query = query.filter(model_version::Column::Version.lt(after));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.version.to_string());
        let versions = rows
            .into_iter()
            .map(|r| version_record(r, model.active_version))
            .collect::<Result<_>>()?;
        Ok((versions, next))
    }

    /// Makes `version` the active version if the active one is still `expected_active`, records
    /// the durable activation and the audit row (with `diff` from the previous active version).
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.activate_model_version", otel.kind = "client"))]
    pub async fn activate_model_version(
        &self,
        scope: &TenantScope,
        model_id: &str,
        version: i64,
        expected_active: i64,
        kind: ActivationKind,
        diff: Option<serde_json::Value>,
        ctx: &AuditContext,
    ) -> Result<(ScoringModel, ModelVersionRecord)> {
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let current = Self::load_model(&txn, scope, model_id).await?;
        let row = model_version::Entity::find_by_id((
            scope.tenant_id().to_owned(),
            model_id.to_owned(),
            version,
        ))
        .one(&txn)
        .await?
        .ok_or_else(|| Error::not_found("model version", format!("{model_id}@{version}")))?;
        if current.active_version != expected_active {
            return Err(Error::Aborted(format!(
                "model `{model_id}` has active version {}, not the expected {expected_active}",
                current.active_version
            )));
        }
        if current.active_version == version {
            return Err(Error::FailedPrecondition(format!(
                "version {version} of model `{model_id}` is already active"
            )));
        }
        if kind == ActivationKind::Rollback && row.publish_time.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "version {version} of model `{model_id}` was never published: publish it instead"
            )));
        }
        let updated = model::Entity::update_many()
            .col_expr(model::Column::ActiveVersion, Expr::value(version))
            .col_expr(model::Column::Revision, Expr::value(current.revision + 1))
            .col_expr(model::Column::UpdateTime, Expr::value(now))
            .filter(model::Column::TenantId.eq(scope.tenant_id()))
            .filter(model::Column::Id.eq(model_id))
            .filter(model::Column::ActiveVersion.eq(expected_active))
            .filter(model::Column::Revision.eq(current.revision))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(Error::Aborted(format!(
                "model `{model_id}` was activated concurrently; read it again"
            )));
        }
        let publish_time = row.publish_time.unwrap_or(now);
        if row.publish_time.is_none() {
            model_version::Entity::update_many()
                .col_expr(model_version::Column::PublishTime, Expr::value(now))
                .filter(model_version::Column::TenantId.eq(scope.tenant_id()))
                .filter(model_version::Column::ModelId.eq(model_id))
                .filter(model_version::Column::Version.eq(version))
                .exec(&txn)
                .await?;
        }
        model_activation::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            tenant_id: Set(scope.tenant_id().to_owned()),
            model_id: Set(model_id.to_owned()),
            version: Set(version),
            previous_version: Set(current.active_version),
            kind: Set(kind.as_str().to_owned()),
            actor: Set(self.principal.actor().to_owned()),
            time: Set(now),
        }
        .insert(&txn)
        .await?;
        let model: ScoringModel =
            model::Entity::find_by_id((scope.tenant_id().to_owned(), model_id.to_owned()))
                .one(&txn)
                .await?
                .ok_or_else(|| Error::not_found("model", model_id))?
                .into();
        let record = version_record(
            model_version::Model { publish_time: Some(publish_time), ..row },
            version,
        )?;
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(scope.org_id()),
                tenant_id: Some(scope.tenant_id()),
                action: if kind == ActivationKind::Rollback {
                    "model.rollback"
                } else {
                    "model.publish"
                },
                resource: model_resource(scope.tenant_id(), model_id),
                before: Some(serde_json::json!({ "active_version": current.active_version })),
                after: Some(serde_json::json!({ "active_version": version, "diff": diff })),
            },
            now,
        )
        .await?;
        Ok((model, record))
    }

    /// The activations of a model, oldest first (what scoring consumes).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.model_activations", otel.kind = "client"))]
    pub async fn model_activations(
        &self,
        scope: &TenantScope,
        model_id: &str,
    ) -> Result<Vec<Activation>> {
        let rows = model_activation::Entity::find()
            .filter(model_activation::Column::TenantId.eq(scope.tenant_id()))
            .filter(model_activation::Column::ModelId.eq(model_id))
            .order_by_asc(model_activation::Column::Id)
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Activation {
                id: r.id,
                tenant_id: r.tenant_id,
                model_id: r.model_id,
                version: r.version,
                previous_version: r.previous_version,
                kind: r.kind,
                actor: r.actor,
                time_ms: r.time,
            })
            .collect())
    }
}
