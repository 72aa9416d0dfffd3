//! Contexts, like kubeconfig: named endpoints with their tokens, in a TOML file
//! (`$KELVINCTL_CONFIG`, else `$XDG_CONFIG_HOME/kelvin/config.toml`, else
//! `~/.config/kelvin/config.toml`). `KELVIN_ENDPOINT`, `KELVIN_TOKEN` and `KELVIN_CA_FILE` override
//! the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// One named Kelvin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Context {
    /// `http://host:port`.
    pub endpoint: String,
    /// The bearer token inline...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// ...or in a file (e.g. `kelvin-data/admin-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate(s) trusted for an `https://` endpoint (a private CA); unset: the
    /// public (webpki) roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConfigFile {
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("KELVINCTL_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kelvin").join("config.toml")
}

impl ConfigFile {
    pub fn load() -> Result<Self> {
        let path = path();
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))
    }

    pub fn save(&self) -> Result<()> {
        let path = path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, toml::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

/// Where to connect and with which token, after flags, env and the file.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Resolves the target: flags win over env (`KELVIN_ENDPOINT`, `KELVIN_TOKEN`), env over the
/// context (`--context`, else the current one), and the default endpoint is the embedded server.
pub fn resolve(
    context: Option<&str>,
    endpoint: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
) -> Result<Target> {
    let file = ConfigFile::load()?;
    let name = context.map(str::to_owned).or(file.current.clone());
    let ctx = match &name {
        Some(n) => match file.contexts.get(n) {
            Some(c) => c.clone(),
            None if context.is_some() => bail!("no context named `{n}` in {}", path().display()),
            None => Context::default(),
        },
        None => Context::default(),
    };
    let endpoint = endpoint
        .or_else(|| std::env::var("KELVIN_ENDPOINT").ok())
        .or_else(|| (!ctx.endpoint.is_empty()).then(|| ctx.endpoint.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let token = match token.or_else(|| std::env::var("KELVIN_TOKEN").ok()).or(ctx.token.clone()) {
        Some(t) => Some(t),
        None => match &ctx.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| {
                        let hint = if f.is_relative() {
                            " (a relative path, read from the current directory: set the context again to store it absolute)"
                        } else {
                            ""
                        };
                        format!("cannot read token file {}{hint}", f.display())
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        },
    };
    let ca_file = ca_file
        .or_else(|| std::env::var_os("KELVIN_CA_FILE").map(PathBuf::from))
        .or(ctx.ca_file.clone());
    Ok(Target { endpoint, token, ca_file })
}
