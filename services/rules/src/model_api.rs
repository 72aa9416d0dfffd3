//! `kelvin.v1.ModelService`: scoring models as versioned, audited resources, on the engine.

mod activation;
mod messages;
mod simulate;
mod spec;
mod templates;

use std::sync::Arc;

use kelvin_config::LimitsSettings;
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_server::ModelService;
use kelvin_server::{ApiError, At, CallContext, HeavyWork, Reply, Runtime, handle};
use kelvin_store::{AuditContext, DisplayName, Page, ResourceId, required};
use tonic::Request;

use self::messages::{change_pb, model_pb, template_pb, version_pb};
use self::spec::required_spec;
use crate::diff;

/// The ModelService handlers.
pub struct ModelApi {
    runtime: Arc<Runtime>,
    limits: LimitsSettings,
    /// Simulations and compilations of big specs run there, off the call-serving threads.
    heavy: Arc<HeavyWork>,
}

impl ModelApi {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let limits = runtime.config.limits.clone();
        Self { heavy: HeavyWork::new(&limits), limits, runtime }
    }
}

/// The audit context of a change made by `ctx`'s call, for `reason`.
fn audit(ctx: &CallContext, reason: &str) -> AuditContext {
    AuditContext { request_id: ctx.request_id.clone(), reason: reason.to_owned() }
}

#[tonic::async_trait]
impl ModelService for ModelApi {
    async fn create_model(
        &self,
        request: Request<pb::CreateModelRequest>,
    ) -> Reply<pb::CreateModelResponse> {
        handle(request, |ctx, req| async move {
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let model_id = ResourceId::parse(&req.model_id).at("model_id")?;
            let display_name = DisplayName::parse(&req.display_name).at("display_name")?;
            let model =
                access.create_model(&scope, &model_id, &display_name, &audit(&ctx, "")).await?;
            Ok(pb::CreateModelResponse { model: Some(model_pb(model)) })
        })
        .await
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Reply<pb::GetModelResponse> {
        handle(request, |ctx, req| async move {
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let model_id = required(&req.model_id).at("model_id")?;
            let model = access.get_model(&scope, model_id).await?;
            Ok(pb::GetModelResponse { model: Some(model_pb(model)) })
        })
        .await
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Reply<pb::ListModelsResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let (models, next_page_token) = access.list_models(&scope, &page).await?;
            Ok(pb::ListModelsResponse {
                models: models.into_iter().map(model_pb).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn create_model_version(
        &self,
        request: Request<pb::CreateModelVersionRequest>,
    ) -> Reply<pb::CreateModelVersionResponse> {
        handle(request, |ctx, req| async move {
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let checked = self
                .checked(&ctx, &req.tenant_id, "spec", required_spec("spec", req.spec)?)
                .await?;
            let model_id = required(&req.model_id).at("model_id")?;
            let version = access
                .create_model_version(
                    &scope,
                    model_id,
                    &checked.json,
                    &req.comment,
                    &audit(&ctx, &req.comment),
                )
                .await?;
            Ok(pb::CreateModelVersionResponse { version: Some(version_pb(version)) })
        })
        .await
    }

    async fn get_model_version(
        &self,
        request: Request<pb::GetModelVersionRequest>,
    ) -> Reply<pb::GetModelVersionResponse> {
        handle(request, |ctx, req| async move {
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let model_id = required(&req.model_id).at("model_id")?;
            if req.version < 0 {
                return Err(ApiError::invalid("version", "must not be negative"));
            }
            let version = access.get_model_version(&scope, model_id, req.version).await?;
            Ok(pb::GetModelVersionResponse { version: Some(version_pb(version)) })
        })
        .await
    }

    async fn list_model_versions(
        &self,
        request: Request<pb::ListModelVersionsRequest>,
    ) -> Reply<pb::ListModelVersionsResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let model_id = required(&req.model_id).at("model_id")?;
            let (versions, next_page_token) =
                access.list_model_versions(&scope, model_id, &page).await?;
            Ok(pb::ListModelVersionsResponse {
                versions: versions.into_iter().map(version_pb).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn validate_model(
        &self,
        request: Request<pb::ValidateModelRequest>,
    ) -> Reply<pb::ValidateModelResponse> {
        handle(request, |ctx, req| async move {
            // The tenant must be in reach even though nothing is stored.
            ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let json = required_spec("spec", req.spec)?;
            let errors = match self.checked(&ctx, &req.tenant_id, "spec", json).await {
                Ok(_) => Vec::new(),
                Err(ApiError::InvalidDocument { violations, .. }) => violations,
                Err(other) => return Err(other),
            };
            Ok(pb::ValidateModelResponse {
                valid: errors.is_empty(),
                errors: errors
                    .into_iter()
                    .map(|(path, message)| pb::ValidationError { path, message })
                    .collect(),
            })
        })
        .await
    }

    async fn diff_model_versions(
        &self,
        request: Request<pb::DiffModelVersionsRequest>,
    ) -> Reply<pb::DiffModelVersionsResponse> {
        handle(request, |ctx, req| async move {
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            if req.from_version <= 0 {
                return Err(ApiError::invalid("from_version", "must be a version number"));
            }
            let model_id = required(&req.model_id).at("model_id")?;
            let from = access.get_model_version(&scope, model_id, req.from_version).await?;
            if req.to_version < 0 {
                return Err(ApiError::invalid("version", "must not be negative"));
            }
            let to = access.get_model_version(&scope, model_id, req.to_version).await?;
            let changes = diff::diff(&from.spec, &to.spec).into_iter().map(change_pb).collect();
            Ok(pb::DiffModelVersionsResponse { changes })
        })
        .await
    }

    async fn publish_model_version(
        &self,
        request: Request<pb::PublishModelVersionRequest>,
    ) -> Reply<pb::PublishModelVersionResponse> {
        handle(request, |ctx, req| self.activation(ctx, req)).await
    }

    async fn rollback_model(
        &self,
        request: Request<pb::RollbackModelRequest>,
    ) -> Reply<pb::RollbackModelResponse> {
        handle(request, |ctx, req| self.activation(ctx, req)).await
    }

    async fn simulate_score(
        &self,
        request: Request<pb::SimulateScoreRequest>,
    ) -> Reply<pb::SimulateScoreResponse> {
        handle(request, |ctx, req| self.simulate(ctx, req)).await
    }

    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Reply<pb::CreateTemplateResponse> {
        handle(request, |ctx, req| self.check_and_create_template(ctx, req)).await
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Reply<pb::ListTemplatesResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let org_id = required(&req.organization_id).at("organization_id")?;
            let (templates, next_page_token) =
                ctx.access(&self.runtime).list_templates(org_id, &page).await?;
            Ok(pb::ListTemplatesResponse {
                templates: templates.into_iter().map(template_pb).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn apply_template(
        &self,
        request: Request<pb::ApplyTemplateRequest>,
    ) -> Reply<pb::ApplyTemplateResponse> {
        handle(request, |ctx, req| self.apply_template_to_targets(ctx, req)).await
    }
}
