//! The background sweeper erasing soft-deleted tenants once their purge time has passed.

use std::sync::Arc;
use std::time::Duration;

use kelvin_server::Runtime;

/// Spawns the sweeper; it runs for the life of the process. Purging is idempotent, so several
/// replicas sweeping at once do no harm.
pub(crate) fn spawn(runtime: Arc<Runtime>) {
    let interval = Duration::from_secs(runtime.config.tenancy.purge_interval_seconds.max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if let Err(error) = runtime.store.purge_due_tenants().await {
                tracing::warn!(%error, "tenant purge failed; retrying later");
            }
        }
    });
}
