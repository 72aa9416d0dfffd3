//! CreateTemplate and ApplyTemplate: a template checked once as a model (with defaults and
//! probe values), then rendered per target tenant, versioned and (on request) published.

use kelvin_proto::v1 as pb;
use kelvin_server::{ApiError, ApiResult, At, CallContext};
use kelvin_store::{
    ActivationKind, DisplayName, NewTemplate, ResourceId, TemplateParam, TemplateRecord, required,
};
use tonic::Status;

use super::activation::activate;
use super::messages::template_pb;
use super::spec::{INLINE_SPEC_BYTES, required_spec};
use super::{ModelApi, audit};
use crate::convert::{self, struct_json};
use crate::template;

impl ModelApi {
    /// CreateTemplate: every problem of the template at once (its parameter list, undeclared
    /// placeholders, its spec as a model), then the store.
    pub(super) async fn check_and_create_template(
        &self,
        ctx: CallContext,
        req: pb::CreateTemplateRequest,
    ) -> ApiResult<pb::CreateTemplateResponse> {
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
            });
        }
        required(&t.organization_id).at("organization_id")?;
        let id = ResourceId::parse(&t.template_id).at("template.template_id")?;
        let display_name = DisplayName::parse(&t.display_name).at("template.display_name")?;
        let record = NewTemplate { org_id: t.organization_id, id, display_name, spec, parameters };
        let created = ctx.access(&self.runtime).create_template(record, &audit(&ctx, "")).await?;
        Ok(pb::CreateTemplateResponse { template: Some(template_pb(created)) })
    }

    /// ApplyTemplate: each target applied on its own ([`ModelApi::apply_one`]), its outcome
    /// (or its error as a code, a message and the spec's problems) in its result.
    pub(super) async fn apply_template_to_targets(
        &self,
        ctx: CallContext,
        req: pb::ApplyTemplateRequest,
    ) -> ApiResult<pb::ApplyTemplateResponse> {
        if req.targets.is_empty() {
            return Err(ApiError::invalid("targets", "at least one target is required"));
        }
        if req.targets.len() > 1000 {
            return Err(ApiError::invalid("targets", "at most 1000 targets per call"));
        }
        let access = ctx.access(&self.runtime);
        let org_id = required(&req.organization_id).at("organization_id")?;
        let template = access.get_template(org_id, &req.template_id).await?;
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
        Ok(pb::ApplyTemplateResponse { results })
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
        let (access, scope) = ctx.tenant(&self.runtime, &target.tenant_id).await?;
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
                let id = ResourceId::parse(&model_id).at("model_id")?;
                let name = DisplayName::parse(&template.display_name).at("display_name")?;
                access.create_model(&scope, &id, &name, &audit(ctx, &reason)).await?
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
            activate(
                &access,
                &scope,
                &model.id,
                version.version,
                model.active_version,
                ActivationKind::Publish,
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
