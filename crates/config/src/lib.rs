//! Kelvin's configuration, layered: built-in defaults → a TOML file → `KELVIN_*` environment
//! variables (`__` separates sections, e.g. `KELVIN_CACHE__REDIS_URL`) → command-line flags.
//! A key no setting has, in the file or in a variable naming a section, is an error that names
//! the key and where it came from.
//!
//! Secrets are wrapped in [`Secret`] so that `--dump-config` and logs never show them.
//!
//! Files: `sections.rs` (the settings and their defaults), `load.rs` (the layers, which
//! variables are configuration, unknown keys), `validate.rs` (rules serde cannot state),
//! `secret.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod load;
mod secret;
mod sections;
mod validate;

pub use load::KeyOrigin;
pub use secret::{Secret, redacted};
pub use sections::{
    AuthSettings, CacheSettings, ExternalIssuer, IngestSettings, LimitsSettings, LogFormat,
    ScoringSettings, ServerSettings, SigningAlgorithm, TelemetrySettings, TenancySettings,
    TlsSettings,
};

/// Errors while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Figment(Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A key no setting has (usually a typo): refused, since ignoring it would leave the
    /// setting meant at its default without a word.
    #[error("invalid configuration: unknown key `{key}` {origin} (known keys there: {expected})")]
    UnknownKey {
        /// Dotted path of the key, e.g. `scoring.batchsize`.
        key: String,
        origin: KeyOrigin,
        /// The keys of the section it is in, quoted and comma-separated.
        expected: String,
    },
}

impl From<figment::Error> for Error {
    fn from(e: figment::Error) -> Self {
        Self::Figment(Box::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole configuration of one Kelvin process (any binary).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Where the embedded server keeps its SQLite database and generated keys.
    pub data_dir: PathBuf,
    /// Relational store URL (`postgres://...` or `sqlite://...`). Unset: SQLite in `data_dir`.
    pub database_url: Option<Secret>,
    /// Run pending migrations at start-up (the embedded server does; Kubernetes uses a job).
    pub migrate_on_start: bool,
    pub cache: CacheSettings,
    pub auth: AuthSettings,
    pub server: ServerSettings,
    pub telemetry: TelemetrySettings,
    pub tenancy: TenancySettings,
    pub ingest: IngestSettings,
    pub scoring: ScoringSettings,
    pub limits: LimitsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./kelvin-data"),
            database_url: None,
            migrate_on_start: false,
            cache: CacheSettings::default(),
            auth: AuthSettings::default(),
            server: ServerSettings::default(),
            telemetry: TelemetrySettings::default(),
            tenancy: TenancySettings::default(),
            ingest: IngestSettings::default(),
            scoring: ScoringSettings::default(),
            limits: LimitsSettings::default(),
        }
    }
}

/// Values given on the command line: the last and strongest layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate_on_start: Option<bool>,
}

impl Config {
    /// The effective relational store URL: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => {
                let path = self.data_dir.join("kelvin.db");
                format!("sqlite://{}?mode=rwc", path.display())
            }
        }
    }

    /// Where the Ed25519 signing key lives on disk.
    pub fn signing_key_path(&self) -> PathBuf {
        self.auth.signing_key_file.clone().unwrap_or_else(|| self.data_dir.join("signing-key.pem"))
    }

    /// The effective configuration as TOML, secrets redacted (for `--dump-config`).
    pub fn dump(&self) -> String {
        redacted(|| toml::to_string_pretty(self))
            .unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_server() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert!(config.effective_database_url().starts_with("sqlite://"));
        assert!(config.effective_database_url().contains("kelvin-data"));
    }
}
