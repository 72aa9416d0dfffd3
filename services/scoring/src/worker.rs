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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kelvin_cache::Namespace;
use kelvin_engine::{Company, LeadState, Score};
use kelvin_scores::{
    cache_entry, engine_company, engine_event, engine_lead, score_key, score_summary,
};
use kelvin_server::Runtime;
use kelvin_store::{
    ChangeCause, NewChange, NewWork, PARTITIONS, ScorerDb, ScorerTxn, StoredCompanyScore,
    StoredEvent, StoredScore, WorkItem, WorkKind,
};
use kelvin_telemetry::metrics::{instruments, kv};
use tracing::Instrument as _;

use crate::Hub;
use crate::registry::Registry;

/// Leads per rescore or re-evaluation transaction.
const PASS_BATCH: u64 = 500;
/// How far back scores are re-pushed to the cache when partitions are taken over: a replica
/// that died between a commit and its write-through left at most its last seconds stale.
const TAKEOVER_REFRESH_MS: i64 = 10 * 60 * 1000;

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

/// One rescore pass over a tenant's leads for a model version.
#[derive(Debug)]
struct Pass {
    tenant_id: String,
    model_id: String,
    version: i64,
    after: String,
    /// Leads of the tenant when the pass (re)started, read on its first page.
    total: Option<u64>,
    /// Leads paged through so far (all partitions: each replica pages every id).
    scanned: u64,
}

impl Pass {
    fn new(tenant_id: String, model_id: String, version: i64) -> Self {
        Self { tenant_id, model_id, version, after: String::new(), total: None, scanned: 0 }
    }

    fn restart(&mut self) {
        self.after.clear();
        self.total = None;
        self.scanned = 0;
    }

    /// Records `kelvin.rescore.progress` for this pass.
    fn report(&self, done: bool) {
        let progress = match self.total {
            _ if done => 1.0,
            Some(total) if total > 0 => (self.scanned as f64 / total as f64).min(1.0),
            _ => 0.0,
        };
        instruments().rescore_progress.record(
            progress,
            &[kv("tenant", self.tenant_id.clone()), kv("model", self.model_id.clone())],
        );
    }
}

/// A lead to score now, and why.
#[derive(Debug, Default)]
struct Touch {
    events: Vec<StoredEvent>,
    cause: Option<ChangeCause>,
    /// The lead's (or its company's) attributes changed, whatever else the batch holds.
    attributes: bool,
}

/// What a scoring transaction leaves to do after its commit.
#[derive(Debug, Default)]
struct AfterCommit {
    cache_writes: Vec<(Namespace, String, Vec<u8>)>,
    cache_deletes: Vec<(Namespace, String)>,
    changes: usize,
    /// The highest change number committed per tenant: local streams wake at once.
    heads: BTreeMap<String, i64>,
    scored: usize,
    /// Queued work the transaction consumed, (tenant, kind, enqueue time): metrics once it
    /// commits.
    consumed: Vec<(String, WorkKind, i64)>,
    /// `score_events` spans of traces whose events the transaction absorbed; they end with it.
    spans: Vec<tracing::Span>,
}

/// One `score_events` span per distinct trace parent, child of the ingesting call's span: an
/// event's trace shows its ingestion and its scoring.
fn score_events_spans<'a>(
    parents: impl Iterator<Item = &'a str>,
    batch: usize,
) -> Vec<tracing::Span> {
    let traces: BTreeSet<&str> = parents.collect();
    traces
        .into_iter()
        .map(|parent| {
            let span = tracing::info_span!("score_events", batch);
            kelvin_telemetry::set_stored_parent(&span, parent);
            span.follows_from(tracing::Span::current());
            span
        })
        .collect()
}

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

/// Why scoring work failed: the store's error, or a panic caught around the work (a bug in
/// the engine must cost one item, never the worker).
#[derive(Debug)]
enum Failure {
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
    fn transient(self) -> Result<Self, kelvin_store::Error> {
        match self {
            Self::Store(e) if e.is_transient() => Err(e),
            other => Ok(other),
        }
    }
}

