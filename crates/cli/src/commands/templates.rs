//! `kelvinctl templates`: an organization's model templates, and rolling one out from a file.

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::{json_struct, struct_json};
use kelvin_proto::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

use super::Kelvin;
use super::models::spec_struct;
use crate::TemplateCmd;
use crate::output::{self, Format};

pub(super) async fn template_cmd(k: &Kelvin, cmd: TemplateCmd, format: Format) -> Result<()> {
    match cmd {
        TemplateCmd::Apply { file } => apply_template(k, &file, format).await,
        TemplateCmd::List { org } => {
            let rows: Vec<Value> = templates(k, org)
                .await?
                .into_iter()
                .map(|t| json!({"template_id": t.template_id, "display_name": t.display_name, "parameters": t.parameters.into_iter().map(|p| p.name).collect::<Vec<_>>(), "creator": t.creator}))
                .collect();
            output::print(
                format,
                &Value::Array(rows),
                &[
                    ("TEMPLATE", "template_id"),
                    ("NAME", "display_name"),
                    ("PARAMETERS", "parameters"),
                ],
            )
        }
    }
}

/// Every template of an organization.
async fn templates(k: &Kelvin, org: String) -> Result<Vec<pb::Template>> {
    k.list_all(None, |page_token, page_size| {
        let request =
            pb::ListTemplatesRequest { organization_id: org.clone(), page_size, page_token };
        async move {
            let r = k.models().list_templates(k.req(request)?).await?.into_inner();
            Ok((r.templates, r.next_page_token))
        }
    })
    .await
}

/// A template rollout file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollout {
    organization: String,
    template: TemplateFile,
    targets: Vec<TargetFile>,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    id: String,
    #[serde(default)]
    display_name: String,
    /// The spec with `${name}` placeholders, relative to the rollout file.
    model_file: std::path::PathBuf,
    #[serde(default)]
    parameters: Vec<ParameterFile>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ParameterFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    default: Option<Value>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    tenant: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn apply_template(k: &Kelvin, file: &std::path::Path, format: Format) -> Result<()> {
    let rollout: Rollout = read_yaml(file)?;
    let base = file.parent().unwrap_or(std::path::Path::new("."));
    let spec: Value = read_yaml(&base.join(&rollout.template.model_file))?;
    let mut models = k.models();
    let existing = templates(k, rollout.organization.clone())
        .await?
        .into_iter()
        .find(|t| t.template_id == rollout.template.id);
    match existing {
        Some(t) => {
            let stored = Value::Object(t.spec.map(struct_json).unwrap_or_default());
            let wanted = match spec_struct(spec.clone()) {
                Some(s) => Value::Object(struct_json(s)),
                None => bail!("{}: a model is an object", rollout.template.model_file.display()),
            };
            if stored != wanted {
                bail!(
                    "template `{}` exists with a different spec: templates are immutable, give the new one another id",
                    rollout.template.id
                );
            }
        }
        None => {
            models
                .create_template(
                    k.req(pb::CreateTemplateRequest {
                        template: Some(pb::Template {
                            organization_id: rollout.organization.clone(),
                            template_id: rollout.template.id.clone(),
                            display_name: rollout.template.display_name.clone(),
                            spec: spec_struct(spec),
                            parameters: rollout
                                .template
                                .parameters
                                .into_iter()
                                .map(|p| pb::TemplateParameter {
                                    name: p.name,
                                    description: p.description,
                                    default_value: p.default.map(kelvin_proto::convert::json_value),
                                })
                                .collect(),
                            ..Default::default()
                        }),
                    })?,
                )
                .await?;
        }
    }
    let reply = models
        .apply_template(
            k.req(pb::ApplyTemplateRequest {
                organization_id: rollout.organization,
                template_id: rollout.template.id,
                targets: rollout
                    .targets
                    .into_iter()
                    .map(|t| pb::TemplateTarget {
                        tenant_id: t.tenant,
                        model_id: t.model,
                        parameters: Some(json_struct(t.parameters)),
                    })
                    .collect(),
                publish: rollout.publish,
                comment: rollout.comment,
            })?,
        )
        .await?
        .into_inner();
    let failed = reply.results.iter().filter(|r| r.code != 0).count();
    let rows: Vec<Value> = reply
        .results
        .into_iter()
        .map(|r| {
            let status = match (r.code, r.unchanged, r.published) {
                (0, true, _) => "unchanged",
                (0, false, true) => "published",
                (0, false, false) => "draft",
                _ => "failed",
            };
            json!({
                "tenant_id": r.tenant_id, "model_id": r.model_id, "version": r.version, "published": r.published,
                "unchanged": r.unchanged, "status": status,
                "code": format!("{:?}", Code::from_i32(r.code)), "message": r.message,
                "errors": r.errors.into_iter().map(|e| format!("{}: {}", e.path, e.message)).collect::<Vec<_>>(),
            })
        })
        .collect();
    output::print(
        format,
        &Value::Array(rows),
        &[
            ("TENANT", "tenant_id"),
            ("MODEL", "model_id"),
            ("VERSION", "version"),
            ("STATUS", "status"),
            ("RESULT", "code"),
            ("MESSAGE", "message"),
        ],
    )?;
    if failed > 0 {
        bail!("{failed} target(s) failed");
    }
    Ok(())
}
