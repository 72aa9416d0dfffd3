//! Who scores what: partitions assigned by rendezvous hashing over the live member slots,
//! taken and released on every rebalance, with the active models re-read and the cache of
//! partitions taken over refreshed.

use std::time::Instant;

use kelvin_scores::cache_entry;
use kelvin_store::PARTITIONS;
use kelvin_telemetry::metrics::instruments;

use super::Worker;
use super::passes::Pass;

/// How far back scores are re-pushed to the cache when partitions are taken over: a replica
/// that died between a commit and its write-through left at most its last seconds stale.
const TAKEOVER_REFRESH_MS: i64 = 10 * 60 * 1000;

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
    /// Re-reads membership, takes and releases partitions, and re-reads active models.
    pub(super) async fn rebalance(&mut self) -> kelvin_store::Result<()> {
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
            // Enqueue times come from the server's clock: lag is measured on the same one.
            Some(enqueued) => (self.runtime.clock.now_ms() - enqueued).max(0) as f64 / 1e3,
            None => 0.0,
        };
        instruments().queue_oldest_age.record(age, &[]);
        Ok(())
    }

    /// Re-reads the active model versions; a changed version starts a rescore pass.
    pub(super) async fn refresh_models(&mut self) -> kelvin_store::Result<()> {
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
