//! The command line every service binary shares: `serve` (default), `migrate` and
//! `admin-token`, the config layers, and `--dump-config`.

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

#[derive(Debug, Clone, Subcommand)]
pub enum ServiceCommand {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending database migrations and exit (a Kubernetes job runs this).
    Migrate,
    /// Mint an admin token with the configured signing key and database, print it once on
    /// stdout and exit: the first token of a deployment whose key the operator supplies.
    AdminToken(AdminTokenArgs),
}

/// What `admin-token` mints.
#[derive(Debug, Clone, Args)]
pub struct AdminTokenArgs {
    /// Organization the token administers (every tenant of it); omit for a platform token
    /// that reaches every organization.
    #[arg(long)]
    pub org: Option<String>,
    /// Lifetime: a number with s, m, h or d (at most two years).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: std::time::Duration,
    /// Display name of the API key, shown by ListApiKeys and in the audit log.
    #[arg(long, default_value = "operator admin (admin-token)")]
    pub name: String,
}

/// Parses `90s`, `15m`, `12h`, `30d` (or plain seconds).
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}`: expected a number with s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    if number == 0 {
        return Err("the lifetime must be positive".into());
    }
    /// Two years: an operator's token is a bootstrap, not a standing credential.
    const MAX_SECONDS: u64 = 2 * 365 * 86_400;
    match number.checked_mul(seconds) {
        Some(total) if total <= MAX_SECONDS => Ok(std::time::Duration::from_secs(total)),
        _ => Err(format!("`{text}` is longer than two years (730d)")),
    }
}

/// Mints an admin token bound to a new, revocable and audited API key, and prints it once.
/// Never generates a signing key: the token must verify on the servers that share this config.
pub async fn admin_token(config: &Config, args: &AdminTokenArgs) -> anyhow::Result<()> {
    use kelvin_auth::{Role, TenantsClaim};
    use kelvin_store::NewApiKey;
    config.validate()?;
    let Some(signer) = crate::bootstrap::configured_signing_key(config)? else {
        anyhow::bail!(
            "no signing key: set auth.signing_key (KELVIN_AUTH__SIGNING_KEY), auth.signing_key_file or auth.hs256_secret as the servers do, or create `{}`",
            config.signing_key_path().display()
        );
    };
    let store = kelvin_store::Store::connect(&config.effective_database_url()).await?;
    let pending = store.pending_migrations().await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is behind ({} pending migrations): run the `migrate` command first",
            pending.len()
        );
    }
    let now = store.clock().now_seconds();
    let expire = now + args.ttl.as_secs();
    let org = args.org.clone().filter(|o| o != "*").unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    // The key's name and lifetime are checked here, at the command's edge, as CreateApiKey
    // checks them at the API's.
    let display_name = kelvin_store::DisplayName::parse(&args.name)
        .map_err(|e| anyhow::anyhow!("invalid display_name: {e}"))?;
    let expire_time_ms = kelvin_store::key_expiry(
        i64::try_from(expire.saturating_mul(1000))?,
        store.clock().now_ms(),
    )
    .map_err(|e| anyhow::anyhow!("invalid expire_time: {e}"))?;
    let key = store
        .create_operator_key(
            NewApiKey {
                id: NewApiKey::new_id(),
                org_id: org.clone(),
                tenant_id: None,
                role: Role::Admin,
                display_name,
                expire_time_ms,
            },
            &format!("operator:{user}"),
            "admin-token command",
        )
        .await?;
    let claim_org = if org.is_empty() { "*" } else { org.as_str() };
    let token = crate::bootstrap::mint(
        config,
        &signer,
        store.clock(),
        &key.id,
        claim_org,
        TenantsClaim::All,
        Role::Admin,
        expire,
    )?;
    eprintln!(
        "Created API key {} ({}, admin, expires in {}s). The token is shown once; revoke it with RevokeApiKey.",
        key.id,
        if org.is_empty() { "platform".to_owned() } else { format!("organization {org}") },
        args.ttl.as_secs()
    );
    println!("{token}");
    Ok(())
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
        ServiceCommand::AdminToken(args) => admin_token(&config, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;
    use std::time::Duration;

    #[test]
    fn lifetimes_take_a_unit() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_ttl("60"), Ok(Duration::from_secs(60)));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert_eq!(parse_ttl("730d"), Ok(Duration::from_secs(730 * 86_400)));
        assert!(parse_ttl("731d").is_err());
        assert!(parse_ttl("99999999999999999d").is_err());
    }
}
