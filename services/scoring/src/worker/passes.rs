//! Work beyond the queue: leads whose band time alone moves (re-evaluated when due) and
//! rescore passes over a tenant's leads after a model's active version changes.

use kelvin_store::ChangeCause;
use kelvin_telemetry::metrics::{instruments, kv};

use super::Worker;

/// Leads per rescore or re-evaluation transaction.
const PASS_BATCH: u64 = 500;

/// One rescore pass over a tenant's leads for a model version.
#[derive(Debug)]
pub(super) struct Pass {
    pub(super) tenant_id: String,
    pub(super) model_id: String,
    version: i64,
    after: String,
    /// Leads of the tenant when the pass (re)started, read on its first page.
    total: Option<u64>,
    /// Leads paged through so far (all partitions: each replica pages every id).
    scanned: u64,
}

impl Pass {
    pub(super) fn new(tenant_id: String, model_id: String, version: i64) -> Self {
        Self { tenant_id, model_id, version, after: String::new(), total: None, scanned: 0 }
    }

    pub(super) fn restart(&mut self) {
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

impl Worker {
    /// Re-evaluates leads whose band time alone moves by now.
    pub(super) async fn apply_due(&mut self) -> kelvin_store::Result<bool> {
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
    pub(super) async fn rescore_page(&mut self) -> kelvin_store::Result<bool> {
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
}
