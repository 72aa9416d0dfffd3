//! `grpc.health.v1`: SERVING while the store answers. The cache is only a cache: without it
//! every call still succeeds (reads go to the store), so a cache outage is logged and measured
//! as degraded, never reported NOT_SERVING (with a readiness probe on health, that would turn a
//! Redis outage into a full outage). While the store does not answer, calls fail fast
//! (`store_down`, read by the call layer) and the store is probed more often.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kelvin_cache::Cache;
use kelvin_store::Store;
use kelvin_telemetry::metrics::{instruments, kv};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often the store is probed while it is down.
const DOWN_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Sets every service's status.
pub(crate) async fn set_all(
    reporter: &HealthReporter,
    names: &[&'static str],
    status: ServingStatus,
) {
    reporter.set_service_status("", status).await;
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub store: bool,
    pub cache: bool,
}

impl Probe {
    /// What health reports: the store decides.
    pub(crate) fn status(self) -> ServingStatus {
        if self.store { ServingStatus::Serving } else { ServingStatus::NotServing }
    }
}

/// One probe of the dependencies.
pub(crate) async fn probe(store: &Store, cache: &dyn Cache) -> Probe {
    let timeout = Duration::from_secs(2);
    let (store_ok, cache_ok) = tokio::join!(
        async { matches!(tokio::time::timeout(timeout, store.ping()).await, Ok(Ok(()))) },
        async { matches!(tokio::time::timeout(timeout, cache.ping()).await, Ok(Ok(()))) },
    );
    let up = instruments();
    up.dependency_up.record(u64::from(store_ok), &[kv("dependency", "store")]);
    up.dependency_up.record(u64::from(cache_ok), &[kv("dependency", "cache")]);
    Probe { store: store_ok, cache: cache_ok }
}

/// Probes forever, updating the reported status and `store_down` when they change.
pub(crate) async fn watch(
    reporter: HealthReporter,
    names: Vec<&'static str>,
    store: Store,
    cache: Arc<dyn Cache>,
    interval: Duration,
    store_down: Arc<AtomicBool>,
    mut last: Probe,
) {
    loop {
        let wait = if last.store { interval } else { interval.min(DOWN_PROBE_INTERVAL) };
        tokio::time::sleep(wait).await;
        let now = probe(&store, cache.as_ref()).await;
        store_down.store(!now.store, Ordering::Relaxed);
        if now.store != last.store {
            if now.store {
                tracing::info!("health: the store answers again; SERVING");
            } else {
                tracing::warn!("health: the store does not answer; NOT_SERVING, calls fail fast");
            }
            set_all(&reporter, &names, now.status()).await;
        }
        if now.cache != last.cache {
            if now.cache {
                tracing::info!(backend = cache.backend(), "health: the cache answers again");
            } else {
                tracing::warn!(
                    backend = cache.backend(),
                    "health: the cache does not answer; degraded (reads go to the store), still SERVING"
                );
            }
        }
        last = now;
    }
}
