//! `kelvinctl models`: models as code (apply with a diff, validate, diff, history, rollback).

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::{json_struct, struct_json};
use kelvin_proto::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

use super::Kelvin;
use crate::ModelCmd;
use crate::output::{self, Format};
use crate::resources as res;

/// A model file (YAML or JSON), checked locally by the engine, as the JSON the server stores.
fn read_model(path: &std::path::Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let spec = if is_json {
        kelvin_engine::ModelSpec::from_json(&text)
    } else {
        kelvin_engine::ModelSpec::from_yaml(&text)
    }
    .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path, e.message))?;
    if let Err(errors) = spec.compile() {
        for e in &errors {
            eprintln!("  {}: {}", e.path, e.message);
        }
        bail!("{}: {} problem(s)", path.display(), errors.len());
    }
    // Through a Struct and back: numbers as the server will store them.
    match spec.to_json_value() {
        Value::Object(map) => Ok(Value::Object(struct_json(json_struct(map)))),
        _ => bail!("{}: a model is an object", path.display()),
    }
}

pub(super) fn spec_struct(value: Value) -> Option<prost_types::Struct> {
    match value {
        Value::Object(map) => Some(json_struct(map)),
        _ => None,
    }
}

const CHANGE_COLUMNS: &[output::Column] = &[
    ("SECTION", "section"),
    ("RULE", "rule_id"),
    ("CHANGE", "kind"),
    ("FIELD", "field"),
    ("BEFORE", "before"),
    ("AFTER", "after"),
];
const VERSION_COLUMNS: &[output::Column] = &[
    ("VERSION", "version"),
    ("STATE", "state"),
    ("ACTIVE", "active"),
    ("CREATOR", "creator"),
    ("CREATED", "create_time"),
    ("COMMENT", "comment"),
];

