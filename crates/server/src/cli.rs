//! The command line every service binary shares: `serve` (default) and `migrate`, the config
//! layers, and `--dump-config`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use kelvin_config::{Config, Overrides};

use crate::{Application, MountFn, Runtime, StartError};

/// Options common to every binary.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// TOML config file (layered over defaults, under `KELVIN_*` env vars and flags).
    #[arg(long, env = "KELVIN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, global = true)]
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory (SQLite database, generated keys).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Relational store URL (postgres://... or sqlite://...).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long, global = true)]
    pub dump_config: bool,
}

impl CommonArgs {
    /// The effective configuration over `base` defaults.
    pub fn load(&self, base: Config) -> Result<Config, kelvin_config::Error> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            migrate_on_start: None,
        };
        Config::load(base, self.config.as_deref(), &overrides)
    }
}

/// A service binary's command line.
#[derive(Debug, Parser)]
#[command(version)]
pub struct ServiceCli {
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ServiceCommand {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending database migrations and exit (a Kubernetes job runs this).
    Migrate,
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled: a SIGTERM that arrives while the server starts must not kill the
/// process with the default disposition.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                (term, int) => {
                    if let Err(error) = term.and(int) {
                        tracing::error!(%error, "cannot listen for SIGTERM / SIGINT");
                    }
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Starts the runtime and serves `mounts` until SIGTERM.
pub async fn serve(name: &'static str, config: Config, mounts: &[MountFn]) -> anyhow::Result<()> {
    let telemetry = kelvin_telemetry::init(name, &config.telemetry)?;
    let stop = shutdown_signal();
    let tls = crate::Tls::load(&config.server.tls)?;
    if let Some(address) = config.telemetry.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| StartError::Io(format!("cannot serve metrics on {address}: {e}")))?;
        // The same certificate as gRPC: with TLS on, no listener is plaintext.
        let acceptor = tls.as_ref().map(crate::Tls::acceptor).transpose()?;
        tracing::info!(
            address = %listener.local_addr()?,
            tls = acceptor.is_some(),
            "serving Prometheus metrics on /metrics"
        );
        tokio::spawn(kelvin_telemetry::metrics::serve_with(
            listener,
            telemetry.prometheus(),
            kelvin_telemetry::metrics::ServeLimits::default(),
            acceptor,
        ));
    }
    let runtime = Arc::new(Runtime::start(config).await?);
    if let Some(token) = &runtime.bootstrap_token {
        print_bootstrap(&runtime, token);
    }
    let app = Application::build(runtime, mounts).await?;
    app.run_until_stopped(stop).await?;
    Ok(())
}

fn print_bootstrap(runtime: &Runtime, token: &str) {
    let path = runtime.config.data_dir.join(crate::ADMIN_TOKEN_FILE);
    println!(
        "\nFirst start: a platform admin token was created. It is shown once, and kept in {} (mode 0600):\n\n{token}\n",
        path.display()
    );
}

/// Runs the migrations of the configured store.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = kelvin_store::Store::connect(&config.effective_database_url()).await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    println!("applied {} migrations ({} store)", pending.len(), store.backend());
    Ok(())
}

/// The whole `main` of a service binary.
pub async fn run_service(name: &'static str, mounts: &[MountFn]) -> anyhow::Result<()> {
    let cli = ServiceCli::parse();
    let config = cli.common.load(Config::default())?;
    if cli.common.dump_config {
        print!("{}", config.dump());
        return Ok(());
    }
    match cli.command.unwrap_or(ServiceCommand::Serve) {
        ServiceCommand::Serve => serve(name, config, mounts).await,
        ServiceCommand::Migrate => migrate(&config).await,
    }
}
