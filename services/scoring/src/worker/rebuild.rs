//! Rebuilding a lead's state from its stored events: which touched leads are rebuilt, their
//! histories, and the queued work of the events a rebuild absorbs (done with it).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use kelvin_engine::LeadState;
use kelvin_store::{ScorerTxn, StoredEvent, StoredScore, WorkKind};

use super::leads::Touch;
use super::queue::{AfterCommit, score_events_spans};
use crate::registry::ActiveModel;

/// The touched leads of one tenant that are rebuilt, with their stored events.
pub(super) struct Rebuilds {
    leads: HashSet<String>,
    history: HashMap<String, Vec<StoredEvent>>,
}

impl Rebuilds {
    /// A lead is rebuilt from its stored events when any model has no usable state for the
    /// active version, or when its (or its company's) attributes changed and a model has
    /// engagement conditions that read them; otherwise the new events are absorbed.
    pub(super) async fn load(
        txn: &ScorerTxn,
        tenant: &str,
        models: &[Arc<ActiveModel>],
        touched: &[(String, Touch)],
        stored: &HashMap<(String, String), StoredScore>,
    ) -> kelvin_store::Result<Self> {
        let reads_attributes = models.iter().any(|m| m.compiled.engagement_reads_attributes());
        let rebuild: Vec<String> = touched
            .iter()
            .filter(|(id, touch)| {
                (reads_attributes && touch.attributes)
                    || models.iter().any(|m| {
                        stored.get(&(id.clone(), m.model_id.clone())).is_none_or(|s| {
                            s.model_version != m.version || LeadState::from_bytes(&s.state).is_err()
                        })
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut history: HashMap<String, Vec<StoredEvent>> = HashMap::new();
        for e in txn.lead_events(tenant, &rebuild).await? {
            history.entry(e.lead_id.clone()).or_default().push(e);
        }
        Ok(Self { leads: rebuild.into_iter().collect(), history })
    }

    /// The whole stored history of `lead_id` when it is rebuilt (empty if it has no events);
    /// `None` when its state is brought up to date by absorbing the batch's events.
    pub(super) fn take(&mut self, lead_id: &str) -> Option<Vec<StoredEvent>> {
        self.leads.contains(lead_id).then(|| self.history.remove(lead_id).unwrap_or_default())
    }
}

/// The events a rebuild absorbed other than the batch's own (by ingestion `seq`): their
/// queued work is done too. `None` when there are none.
pub(super) fn absorbed_seqs(all: &[StoredEvent], touch: &Touch) -> Option<HashSet<i64>> {
    let batch: BTreeSet<i64> = touch.events.iter().map(|e| e.seq).collect();
    let seqs: HashSet<i64> = all.iter().map(|e| e.seq).filter(|s| !batch.contains(s)).collect();
    (!seqs.is_empty()).then_some(seqs)
}

/// Consumes the queued work of the events rebuilds absorbed (`absorbed`: lead → seqs), in the
/// scoring transaction.
pub(super) async fn consume_absorbed(
    txn: &ScorerTxn,
    tenant: &str,
    absorbed: &HashMap<String, HashSet<i64>>,
    after: &mut AfterCommit,
) -> kelvin_store::Result<()> {
    if absorbed.is_empty() {
        return Ok(());
    }
    let rows = txn.consume_absorbed(tenant, absorbed).await?;
    // Events a rebuild absorbed before their own work came up were scored here: their traces
    // show it too.
    after.spans.extend(score_events_spans(
        rows.iter().filter_map(|(_, parent)| parent.as_deref()),
        rows.len(),
    ));
    after.consumed.extend(rows.into_iter().map(|(t, _)| (tenant.to_owned(), WorkKind::Event, t)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> StoredEvent {
        StoredEvent {
            seq,
            event_id: format!("e{seq}"),
            lead_id: "lead".into(),
            kind: "visit".into(),
            time_ms: 0,
            properties: serde_json::Map::new(),
            ingest_time_ms: 0,
        }
    }

    /// A rebuild absorbs the whole history: the queued work of its events other than the
    /// batch's own is done with it (the batch's own is consumed by the batch).
    #[test]
    fn a_rebuild_absorbs_the_events_outside_the_batch() {
        let touch = Touch { events: vec![event(3)], ..Touch::default() };
        let all = [event(1), event(2), event(3)];
        assert_eq!(absorbed_seqs(&all, &touch), Some(HashSet::from([1, 2])));
        assert_eq!(absorbed_seqs(&[event(3)], &touch), None);
    }
}
