//! `kelvin.v1.ModelService`: scoring models as versioned, audited resources, on the engine.

use std::sync::Arc;

use kelvin_config::LimitsSettings;
use kelvin_engine::{CompiledModel, ModelSpec};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::model_service_server::ModelService;
use kelvin_server::{ApiError, CallContext, HeavyWork, Runtime, call_context, scores};
use kelvin_store::{
    Access, ActivationKind, AuditContext, ModelVersionRecord, Page, ScoringModel, TemplateParam,
    TemplateRecord, TenantScope,
};
use tonic::{Request, Response, Status};

use crate::convert::{self, pb_value, struct_json, timestamp};
use crate::diff::{self, Change};
use crate::template;

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

    /// Refuses a spec larger than `limits.max_spec_bytes` (as compact JSON), naming `field`.
    fn check_size(&self, field: &str, json: &serde_json::Value) -> Result<usize, ApiError> {
        let (size, max) = (template::json_len(json), self.limits.max_spec_bytes);
        if size > max {
            return Err(ApiError::invalid(
                field,
                format!("is {size} bytes as JSON, more than the limit of {max}"),
            ));
        }
        Ok(size)
    }

    /// [`check_spec`] for `tenant`'s call: inline when the spec is small, else on the bounded
    /// pool within the tenant's limits (compiling thousands of regexes takes real CPU).
    async fn checked(
        &self,
        ctx: &CallContext,
        tenant: &str,
        field: &'static str,
        json: serde_json::Value,
    ) -> Result<CheckedSpec, ApiError> {
        if self.check_size(field, &json)? <= INLINE_SPEC_BYTES {
            check_spec(field, json)
        } else {
            self.heavy.run(ctx, tenant, move || check_spec(field, json)).await
        }
    }
}

/// Specs up to this size (as JSON; the sample models are a few KiB) are compiled inline: their
/// compilation is short and a trip through the pool would add to it.
const INLINE_SPEC_BYTES: usize = 64 * 1024;

/// Rules in a spec's JSON (fit, exclusions, engagement, company fit), counted before parsing so
/// that an over-budget simulation is refused before any work.
fn rule_count(spec: &serde_json::Value) -> u64 {
    let len = |v: &serde_json::Value| v.as_array().map_or(0, Vec::len) as u64;
    len(&spec["fit"])
        + len(&spec["exclusions"])
        + len(&spec["engagement"])
        + len(&spec["company"]["fit"])
}

type Reply<T> = Result<Response<T>, Status>;

fn audit(ctx: &CallContext, reason: &str) -> AuditContext {
    AuditContext { request_id: ctx.request_id.clone(), reason: reason.to_owned() }
}

/// A spec checked by the engine: its JSON (as given) and the compiled model.
struct CheckedSpec {
    json: serde_json::Value,
    compiled: CompiledModel,
}

/// Parses and validates a spec; every problem is reported with its path under `field`.
fn check_spec(field: &str, json: serde_json::Value) -> Result<CheckedSpec, ApiError> {
    let spec = ModelSpec::from_json_value(json.clone()).map_err(|e| ApiError::InvalidDocument {
        field: field.to_owned(),
        violations: vec![(e.path, e.message)],
    })?;
    let compiled = spec.compile().map_err(|errors| ApiError::InvalidDocument {
        field: field.to_owned(),
        violations: errors.into_iter().map(|e| (e.path, e.message)).collect(),
    })?;
    Ok(CheckedSpec { json, compiled })
}

fn required_spec(
    field: &str,
    spec: Option<prost_types::Struct>,
) -> Result<serde_json::Value, ApiError> {
    spec.map(struct_json).ok_or_else(|| ApiError::invalid(field, "is required"))
}

