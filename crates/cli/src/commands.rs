//! What each subcommand does: the connection every command shares, and a dispatch to one
//! module per resource.

mod audit;
mod contexts;
mod events;
mod import;
mod models;
mod scores;
mod templates;
mod tenancy;
mod watch;

use anyhow::{Context as _, Result, bail};
use kelvin_proto::v1::ingest_service_client::IngestServiceClient;
use kelvin_proto::v1::model_service_client::ModelServiceClient;
use kelvin_proto::v1::scoring_service_client::ScoringServiceClient;
use kelvin_proto::v1::tenant_service_client::TenantServiceClient;
use tonic::Request;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub use events::PartlyRejected;
pub(crate) use events::{field_in_item, warning_json};

use crate::{Cli, Command, EventCmd, context};

pub async fn run(cli: Cli) -> Result<()> {
    let format = cli.output;
    if let Command::Context(cmd) = &cli.command {
        return contexts::context_cmd(cmd, cli.ca_file.as_deref(), format);
    }
    let k = Kelvin::connect(&cli).await?;
    match cli.command {
        Command::Context(_) => Ok(()),
        Command::Orgs(cmd) => tenancy::org_cmd(&k, cmd, format).await,
        Command::Tenants(cmd) => tenancy::tenant_cmd(&k, cmd, format).await,
        Command::Keys(cmd) => tenancy::key_cmd(&k, cmd, format).await,
        Command::Models(cmd) => models::model_cmd(&k, cmd, format).await,
        Command::Templates(cmd) => templates::template_cmd(&k, cmd, format).await,
        Command::Events(EventCmd::Send { tenant, file, batch }) => {
            events::send_events(&k, &tenant, &file, batch, format).await
        }
        Command::Import(args) => import::import_cmd(&k, args, format).await,
        Command::Scores(cmd) => scores::scores_cmd(&k, cmd, format).await,
        Command::Watch(args) => watch::watch_cmd(&k, args, format).await,
        Command::Audit(args) => audit::audit_cmd(&k, args, format).await,
    }
}

/// A connection and its token.
#[derive(Clone)]
struct Kelvin {
    channel: Channel,
    token: Option<String>,
    /// Items asked for per page of a list (`--page-size`).
    page_size: i32,
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
        Ok(Self { channel, token: target.token, page_size: cli.page_size })
    }

    fn req<T>(&self, message: T) -> Result<Request<T>> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
        }
        Ok(request)
    }

    /// Every item of a list, following `next_page_token` to the last page, or its first
    /// `limit` items. `page` asks for one page: `(page_token, page_size)` → `(items,
    /// next_page_token)`.
    async fn list_all<T, F, Fut>(&self, limit: Option<usize>, mut page: F) -> Result<Vec<T>>
    where
        F: FnMut(String, i32) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, String)>>,
    {
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            let wanted = limit.map_or(usize::MAX, |l| l.saturating_sub(items.len()));
            let page_size = self.page_size.min(i32::try_from(wanted).unwrap_or(i32::MAX));
            let (mut more, next) = page(page_token, page_size).await?;
            items.append(&mut more);
            if let Some(limit) = limit
                && items.len() >= limit
            {
                items.truncate(limit);
                break;
            }
            if next.is_empty() {
                break;
            }
            page_token = next;
        }
        Ok(items)
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

/// Prints a server error with its code and, for invalid documents, every field problem.
pub fn print_status(status: &tonic::Status) {
    eprintln!("error: {} ({:?})", status.message(), status.code());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            eprintln!("  {}: {}", v.field, v.description);
        }
    }
}
