//! What each subcommand does.

use std::io::BufRead;

use anyhow::{Context as _, Result, bail};
use kelvin_proto::convert::{json_struct, struct_json, timestamp};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::context::{self, ConfigFile, Context};
use crate::output::{self, Format};
use crate::resources as res;
use crate::{
    Cli, Command, ContextCmd, EventCmd, KeyCmd, ModelCmd, OrgCmd, ScoreCmd, TemplateCmd, TenantCmd,
};

/// A connection and its token.
struct Kelvin {
    channel: Channel,
    token: Option<String>,
}

impl Kelvin {
    async fn connect(cli: &Cli) -> Result<Self> {
        let target = context::resolve(
            cli.context.as_deref(),
            cli.endpoint.clone(),
            cli.token.clone(),
            cli.ca_file.clone(),
        )?;
        let mut endpoint = Channel::from_shared(target.endpoint.clone())
            .with_context(|| format!("invalid endpoint `{}`", target.endpoint))?;
        // https:// uses the public roots; a private CA replaces them.
        if let Some(ca_file) = &target.ca_file {
            if !target.endpoint.starts_with("https://") {
                bail!(
                    "a CA file ({}) needs an https:// endpoint, not `{}`",
                    ca_file.display(),
                    target.endpoint
                );
            }
            let pem = std::fs::read(ca_file)
                .with_context(|| format!("cannot read CA file {}", ca_file.display()))?;
            endpoint = endpoint
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                )
                .with_context(|| format!("invalid CA file {}", ca_file.display()))?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", target.endpoint))?;
        Ok(Self { channel, token: target.token })
    }

    fn req<T>(&self, message: T) -> Result<Request<T>> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
        }
        Ok(request)
    }

    fn tenants(&self) -> TenantServiceClient<Channel> {
        TenantServiceClient::new(self.channel.clone())
    }

    fn models(&self) -> ModelServiceClient<Channel> {
        ModelServiceClient::new(self.channel.clone())
    }

    fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.channel.clone())
    }

    fn scoring(&self) -> ScoringServiceClient<Channel> {
        ScoringServiceClient::new(self.channel.clone())
    }
}

const SCORE_COLUMNS: &[output::Column] = &[
    ("LEAD", "lead_id"),
    ("TOTAL", "total"),
    ("BAND", "band"),
    ("GRADE", "grade"),
    ("ACTION", "action"),
    ("FIT", "fit"),
    ("ENGAGEMENT", "engagement"),
    ("VERSION", "model_version"),
    ("UPDATED", "update_time"),
];

const SCORE_CHANGE_COLUMNS: &[output::Column] = &[
    ("CURSOR", "cursor"),
    ("TIME", "time"),
    ("LEAD", "lead_id"),
    ("FROM", "previous_band"),
    ("TO", "band"),
    ("GRADE", "grade"),
    ("TOTAL", "total"),
    ("CAUSE", "cause"),
    ("ACTION", "action"),
];

