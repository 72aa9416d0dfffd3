//! PublishModelVersion and RollbackModel: one activation path, each request saying only its
//! target (an [`Activation`]); ApplyTemplate's publication goes through [`activate`] too.

use kelvin_proto::v1 as pb;
use kelvin_server::{ApiError, ApiResult, At, CallContext};
use kelvin_store::{
    Access, ActivationKind, AuditContext, ModelVersionRecord, ScoringModel, TenantScope,
};

use super::messages::{model_pb, version_pb};
use super::{ModelApi, audit};
use crate::diff;

/// What an activation request names.
pub(super) struct Target<'a> {
    pub tenant_id: &'a str,
    pub model_id: &'a str,
    pub version: i64,
    /// The active version the caller expects (compare-and-set; 0: no check).
    pub expected: i64,
    pub comment: &'a str,
}

/// A request that activates a model version: PublishModelVersion or RollbackModel.
pub(super) trait Activation: Send {
    const KIND: ActivationKind;
    /// The request's field naming the version, as errors name it.
    const VERSION_FIELD: &'static str;
    type Response;

    fn target(&self) -> Target<'_>;
    fn response(model: pb::Model, version: pb::ModelVersion) -> Self::Response;
}

impl Activation for pb::PublishModelVersionRequest {
    const KIND: ActivationKind = ActivationKind::Publish;
    const VERSION_FIELD: &'static str = "version";
    type Response = pb::PublishModelVersionResponse;

    fn target(&self) -> Target<'_> {
        Target {
            tenant_id: &self.tenant_id,
            model_id: &self.model_id,
            version: self.version,
            expected: self.expected_active_version,
            comment: &self.comment,
        }
    }

    fn response(model: pb::Model, version: pb::ModelVersion) -> Self::Response {
        pb::PublishModelVersionResponse { model: Some(model), version: Some(version) }
    }
}

impl Activation for pb::RollbackModelRequest {
    const KIND: ActivationKind = ActivationKind::Rollback;
    const VERSION_FIELD: &'static str = "to_version";
    type Response = pb::RollbackModelResponse;

    fn target(&self) -> Target<'_> {
        Target {
            tenant_id: &self.tenant_id,
            model_id: &self.model_id,
            version: self.to_version,
            expected: self.expected_active_version,
            comment: &self.comment,
        }
    }

    fn response(model: pb::Model, version: pb::ModelVersion) -> Self::Response {
        pb::RollbackModelResponse { model: Some(model), version: Some(version) }
    }
}

impl ModelApi {
    /// Serves an [`Activation`] request: reach first (a tenant out of reach is NOT_FOUND
    /// whatever the version), then the version number, then [`activate`].
    pub(super) async fn activation<R: Activation>(
        &self,
        ctx: CallContext,
        req: R,
    ) -> ApiResult<R::Response> {
        let target = req.target();
        let (access, scope) = ctx.tenant(&self.runtime, target.tenant_id).await?;
        if target.version <= 0 {
            return Err(ApiError::invalid(R::VERSION_FIELD, "must be a version number"));
        }
        kelvin_store::required(target.model_id).at("model_id")?;
        let (model, version) = activate(
            &access,
            &scope,
            target.model_id,
            target.version,
            target.expected,
            R::KIND,
            &audit(&ctx, target.comment),
        )
        .await?;
        Ok(R::response(model_pb(model), version_pb(version)))
    }
}

/// Makes `version` the active version if `expected` still is (one conditional update, with
/// its activation row and its audit row, which carries the diff from the active version).
pub(super) async fn activate(
    access: &Access<'_>,
    scope: &TenantScope,
    model_id: &str,
    version: i64,
    expected: i64,
    kind: ActivationKind,
    audit: &AuditContext,
) -> ApiResult<(ScoringModel, ModelVersionRecord)> {
    let diff = activation_diff(access, scope, model_id, version).await?;
    Ok(access
        .activate_model_version(scope, model_id, version, expected, kind, Some(diff), audit)
        .await?)
}

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
