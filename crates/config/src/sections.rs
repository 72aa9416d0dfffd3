//! The sections of the configuration (`[cache]`, `[auth]`, `[server]`, ...), their defaults
//! and what each setting is for. Every section refuses keys it does not have: a typo is an
//! error at start-up, not a setting silently left at its default.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Redis (shared hot cache) or, when no URL is set, an in-process cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Capacity of the in-process cache.
    pub memory_max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { redis_url: None, key_prefix: "kelvin".into(), memory_max_entries: 100_000 }
    }
}

/// Signing algorithm for the tokens Kelvin mints.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// Ed25519 (preferred): verifiers only need the public key.
    EdDSA,
    /// HMAC-SHA256 with a shared secret.
    HS256,
}

/// How tokens are minted and verified.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `iss` of the tokens Kelvin mints, and the issuer it expects on them.
    pub issuer: String,
    /// `aud` of every accepted token.
    pub audience: String,
    pub signing_algorithm: SigningAlgorithm,
    /// PKCS#8 PEM Ed25519 private key, inline (prefer a Kubernetes secret in an env var).
    pub signing_key: Option<Secret>,
    /// File holding the PKCS#8 PEM Ed25519 key. Unset: `<data_dir>/signing-key.pem`.
    pub signing_key_file: Option<PathBuf>,
    /// Shared secret for HS256 (at least 32 bytes).
    pub hs256_secret: Option<Secret>,
    /// Generate the signing key and a bootstrap admin token when missing (embedded server).
    pub generate_missing_key: bool,
    /// An external issuer whose tokens are trusted (keys from its JWKS document).
    pub external: Option<ExternalIssuer>,
    /// Key of the HMAC that names erased leads in audit rows (at least 32 bytes). Unset: derived
    /// from the signing key (HKDF-style, its own label), so it changes when that key is replaced.
    pub audit_hmac_key: Option<Secret>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "kelvin".into(),
            audience: "kelvin".into(),
            signing_algorithm: SigningAlgorithm::EdDSA,
            signing_key: None,
            signing_key_file: None,
            hs256_secret: None,
            generate_missing_key: false,
            external: None,
            audit_hmac_key: None,
        }
    }
}

/// A trusted external identity provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected `aud` claim; defaults to Kelvin's audience.
    #[serde(default)]
    pub audience: Option<String>,
    /// JWKS document on disk.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS document URL, fetched at start-up and again (rate-limited) on an unknown kid.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The JWKS document (URL or file) is fetched again after this many seconds: keys the
    /// issuer removed stop being trusted.
    #[serde(default = "default_jwks_refresh_seconds")]
    pub jwks_refresh_seconds: u64,
    /// A token naming an unknown kid fetches the document early, at most once per this many
    /// seconds (forged kids cannot hammer the issuer).
    #[serde(default = "default_jwks_unknown_kid_refresh_seconds")]
    pub jwks_unknown_kid_refresh_seconds: u64,
}

fn default_jwks_refresh_seconds() -> u64 {
    300
}

fn default_jwks_unknown_kid_refresh_seconds() -> u64 {
    30
}

/// Limits of the gRPC server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Largest response message sent, in bytes.
    pub max_response_bytes: usize,
    /// How long in-flight calls may run after SIGTERM before the process exits anyway.
    pub shutdown_grace_seconds: u64,
    /// Interval of the store/cache health probe.
    pub health_check_interval_ms: u64,
    /// Per-call deadline applied when the client sets none (or a longer one); a call past
    /// it is answered DEADLINE_EXCEEDED.
    pub request_timeout_seconds: u64,
    /// Most unary calls in flight in this process; beyond, a call is shed at once with
    /// UNAVAILABLE and `google.rpc.RetryInfo` instead of queueing until its deadline.
    pub max_concurrent_calls: usize,
    /// Most unary calls in flight for one API key (or one token subject): one caller's flood
    /// takes at most this share of `max_concurrent_calls`; beyond, RESOURCE_EXHAUSTED with
    /// RetryInfo.
    pub max_concurrent_calls_per_key: usize,
    /// TLS on every listener (gRPC and metrics); plaintext when unset.
    pub tls: TlsSettings,
    /// A second, plaintext gRPC listener serving only `grpc.health.v1`, for probes that
    /// cannot speak TLS (Kubernetes gRPC probes). Not served when unset.
    pub health_listen: Option<SocketAddr>,
}

/// Server certificate (and optionally client CA) as PEM files: both `cert_file` and
/// `key_file`, or neither (plaintext, e.g. behind a mesh that terminates TLS).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, clients must present a certificate it signed (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

