//! The scoring worker: applies queued work (events, lead and company changes, erasures) of the
//! partitions this replica owns, re-evaluates leads whose band time alone will move, and
//! rescores a model's leads after its active version changes.
//!
//! **Ownership.** Replicas agree on who scores what through PostgreSQL advisory locks: each
//! replica's dedicated session holds a member lock (its slot) and one lock per partition it
//! owns. Every replica sees the live slots in `pg_locks` and assigns partition `p` to the slot
//! with the highest rendezvous hash of `(slot, p)`, so a replica that joins or dies moves only
//! its share. A dead replica's session ends and PostgreSQL releases its locks; the others take
//! its partitions on their next rebalance. Every scoring transaction first checks (on the same
//! session) that it still holds its partitions. On SQLite the one embedded worker owns all.
//!
//! **Exactly once.** A queue row is deleted in the transaction that applies it (see
//! `kelvin_store::ScorerTxn::consume`), together with the new score, state and changes.
//!
//! The parts: `ownership` (partitions, rebalancing, active models), `queue` (one batch of
//! queued work, its commit and write-through), `isolation` (a failing batch item by item, dead
//! letters), `leads` (scoring touched leads, step by step), `rebuild` (a lead's state from its
//! stored events), `companies` (company scores) and `passes` (time re-evaluations, rescores).

mod companies;
mod isolation;
mod leads;
mod ownership;
mod passes;
mod queue;
mod rebuild;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kelvin_server::Runtime;
use kelvin_store::ScorerDb;

use self::passes::Pass;
use crate::Hub;
use crate::registry::Registry;

/// Starts the worker; it runs until the server shuts down.
pub(crate) fn spawn(runtime: Arc<Runtime>, hub: Arc<Hub>) {
    tokio::spawn(async move {
        let mut stopping = runtime.stopping();
        loop {
            match Worker::start(runtime.clone(), hub.clone()).await {
                Ok(worker) => {
                    worker.run().await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "scoring worker cannot start; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopping.changed() => return,
                    }
                }
            }
        }
    });
}

/// The scoring worker of one process: its session, its slot and partitions, the active models
/// and the rescore passes under way.
struct Worker {
    runtime: Arc<Runtime>,
    hub: Arc<Hub>,
    db: ScorerDb,
    slot: i32,
    owned: Vec<i32>,
    registry: Registry,
    passes: Vec<Pass>,
    last_rebalance: Option<Instant>,
    last_models_refresh: Option<Instant>,
    /// The last tenant whose queued work a batch took: the next batch starts after it.
    tenant_cursor: String,
}

impl Worker {
    async fn start(runtime: Arc<Runtime>, hub: Arc<Hub>) -> kelvin_store::Result<Self> {
        let db = runtime.store.scorer_db().await?;
        let slot = db.join().await?;
        tracing::info!(slot, coordinated = db.coordinated(), "scoring worker joined");
        Ok(Self {
            runtime,
            hub,
            db,
            slot,
            owned: Vec::new(),
            registry: Registry::default(),
            passes: Vec::new(),
            last_rebalance: None,
            last_models_refresh: None,
            tenant_cursor: String::new(),
        })
    }

    fn settings(&self) -> &kelvin_config::ScoringSettings {
        &self.runtime.config.scoring
    }

    async fn run(mut self) {
        let mut stopping = self.runtime.stopping();
        let poll = Duration::from_millis(self.settings().poll_interval_ms);
        let rebalance_every = Duration::from_millis(self.settings().rebalance_interval_ms);
        loop {
            if *stopping.borrow() {
                break;
            }
            if self.last_rebalance.is_none_or(|t| t.elapsed() >= rebalance_every) {
                if let Err(error) = self.rebalance().await {
                    tracing::warn!(%error, "scoring rebalance failed; retrying");
                }
                self.last_rebalance = Some(Instant::now());
            }
            let busy = match self.step().await {
                Ok(busy) => busy,
                Err(kelvin_store::Error::Aborted(reason)) => {
                    tracing::info!(%reason, "scoring transaction aborted; re-reading ownership");
                    self.last_rebalance = None;
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, "scoring step failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopping.changed() => {}
                    }
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
        tracing::info!("scoring worker stopped");
    }

    /// One unit of work: queued work first, then due re-evaluations, then a rescore page.
    /// Returns whether there was anything to do.
    async fn step(&mut self) -> kelvin_store::Result<bool> {
        if self.owned.is_empty() {
            return Ok(false);
        }
        if self.apply_queue().await? {
            return Ok(true);
        }
        if self.apply_due().await? {
            return Ok(true);
        }
        self.rescore_page().await
    }
}
