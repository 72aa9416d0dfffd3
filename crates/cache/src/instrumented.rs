//! Every cache call gets a span (so a trace shows each Redis round trip) and lookups count
//! toward the hit ratio, whichever backend answers.

use std::time::Duration;

use kelvin_telemetry::metrics::{instruments, kv};
use tracing::Instrument as _;

use crate::{Cache, Namespace, Result};

/// Wraps a backend with spans and hit/miss counters.
#[derive(Debug)]
pub(crate) struct Instrumented<C> {
    inner: C,
}

impl<C> Instrumented<C> {
    pub(crate) fn new(inner: C) -> Self {
        Self { inner }
    }
}

fn span(operation: &'static str, backend: &'static str) -> tracing::Span {
    tracing::info_span!(
        "cache",
        otel.name = format!("cache.{operation}"),
        otel.kind = "client",
        db.system = backend,
        db.operation = operation,
    )
}

fn count(hits: usize, misses: usize, failed: bool) {
    let lookups = &instruments().cache_lookups;
    if failed {
        lookups.add(1, &[kv("result", "error")]);
        return;
    }
    if hits > 0 {
        lookups.add(hits as u64, &[kv("result", "hit")]);
    }
    if misses > 0 {
        lookups.add(misses as u64, &[kv("result", "miss")]);
    }
}

#[async_trait::async_trait]
impl<C: Cache> Cache for Instrumented<C> {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let result = self.inner.get(ns, key).instrument(span("get", self.backend())).await;
        match &result {
            Ok(Some(_)) => count(1, 0, false),
            Ok(None) => count(0, 1, false),
            Err(_) => count(0, 0, true),
        }
        result
    }

    async fn get_many(&self, ns: &Namespace, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let result =
            self.inner.get_many(ns, keys).instrument(span("get_many", self.backend())).await;
        match &result {
            Ok(values) => {
                let hits = values.iter().filter(|v| v.is_some()).count();
                count(hits, values.len() - hits, false);
            }
            Err(_) => count(0, 0, true),
        }
        result
    }

    async fn set(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.inner.set(ns, key, value, ttl).instrument(span("set", self.backend())).await
    }

    async fn set_if_absent(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        self.inner
            .set_if_absent(ns, key, value, ttl)
            .instrument(span("set_if_absent", self.backend()))
            .await
    }

    async fn set_many(
        &self,
        entries: &[(Namespace, String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<()> {
        self.inner.set_many(entries, ttl).instrument(span("set_many", self.backend())).await
    }

    async fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        self.inner.delete(ns, key).instrument(span("delete", self.backend())).await
    }

    async fn clear_namespace(&self, ns: &Namespace) -> Result<u64> {
        self.inner.clear_namespace(ns).instrument(span("clear_namespace", self.backend())).await
    }

    /// Health checks run every few seconds: no span.
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
