//! Start-up of the shared runtime: store, cache, keys, and the embedded server's first-start
//! bootstrap (signing key and admin token).

use std::path::Path;
use std::sync::Arc;

use kelvin_auth::{Claims, JwksRefresh, JwksSource, Role, SigningKey, TenantsClaim, Verifier};
use kelvin_cache::Cache;
use kelvin_config::{Config, SigningAlgorithm};
use kelvin_store::{NewApiKey, Store};

/// File of the data directory holding the bootstrap admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Lifetime of the bootstrap admin token.
const BOOTSTRAP_TOKEN_DAYS: i64 = 365;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] kelvin_config::Error),
    #[error("store: {0}")]
    Store(#[from] kelvin_store::Error),
    #[error("cache: {0}")]
    Cache(#[from] kelvin_cache::Error),
    #[error("auth: {0}")]
    Auth(#[from] kelvin_auth::Error),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
}

/// Everything a service needs, started.
pub struct Runtime {
    pub config: Config,
    pub store: Store,
    pub cache: Arc<dyn Cache>,
    pub verifier: Arc<Verifier>,
    /// Mints the tokens of new API keys.
    pub signer: Arc<SigningKey>,
    /// The admin token created on first start, to show once.
    pub bootstrap_token: Option<String>,
    /// "Now" for scoring; tests move it forward.
    pub clock: crate::Clock,
    /// Turns `true` when the server starts shutting down: background work and endless streams
    /// (WatchScoreChanges) end on it.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("store", &self.store.backend())
            .field("cache", &self.cache.backend())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Connects the store (migrating it when configured to, else refusing to run on a schema
    /// that is behind), the cache and the keys.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        // One clock for the whole server: the store's timestamps, the handlers and scoring.
        let clock = crate::Clock::default();
        let store =
            Store::connect(&config.effective_database_url()).await?.with_clock(clock.clone());
        if config.migrate_on_start {
            store.migrate().await?;
        } else {
            let pending = store.pending_migrations().await?;
            if !pending.is_empty() {
                return Err(StartError::Invalid(format!(
                    "the database schema is behind ({} pending migrations): run the `migrate` command first",
                    pending.len()
                )));
            }
        }
        let cache = kelvin_cache::connect(&kelvin_cache::CacheConfig {
            redis_url: config.cache.redis_url.as_ref().map(|s| s.expose().to_owned()),
            key_prefix: config.cache.key_prefix.clone(),
            memory_max_entries: config.cache.memory_max_entries,
        })
        .await?;
        let (signer, bootstrap_token) = signing_key(&config, &store).await?;
        let store = store.with_pseudonym_key(&audit_hmac_key(&config, &signer));
        let mut verifier = Verifier::new(config.auth.issuer.clone(), config.auth.audience.clone())
            .with_key(&signer);
        if let Some(ext) = &config.auth.external {
            let source = match (&ext.jwks_file, &ext.jwks_url) {
                (Some(file), _) => JwksSource::File(file.clone()),
                (None, Some(url)) => JwksSource::Url(url.clone()),
                (None, None) => {
                    return Err(StartError::Invalid("auth.external needs a JWKS".into()));
                }
            };
            let audience = ext.audience.clone().unwrap_or_else(|| config.auth.audience.clone());
            let refresh = JwksRefresh {
                every: std::time::Duration::from_secs(ext.jwks_refresh_seconds),
                unknown_kid_min: std::time::Duration::from_secs(
                    ext.jwks_unknown_kid_refresh_seconds,
                ),
            };
            verifier = verifier
                .with_external_issuer_refreshing(ext.issuer.clone(), audience, source, refresh)
                .await?;
        }
        Ok(Self {
            config,
            store,
            cache,
            verifier: Arc::new(verifier),
            signer: Arc::new(signer),
            bootstrap_token,
            clock,
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    /// A receiver that turns `true` when the server starts shutting down.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Tells background work and endless streams to finish.
    pub fn signal_stopping(&self) {
        self.stopping.send_replace(true);
    }

    /// Mints the token of API key `key_id`.
    pub fn mint(
        &self,
        key_id: &str,
        org: &str,
        tenants: TenantsClaim,
        role: Role,
        expire_unix_seconds: u64,
    ) -> Result<String, kelvin_auth::Error> {
        mint(
            &self.config,
            &self.signer,
            &self.clock,
            key_id,
            org,
            tenants,
            role,
            expire_unix_seconds,
        )
    }
}

/// Label of the erasure-audit HMAC key derived from the signing key.
const AUDIT_HMAC_LABEL: &str = "kelvin audit lead pseudonyms v1";

/// The key of the HMAC naming erased leads in audit rows: `auth.audit_hmac_key` when set, else
/// derived from the signing key under its own label. Deriving needs no new secret (every
/// service already shares the signing key, and the embedded server generates it in its data
/// directory); a dedicated key keeps the pseudonyms stable across signing-key rotations.
pub fn audit_hmac_key(config: &Config, signer: &SigningKey) -> Vec<u8> {
    match &config.auth.audit_hmac_key {
        Some(key) => key.expose().as_bytes().to_vec(),
        None => signer.derive_secret(AUDIT_HMAC_LABEL).to_vec(),
    }
}

/// The configured signing key, without generating one: `None` when none is configured and no
/// key file exists.
pub fn configured_signing_key(config: &Config) -> Result<Option<SigningKey>, StartError> {
    if config.auth.signing_algorithm == SigningAlgorithm::HS256 {
        let secret =
            config.auth.hs256_secret.as_ref().ok_or_else(|| {
                StartError::Invalid("auth.hs256_secret is required for HS256".into())
            })?;
        return Ok(Some(SigningKey::hs256(secret.expose().as_bytes())?));
    }
    if let Some(pem) = &config.auth.signing_key {
        return Ok(Some(SigningKey::ed25519_from_pem(pem.expose())?));
    }
    let path = config.signing_key_path();
    if path.exists() {
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| StartError::Io(format!("cannot read `{}`: {e}", path.display())))?;
        return Ok(Some(SigningKey::ed25519_from_pem(&pem)?));
    }
    Ok(None)
}

/// Mints the token of API key `key_id` with `signer`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mint(
    config: &Config,
    signer: &SigningKey,
    clock: &crate::Clock,
    key_id: &str,
    org: &str,
    tenants: TenantsClaim,
    role: Role,
    expire_unix_seconds: u64,
) -> Result<String, kelvin_auth::Error> {
    let now = clock.now_seconds();
    signer.sign(&Claims {
        sub: format!("apikey:{key_id}"),
        iss: config.auth.issuer.clone(),
        aud: config.auth.audience.clone(),
        exp: expire_unix_seconds,
        iat: now,
        jti: Some(key_id.to_owned()),
        org: org.to_owned(),
        tenants,
        role,
    })
}

async fn signing_key(
    config: &Config,
    store: &Store,
) -> Result<(SigningKey, Option<String>), StartError> {
    let token_path = config.data_dir.join(ADMIN_TOKEN_FILE);
    if config.auth.signing_algorithm == SigningAlgorithm::HS256 {
        let secret =
            config.auth.hs256_secret.as_ref().ok_or_else(|| {
                StartError::Invalid("auth.hs256_secret is required for HS256".into())
            })?;
        let key = SigningKey::hs256(secret.expose().as_bytes())?;
        // The embedded server bootstraps an admin token once, like with a generated Ed25519 key.
        let token = if config.auth.generate_missing_key && !token_path.exists() {
            Some(bootstrap_admin(config, store, &key, &token_path).await?)
        } else {
            None
        };
        return Ok((key, token));
    }
    if let Some(key) = configured_signing_key(config)? {
        return Ok((key, None));
    }
    let path = config.signing_key_path();
    if !config.auth.generate_missing_key {
        return Err(StartError::Invalid(format!(
            "no signing key: set auth.signing_key (KELVIN_AUTH__SIGNING_KEY) or create `{}`",
            path.display()
        )));
    }
    // First start: key, platform API key row, token file, and only then the key file, so an
    // interrupted bootstrap starts over cleanly.
    let pem = kelvin_auth::generate_ed25519_pem()?;
    let key = SigningKey::ed25519_from_pem(&pem)?;
    let token = bootstrap_admin(config, store, &key, &token_path).await?;
    write_private(&path, &pem)?;
    Ok((key, Some(token)))
}

/// Creates the platform admin API key and its token, written to `token_path` (0600).
async fn bootstrap_admin(
    config: &Config,
    store: &Store,
    key: &SigningKey,
    token_path: &Path,
) -> Result<String, StartError> {
    let key_id = NewApiKey::new_id();
    let now = i64::try_from(store.clock().now_seconds()).unwrap_or_default();
    let expire = now + BOOTSTRAP_TOKEN_DAYS * 86_400;
    store
        .create_platform_key(
            NewApiKey {
                id: key_id.clone(),
                org_id: String::new(),
                tenant_id: None,
                role: Role::Admin,
                // A fixed, valid name: the default is never taken.
                display_name: kelvin_store::DisplayName::parse("bootstrap admin")
                    .unwrap_or_default(),
                expire_time_ms: expire * 1000,
            },
            "system:bootstrap",
        )
        .await?;
    let token = key.sign(&Claims {
        sub: "bootstrap-admin".into(),
        iss: config.auth.issuer.clone(),
        aud: config.auth.audience.clone(),
        exp: expire as u64,
        iat: now as u64,
        jti: Some(key_id),
        org: "*".into(),
        tenants: TenantsClaim::All,
        role: Role::Admin,
    })?;
    write_private(token_path, &format!("{token}\n"))?;
    Ok(token)
}

/// Writes `contents` to `path`, readable by the owner only (0600).
fn write_private(path: &Path, contents: &str) -> Result<(), StartError> {
    use std::io::Write;
    let io = |e: std::io::Error| StartError::Io(format!("cannot write `{}`: {e}", path.display()));
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        // A data directory Kelvin creates is its own: 0700.
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}