pub(super) async fn model_cmd(k: &Kelvin, cmd: ModelCmd, format: Format) -> Result<()> {
    match cmd {
        ModelCmd::Apply { file, tenant, model, publish, comment } => {
            apply_model(k, &file, &tenant, &model, publish, &comment, format).await
        }
        ModelCmd::Validate { file, tenant } => {
            let spec = read_model(&file)?;
            let reply = k
                .models()
                .validate_model(
                    k.req(pb::ValidateModelRequest { tenant_id: tenant, spec: spec_struct(spec) })?,
                )
                .await?
                .into_inner();
            let errors: Vec<Value> = reply
                .errors
                .into_iter()
                .map(|e| json!({"path": e.path, "message": e.message}))
                .collect();
            let valid = errors.is_empty();
            output::print(
                format,
                &json!({"valid": valid, "errors": errors}),
                &[("VALID", "valid"), ("ERRORS", "errors")],
            )?;
            if !valid {
                bail!("the model is invalid");
            }
            Ok(())
        }
        ModelCmd::Diff { tenant, model, from, to } => {
            let diff = k
                .models()
                .diff_model_versions(k.req(pb::DiffModelVersionsRequest {
                    tenant_id: tenant,
                    model_id: model,
                    from_version: from,
                    to_version: to,
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = diff.changes.into_iter().map(res::change).collect();
            output::print(format, &Value::Array(rows), CHANGE_COLUMNS)
        }
        ModelCmd::History { tenant, model } => {
            let request = pb::ListModelVersionsRequest {
                tenant_id: tenant,
                model_id: model,
                ..Default::default()
            };
            let versions = k
                .list_all(None, |page_token, page_size| {
                    let request =
                        pb::ListModelVersionsRequest { page_size, page_token, ..request.clone() };
                    async move {
                        let r = k.models().list_model_versions(k.req(request)?).await?.into_inner();
                        Ok((r.versions, r.next_page_token))
                    }
                })
                .await?;
            let rows: Vec<Value> = versions.into_iter().map(res::version).collect();
            output::print(format, &Value::Array(rows), VERSION_COLUMNS)
        }
        ModelCmd::Rollback { tenant, model, to, comment } => {
            let current = k
                .models()
                .get_model(k.req(pb::GetModelRequest {
                    tenant_id: tenant.clone(),
                    model_id: model.clone(),
                })?)
                .await?
                .into_inner()
                .model
                .unwrap_or_default();
            let reply = k
                .models()
                .rollback_model(k.req(pb::RollbackModelRequest {
                    tenant_id: tenant,
                    model_id: model,
                    to_version: to,
                    expected_active_version: current.active_version,
                    comment,
                })?)
                .await?
                .into_inner();
            output::print(
                format,
                &res::model(reply.model.unwrap_or_default()),
                &[
                    ("MODEL", "model_id"),
                    ("ACTIVE", "active_version"),
                    ("LATEST", "latest_version"),
                ],
            )
        }
    }
}

async fn apply_model(
    k: &Kelvin,
    file: &std::path::Path,
    tenant: &str,
    model: &str,
    publish: bool,
    comment: &str,
    format: Format,
) -> Result<()> {
    let spec = read_model(file)?;
    let mut models = k.models();
    let current = match models
        .get_model(k.req(pb::GetModelRequest { tenant_id: tenant.into(), model_id: model.into() })?)
        .await
    {
        Ok(r) => r.into_inner().model.unwrap_or_default(),
        Err(s) if s.code() == Code::NotFound => models
            .create_model(k.req(pb::CreateModelRequest {
                tenant_id: tenant.into(),
                model_id: model.into(),
                display_name: model.into(),
            })?)
            .await?
            .into_inner()
            .model
            .unwrap_or_default(),
        Err(s) => return Err(s.into()),
    };
    let stored = |v: i64| {
        let mut models = k.models();
        async move {
            let r = models
                .get_model_version(k.req(pb::GetModelVersionRequest {
                    tenant_id: tenant.into(),
                    model_id: model.into(),
                    version: v,
                })?)
                .await?;
            let spec =
                r.into_inner().version.and_then(|v| v.spec).map(struct_json).unwrap_or_default();
            anyhow::Ok(Value::Object(spec))
        }
    };
    if current.active_version > 0 && stored(current.active_version).await? == spec {
        let value = json!({"model_id": model, "version": current.active_version, "status": "unchanged", "changes": []});
        return output::print(
            format,
            &value,
            &[("MODEL", "model_id"), ("VERSION", "version"), ("STATUS", "status")],
        );
    }
    // A draft identical to the file is reused rather than duplicated.
    let version = if current.latest_version > current.active_version
        && stored(current.latest_version).await? == spec
    {
        current.latest_version
    } else {
        models
            .create_model_version(k.req(pb::CreateModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: model.into(),
                spec: spec_struct(spec),
                comment: comment.into(),
            })?)
            .await?
            .into_inner()
            .version
            .unwrap_or_default()
            .version
    };
    let changes: Vec<Value> = if current.active_version > 0 {
        models
            .diff_model_versions(k.req(pb::DiffModelVersionsRequest {
                tenant_id: tenant.into(),
                model_id: model.into(),
                from_version: current.active_version,
                to_version: version,
            })?)
            .await?
            .into_inner()
            .changes
            .into_iter()
            .map(res::change)
            .collect()
    } else {
        Vec::new()
    };
    if publish {
        models
            .publish_model_version(k.req(pb::PublishModelVersionRequest {
                tenant_id: tenant.into(),
                model_id: model.into(),
                version,
                expected_active_version: current.active_version,
                comment: comment.into(),
            })?)
            .await?;
    }
    let status = if publish { "published" } else { "draft" };
    if format == Format::Table {
        if !changes.is_empty() {
            output::print(format, &Value::Array(changes.clone()), CHANGE_COLUMNS)?;
            println!();
        }
        println!("model `{model}` of tenant `{tenant}`: version {version} {status}");
        return Ok(());
    }
    output::print(
        format,
        &json!({"model_id": model, "version": version, "status": status, "changes": changes}),
        &[],
    )
}