async fn scores_cmd(k: &Kelvin, cmd: ScoreCmd, format: Format) -> Result<()> {
    match cmd {
        ScoreCmd::Get { tenant, model, leads } => {
            let reply = k
                .scoring()
                .batch_get_scores(k.req(pb::BatchGetScoresRequest {
                    tenant_id: tenant,
                    lead_ids: leads,
                    model_id: model,
                })?)
                .await?
                .into_inner();
            for missing in &reply.missing_lead_ids {
                eprintln!("no score for lead `{missing}` (unknown, or not scored yet)");
            }
            let rows: Vec<Value> = reply.scores.into_iter().map(res::lead_score).collect();
            output::print(format, &Value::Array(rows), SCORE_COLUMNS)?;
            if !reply.missing_lead_ids.is_empty() {
                bail!("{} lead(s) without a score", reply.missing_lead_ids.len());
            }
            Ok(())
        }
        ScoreCmd::Top { tenant, model, band, min, limit } => {
            let reply = k
                .scoring()
                .list_leads(k.req(pb::ListLeadsRequest {
                    tenant_id: tenant,
                    model_id: model,
                    band,
                    min_score: min,
                    page_size: limit,
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = reply.scores.into_iter().map(res::lead_score).collect();
            output::print(format, &Value::Array(rows), SCORE_COLUMNS)
        }
        ScoreCmd::Explain { tenant, model, lead } => {
            let reply = k
                .scoring()
                .explain_score(k.req(pb::ExplainScoreRequest {
                    tenant_id: tenant,
                    lead_id: lead,
                    model_id: model,
                })?)
                .await?
                .into_inner()
                .score
                .unwrap_or_default();
            let contributions = reply.score.clone().unwrap_or_default().contributions;
            let mut value = res::lead_score(reply);
            let lines: Vec<Value> = contributions.into_iter().map(res::contribution).collect();
            if format == Format::Table {
                let grade = value["grade"].as_str().unwrap_or_default();
                let action = value["action"].as_str().unwrap_or_default();
                println!(
                    "lead {}: total {} ({}{}{}), fit {}, engagement {}, model version {}, as of {}",
                    value["lead_id"].as_str().unwrap_or_default(),
                    value["total"],
                    value["band"].as_str().unwrap_or_default(),
                    if grade.is_empty() { String::new() } else { format!(", grade {grade}") },
                    if action.is_empty() { String::new() } else { format!(": {action}") },
                    value["fit"],
                    value["engagement"],
                    value["model_version"],
                    value["as_of"].as_str().unwrap_or_default(),
                );
                let reason = value["disqualification"].as_str().unwrap_or_default();
                if !reason.is_empty() {
                    let rule = value["disqualification_rule"].as_str().unwrap_or_default();
                    println!("disqualified by exclusion `{rule}`: {reason}");
                }
                return output::print(
                    format,
                    &Value::Array(lines),
                    &[
                        ("RULE", "rule_id"),
                        ("KIND", "kind"),
                        ("POINTS", "points"),
                        ("EVENTS", "events"),
                        ("DECAY / CAP", "detail"),
                    ],
                );
            }
            value["contributions"] = Value::Array(lines);
            output::print(format, &value, &[])
        }
        ScoreCmd::History { tenant, model, all, lead } => {
            let reply = k
                .scoring()
                .get_score_history(k.req(pb::GetScoreHistoryRequest {
                    tenant_id: tenant,
                    lead_id: lead,
                    model_id: model,
                    include_score_changes: all,
                    page_size: 100,
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = reply.changes.into_iter().map(res::score_change).collect();
            output::print(format, &Value::Array(rows), SCORE_CHANGE_COLUMNS)
        }
        ScoreCmd::Bands { tenant, model, at } => {
            let as_of = match at {
                Some(text) => {
                    let t = time::OffsetDateTime::parse(
                        &text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .with_context(|| format!("--at {text:?} is not an RFC 3339 time"))?;
                    Some(timestamp(i64::try_from(t.unix_timestamp_nanos() / 1_000_000)?))
                }
                None => None,
            };
            let reply = k
                .scoring()
                .get_band_counts(k.req(pb::GetBandCountsRequest {
                    tenant_id: tenant,
                    model_id: model,
                    as_of,
                })?)
                .await?
                .into_inner();
            let total = reply.total_leads.max(1) as f64;
            let rows: Vec<Value> = reply
                .counts
                .into_iter()
                .map(|c| {
                    json!({
                        "band": c.band, "grade": c.grade, "leads": c.leads,
                        "share": format!("{:.1} %", 100.0 * c.leads as f64 / total),
                    })
                })
                .collect();
            output::print(
                format,
                &Value::Array(rows),
                &[("BAND", "band"), ("GRADE", "grade"), ("LEADS", "leads"), ("SHARE", "share")],
            )
        }
        ScoreCmd::DeadLetters { tenant } => {
            let mut rows = Vec::new();
            let mut page_token = String::new();
            loop {
                let reply = k
                    .scoring()
                    .list_dead_letters(k.req(pb::ListDeadLettersRequest {
                        tenant_id: tenant.clone(),
                        page_size: 1000,
                        page_token,
                    })?)
                    .await?
                    .into_inner();
                rows.extend(reply.dead_letters.into_iter().map(res::dead_letter));
                if reply.next_page_token.is_empty() {
                    break;
                }
                page_token = reply.next_page_token;
            }
            output::print(
                format,
                &Value::Array(rows),
                &[
                    ("ID", "dead_letter_id"),
                    ("KIND", "kind"),
                    ("SUBJECT", "subject_id"),
                    ("ATTEMPTS", "attempts"),
                    ("DEAD SINCE", "dead_time"),
                    ("ERROR", "error"),
                ],
            )
        }
        ScoreCmd::Retry { tenant, ids } => {
            let reply = k
                .scoring()
                .retry_dead_letters(
                    k.req(pb::RetryDeadLettersRequest { tenant_id: tenant, dead_letter_ids: ids })?,
                )
                .await?
                .into_inner();
            output::print(format, &json!({ "retried": reply.retried }), &[("RETRIED", "retried")])
        }
        ScoreCmd::Rescore { tenant, model } => {
            let reply = k
                .scoring()
                .get_rescore_status(
                    k.req(pb::GetRescoreStatusRequest { tenant_id: tenant, model_id: model })?,
                )
                .await?
                .into_inner();
            output::print(
                format,
                &res::rescore_status(reply),
                &[
                    ("MODEL", "model_id"),
                    ("VERSION", "model_version"),
                    ("RESCORED", "rescored_leads"),
                    ("LEADS", "total_leads"),
                    ("DONE", "done"),
                ],
            )
        }
    }
}

const WATCH_COLUMNS: &[output::Column] = &[
    ("CURSOR", "cursor"),
    ("TIME", "time"),
    ("MODEL", "model_id"),
    ("LEAD", "lead_id"),
    ("FROM", "previous_band"),
    ("TO", "band"),
    ("TOTAL", "total"),
    ("CAUSE", "cause"),
];

/// Prints changes as they arrive: one table row, or one JSON/YAML document, per change.
async fn watch(
    k: &Kelvin,
    request: pb::WatchScoreChangesRequest,
    limit: Option<usize>,
    format: Format,
) -> Result<()> {
    use std::io::Write as _;
    let mut stream = k.scoring().watch_score_changes(k.req(request)?).await?.into_inner();
    // A tenant's models each report their own change of a lead: the model column tells them
    // apart.
    let table = output::Stream::new(WATCH_COLUMNS, &[8, 24, 16, 36, 13, 13, 8]);
    if format == Format::Table {
        table.header();
    }
    let mut seen = 0;
    while let Some(message) = stream.message().await? {
        let Some(change) = message.change else { continue };
        let v = res::score_change(change);
        match format {
            Format::Table => table.row(&v),
            Format::Json => println!("{}", serde_json::to_string(&v)?),
            Format::Yaml => print!("---\n{}", serde_saphyr::to_string(&v)?),
        }
        std::io::stdout().flush()?;
        seen += 1;
        if limit.is_some_and(|l| seen >= l) {
            break;
        }
    }
    Ok(())
}

/// Prints a server error with its code and, for invalid documents, every field problem.
pub fn print_status(status: &tonic::Status) {
    eprintln!("error: {} ({:?})", status.message(), status.code());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            eprintln!("  {}: {}", v.field, v.description);
        }
    }
}

fn role(name: &str) -> Result<pb::Role> {
    Ok(match name {
        "admin" => pb::Role::Admin,
        "editor" => pb::Role::Editor,
        "ingest" => pb::Role::Ingest,
        "reader" => pb::Role::Reader,
        other => bail!("unknown role `{other}` (admin, editor, ingest, reader)"),
    })
}

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

fn spec_struct(value: Value) -> Option<prost_types::Struct> {
    match value {
        Value::Object(map) => Some(json_struct(map)),
        _ => None,
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let format = cli.output;
    if let Command::Context(cmd) = &cli.command {
        return context_cmd(cmd, cli.ca_file.as_deref(), format);
    }
    let k = Kelvin::connect(&cli).await?;
    match cli.command {
        Command::Context(_) => Ok(()),
        Command::Orgs(OrgCmd::Create { id, name }) => {
            let o = k
                .tenants()
                .create_organization(k.req(pb::CreateOrganizationRequest {
                    organization_id: id,
                    display_name: name,
                    request_id: String::new(),
                })?)
                .await?
                .into_inner()
                .organization
                .unwrap_or_default();
            output::print(
                format,
                &res::organization(o),
                &[("ORGANIZATION", "organization_id"), ("NAME", "display_name")],
            )
        }
        Command::Orgs(OrgCmd::List) => {
            let orgs = k
                .tenants()
                .list_organizations(k.req(pb::ListOrganizationsRequest {
                    page_size: 1000,
                    page_token: String::new(),
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = orgs.organizations.into_iter().map(res::organization).collect();
            output::print(
                format,
                &Value::Array(rows),
                &[
                    ("ORGANIZATION", "organization_id"),
                    ("NAME", "display_name"),
                    ("CREATED", "create_time"),
                ],
            )
        }
        Command::Tenants(cmd) => tenant_cmd(&k, cmd, format).await,
        Command::Keys(cmd) => key_cmd(&k, cmd, format).await,
        Command::Models(cmd) => model_cmd(&k, cmd, format).await,
        Command::Templates(TemplateCmd::Apply { file }) => apply_template(&k, &file, format).await,
        Command::Templates(TemplateCmd::List { org }) => {
            let list = k
                .models()
                .list_templates(k.req(pb::ListTemplatesRequest {
                    organization_id: org,
                    page_size: 1000,
                    page_token: String::new(),
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = list
                .templates
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
        Command::Events(EventCmd::Send { tenant, file, batch }) => {
            send_events(&k, &tenant, &file, batch, format).await
        }
        Command::Import { tenant, file, mapping, rejects, batch, resume, max_rows } => {
            let mapping = crate::import::Mapping::load(&mapping)?;
            let rejects = rejects.unwrap_or_else(|| {
                let mut name = file.as_os_str().to_owned();
                name.push(".rejects.csv");
                std::path::PathBuf::from(name)
            });
            let opts = crate::import::Options {
                tenant: tenant.clone(),
                file,
                mapping,
                rejects: rejects.clone(),
                batch,
                resume,
                max_rows,
            };
            let (channel, token) = (k.channel.clone(), k.token.clone());
            let send = move |items: Vec<crate::import::Item>| {
                let (channel, token, tenant) = (channel.clone(), token.clone(), tenant.clone());
                Box::pin(async move {
                    let k = Kelvin { channel, token };
                    use crate::import::Item;
                    let mut events = Vec::new();
                    let mut leads = Vec::new();
                    let mut companies = Vec::new();
                    for item in items {
                        match item {
                            Item::Event(e) => events.push(e),
                            Item::Lead(l) => leads.push(l),
                            Item::Company(c) => companies.push(c),
                        }
                    }
                    let mut results = Vec::new();
                    if !events.is_empty() {
                        // Over the tenant's quota (or a server restarting): back off and retry
                        // the same batch; ingestion is idempotent.
                        let mut delay = std::time::Duration::from_millis(50);
                        let reply = loop {
                            let request = pb::IngestEventsRequest {
                                tenant_id: tenant.clone(),
                                events: events.clone(),
                            };
                            match k.ingest().ingest_events(k.req(request)?).await {
                                // Quotas and shedding say when to retry (RetryInfo); a batch
                                // over the size limit is INVALID_ARGUMENT and is not retried.
                                Err(s)
                                    if matches!(
                                        s.code(),
                                        Code::Unavailable | Code::ResourceExhausted
                                    ) && delay < std::time::Duration::from_secs(30) =>
                                {
                                    use tonic_types::StatusExt as _;
                                    let asked = s
                                        .get_details_retry_info()
                                        .and_then(|r| r.retry_delay)
                                        .unwrap_or(delay);
                                    tokio::time::sleep(asked.max(delay)).await;
                                    delay *= 2;
                                }
                                other => break other?,
                            }
                        };
                        results.extend(reply.into_inner().results);
                    }
                    if !leads.is_empty() {
                        results.extend(
                            k.ingest()
                                .upsert_leads(k.req(pb::UpsertLeadsRequest {
                                    tenant_id: tenant.clone(),
                                    leads,
                                })?)
                                .await?
                                .into_inner()
                                .results,
                        );
                    }
                    if !companies.is_empty() {
                        results.extend(
                            k.ingest()
                                .upsert_companies(k.req(pb::UpsertCompaniesRequest {
                                    tenant_id: tenant.clone(),
                                    companies,
                                })?)
                                .await?
                                .into_inner()
                                .results,
                        );
                    }
                    anyhow::Ok(results)
                })
                    as std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<Vec<pb::ItemResult>>> + Send>,
                    >
            };
            let (done, seconds) = crate::import::run(opts, send).await?;
            let summary = json!({
                "rows": done.rows, "accepted": done.accepted, "duplicates": done.duplicates, "rejected": done.rejected,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "rows_per_second": if seconds > 0.0 { (done.rows as f64 / seconds).round() } else { 0.0 },
                "rejects_file": rejects.display().to_string(),
            });
            output::print(
                format,
                &summary,
                &[
                    ("ROWS", "rows"),
                    ("ACCEPTED", "accepted"),
                    ("DUPLICATES", "duplicates"),
                    ("REJECTED", "rejected"),
                    ("ROWS/S", "rows_per_second"),
                    ("REJECTS", "rejects_file"),
                ],
            )
        }
        Command::Scores(cmd) => scores_cmd(&k, cmd, format).await,
        Command::Watch { tenant, model, all, after, limit } => {
            let request = pb::WatchScoreChangesRequest {
                tenant_id: tenant,
                after_cursor: after,
                model_id: model,
                band_changes_only: !all,
            };
            watch(&k, request, limit, format).await
        }
        Command::Audit { org, tenant, model, action, limit } => {
            let events = k
                .tenants()
                .list_audit_events(k.req(pb::ListAuditEventsRequest {
                    organization_id: org,
                    tenant_id: tenant,
                    model_id: model,
                    action,
                    page_size: limit,
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = events.audit_events.into_iter().map(res::audit_event).collect();
            output::print(
                format,
                &Value::Array(rows),
                &[
                    ("TIME", "time"),
                    ("ACTOR", "actor"),
                    ("ACTION", "action"),
                    ("RESOURCE", "resource"),
                    ("REASON", "reason"),
                ],
            )
        }
    }
}

/// The canonical path of an existing file, else the path made absolute from here.
fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf> {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .with_context(|| format!("cannot resolve {}", path.display()))
}

fn context_cmd(cmd: &ContextCmd, ca_file: Option<&std::path::Path>, format: Format) -> Result<()> {
    let mut file = ConfigFile::load()?;
    match cmd {
        ContextCmd::Set { name, endpoint, token, token_file } => {
            file.contexts.insert(
                name.clone(),
                Context {
                    endpoint: endpoint.clone(),
                    token: token.clone(),
                    // Absolute, so the context works from any directory.
                    token_file: token_file.as_deref().map(absolute).transpose()?,
                    ca_file: ca_file.map(absolute).transpose()?,
                },
            );
            file.current = Some(name.clone());
            file.save()?;
            eprintln!("context `{name}` saved in {} and made current", context::path().display());
            Ok(())
        }
        ContextCmd::Use { name } => {
            if !file.contexts.contains_key(name) {
                bail!("no context named `{name}`");
            }
            file.current = Some(name.clone());
            file.save()
        }
        ContextCmd::List => {
            let rows: Vec<Value> = file
                .contexts
                .iter()
                .map(|(n, c)| json!({"name": n, "endpoint": c.endpoint, "current": file.current.as_deref() == Some(n.as_str())}))
                .collect();
            output::print(
                format,
                &Value::Array(rows),
                &[("NAME", "name"), ("ENDPOINT", "endpoint"), ("CURRENT", "current")],
            )
        }
    }
}

const TENANT_COLUMNS: &[output::Column] = &[
    ("TENANT", "tenant_id"),
    ("ORGANIZATION", "organization_id"),
    ("NAME", "display_name"),
    ("STATE", "state"),
];

async fn tenant_cmd(k: &Kelvin, cmd: TenantCmd, format: Format) -> Result<()> {
    let t = match cmd {
        TenantCmd::Create { org, id, name, labels } => {
            let mut map = std::collections::HashMap::new();
            for l in labels {
                let (key, value) =
                    l.split_once('=').with_context(|| format!("label `{l}` is not key=value"))?;
                map.insert(key.to_owned(), value.to_owned());
            }
            k.tenants()
                .create_tenant(k.req(pb::CreateTenantRequest {
                    organization_id: org,
                    tenant_id: id,
                    display_name: name,
                    labels: map,
                    request_id: String::new(),
                })?)
                .await?
                .into_inner()
                .tenant
        }
        TenantCmd::List { org } => {
            let list = k
                .tenants()
                .list_tenants(k.req(pb::ListTenantsRequest {
                    organization_id: org,
                    page_size: 1000,
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = list.tenants.into_iter().map(res::tenant).collect();
            return output::print(format, &Value::Array(rows), TENANT_COLUMNS);
        }
        TenantCmd::Get { id } => {
            k.tenants()
                .get_tenant(k.req(pb::GetTenantRequest { tenant_id: id })?)
                .await?
                .into_inner()
                .tenant
        }
        TenantCmd::Delete { id } => {
            k.tenants()
                .delete_tenant(
                    k.req(pb::DeleteTenantRequest { tenant_id: id, etag: String::new() })?,
                )
                .await?
                .into_inner()
                .tenant
        }
    };
    output::print(format, &res::tenant(t.unwrap_or_default()), TENANT_COLUMNS)
}

const KEY_COLUMNS: &[output::Column] = &[
    ("KEY", "api_key_id"),
    ("TENANT", "tenant_id"),
    ("ROLE", "role"),
    ("NAME", "display_name"),
    ("EXPIRES", "expire_time"),
    ("REVOKED", "revoke_time"),
];

async fn key_cmd(k: &Kelvin, cmd: KeyCmd, format: Format) -> Result<()> {
    match cmd {
        KeyCmd::Create { org, tenant, role: r, name, days } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let reply = k
                .tenants()
                .create_api_key(k.req(pb::CreateApiKeyRequest {
                    organization_id: org,
                    tenant_id: tenant,
                    role: role(&r)? as i32,
                    display_name: name,
                    expire_time: Some(timestamp(now + days * 86_400_000)),
                })?)
                .await?
                .into_inner();
            let mut value = res::api_key(reply.api_key.unwrap_or_default());
            value["token"] = Value::String(reply.token);
            output::print(
                format,
                &value,
                &[("KEY", "api_key_id"), ("ROLE", "role"), ("TOKEN", "token")],
            )
        }
        KeyCmd::List { org, tenant, show_revoked } => {
            let keys = k
                .tenants()
                .list_api_keys(k.req(pb::ListApiKeysRequest {
                    organization_id: org,
                    tenant_id: tenant,
                    page_size: 1000,
                    page_token: String::new(),
                    show_revoked,
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = keys.api_keys.into_iter().map(res::api_key).collect();
            output::print(format, &Value::Array(rows), KEY_COLUMNS)
        }
        KeyCmd::Revoke { id } => {
            let key = k
                .tenants()
                .revoke_api_key(k.req(pb::RevokeApiKeyRequest { api_key_id: id })?)
                .await?
                .into_inner()
                .api_key;
            output::print(format, &res::api_key(key.unwrap_or_default()), KEY_COLUMNS)
        }
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

async fn model_cmd(k: &Kelvin, cmd: ModelCmd, format: Format) -> Result<()> {
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
            let list = k
                .models()
                .list_model_versions(k.req(pb::ListModelVersionsRequest {
                    tenant_id: tenant,
                    model_id: model,
                    page_size: 1000,
                    page_token: String::new(),
                })?)
                .await?
                .into_inner();
            let rows: Vec<Value> = list.versions.into_iter().map(res::version).collect();
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

async fn send_events(
    k: &Kelvin,
    tenant: &str,
    file: &std::path::Path,
    batch: usize,
    format: Format,
) -> Result<()> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        ))
    };
    let (mut accepted, mut duplicates) = (0i64, 0i64);
    let mut rejects: Vec<Value> = Vec::new();
    let mut pending: Vec<(usize, pb::EventInput)> = Vec::new();
    let mut lines = reader.lines().enumerate().peekable();
    while lines.peek().is_some() || !pending.is_empty() {
        while pending.len() < batch.max(1) {
            let Some((n, line)) = lines.next() else { break };
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match parse_event(&line) {
                Ok(e) => pending.push((n + 1, e)),
                Err((field, reason)) => {
                    rejects.push(json!({"line": n + 1, "field": field, "reason": reason}))
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        let (numbers, events): (Vec<usize>, Vec<pb::EventInput>) =
            std::mem::take(&mut pending).into_iter().unzip();
        let reply = k
            .ingest()
            .ingest_events(k.req(pb::IngestEventsRequest { tenant_id: tenant.into(), events })?)
            .await?
            .into_inner();
        accepted += i64::from(reply.accepted);
        duplicates += i64::from(reply.duplicates);
        for (r, n) in reply.results.into_iter().zip(numbers) {
            if r.status == pb::ItemStatus::Rejected as i32 {
                // The server names the field by batch position (`events[3].time`); the line
                // says which event.
                let field = match r.field.split_once("].") {
                    Some((_, f)) => f.to_owned(),
                    None => r.field,
                };
                rejects.push(json!({"line": n, "field": field, "reason": r.reason}));
            }
        }
    }
    rejects.sort_by_key(|r| r["line"].as_u64());
    let rejected = rejects.len();
    let summary = json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "rejects": rejects});
    output::print(
        format,
        &summary,
        &[("ACCEPTED", "accepted"), ("DUPLICATES", "duplicates"), ("REJECTED", "rejected")],
    )?;
    if rejected > 0 {
        if format == Format::Table {
            println!();
            output::print(
                format,
                &summary["rejects"],
                &[("LINE", "line"), ("FIELD", "field"), ("REASON", "reason")],
            )?;
        }
        return Err(PartlyRejected {
            rejected,
            total: accepted as usize + duplicates as usize + rejected,
        }
        .into());
    }
    Ok(())
}

/// Some events were rejected (the others were sent): `kelvinctl` exits with
/// [`PartlyRejected::EXIT_CODE`] rather than 1, so scripts can tell it from a failed call.
#[derive(Debug, thiserror::Error)]
#[error("{rejected} of {total} event(s) rejected (listed with their line, field and reason)")]
pub struct PartlyRejected {
    pub rejected: usize,
    pub total: usize,
}

impl PartlyRejected {
    pub const EXIT_CODE: u8 = 3;
}

/// An event of a JSON line; an error is the field and the reason.
fn parse_event(line: &str) -> Result<pb::EventInput, (String, String)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| (String::new(), format!("not JSON: {e}")))?;
    let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let time =
        time::OffsetDateTime::parse(&text("time"), &time::format_description::well_known::Rfc3339)
            .map_err(|e| ("time".to_owned(), format!("not an RFC 3339 time: {e}")))?;
    let ms = (time.unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(pb::EventInput {
        event_id: text("event_id"),
        lead_id: text("lead_id"),
        r#type: text("type"),
        time: Some(timestamp(ms)),
        properties: value.get("properties").and_then(Value::as_object).cloned().map(json_struct),
    })
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
    let existing = models
        .list_templates(k.req(pb::ListTemplatesRequest {
            organization_id: rollout.organization.clone(),
            page_size: 1000,
            page_token: String::new(),
        })?)
        .await?
        .into_inner()
        .templates
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
