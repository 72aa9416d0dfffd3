//! `grpc.health.v1`: SERVING only while the store (and the cache) answer.

use std::sync::Arc;
use std::time::Duration;

use kelvin_cache::Cache;
use kelvin_store::Store;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

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

/// One probe of the dependencies.
pub(crate) async fn probe(store: &Store, cache: &dyn Cache) -> ServingStatus {
    let timeout = Duration::from_secs(2);
    let store_ok = matches!(tokio::time::timeout(timeout, store.ping()).await, Ok(Ok(())));
    let cache_ok = matches!(tokio::time::timeout(timeout, cache.ping()).await, Ok(Ok(())));
    if !store_ok {
        tracing::warn!("health: the store does not answer");
    }
    if !cache_ok {
        tracing::warn!(backend = cache.backend(), "health: the cache does not answer");
    }
    if store_ok && cache_ok { ServingStatus::Serving } else { ServingStatus::NotServing }
}

/// Probes forever, updating the reported status when it changes.
pub(crate) async fn watch(
    reporter: HealthReporter,
    names: Vec<&'static str>,
    store: Store,
    cache: Arc<dyn Cache>,
    interval: Duration,
    mut last: ServingStatus,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = probe(&store, cache.as_ref()).await;
        if now != last {
            tracing::info!(status = ?now, "health changed");
            set_all(&reporter, &names, now).await;
            last = now;
        }
    }
}
