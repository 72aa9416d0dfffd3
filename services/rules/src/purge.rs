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
            match runtime.store.purge_due_tenants().await {
                Ok(purged) => {
                    // The purged incarnation's cache entries, so that they do not wait for
                    // their TTL (a new tenant under the same id is another incarnation and
                    // never reads them anyway).
                    for (tenant, incarnation) in purged {
                        let ns = kelvin_cache::Namespace::tenant(&tenant, incarnation);
                        if let Err(error) = runtime.cache.clear_namespace(&ns).await {
                            tracing::warn!(%tenant, %error, "cannot clear a purged tenant's cache; its entries expire with their TTL");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "tenant purge failed; retrying later"),
            }
        }
    });
}
