//! `kelvinctl`: Kelvin from the terminal. Talks gRPC to any Kelvin (the embedded server by
//! default), with contexts like kubeconfig, and outputs tables, JSON or YAML.

#![allow(clippy::disallowed_methods)] // a client of the server: it reads the user's clock (clippy.toml)

mod commands;
mod context;
mod import;
mod output;
mod resources;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(name = "kelvinctl", version, about = "Kelvin from the terminal")]
pub struct Cli {
    /// Context to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Endpoint, e.g. http://127.0.0.1:50051 (overrides the context; env KELVIN_ENDPOINT).
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// Bearer token (overrides the context; env KELVIN_TOKEN).
    #[arg(long, global = true)]
    token: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// endpoint signed by a private CA, instead
    /// of the public roots (overrides the context; env KELVIN_CA_FILE).
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    output: Format,
    /// Items asked for per page of a list (every page is read); hidden, for tests of paging.
    #[arg(
        long,
        global = true,
        hide = true,
        default_value_t = 1000,
        value_parser = clap::value_parser!(i32).range(1..=1000)
    )]
    page_size: i32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage contexts (endpoint and token pairs).
    #[command(subcommand)]
    Context(ContextCmd),
    /// Organizations (agencies).
    #[command(subcommand, alias = "org")]
    Orgs(OrgCmd),
    /// Tenants (client companies).
    #[command(subcommand, alias = "tenant")]
    Tenants(TenantCmd),
    /// API keys.
    #[command(subcommand, alias = "key")]
    Keys(KeyCmd),
    /// Scoring models as code.
    #[command(subcommand, alias = "model")]
    Models(ModelCmd),
    /// Model templates of an organization.
    #[command(subcommand, alias = "template")]
    Templates(TemplateCmd),
    /// Send events.
    #[command(subcommand)]
    Events(EventCmd),
    /// Import leads, companies or events from a CSV export (streamed, resumable).
    Import(ImportArgs),
    /// Scores: current scores, rankings, explanations, history, rescore progress.
    #[command(subcommand, alias = "score")]
    Scores(ScoreCmd),
    /// Follow a tenant's score changes live (band changes unless --all); resumable with
    /// --after CURSOR.
    Watch(WatchArgs),
    /// The audit log.
    Audit(AuditArgs),
}

// The arguments of `kelvinctl import` (the variant's doc is its help).
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// A mapping file, or a built-in one: hubspot-events, hubspot-contacts,
    /// salesforce-events, salesforce-leads (docs/import-mappings.md).
    #[arg(long)]
    pub mapping: String,
    /// Where bad rows go (line, field, reason). Default: FILE.rejects.csv.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Rows per call.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Continue an interrupted import from its checkpoint (FILE.kelvin-import); refused
    /// when the tenant, the file's content or the mapping differ from the checkpoint's.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many rows (continue later with --resume).
    #[arg(long)]
    pub max_rows: Option<u64>,
}

// The arguments of `kelvinctl watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(long, default_value = "")]
    pub model: String,
    /// Every score change, not only band changes.
    #[arg(long)]
    pub all: bool,
    /// Resume after this cursor (-1: from the start of the retained history; 0: from now).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub after: i64,
    /// Stop after this many changes.
    #[arg(long)]
    pub limit: Option<usize>,
}

// The arguments of `kelvinctl audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[arg(long)]
    pub org: String,
    #[arg(long, default_value = "")]
    pub tenant: String,
    #[arg(long, default_value = "")]
    pub model: String,
    #[arg(long, default_value = "")]
    pub action: String,
    /// Most events shown.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum ContextCmd {
    /// Create or update a context and make it current.
    Set {
        name: String,
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        token_file: Option<PathBuf>,
        // The global --ca-file is saved with the context too.
    },
    /// Make a context current.
    Use { name: String },
    /// List contexts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    Create {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    Create {
        #[arg(long)]
        org: String,
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Labels as key=value (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    List {
        #[arg(long)]
        org: String,
    },
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a key; its token is printed once.
    Create {
        #[arg(long)]
        org: String,
        /// Omit for an organization-wide key.
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    List {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long)]
        show_revoked: bool,
    },
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Create a draft from a file, show its diff against the active version, and publish it
    /// with --publish. Does nothing when the file equals the active version.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        model: String,
        #[arg(long)]
        publish: bool,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Validate a file against a tenant's Kelvin (nothing stored).
    Validate {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long)]
        tenant: String,
    },
    /// Rule-by-rule differences between two versions.
    Diff {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        model: String,
        from: i64,
        to: i64,
    },
    /// Versions, newest first.
    History {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        model: String,
    },
    /// Re-activate an earlier published version.
    Rollback {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        model: String,
        #[arg(long)]
        to: i64,
        #[arg(long, default_value = "")]
        comment: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCmd {
    /// Create the template described by a file (when missing) and apply it to its targets:
    /// `organization`, `template: {id, display_name, model_file, parameters: [{name, default,
    /// description}]}`, `targets: [{tenant, model, parameters}]`, `publish`, `comment`.
    /// A target whose active version already has the rendered model is left as is
    /// (`unchanged`: no new version, no rescore).
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// List an organization's templates.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScoreCmd {
    /// Current scores of leads.
    Get {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(required = true)]
        leads: Vec<String>,
    },
    /// The highest-scored leads, optionally of one band or above a score.
    Top {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long, default_value = "")]
        band: String,
        #[arg(long)]
        min: Option<f64>,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Why a lead has its score: every rule's points, the events behind them, decay.
    Explain {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        model: String,
        lead: String,
    },
    /// A lead's band transitions (every change with --all), newest first.
    History {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long)]
        all: bool,
        lead: String,
    },
    /// Progress of rescoring after a publish or rollback.
    Rescore {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        model: String,
    },
    /// Leads per band (and grade) now, or as of a past time (`--at 2026-11-01T00:00:00Z`).
    Bands {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long)]
        at: Option<String>,
    },
    /// Scoring work that failed too often (dead letters), with the last error.
    #[command(alias = "failures")]
    DeadLetters {
        #[arg(long)]
        tenant: String,
    },
    /// Put dead letters back in the scoring queue once their cause is fixed (all without ids).
    Retry {
        #[arg(long)]
        tenant: String,
        ids: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Send events from a JSON-lines file (`-` for stdin): one object per line with
    /// `event_id`, `lead_id`, `type`, `time` (RFC 3339) and optional `properties`.
    ///
    /// Rejected events are listed with their line, field and reason; the exit code is 0 when
    /// every event was accepted (or a duplicate), 3 when some were rejected (the others were
    /// sent), 1 on any other error.
    Send {
        #[arg(long)]
        tenant: String,
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Events per call.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(partly) = error.downcast_ref::<commands::PartlyRejected>() {
                eprintln!("error: {partly}");
                return ExitCode::from(commands::PartlyRejected::EXIT_CODE);
            }
            match error.downcast_ref::<tonic::Status>() {
                Some(status) => commands::print_status(status),
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