fn model_pb(m: ScoringModel) -> pb::Model {
    pb::Model {
        tenant_id: m.tenant_id,
        model_id: m.id,
        display_name: m.display_name,
        active_version: m.active_version,
        latest_version: m.latest_version,
        create_time: Some(timestamp(m.create_time_ms)),
        update_time: Some(timestamp(m.update_time_ms)),
        etag: m.etag,
    }
}

fn version_pb(v: ModelVersionRecord) -> pb::ModelVersion {
    pb::ModelVersion {
        tenant_id: v.tenant_id,
        model_id: v.model_id,
        version: v.version,
        state: if v.publish_time_ms.is_some() {
            pb::ModelVersionState::Published
        } else {
            pb::ModelVersionState::Draft
        } as i32,
        spec: convert::json_struct(v.spec),
        spec_sha256: v.spec_sha256,
        creator: v.creator,
        create_time: Some(timestamp(v.create_time_ms)),
        publish_time: v.publish_time_ms.map(timestamp),
        active: v.active,
        comment: v.comment,
    }
}

fn change_pb(c: Change) -> pb::ModelChange {
    pb::ModelChange {
        section: c.section,
        rule_id: c.rule_id,
        kind: match c.kind {
            diff::Kind::Added => pb::ChangeKind::Added,
            diff::Kind::Removed => pb::ChangeKind::Removed,
            diff::Kind::Changed => pb::ChangeKind::Changed,
        } as i32,
        field: c.field,
        before: c.before.map(pb_value),
        after: c.after.map(pb_value),
    }
}

