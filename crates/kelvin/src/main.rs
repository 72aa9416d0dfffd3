//! `kelvin`: the all-in-one server (`kelvin up`) and its maintenance commands.

use clap::{Parser, Subcommand};
use kelvin_server::CommonArgs;

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
    }
}