impl TlsSettings {
    /// Whether TLS is on (validation guarantees both files then).
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 4 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            shutdown_grace_seconds: 25,
            health_check_interval_ms: 2_000,
            request_timeout_seconds: 60,
            max_concurrent_calls: 512,
            max_concurrent_calls_per_key: 64,
            tls: TlsSettings::default(),
            health_listen: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs, traces and metrics. OTLP export is configured by the standard `OTEL_*` variables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// Where to serve Prometheus `GET /metrics` (plain HTTP); not served when unset.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { log_format: LogFormat::Text, log_filter: "info".into(), metrics_listen: None }
    }
}

/// Tenant lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenancySettings {
    /// How long a soft-deleted tenant's data is kept before it is erased.
    pub purge_after_hours: u64,
    /// How often the purge sweeper runs.
    pub purge_interval_seconds: u64,
}

impl Default for TenancySettings {
    fn default() -> Self {
        Self { purge_after_hours: 72, purge_interval_seconds: 300 }
    }
}

/// Per-tenant ingestion limits (each replica enforces them for the calls it serves).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Most items (events, leads, companies, outcomes) in one call or stream message.
    pub max_batch: usize,
    /// Sustained items written per second per tenant (and replica), by every ingest RPC:
    /// events, leads, companies, outcomes and erasures all count. Bursts up to one second's
    /// worth; over it, RESOURCE_EXHAUSTED with `google.rpc.RetryInfo`.
    pub events_per_second: u32,
    /// Largest JSON of one event's properties or one lead's attributes, in bytes.
    pub max_item_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self { max_batch: 1000, events_per_second: 10_000, max_item_bytes: 16 * 1024 }
    }
}

/// The scoring worker and score reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSettings {
    /// Run the scoring worker in this process (the scoring binary and `kelvin up` do by
    /// default; a read-only replica may turn it off).
    pub worker: bool,
    /// Most queue rows applied in one transaction.
    pub batch_size: u64,
    /// How often an idle worker looks for new work, in milliseconds.
    pub poll_interval_ms: u64,
    /// How often the worker re-reads replica membership and model versions, in milliseconds.
    pub rebalance_interval_ms: u64,
    /// Time to live of cached scores, in seconds.
    pub cache_ttl_seconds: u64,
    /// How far ahead a band change due to time alone is looked for, in days.
    pub horizon_days: u64,
    /// Failed attempts (each in a transaction of its own) after which a queue item becomes a
    /// dead letter: moved out of the queue, visible with `ListDeadLetters`, requeued with
    /// `RetryDeadLetters`.
    pub max_attempts: u32,
    /// Most queue rows of one tenant in one batch when several tenants have work waiting, as
    /// a share of `batch_size` (0..=100 %): a tenant's backlog never fills a whole batch while
    /// another tenant waits.
    pub tenant_batch_share_percent: u32,
    /// Most WatchScoreChanges streams open at once for one tenant, per replica: one tenant
    /// cannot hold every stream slot of a replica.
    pub max_streams_per_tenant: usize,
    /// Most WatchScoreChanges streams open at once for one API key (or, for tokens without a
    /// key, one actor), per replica.
    pub max_streams_per_key: usize,
}

impl Default for ScoringSettings {
    fn default() -> Self {
        Self {
            worker: true,
            batch_size: 1000,
            poll_interval_ms: 50,
            rebalance_interval_ms: 1000,
            cache_ttl_seconds: 3600,
            horizon_days: 400,
            max_attempts: 5,
            tenant_batch_share_percent: 25,
            max_streams_per_tenant: 200,
            max_streams_per_key: 50,
        }
    }
}

/// Bounds on the work one call may cause, so that one tenant's expensive call cannot stall or
/// slow another's (each replica enforces them for the calls it serves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Largest model or template spec, as compact JSON, in bytes: what a client sends and what
    /// a template renders to.
    pub max_spec_bytes: usize,
    /// Most rules × events one SimulateScore may evaluate (about 130 ns each with regex
    /// rules, measured in issue 14: the default is about a quarter of a second of CPU).
    pub max_simulation_work: u64,
    /// Expensive evaluations (simulation, compilation of big specs) running at once in this
    /// process, on the blocking pool, off the threads that serve calls.
    pub evaluation_threads: usize,
    /// Expensive calls one tenant may have running at once; more are refused at once with
    /// RESOURCE_EXHAUSTED.
    pub expensive_calls_per_tenant: usize,
    /// Expensive calls one API key may have running at once.
    pub expensive_calls_per_api_key: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_spec_bytes: 1024 * 1024,
            max_simulation_work: 2_000_000,
            evaluation_threads: 4,
            expensive_calls_per_tenant: 2,
            expensive_calls_per_api_key: 2,
        }
    }
}