fn template_pb(t: TemplateRecord) -> pb::Template {
    pb::Template {
        organization_id: t.org_id,
        template_id: t.id,
        display_name: t.display_name,
        spec: convert::json_struct(t.spec),
        parameters: t
            .parameters
            .into_iter()
            .map(|p| pb::TemplateParameter {
                name: p.name,
                description: p.description,
                default_value: p.default.map(pb_value),
            })
            .collect(),
        creator: t.creator,
        create_time: Some(timestamp(t.create_time_ms)),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The lead, company and events given inline in a SimulateScore request.
fn inline_lead(
    lead: Option<pb::LeadInput>,
    company: Option<pb::CompanyInput>,
    inputs: Vec<pb::EventInput>,
) -> Result<
    (kelvin_engine::Lead, Option<kelvin_engine::Company>, Vec<kelvin_engine::Event>),
    ApiError,
> {
    // Enriched attributes first, explicit ones over them: the lead's own word wins.
    let input = lead.unwrap_or_default();
    let mut attributes = input.enriched.map(kelvin_proto::convert::struct_json).unwrap_or_default();
    attributes.extend(input.attributes.map(kelvin_proto::convert::struct_json).unwrap_or_default());
    let lead = kelvin_engine::Lead { attributes: attributes.into_iter().collect() };
    let company = company.map(|c| kelvin_engine::Company {
        attributes: c
            .attributes
            .map(kelvin_proto::convert::struct_json)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    });
    let mut events = Vec::with_capacity(inputs.len());
    for (i, e) in inputs.into_iter().enumerate() {
        let time =
            e.time.ok_or_else(|| ApiError::invalid(format!("events[{i}].time"), "is required"))?;
        if e.r#type.is_empty() {
            return Err(ApiError::invalid(format!("events[{i}].type"), "is required"));
        }
        events.push(kelvin_engine::Event {
            id: if e.event_id.is_empty() { format!("event-{i}") } else { e.event_id },
            kind: e.r#type,
            time_ms: convert::millis(&format!("events[{i}].time"), &time)?,
            properties: e
                .properties
                .map(kelvin_proto::convert::struct_json)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        });
    }
    Ok((lead, company, events))
}

impl ModelApi {
    /// Diff from the active version (if any) to `target`, for the audit row.
    async fn activation_diff(
        access: &Access<'_>,
        scope: &TenantScope,
        model_id: &str,
        target: i64,
    ) -> Result<serde_json::Value, ApiError> {
        let to = access.get_model_version(scope, model_id, target).await?;
        let model = access.get_model(scope, model_id).await?;
        let from = if model.active_version == 0 {
            serde_json::json!({})
        } else {
            access.get_model_version(scope, model_id, model.active_version).await?.spec
        };
        Ok(serde_json::to_value(diff::diff(&from, &to.spec)).unwrap_or_default())
    }

    #[allow(clippy::too_many_arguments)]
    async fn activate(
        &self,
        ctx: &CallContext,
        tenant_id: &str,
        model_id: &str,
        version: i64,
        expected: i64,
        kind: ActivationKind,
        comment: &str,
    ) -> Result<(ScoringModel, ModelVersionRecord), ApiError> {
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(tenant_id).await?;
        if version > 0 {
            let diff = Self::activation_diff(&access, &scope, model_id, version).await?;
            Ok(access
                .activate_model_version(
                    &scope,
                    model_id,
                    version,
                    expected,
                    kind,
                    Some(diff),
                    &audit(ctx, comment),
                )
                .await?)
        } else {
            let field = if kind == ActivationKind::Rollback { "to_version" } else { "version" };
            Err(ApiError::invalid(field, "must be a version number"))
        }
    }

    /// One ApplyTemplate target, start to end.
    async fn apply_one(
        &self,
        ctx: &CallContext,
        template: &TemplateRecord,
        target: pb::TemplateTarget,
        publish: bool,
        comment: &str,
    ) -> Result<Applied, ApiError> {
        let model_id =
            if target.model_id.is_empty() { "default".to_owned() } else { target.model_id };
        // Reach first: a tenant out of reach is NOT_FOUND whatever its parameters.
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&target.tenant_id).await?;
        let values = target
            .parameters
            .map(struct_json)
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let rendered = template::render(
            &template.spec,
            &template.parameters,
            &values,
            self.limits.max_spec_bytes,
        )
        .map_err(|mut violations| match violations.as_slice() {
            [(path, message)] if path == "parameters" => ApiError::invalid(path, message),
            _ => {
                // Paths under `parameters`, as the request names them.
                for (path, _) in &mut violations {
                    if let Some(rest) = path.strip_prefix("parameters.") {
                        *path = rest.to_owned();
                    }
                }
                ApiError::InvalidDocument { field: "parameters".into(), violations }
            }
        })?;
        let checked = self.checked(ctx, &target.tenant_id, "spec", rendered).await?;
        let reason = if comment.is_empty() {
            format!("template {}", template.id)
        } else {
            comment.to_owned()
        };
        let model = match access.get_model(&scope, &model_id).await {
            Ok(m) => m,
            Err(kelvin_store::Error::NotFound { .. }) => {
                access
                    .create_model(&scope, &model_id, &template.display_name, &audit(ctx, &reason))
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        // Reapplying an unchanged template is a no-op, like `kelvinctl models apply`: an active
        // version with the same spec is kept (no new version, no rescore), and a draft with the
        // same spec is reused rather than duplicated.
        let wanted = kelvin_store::canonical_json(&checked.json);
        let same = |v: i64| {
            let (access, scope, model_id, wanted) = (&access, &scope, &model.id, &wanted);
            async move {
                if v == 0 {
                    return Ok::<_, ApiError>(false);
                }
                let stored = access.get_model_version(scope, model_id, v).await?;
                Ok(kelvin_store::canonical_json(&stored.spec) == *wanted)
            }
        };
        if same(model.active_version).await? {
            return Ok(Applied {
                model_id: model.id,
                version: model.active_version,
                published: true,
                unchanged: true,
            });
        }
        let version =
            if model.latest_version > model.active_version && same(model.latest_version).await? {
                access.get_model_version(&scope, &model.id, model.latest_version).await?
            } else {
                access
                    .create_model_version(
                        &scope,
                        &model.id,
                        &checked.json,
                        &reason,
                        &audit(ctx, &reason),
                    )
                    .await?
            };
        if publish {
            let diff = Self::activation_diff(&access, &scope, &model.id, version.version).await?;
            access
                .activate_model_version(
                    &scope,
                    &model.id,
                    version.version,
                    model.active_version,
                    ActivationKind::Publish,
                    Some(diff),
                    &audit(ctx, &reason),
                )
                .await?;
        }
        Ok(Applied {
            model_id: model.id,
            version: version.version,
            published: publish,
            unchanged: false,
        })
    }
}

/// What applying a template did to one target.
struct Applied {
    model_id: String,
    version: i64,
    published: bool,
    /// The active version already had the rendered spec: nothing was created or published.
    unchanged: bool,
}

#[tonic::async_trait]
impl ModelService for ModelApi {
    async fn create_model(
        &self,
        request: Request<pb::CreateModelRequest>,
    ) -> Reply<pb::CreateModelResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let model = access
            .create_model(&scope, &req.model_id, &req.display_name, &audit(&ctx, ""))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateModelResponse { model: Some(model_pb(model)) }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Reply<pb::GetModelResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let model = access.get_model(&scope, &req.model_id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetModelResponse { model: Some(model_pb(model)) }))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Reply<pb::ListModelsResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token).map_err(ApiError::from)?;
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (models, next_page_token) =
            access.list_models(&scope, &page).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListModelsResponse {
            models: models.into_iter().map(model_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_model_version(
        &self,
        request: Request<pb::CreateModelVersionRequest>,
    ) -> Reply<pb::CreateModelVersionResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let checked =
            self.checked(&ctx, &req.tenant_id, "spec", required_spec("spec", req.spec)?).await?;
        let version = access
            .create_model_version(
                &scope,
                &req.model_id,
                &checked.json,
                &req.comment,
                &audit(&ctx, &req.comment),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateModelVersionResponse { version: Some(version_pb(version)) }))
    }

    async fn get_model_version(
        &self,
        request: Request<pb::GetModelVersionRequest>,
    ) -> Reply<pb::GetModelVersionResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let version = access
            .get_model_version(&scope, &req.model_id, req.version)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetModelVersionResponse { version: Some(version_pb(version)) }))
    }

    async fn list_model_versions(
        &self,
        request: Request<pb::ListModelVersionsRequest>,
    ) -> Reply<pb::ListModelVersionsResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token).map_err(ApiError::from)?;
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (versions, next_page_token) = access
            .list_model_versions(&scope, &req.model_id, &page)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListModelVersionsResponse {
            versions: versions.into_iter().map(version_pb).collect(),
            next_page_token,
        }))
    }

    async fn validate_model(
        &self,
        request: Request<pb::ValidateModelRequest>,
    ) -> Reply<pb::ValidateModelResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        // The tenant must be in reach even though nothing is stored.
        self.runtime
            .store
            .access(&ctx.principal)
            .tenant_scope(&req.tenant_id)
            .await
            .map_err(ApiError::from)?;
        let json = required_spec("spec", req.spec)?;
        let errors = match self.checked(&ctx, &req.tenant_id, "spec", json).await {
            Ok(_) => Vec::new(),
            Err(ApiError::InvalidDocument { violations, .. }) => violations,
            Err(other) => return Err(other.into()),
        };
        Ok(Response::new(pb::ValidateModelResponse {
            valid: errors.is_empty(),
            errors: errors
                .into_iter()
                .map(|(path, message)| pb::ValidationError { path, message })
                .collect(),
        }))
    }

    async fn diff_model_versions(
        &self,
        request: Request<pb::DiffModelVersionsRequest>,
    ) -> Reply<pb::DiffModelVersionsResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        if req.from_version <= 0 {
            return Err(ApiError::invalid("from_version", "must be a version number").into());
        }
        let from = access
            .get_model_version(&scope, &req.model_id, req.from_version)
            .await
            .map_err(ApiError::from)?;
        let to = access
            .get_model_version(&scope, &req.model_id, req.to_version)
            .await
            .map_err(ApiError::from)?;
        let changes = diff::diff(&from.spec, &to.spec).into_iter().map(change_pb).collect();
        Ok(Response::new(pb::DiffModelVersionsResponse { changes }))
    }

    async fn publish_model_version(
        &self,
        request: Request<pb::PublishModelVersionRequest>,
    ) -> Reply<pb::PublishModelVersionResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let (model, version) = self
            .activate(
                &ctx,
                &req.tenant_id,
                &req.model_id,
                req.version,
                req.expected_active_version,
                ActivationKind::Publish,
                &req.comment,
            )
            .await?;
        Ok(Response::new(pb::PublishModelVersionResponse {
            model: Some(model_pb(model)),
            version: Some(version_pb(version)),
        }))
    }

    async fn rollback_model(
        &self,
        request: Request<pb::RollbackModelRequest>,
    ) -> Reply<pb::RollbackModelResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let (model, version) = self
            .activate(
                &ctx,
                &req.tenant_id,
                &req.model_id,
                req.to_version,
                req.expected_active_version,
                ActivationKind::Rollback,
                &req.comment,
            )
            .await?;
        Ok(Response::new(pb::RollbackModelResponse {
            model: Some(model_pb(model)),
            version: Some(version_pb(version)),
        }))
    }

    async fn simulate_score(
        &self,
        request: Request<pb::SimulateScoreRequest>,
    ) -> Reply<pb::SimulateScoreResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (spec, version) = match req.spec {
            Some(spec) => {
                let json = struct_json(spec);
                self.check_size("spec", &json)?;
                (json, 0)
            }
            None => {
                let stored = access
                    .get_model_version(&scope, &req.model_id, req.version)
                    .await
                    .map_err(ApiError::from)?;
                (stored.spec, stored.version)
            }
        };
        // A lead named by id alone (no attributes, no events given) is the stored lead, with
        // its company and every stored event.
        let stored_lead = match &req.lead {
            Some(l)
                if !l.lead_id.is_empty()
                    && l.attributes.is_none()
                    && l.enriched.is_none()
                    && req.company.is_none()
                    && req.events.is_empty() =>
            {
                Some(access.export_lead(&scope, &l.lead_id).await.map_err(ApiError::from)?)
            }
            _ => None,
        };
        let (lead, company, events) = match stored_lead {
            Some(export) => {
                let lead = scores::engine_lead(&export.lead);
                let company = export.company.as_ref().map(scores::engine_company);
                let events = export.events.iter().map(scores::engine_event).collect();
                (lead, company, events)
            }
            None => inline_lead(req.lead, req.company, req.events)?,
        };
        // Bounded work: refused before any evaluation, whatever the spec or lead.
        let work = rule_count(&spec).saturating_mul(events.len().max(1) as u64);
        if work > self.limits.max_simulation_work {
            return Err(ApiError::invalid(
                "events",
                format!(
                    "{} event(s) × {} rule(s) is more than the {} a simulation may evaluate",
                    events.len(),
                    rule_count(&spec),
                    self.limits.max_simulation_work
                ),
            )
            .into());
        }
        let as_of = match req.as_of {
            Some(t) => convert::millis("as_of", &t)?,
            None => now_ms(),
        };
        let score = self
            .heavy
            .run(&ctx, &req.tenant_id, move || {
                let checked = check_spec("spec", spec)?;
                Ok(checked.compiled.score(&lead, company.as_ref(), &events, as_of))
            })
            .await?;
        Ok(Response::new(pb::SimulateScoreResponse {
            score: Some(scores::score_pb(score, version, as_of)),
        }))
    }

    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Reply<pb::CreateTemplateResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let t = req.template.ok_or_else(|| ApiError::invalid("template", "is required"))?;
        let spec = required_spec("template.spec", t.spec)?;
        self.check_size("template.spec", &spec)?;
        let parameters: Vec<TemplateParam> = t
            .parameters
            .into_iter()
            .map(|p| TemplateParam {
                name: p.name,
                description: p.description,
                default: p.default_value.map(convert::value_json),
            })
            .collect();
        // Every problem at once, at its path in the template: the parameter list, undeclared
        // placeholders, and the spec as a model (rendered with defaults and probe values), so
        // that an invalid operator is refused here, not tenant by tenant at ApplyTemplate.
        let mut problems = template::check(&spec, &parameters);
        let max_bytes = self.limits.max_spec_bytes;
        let model_problems = if template::json_len(&spec) <= INLINE_SPEC_BYTES {
            template::validate(&spec, &parameters, max_bytes)
        } else {
            let (spec, parameters) = (spec.clone(), parameters.clone());
            self.heavy
                .run(&ctx, &t.organization_id, move || {
                    Ok(template::validate(&spec, &parameters, max_bytes))
                })
                .await?
        };
        problems.extend(model_problems);
        if !problems.is_empty() {
            return Err(ApiError::InvalidDocument {
                field: "template".into(),
                violations: problems,
            }
            .into());
        }
        let record = TemplateRecord {
            org_id: t.organization_id,
            id: t.template_id,
            display_name: t.display_name,
            spec,
            parameters,
            creator: String::new(),
            create_time_ms: 0,
        };
        let created = self
            .runtime
            .store
            .access(&ctx.principal)
            .create_template(record, &audit(&ctx, ""))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateTemplateResponse { template: Some(template_pb(created)) }))
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Reply<pb::ListTemplatesResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token).map_err(ApiError::from)?;
        let (templates, next_page_token) = self
            .runtime
            .store
            .access(&ctx.principal)
            .list_templates(&req.organization_id, &page)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListTemplatesResponse {
            templates: templates.into_iter().map(template_pb).collect(),
            next_page_token,
        }))
    }

    async fn apply_template(
        &self,
        request: Request<pb::ApplyTemplateRequest>,
    ) -> Reply<pb::ApplyTemplateResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        if req.targets.is_empty() {
            return Err(ApiError::invalid("targets", "at least one target is required").into());
        }
        if req.targets.len() > 1000 {
            return Err(ApiError::invalid("targets", "at most 1000 targets per call").into());
        }
        let access = self.runtime.store.access(&ctx.principal);
        let template = access
            .get_template(&req.organization_id, &req.template_id)
            .await
            .map_err(ApiError::from)?;
        let mut results = Vec::with_capacity(req.targets.len());
        for target in req.targets {
            let tenant_id = target.tenant_id.clone();
            let requested_model = target.model_id.clone();
            let result =
                match self.apply_one(&ctx, &template, target, req.publish, &req.comment).await {
                    Ok(applied) => pb::TemplateResult {
                        tenant_id,
                        model_id: applied.model_id,
                        version: applied.version,
                        published: applied.published,
                        code: tonic::Code::Ok as i32,
                        message: String::new(),
                        errors: Vec::new(),
                        unchanged: applied.unchanged,
                    },
                    Err(error) => {
                        let errors = match &error {
                            ApiError::InvalidDocument { field, violations } => violations
                                .iter()
                                .map(|(path, message)| pb::ValidationError {
                                    path: format!("{field}.{path}"),
                                    message: message.clone(),
                                })
                                .collect(),
                            _ => Vec::new(),
                        };
                        let status = Status::from(error);
                        pb::TemplateResult {
                            tenant_id,
                            model_id: if requested_model.is_empty() {
                                "default".into()
                            } else {
                                requested_model
                            },
                            version: 0,
                            published: false,
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                            errors,
                            unchanged: false,
                        }
                    }
                };
            results.push(result);
        }
        Ok(Response::new(pb::ApplyTemplateResponse { results }))
    }
}
