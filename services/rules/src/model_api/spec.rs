//! Specs as the engine checks them: the size limit, parsing and compilation with every problem
//! at its path, on the bounded pool when a spec is big.

use kelvin_engine::{CompiledModel, ModelSpec};
use kelvin_server::{ApiError, CallContext};

use super::ModelApi;
use crate::convert::struct_json;
use crate::template;

impl ModelApi {
    /// Refuses a spec larger than `limits.max_spec_bytes` (as compact JSON), naming `field`.
    pub(super) fn check_size(
        &self,
        field: &str,
        json: &serde_json::Value,
    ) -> Result<usize, ApiError> {
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
    pub(super) async fn checked(
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
pub(super) const INLINE_SPEC_BYTES: usize = 64 * 1024;

/// Rules in a spec's JSON (fit, exclusions, engagement, company fit), counted before parsing so
/// that an over-budget simulation is refused before any work.
pub(super) fn rule_count(spec: &serde_json::Value) -> u64 {
    let len = |v: &serde_json::Value| v.as_array().map_or(0, Vec::len) as u64;
    len(&spec["fit"])
        + len(&spec["exclusions"])
        + len(&spec["engagement"])
        + len(&spec["company"]["fit"])
}

/// A spec checked by the engine: its JSON (as given) and the compiled model.
pub(super) struct CheckedSpec {
    pub(super) json: serde_json::Value,
    pub(super) compiled: CompiledModel,
}

/// Parses and validates a spec; every problem is reported with its path under `field`.
pub(super) fn check_spec(field: &str, json: serde_json::Value) -> Result<CheckedSpec, ApiError> {
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

pub(super) fn required_spec(
    field: &str,
    spec: Option<prost_types::Struct>,
) -> Result<serde_json::Value, ApiError> {
    spec.map(struct_json).ok_or_else(|| ApiError::invalid(field, "is required"))
}
