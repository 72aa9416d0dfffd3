//! Hot-data cache for Kelvin.
//!
//! One [`Cache`] trait with two backends: [`RedisCache`] when a Redis URL is
//! configured, [`MemoryCache`] (in-process, moka) otherwise. Redis is only ever a
//! cache: callers must be able to rebuild anything stored here from the store.
//!
//! Every key lives in a [`Namespace`] so one tenant's keys can never collide with,
//! or be cleared together with, another tenant's.

mod instrumented;
mod memory;
mod redis_cache;

use std::sync::Arc;
use std::time::Duration;

use instrumented::Instrumented;

pub use memory::MemoryCache;
pub use redis_cache::RedisCache;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection, protocol or server error from Redis.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

/// Whose data a key belongs to: keys of one tenant can never collide with another's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Platform-wide data that belongs to no tenant.
    System,
    /// Data of one tenant, by tenant id (with its incarnation: see [`Namespace::tenant`]).
    Tenant(String),
}

impl Namespace {
    /// The namespace of one incarnation of a tenant (its creation time): a tenant purged and
    /// created again under the same id can never read what the old one cached, even if the
    /// purge could not clear the cache.
    pub fn tenant(tenant_id: &str, incarnation: i64) -> Self {
        Self::Tenant(format!("{tenant_id}@{incarnation}"))
    }
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://…` URL; `None` selects the in-process cache.
    pub redis_url: Option<String>,
    /// Prepended to every Redis key so several deployments can share one Redis.
    pub key_prefix: String,
    /// Capacity of the in-process cache, in entries.
    pub memory_max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { redis_url: None, key_prefix: "kelvin".to_owned(), memory_max_entries: 100_000 }
    }
}

/// Byte-oriented key/value cache, partitioned by [`Namespace`].
///
/// Values are opaque bytes so the cache stays ignorant of score formats.
#[async_trait::async_trait]
pub trait Cache: Send + Sync + std::fmt::Debug {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>>;

    /// One result per key, in the order of `keys`; `None` for a miss.
    async fn get_many(&self, ns: &Namespace, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Stores `value`, replacing any previous value and its ttl. `ttl: None` keeps
    /// the entry until evicted; a zero ttl leaves no entry behind.
    async fn set(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()>;

    /// Stores `value` only when the key holds no live entry; returns whether it stored it.
    /// Read-through refills use this, so that a refill from an older read never overwrites
    /// a newer write-through.
    async fn set_if_absent(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool>;

    /// Stores several entries (each in its own namespace) with one ttl; Redis sends them in
    /// one pipeline.
    async fn set_many(
        &self,
        entries: &[(Namespace, String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<()> {
        for (ns, key, value) in entries {
            self.set(ns, key, value, Some(ttl)).await?;
        }
        Ok(())
    }

    /// Returns `true` when a live entry existed.
    async fn delete(&self, ns: &Namespace, key: &str) -> Result<bool>;

    /// Removes every key of `ns` (and of no other namespace); returns how many were
    /// removed. Entries written concurrently with the clear may survive it.
    async fn clear_namespace(&self, ns: &Namespace) -> Result<u64>;

    /// Cheap liveness check for health endpoints.
    async fn ping(&self) -> Result<()>;

    /// `"redis"` or `"memory"`, for logs and health output.
    fn backend(&self) -> &'static str;
}

/// Redis when a URL is configured, the in-process cache otherwise; either way every call is
/// traced and lookups are counted.
pub async fn connect(config: &CacheConfig) -> Result<Arc<dyn Cache>> {
    match config.redis_url.as_deref() {
        Some(url) => {
            let cache = RedisCache::connect(url, &config.key_prefix).await?;
            tracing::info!(backend = "redis", key_prefix = %config.key_prefix, "cache connected");
            Ok(Arc::new(Instrumented::new(cache)))
        }
        None => {
            if config.memory_max_entries == 0 {
                return Err(Error::Config(
                    "memory_max_entries must be greater than zero".to_owned(),
                ));
            }
            tracing::info!(
                backend = "memory",
                max_entries = config.memory_max_entries,
                "no redis configured, using in-process cache"
            );
            Ok(Arc::new(Instrumented::new(MemoryCache::new(config.memory_max_entries))))
        }
    }
}
