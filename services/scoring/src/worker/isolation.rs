//! Failure isolation: a batch that fails for a reason of its own is applied again item by
//! item, each in its own transaction; an item that fails alone has its attempt counted and,
//! after `scoring.max_attempts`, becomes a dead letter. One bad item never holds back others.

use std::collections::BTreeMap;

use kelvin_store::ChangeCause;
use kelvin_telemetry::metrics::{instruments, kv};

use super::Worker;
use super::leads::Touch;

/// Why scoring work failed: the store's error, or a panic caught around the work (a bug in
/// the engine must cost one item, never the worker).
#[derive(Debug)]
pub(super) enum Failure {
    Store(kelvin_store::Error),
    Panic(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Panic(m) => write!(f, "scoring panicked: {m}"),
        }
    }
}

impl Failure {
    /// A failure that says nothing about the work itself (see `Error::is_transient`).
    pub(super) fn transient(self) -> Result<Self, kelvin_store::Error> {
        match self {
            Self::Store(e) if e.is_transient() => Err(e),
            other => Ok(other),
        }
    }
}

/// Runs scoring work, turning a panic into a [`Failure`].
pub(super) async fn guarded<T>(
    work: impl std::future::Future<Output = kelvin_store::Result<T>>,
) -> Result<T, Failure> {
    use futures::FutureExt as _;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result.map_err(Failure::Store),
        Err(panic) => Err(Failure::Panic(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into()),
        )),
    }
}

fn count_failure(tenant: &str, outcome: &'static str) {
    instruments()
        .scoring_failures
        .add(1, &[kv("tenant", tenant.to_owned()), kv("outcome", outcome)]);
}

impl Worker {
    /// Applies the queue rows `ids` one per transaction (see [`Worker::apply_queue`]).
    pub(super) async fn isolate(&mut self, ids: &[i64]) -> kelvin_store::Result<()> {
        let max_attempts = i32::try_from(self.settings().max_attempts.max(1)).unwrap_or(i32::MAX);
        for &id in ids {
            let now = self.runtime.clock.now_ms();
            let txn = self.db.begin(&self.owned).await?;
            let work = txn.work_by_ids(&[id]).await?;
            let Some(tenant) = work.first().map(|w| w.tenant_id.clone()) else {
                txn.commit().await?; // applied meanwhile (absorbed by a lead's rebuild)
                continue;
            };
            match guarded(self.apply_work(txn, work, now)).await {
                Ok(()) => self.db.clear_failures(&[id]).await?,
                Err(failure) => {
                    let failure = failure.transient()?;
                    let error = failure.to_string();
                    let dead =
                        self.db.record_failure(&self.owned, &[id], &error, max_attempts).await?;
                    if dead.is_empty() {
                        tracing::warn!(%tenant, work = id, %error, "scoring work failed; it will be retried");
                        count_failure(&tenant, "retry");
                    } else {
                        tracing::error!(%tenant, work = id, %error, "scoring work failed too often; moved to the dead letters");
                        count_failure(&tenant, "dead_letter");
                    }
                }
            }
        }
        Ok(())
    }

    /// Scores `touches` in one transaction; when that fails for a reason of its own, lead by
    /// lead, skipping each lead that fails alone (and, for time re-evaluations, taking it out
    /// of them with `set_aside`, so it is not retried at every step).
    pub(super) async fn score_isolated(
        &mut self,
        touches: Vec<((String, String), Option<ChangeCause>)>,
        now: i64,
        set_aside: bool,
    ) -> kelvin_store::Result<()> {
        let batch = |keys: &[((String, String), Option<ChangeCause>)]| -> BTreeMap<(String, String), Touch> {
            keys.iter()
                .map(|(k, cause)| (k.clone(), Touch { events: Vec::new(), cause: *cause, attributes: false }))
                .collect()
        };
        let attempt = async |worker: &Self, keys: &[((String, String), Option<ChangeCause>)]| {
            let txn = worker.db.begin(&worker.owned).await?;
            let after = worker.score_leads(&txn, batch(keys), now).await?;
            worker.finish(txn, after).await
        };
        let failure = match guarded(attempt(self, &touches)).await {
            Ok(()) => return Ok(()),
            Err(failure) => failure.transient()?,
        };
        tracing::warn!(error = %failure, leads = touches.len(), "scoring leads failed; scoring them one by one");
        for one in touches.chunks(1) {
            if let Err(failure) = guarded(attempt(self, one)).await {
                let failure = failure.transient()?;
                let (tenant, lead) = &one[0].0;
                tracing::error!(%tenant, %lead, error = %failure, "scoring a lead failed; set aside");
                count_failure(tenant, "skipped");
                if set_aside {
                    self.db.set_aside(tenant, lead).await?;
                }
            }
        }
        Ok(())
    }
}
