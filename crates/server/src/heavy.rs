//! Expensive evaluations (simulations, compilation of big specs) kept off the threads that
//! serve calls, with a concurrency limit per tenant and per caller.
//!
//! CPU-bound work on the async runtime stalls every call that shares its worker thread, whoever
//! the tenant; so such work runs on tokio's blocking pool, at most `evaluation_threads` at once.
//! A tenant (or an API key) already running its limit is refused at once with
//! RESOURCE_EXHAUSTED and a retry delay rather than queued: a queue would let one tenant hold
//! the pool and make every other tenant wait behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kelvin_config::LimitsSettings;
use tokio::sync::Semaphore;

use crate::{ApiError, CallContext};

/// How long a refused caller is told to wait: about one budget-sized evaluation.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The bounded pool for expensive evaluations and the per-tenant and per-caller counts of
/// those running. One per process; cheap to share.
#[derive(Debug)]
pub struct HeavyWork {
    pool: Arc<Semaphore>,
    per_tenant: usize,
    per_caller: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// Counts one running evaluation against its tenant and caller until dropped.
struct Slot {
    owner: Arc<HeavyWork>,
    keys: [String; 2],
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock().unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            if let Some(n) = running.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    // Never grows with the number of tenants ever seen.
                    running.remove(key);
                }
            }
        }
    }
}

impl HeavyWork {
    pub fn new(limits: &LimitsSettings) -> Arc<Self> {
        Arc::new(Self {
            pool: Arc::new(Semaphore::new(limits.evaluation_threads.max(1))),
            per_tenant: limits.expensive_calls_per_tenant.max(1),
            per_caller: limits.expensive_calls_per_api_key.max(1),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `tenant` and the caller, or refuses when either is at its limit.
    fn slot(self: &Arc<Self>, tenant: &str, caller: String) -> Result<Slot, ApiError> {
        let tenant_key = format!("tenant:{tenant}");
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let t = running.get(&tenant_key).copied().unwrap_or(0);
        let c = running.get(&caller).copied().unwrap_or(0);
        let refusal = if t >= self.per_tenant {
            Some(format!(
                "tenant {tenant} already has {t} expensive call(s) running (limit {})",
                self.per_tenant
            ))
        } else if c >= self.per_caller {
            Some(format!(
                "this caller already has {c} expensive call(s) running (limit {})",
                self.per_caller
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            return Err(ApiError::Throttled { message, retry_after: RETRY_AFTER });
        }
        *running.entry(tenant_key.clone()).or_default() += 1;
        *running.entry(caller.clone()).or_default() += 1;
        Ok(Slot { owner: self.clone(), keys: [tenant_key, caller] })
    }

    /// Runs `work` for `tenant` on the blocking pool, within the tenant's and the caller's
    /// limits. Once started, `work` holds its slot until it ends, even if the call is
    /// cancelled: the CPU is spent either way.
    pub async fn run<T, F>(
        self: &Arc<Self>,
        ctx: &CallContext,
        tenant: &str,
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let caller = match ctx.principal.api_key_id() {
            Some(key) => format!("key:{key}"),
            None => format!("actor:{}", ctx.principal.actor()),
        };
        self.run_as(tenant, caller, work).await
    }

    async fn run_as<T, F>(
        self: &Arc<Self>,
        tenant: &str,
        caller: String,
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        // The limits first, so that a refused call costs nothing and never waits.
        let slot = self.slot(tenant, caller)?;
        let permit = self
            .pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal("evaluation pool closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _held = (slot, permit);
            work()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("evaluation failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(per_tenant: usize, per_caller: usize) -> LimitsSettings {
        LimitsSettings {
            evaluation_threads: 2,
            expensive_calls_per_tenant: per_tenant,
            expensive_calls_per_api_key: per_caller,
            ..LimitsSettings::default()
        }
    }

    /// On a current-thread runtime the runtime's only thread is the test's: work seen on
    /// another thread ran on the blocking pool.
    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_off_the_runtime_thread() {
        let heavy = HeavyWork::new(&limits(1, 1));
        let here = std::thread::current().id();
        let there =
            heavy.run_as("t", "key:k".into(), || Ok(std::thread::current().id())).await.unwrap();
        assert_ne!(here, there);
        assert!(heavy.running.lock().unwrap().is_empty(), "slots are released");
    }

    #[tokio::test]
    async fn a_tenant_or_caller_at_its_limit_is_refused_and_others_are_not() {
        let heavy = HeavyWork::new(&limits(1, 1));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let heavy = heavy.clone();
            tokio::spawn(async move {
                heavy
                    .run_as("a", "key:1".into(), move || {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();
        // Same tenant, other key: the tenant's limit.
        let err = heavy.run_as("a", "key:2".into(), || Ok(())).await.unwrap_err();
        assert!(
            matches!(&err, ApiError::Throttled { message, .. } if message.contains("tenant a"))
        );
        // Other tenant, same key: the caller's limit.
        let err = heavy.run_as("b", "key:1".into(), || Ok(())).await.unwrap_err();
        assert!(matches!(&err, ApiError::Throttled { message, .. } if message.contains("caller")));
        // Another tenant and key go through meanwhile.
        heavy.run_as("b", "key:2".into(), || Ok(())).await.unwrap();
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        heavy.run_as("a", "key:2".into(), || Ok(())).await.unwrap();
        assert!(heavy.running.lock().unwrap().is_empty());
    }
}
