//! `kelvin`: the all-in-one server (`kelvin up`) and its maintenance commands.

use clap::{Parser, Subcommand};
use kelvin_server::{AdminTokenArgs, CommonArgs};

#[derive(Debug, Parser)]
#[command(version, about = "Kelvin: multi-tenant lead scoring")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process (SQLite in ./kelvin-data unless configured otherwise).
    Up,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Mint an admin token with the configured signing key and database (a running server is
    /// not needed), print it once and exit. Audited and revocable like any API key.
    AdminToken(AdminTokenArgs),
    /// Show what Kelvin does: an agency, two clients, the sample model, a synthetic 90-day
    /// history, the hot leads and why, and what a second model version changes. Starts an
    /// embedded server unless --endpoint names a running one.
    Demo {
        /// A running Kelvin, e.g. http://127.0.0.1:50051 (needs --token).
        #[arg(long)]
        endpoint: Option<String>,
        /// A platform admin token for --endpoint (e.g. the content of kelvin-data/admin-token).
        #[arg(long, env = "KELVIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Leads in the synthetic history.
        #[arg(long, default_value_t = 10_000)]
        leads: usize,
        /// Seed of the synthetic history (same seed, same history).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.common.load(kelvin::embedded_defaults())?;
    if cli.common.dump_config {
        print!("{}", config.dump());
        return Ok(());
    }
    match cli.command {
        Command::Up => kelvin_server::serve("kelvin", config, kelvin::ALL_SERVICES).await,
        Command::Migrate => kelvin_server::migrate(&config).await,
        Command::AdminToken(args) => kelvin_server::admin_token(&config, &args).await,
        Command::Demo { endpoint, token, leads, seed } => {
            let endpoint = match (endpoint, token) {
                (Some(e), Some(t)) => Some((e, t)),
                (Some(_), None) => anyhow::bail!("--endpoint needs --token (or KELVIN_TOKEN)"),
                (None, _) => None,
            };
            kelvin::demo::run(kelvin::demo::DemoOptions { endpoint, leads, seed }).await
        }
    }
}