/// Runs scoring work, turning a panic into a [`Failure`].
async fn guarded<T>(
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

/// `kelvin.scoring.lag` for every consumed work item and `kelvin.scoring.events` per tenant for
/// the events among them (applied from the queue or absorbed by a rebuild).
fn record_consumed(consumed: &[(String, WorkKind, i64)]) {
    let instruments = instruments();
    let done = wall_ms();
    let mut events: BTreeMap<&str, u64> = BTreeMap::new();
    for (tenant, kind, enqueued) in consumed {
        instruments.scoring_lag.record((done - enqueued).max(0) as f64 / 1e3, &[]);
        if *kind == WorkKind::Event {
            *events.entry(tenant).or_default() += 1;
        }
    }
    for (tenant, n) in events {
        instruments.scored_events.add(n, &[kv("tenant", tenant.to_owned())]);
    }
}

/// Wall-clock milliseconds (lag is real time, whatever the scoring clock says).
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Rendezvous hash of a member slot and a partition.
fn weight(slot: i32, partition: i32) -> u64 {
    let mut x = (u64::from(slot as u32) << 32) | u64::from(partition as u32);
    // splitmix64 finalizer
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The partitions `slot` owns among `members`.
fn assignment(members: &[i32], slot: i32) -> Vec<i32> {
    (0..PARTITIONS)
        .filter(|&p| members.iter().copied().max_by_key(|&m| (weight(m, p), m)) == Some(slot))
        .collect()
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

    /// Re-reads membership, takes and releases partitions, and re-reads active models.
    async fn rebalance(&mut self) -> kelvin_store::Result<()> {
        let mut members = self.db.members().await?;
        if !members.contains(&self.slot) {
            // The session was lost and re-opened: join again.
            self.slot = self.db.join().await?;
            members = self.db.members().await?;
        }
        let wanted = assignment(&members, self.slot);
        let held = self.db.held_partitions().await?;
        for p in held.iter().filter(|p| !wanted.contains(p)) {
            self.db.unlock_partition(*p).await?;
        }
        let mut owned: Vec<i32> = held.iter().copied().filter(|p| wanted.contains(p)).collect();
        let mut taken = Vec::new();
        for p in wanted.iter().filter(|p| !held.contains(p)) {
            if self.db.try_lock_partition(*p).await? {
                owned.push(*p);
                taken.push(*p);
            }
        }
        owned.sort_unstable();
        if owned != self.owned {
            tracing::info!(
                slot = self.slot,
                members = members.len(),
                owned = owned.len(),
                "scoring partitions changed"
            );
        }
        self.owned = owned;
        self.report_queue_age().await?;

        self.refresh_models().await?;
        if !taken.is_empty() {
            self.refresh_cache(&taken).await?;
            // Leads of partitions taken over may be behind a model version: pass again.
            for p in &mut self.passes {
                p.restart();
            }
            let mut restart = Vec::new();
            for (tenant, models) in self.registry.tenants() {
                for (model_id, version) in models {
                    if !self.passes.iter().any(|p| p.tenant_id == tenant && p.model_id == model_id)
                    {
                        restart.push(Pass::new(tenant.clone(), model_id, version));
                    }
                }
            }
            self.passes.extend(restart);
        }
        Ok(())
    }

    /// Records `kelvin.scoring.queue.oldest_age`: how far behind scoring is, even when it
    /// applies nothing (a stopped or starved scorer).
    async fn report_queue_age(&self) -> kelvin_store::Result<()> {
        let age = match self.db.oldest_work_time().await? {
            Some(enqueued) => (wall_ms() - enqueued).max(0) as f64 / 1e3,
            None => 0.0,
        };
        instruments().queue_oldest_age.record(age, &[]);
        Ok(())
    }

    /// Re-reads the active model versions; a changed version starts a rescore pass.
    async fn refresh_models(&mut self) -> kelvin_store::Result<()> {
        let changed = self.registry.refresh(&self.db).await?;
        self.last_models_refresh = Some(Instant::now());
        for a in changed {
            self.passes.retain(|p| !(p.tenant_id == a.tenant_id && p.model_id == a.model_id));
            self.passes.push(Pass::new(a.tenant_id, a.model_id, a.version));
        }
        Ok(())
    }

    /// Re-pushes recently changed scores of partitions just taken over to the cache.
    async fn refresh_cache(&self, partitions: &[i32]) -> kelvin_store::Result<()> {
        let since = self.runtime.clock.now_ms() - TAKEOVER_REFRESH_MS;
        let scores = self.db.scores_changed_since(partitions, since).await?;
        let writes: Vec<_> = scores
            .iter()
            .filter_map(|s| Some(cache_entry(self.registry.namespace(&s.tenant_id)?, s)))
            .collect();
        self.write_cache(&writes).await;
        Ok(())
    }

    async fn write_cache(&self, writes: &[(Namespace, String, Vec<u8>)]) {
        let ttl = Duration::from_secs(self.settings().cache_ttl_seconds.max(1));
        if let Err(error) = self.runtime.cache.set_many(writes, ttl).await {
            // Reads fall back to the store; drop what may now be stale.
            tracing::warn!(%error, "score write-through failed; invalidating");
            for (ns, key, _) in writes {
                let _ = self.runtime.cache.delete(ns, key).await;
            }
        }
    }

    async fn finish(&self, txn: ScorerTxn, after: AfterCommit) -> kelvin_store::Result<()> {
        txn.commit().await?;
        self.write_cache(&after.cache_writes).await;
        for (ns, key) in &after.cache_deletes {
            if let Err(error) = self.runtime.cache.delete(ns, key).await {
                tracing::warn!(%error, "cache delete after erasure failed");
            }
        }
        for (tenant, head) in &after.heads {
            self.hub.watcher.advance(tenant, *head);
        }
        tracing::debug!(scored = after.scored, changes = after.changes, "scoring batch committed");
        record_consumed(&after.consumed);
        Ok(())
    }

    /// Applies one batch of queued work, taken fairly across tenants. When the batch fails for
    /// a reason of its own (not a database outage), its items are applied one by one, each in
    /// its own transaction: the good ones go through, and a bad one has its attempt counted
    /// until it becomes a dead letter. One bad item never holds back any other.
    async fn apply_queue(&mut self) -> kelvin_store::Result<bool> {
        let cursor_before = self.tenant_cursor.clone();
        let (txn, work, now) = loop {
            let now = self.runtime.clock.now_ms();
            let txn = self.db.begin(&self.owned).await?;
            let settings = self.settings();
            let (work, cursor) = txn
                .work(
                    &self.owned,
                    settings.batch_size,
                    settings.tenant_batch_share_percent,
                    &cursor_before,
                )
                .await?;
            self.tenant_cursor = cursor;
            if work.is_empty() {
                txn.commit().await?;
                return Ok(false);
            }
            // Work of a tenant with no known model: a model may have just been published.
            // Look again (at most every 20 ms) before consuming it unscored, outside the
            // transaction: on SQLite a read through the pool while holding the write lock can
            // wait for a connection that writers queued behind this very lock hold.
            let unknown = work.iter().any(|w| self.registry.models(&w.tenant_id).is_empty());
            if unknown
                && self.last_models_refresh.is_none_or(|t| t.elapsed() >= Duration::from_millis(20))
            {
                txn.rollback().await?;
                self.refresh_models().await?;
                continue;
            }
            break (txn, work, now);
        };
        let ids: Vec<i64> = work.iter().map(|w| w.id).collect();
        let span = tracing::info_span!("score_batch", work = work.len());
        let failure = match guarded(self.apply_work(txn, work, now).instrument(span)).await {
            Ok(()) => return Ok(true),
            Err(failure) => failure.transient()?,
        };
        tracing::warn!(error = %failure, items = ids.len(), "scoring batch failed; applying its items one by one");
        self.isolate(&ids).await?;
        Ok(true)
    }

    /// Applies the queue rows `ids` one per transaction (see [`Worker::apply_queue`]).
    async fn isolate(&mut self, ids: &[i64]) -> kelvin_store::Result<()> {
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
    async fn score_isolated(
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

    /// Scores one non-empty batch of queued work and commits it, in the batch's span.
    async fn apply_work(
        &mut self,
        txn: ScorerTxn,
        work: Vec<WorkItem>,
        now: i64,
    ) -> kelvin_store::Result<()> {
        let seqs: Vec<i64> = work.iter().filter_map(|w| w.event_seq).collect();
        let mut events: HashMap<i64, (String, StoredEvent)> = txn
            .events_by_seq(&seqs)
            .await?
            .into_iter()
            .map(|(tenant, e)| (e.seq, (tenant, e)))
            .collect();
        let mut touches: BTreeMap<(String, String), Touch> = BTreeMap::new();
        let mut companies: BTreeSet<(String, String, bool)> = BTreeSet::new();
        let mut erased: Vec<(String, String)> = Vec::new();
        for w in &work {
            match w.kind {
                WorkKind::Event => {
                    let event = w.event_seq.and_then(|s| events.remove(&s));
                    if let Some((tenant, e)) = event
                        && tenant == w.tenant_id
                    {
                        let t = touches.entry((tenant, e.lead_id.clone())).or_default();
                        t.events.push(e);
                        t.cause = Some(ChangeCause::Events);
                    }
                }
                WorkKind::Lead => {
                    let t = touches.entry((w.tenant_id.clone(), w.subject_id.clone())).or_default();
                    t.cause.get_or_insert(ChangeCause::Attributes);
                    t.attributes = true;
                }
                WorkKind::Company | WorkKind::CompanyAttributes => {
                    companies.insert((
                        w.tenant_id.clone(),
                        w.subject_id.clone(),
                        w.kind == WorkKind::CompanyAttributes,
                    ));
                }
                WorkKind::Erased => erased.push((w.tenant_id.clone(), w.subject_id.clone())),
            }
        }
        let ids: Vec<i64> = work.iter().map(|w| w.id).collect();
        // One span per trace that enqueued work of this batch, child of the ingesting call's
        // span: an event's trace shows its ingestion and its scoring. They end with the batch.
        let _spans =
            score_events_spans(work.iter().filter_map(|w| w.trace_parent.as_deref()), work.len());
        let mut after = self.score_leads(&txn, touches, now).await?;
        self.score_companies(&txn, companies, now).await?;
        for (tenant, lead) in erased {
            let Some(ns) = self.registry.namespace(&tenant) else { continue };
            for m in self.registry.models(&tenant) {
                after.cache_deletes.push((ns.clone(), score_key(&m.model_id, &lead)));
            }
        }
        txn.consume(&ids).await?;
        after
            .consumed
            .extend(work.iter().map(|w| (w.tenant_id.clone(), w.kind, w.enqueue_time_ms)));
        self.finish(txn, after).await
    }

    /// Re-evaluates leads whose band time alone moves by now.
    async fn apply_due(&mut self) -> kelvin_store::Result<bool> {
        let now = self.runtime.clock.now_ms();
        let due = self.db.due_leads(&self.owned, now, PASS_BATCH).await?;
        if due.is_empty() {
            return Ok(false);
        }
        let touches = due.into_iter().map(|key| (key, Some(ChangeCause::Time))).collect();
        self.score_isolated(touches, now, true).await?;
        Ok(true)
    }

    /// Scores one page of a rescore pass: leads of owned partitions whose stored score is not
    /// from the model's active version.
    async fn rescore_page(&mut self) -> kelvin_store::Result<bool> {
        while let Some(pass) = self.passes.first() {
            if !self.registry.is_active(&pass.tenant_id, &pass.model_id, pass.version) {
                self.passes.remove(0);
                continue;
            }
            if pass.total.is_none() {
                let total = self.db.lead_count(&pass.tenant_id).await?;
                if let Some(p) = self.passes.first_mut() {
                    p.total = Some(total);
                }
                continue;
            }
            let ids = self.db.lead_ids(&pass.tenant_id, &pass.after, PASS_BATCH).await?;
            let Some(last) = ids.last().cloned() else {
                tracing::info!(tenant = %pass.tenant_id, model = %pass.model_id,
                    version = pass.version, "rescore pass finished");
                pass.report(true);
                self.passes.remove(0);
                continue;
            };
            let paged = ids.len() as u64;
            let mine: Vec<String> = ids
                .into_iter()
                .filter(|id| {
                    self.owned
                        .binary_search(&kelvin_store::partition_of(&pass.tenant_id, id))
                        .is_ok()
                })
                .collect();
            let versions = self.db.score_versions(&pass.tenant_id, &pass.model_id, &mine).await?;
            let stale: Vec<String> =
                mine.into_iter().filter(|id| versions.get(id) != Some(&pass.version)).collect();
            // Leads with queued work of their own are left to it (see `leads_with_work`). Only
            // this worker consumes its partitions' work, so that work is still queued when it
            // runs: a lead this page saw committed its lead row and its work together.
            let queued = self.db.leads_with_work(&pass.tenant_id, &stale).await?;
            let stale: Vec<String> = stale.into_iter().filter(|id| !queued.contains(id)).collect();
            let tenant = pass.tenant_id.clone();
            if let Some(p) = self.passes.first_mut() {
                p.after = last;
                p.scanned += paged;
                p.report(false);
            }
            if stale.is_empty() {
                continue;
            }
            let rescored = stale.len() as u64;
            let now = self.runtime.clock.now_ms();
            let touches = stale
                .into_iter()
                .map(|id| ((tenant.clone(), id), Some(ChangeCause::Rescore)))
                .collect();
            self.score_isolated(touches, now, false).await?;
            instruments().rescored_leads.add(rescored, &[kv("tenant", tenant)]);
            return Ok(true);
        }
        Ok(false)
    }

    /// Scores the touched leads under every active model of their tenant and stages the
    /// writes in `txn`.
    async fn score_leads(
        &self,
        txn: &ScorerTxn,
        touches: BTreeMap<(String, String), Touch>,
        now: i64,
    ) -> kelvin_store::Result<AfterCommit> {
        let horizon_hours = i64::try_from(self.settings().horizon_days).unwrap_or(400) * 24;
        let mut after = AfterCommit::default();
        let mut by_tenant: BTreeMap<String, Vec<(String, Touch)>> = BTreeMap::new();
        for ((tenant, lead), touch) in touches {
            by_tenant.entry(tenant).or_default().push((lead, touch));
        }
        let mut rows = Vec::new();
        let mut changes = Vec::new();
        let mut follow_up = BTreeSet::new();
        for (tenant, touched) in by_tenant {
            let models = self.registry.models(&tenant);
            let Some(ns) = self.registry.namespace(&tenant).filter(|_| !models.is_empty()) else {
                // Nothing to score with; the first activation rescores every lead.
                continue;
            };
            let ids: Vec<String> = touched.iter().map(|(l, _)| l.clone()).collect();
            let leads: HashMap<String, _> =
                txn.leads(&tenant, &ids).await?.into_iter().map(|l| (l.id.clone(), l)).collect();
            let company_ids: Vec<String> = {
                let set: BTreeSet<String> =
                    leads.values().filter_map(|l| l.company_id.clone()).collect();
                set.into_iter().collect()
            };
            let companies: HashMap<String, Company> = txn
                .companies(&tenant, &company_ids)
                .await?
                .iter()
                .map(|c| (c.id.clone(), engine_company(c)))
                .collect();
            let stored: HashMap<(String, String), StoredScore> = txn
                .scores(&tenant, &ids)
                .await?
                .into_iter()
                .map(|s| ((s.lead_id.clone(), s.model_id.clone()), s))
                .collect();
            // A lead is rebuilt from its stored events when any model has no usable state for
            // the active version, or when its (or its company's) attributes changed and a model
            // has engagement conditions that read them; otherwise the new events are absorbed.
            let reads_attributes = models.iter().any(|m| m.compiled.engagement_reads_attributes());
            let attributes_changed: HashSet<&String> =
                touched.iter().filter(|(_, t)| t.attributes).map(|(l, _)| l).collect();
            let rebuild: Vec<String> = ids
                .iter()
                .filter(|id| {
                    (reads_attributes && attributes_changed.contains(id))
                        || models.iter().any(|m| {
                            stored.get(&((*id).clone(), m.model_id.clone())).is_none_or(|s| {
                                s.model_version != m.version
                                    || LeadState::from_bytes(&s.state).is_err()
                            })
                        })
                })
                .cloned()
                .collect();
            let mut history: HashMap<String, Vec<StoredEvent>> = HashMap::new();
            for e in txn.lead_events(&tenant, &rebuild).await? {
                history.entry(e.lead_id.clone()).or_default().push(e);
            }
            let rebuild: HashSet<String> = rebuild.into_iter().collect();
            let mut absorbed: HashMap<String, HashSet<i64>> = HashMap::new();
            for (lead_id, touch) in touched {
                let Some(lead_row) = leads.get(&lead_id) else {
                    continue; // erased meanwhile
                };
                let lead = engine_lead(lead_row);
                let company = lead_row.company_id.as_ref().and_then(|c| companies.get(c));
                let is_rebuild = rebuild.contains(&lead_id);
                let full = is_rebuild.then(|| history.remove(&lead_id).unwrap_or_default());
                if let Some(all) = &full {
                    // Work for events the rebuild absorbed, other than this batch's own, is
                    // done too.
                    let batch: BTreeSet<i64> = touch.events.iter().map(|e| e.seq).collect();
                    let seqs: HashSet<i64> =
                        all.iter().map(|e| e.seq).filter(|s| !batch.contains(s)).collect();
                    if !seqs.is_empty() {
                        absorbed.insert(lead_id.clone(), seqs);
                    }
                }
                for m in models {
                    let old = stored.get(&(lead_id.clone(), m.model_id.clone()));
                    let (mut state, count) = match (&full, old) {
                        (Some(all), _) => {
                            let events: Vec<_> = all.iter().map(engine_event).collect();
                            let s = LeadState::from_events_of(&m.compiled, &lead, company, &events);
                            (s, all.len() as i64)
                        }
                        (_, Some(o)) => {
                            let mut s = LeadState::from_bytes(&o.state).unwrap_or_default();
                            for e in &touch.events {
                                s.absorb_of(&m.compiled, &lead, company, &engine_event(e));
                            }
                            (s, o.event_count + touch.events.len() as i64)
                        }
                        (_, None) => {
                            let events: Vec<_> = touch.events.iter().map(engine_event).collect();
                            let s = LeadState::from_events_of(&m.compiled, &lead, company, &events);
                            (s, events.len() as i64)
                        }
                    };
                    state.prune(&m.compiled, now);
                    state.shrink_to_fit();
                    let score = state.score(&m.compiled, &lead, company, now);
                    let next_check =
                        state.next_band_change(&m.compiled, &lead, company, now, horizon_hours);
                    let grade = score.grade.clone().unwrap_or_default();
                    let action = score.action.clone().unwrap_or_default();
                    let changed = old.is_none_or(|o| {
                        o.total != score.total.0
                            || o.band != score.band
                            || o.grade != grade
                            || o.model_version != m.version
                    });
                    if changed {
                        let cause = if old.is_some_and(|o| o.model_version != m.version) {
                            ChangeCause::Rescore
                        } else {
                            touch.cause.unwrap_or(ChangeCause::Events)
                        };
                        changes.push(NewChange {
                            tenant_id: tenant.clone(),
                            lead_id: lead_id.clone(),
                            model_id: m.model_id.clone(),
                            model_version: m.version,
                            previous_band: old.map(|o| o.band.clone()).unwrap_or_default(),
                            band: score.band.clone(),
                            previous_grade: old.map(|o| o.grade.clone()).unwrap_or_default(),
                            grade: grade.clone(),
                            action: action.clone(),
                            previous_total: old.map_or(0, |o| o.total),
                            total: score.total.0,
                            cause,
                            time_ms: now,
                        });
                    }
                    let company_changed = old.is_none_or(|o| o.company_id != lead_row.company_id);
                    if let Some(c) = &lead_row.company_id
                        && (changed || company_changed)
                    {
                        follow_up.insert((tenant.clone(), c.clone()));
                    }
                    let row = StoredScore {
                        tenant_id: tenant.clone(),
                        model_id: m.model_id.clone(),
                        lead_id: lead_id.clone(),
                        company_id: lead_row.company_id.clone(),
                        model_version: m.version,
                        fit: score.fit.0,
                        engagement: score.engagement.0,
                        total: score.total.0,
                        band: score.band.clone(),
                        grade,
                        action,
                        disqualification_rule: score
                            .disqualified
                            .as_ref()
                            .map(|d| d.rule_id.clone())
                            .unwrap_or_default(),
                        disqualification: score.disqualified.map(|d| d.reason).unwrap_or_default(),
                        state: state.to_bytes(),
                        event_count: count,
                        as_of_ms: now,
                        next_check_ms: next_check,
                        update_time_ms: if changed {
                            now
                        } else {
                            old.map_or(now, |o| o.update_time_ms)
                        },
                    };
                    after.cache_writes.push(cache_entry(ns.clone(), &row));
                    rows.push(row);
                }
            }
            if !absorbed.is_empty() {
                let rows = txn.consume_absorbed(&tenant, &absorbed).await?;
                // Events a rebuild absorbed before their own work came up were scored here:
                // their traces show it too.
                after.spans.extend(score_events_spans(
                    rows.iter().filter_map(|(_, parent)| parent.as_deref()),
                    rows.len(),
                ));
                after
                    .consumed
                    .extend(rows.into_iter().map(|(t, _)| (tenant.clone(), WorkKind::Event, t)));
            }
        }
        after.scored = rows.len();
        after.changes = changes.len();
        txn.put_scores(rows).await?;
        for c in txn.append_changes(changes).await? {
            let head = after.heads.entry(c.tenant_id).or_default();
            *head = (*head).max(c.change_no);
        }
        let work: Vec<NewWork> = follow_up
            .into_iter()
            .map(|(tenant_id, company)| NewWork {
                tenant_id,
                kind: WorkKind::Company,
                subject_id: company,
                event_seq: None,
                trace_parent: None,
            })
            .collect();
        txn.enqueue(work, now).await?;
        Ok(after)
    }

    /// Recomputes company scores from their leads' stored scores; companies whose attributes
    /// changed also send their leads to be rescored (fit rules may read the company).
    async fn score_companies(
        &self,
        txn: &ScorerTxn,
        companies: BTreeSet<(String, String, bool)>,
        now: i64,
    ) -> kelvin_store::Result<()> {
        let mut fan_out = Vec::new();
        for (tenant, company_id, attributes_changed) in companies {
            let company = txn
                .companies(&tenant, std::slice::from_ref(&company_id))
                .await?
                .first()
                .map(engine_company)
                .unwrap_or_default();
            for m in self.registry.models(&tenant) {
                let members = txn.company_member_scores(&tenant, &m.model_id, &company_id).await?;
                let scores: Vec<Score> = members.iter().map(score_summary).collect();
                let key = (tenant.as_str(), m.model_id.as_str(), company_id.as_str());
                let computed =
                    m.compiled.score_company(&company, &scores).map(|cs| StoredCompanyScore {
                        tenant_id: tenant.clone(),
                        model_id: m.model_id.clone(),
                        company_id: company_id.clone(),
                        model_version: m.version,
                        fit: cs.fit.0,
                        leads: cs.leads.0,
                        total: cs.total.0,
                        band: cs.band.unwrap_or_default(),
                        lead_count: i32::try_from(members.len()).unwrap_or(i32::MAX),
                        update_time_ms: now,
                    });
                txn.put_company_score(key, computed).await?;
            }
            if attributes_changed {
                for lead in txn.company_lead_ids(&tenant, &company_id).await? {
                    fan_out.push(NewWork {
                        tenant_id: tenant.clone(),
                        kind: WorkKind::Lead,
                        subject_id: lead,
                        event_seq: None,
                        trace_parent: None,
                    });
                }
            }
        }
        txn.enqueue(fan_out, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_owner() {
        for members in [vec![0], vec![0, 1], vec![0, 1, 2], vec![3, 7, 8, 100]] {
            let mut all: Vec<i32> = members.iter().flat_map(|&m| assignment(&members, m)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..PARTITIONS).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_share() {
        let before = [0, 1, 2];
        let after = [0, 2];
        for p in 0..PARTITIONS {
            let owner = |ms: &[i32]| ms.iter().copied().max_by_key(|&m| (weight(m, p), m));
            if owner(&before) != Some(1) {
                assert_eq!(owner(&before), owner(&after));
            }
        }
        let shares: Vec<usize> = before.iter().map(|&m| assignment(&before, m).len()).collect();
        assert!(shares.iter().all(|&n| n > 10), "{shares:?}");
    }
}
