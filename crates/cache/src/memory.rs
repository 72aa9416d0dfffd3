//! In-process backend, used when no Redis is configured (dev, tests, single node).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::{Cache, Namespace, Result};

type Key = (Namespace, String);

#[derive(Clone)]
struct Entry {
    /// Shared so moka's clone-on-read stays cheap for large values.
    value: Arc<[u8]>,
    ttl: Option<Duration>,
    /// Our own deadline, because moka's `remove` also returns expired entries and
    /// `delete`/`clear_namespace` must only count live ones.
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self) -> bool {
        self.expires_at.is_none_or(|at| Instant::now() < at)
    }
}

/// Per-entry ttl: every write sets the ttl of the written entry (so overwriting
/// without a ttl makes the entry persistent, as `SET` does in Redis).
struct EntryTtl;

impl Expiry<Key, Entry> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &Key,
        value: &Entry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

/// Bounded in-process cache (moka) with per-entry ttl.
#[derive(Clone)]
pub struct MemoryCache {
    inner: moka::future::Cache<Key, Entry>,
}

impl MemoryCache {
    /// `max_entries` bounds the entry count; beyond it moka evicts by TinyLFU.
    pub fn new(max_entries: u64) -> Self {
        let inner =
            moka::future::Cache::builder().max_capacity(max_entries).expire_after(EntryTtl).build();
        Self { inner }
    }

    fn key(ns: &Namespace, key: &str) -> Key {
        (ns.clone(), key.to_owned())
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("entry_count", &self.inner.entry_count()).finish()
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get(&Self::key(ns, key)).await.map(|e| e.value.to_vec()))
    }

    async fn get_many(&self, ns: &Namespace, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(ns, key).await?);
        }
        Ok(out)
    }

    async fn set(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let k = Self::key(ns, key);
        if ttl.is_some_and(|t| t.is_zero()) {
            // Already expired: make sure no older value survives either.
            self.inner.invalidate(&k).await;
            return Ok(());
        }
        let entry = Entry {
            value: Arc::from(value),
            ttl,
            // A ttl too large for `Instant` means "never" in practice.
            expires_at: ttl.and_then(|t| Instant::now().checked_add(t)),
        };
        self.inner.insert(k, entry).await;
        Ok(())
    }

    async fn set_if_absent(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        if ttl.is_zero() {
            return Ok(false);
        }
        let entry = Entry {
            value: Arc::from(value),
            ttl: Some(ttl),
            expires_at: Instant::now().checked_add(ttl),
        };
        let stored = self
            .inner
            .entry(Self::key(ns, key))
            .or_insert_with_if(async { entry }, |existing| !existing.is_live())
            .await;
        Ok(stored.is_fresh())
    }

    async fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        Ok(self.inner.remove(&Self::key(ns, key)).await.is_some_and(|e| e.is_live()))
    }

    async fn clear_namespace(&self, ns: &Namespace) -> Result<u64> {
        // Collect first: removing while iterating is allowed by moka but the
        // iterator's view would then be harder to reason about.
        let keys: Vec<Arc<Key>> =
            self.inner.iter().filter(|(k, _)| &k.0 == ns).map(|(k, _)| k).collect();
        let mut removed = 0u64;
        for k in keys {
            if self.inner.remove(&*k).await.is_some_and(|e| e.is_live()) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
