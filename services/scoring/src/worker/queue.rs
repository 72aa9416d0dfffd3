//! One batch of queued work: taken fairly across tenants, scored in one transaction with the
//! deletion of its queue rows, committed, then written through to the cache and announced to
//! local change streams.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kelvin_cache::Namespace;
use kelvin_scores::score_key;
use kelvin_store::{ChangeCause, ScorerTxn, StoredEvent, WorkItem, WorkKind};
use kelvin_telemetry::metrics::{instruments, kv};
use tracing::Instrument as _;

use super::Worker;
use super::isolation::guarded;
use super::leads::Touch;

/// What a scoring transaction leaves to do after its commit.
#[derive(Debug, Default)]
pub(super) struct AfterCommit {
    pub(super) cache_writes: Vec<(Namespace, String, Vec<u8>)>,
    pub(super) cache_deletes: Vec<(Namespace, String)>,
    pub(super) changes: usize,
    /// The highest change number committed per tenant: local streams wake at once.
    pub(super) heads: BTreeMap<String, i64>,
    pub(super) scored: usize,
    /// Queued work the transaction consumed, (tenant, kind, enqueue time): metrics once it
    /// commits.
    pub(super) consumed: Vec<(String, WorkKind, i64)>,
    /// `score_events` spans of traces whose events the transaction absorbed; they end with it.
    pub(super) spans: Vec<tracing::Span>,
}

/// One `score_events` span per distinct trace parent, child of the ingesting call's span: an
/// event's trace shows its ingestion and its scoring.
pub(super) fn score_events_spans<'a>(
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

/// `kelvin.scoring.lag` for every consumed work item and `kelvin.scoring.events` per tenant for
/// the events among them (applied from the queue or absorbed by a rebuild).
/// `done`: now on the server's clock, the one that stamped the enqueue times.
fn record_consumed(consumed: &[(String, WorkKind, i64)], done: i64) {
    let instruments = instruments();
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

impl Worker {
    /// Applies one batch of queued work, taken fairly across tenants. When the batch fails for
    /// a reason of its own (not a database outage), its items are applied one by one, each in
    /// its own transaction: the good ones go through, and a bad one has its attempt counted
    /// until it becomes a dead letter. One bad item never holds back any other.
    pub(super) async fn apply_queue(&mut self) -> kelvin_store::Result<bool> {
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

    /// Scores one non-empty batch of queued work and commits it, in the batch's span.
    pub(super) async fn apply_work(
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

    pub(super) async fn finish(
        &self,
        txn: ScorerTxn,
        after: AfterCommit,
    ) -> kelvin_store::Result<()> {
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
        record_consumed(&after.consumed, self.runtime.clock.now_ms());
        Ok(())
    }

    pub(super) async fn write_cache(&self, writes: &[(Namespace, String, Vec<u8>)]) {
        let ttl = Duration::from_secs(self.settings().cache_ttl_seconds.max(1));
        if let Err(error) = self.runtime.cache.set_many(writes, ttl).await {
            // Reads fall back to the store; drop what may now be stale.
            tracing::warn!(%error, "score write-through failed; invalidating");
            for (ns, key, _) in writes {
                let _ = self.runtime.cache.delete(ns, key).await;
            }
        }
    }
}
