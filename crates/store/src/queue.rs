//! The scoring work queue: what a queue row asks for, the partition it belongs to, and writing
//! work in the transaction that stored its cause (see [`crate::scoring`] for the exactly-once
//! rule). Imported by every writer (ingest, erasure, dead letters) and by the scoring worker.

use sea_orm::{ConnectionTrait, EntityTrait, Set};

use crate::Result;
use crate::entity::scoring_queue;

/// Number of partitions the work is split into. Fixed: a lead's partition is stored with its
/// work and score, so changing it would need a migration.
pub const PARTITIONS: i32 = 64;

/// Rows per statement when a list goes into `IN (...)` or a multi-row insert.
pub(crate) const CHUNK: usize = 500;
/// Most tenants whose queued work one scoring batch takes.
pub const FAIR_TENANTS: usize = 16;

/// The partition of a lead or company: a stable hash (64-bit FNV-1a) of the tenant and the id.
pub fn partition_of(tenant_id: &str, subject_id: &str) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant_id.bytes().chain([0xff]).chain(subject_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % PARTITIONS as u64) as i32
}

/// What a queue row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkKind {
    /// A new event of the lead (`event_seq`).
    Event = 0,
    /// The lead's attributes or company changed.
    Lead = 1,
    /// The company's attributes or leads changed (`subject_id` is the company).
    Company = 2,
    /// The lead was erased: drop what remains of it outside the database (cache entries).
    Erased = 3,
    /// The company's attributes changed: recompute it and rescore its leads.
    CompanyAttributes = 4,
}

impl WorkKind {
    pub(crate) fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Event,
            1 => Self::Lead,
            2 => Self::Company,
            3 => Self::Erased,
            4 => Self::CompanyAttributes,
            _ => return None,
        })
    }
}

/// One queue row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub id: i64,
    pub partition: i32,
    pub tenant_id: String,
    pub kind: WorkKind,
    pub subject_id: String,
    pub event_seq: Option<i64>,
    pub enqueue_time_ms: i64,
    /// The trace of the call that enqueued it (W3C `traceparent`).
    pub trace_parent: Option<String>,
}

/// Work to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWork {
    pub tenant_id: String,
    pub kind: WorkKind,
    pub subject_id: String,
    pub event_seq: Option<i64>,
    /// The trace to continue when applying it (W3C `traceparent`).
    pub trace_parent: Option<String>,
}

pub(crate) fn work_row(w: NewWork, now: i64) -> scoring_queue::ActiveModel {
    scoring_queue::ActiveModel {
        id: sea_orm::NotSet,
        partition: Set(partition_of(&w.tenant_id, &w.subject_id)),
        tenant_id: Set(w.tenant_id),
        kind: Set(w.kind as i32),
        subject_id: Set(w.subject_id),
        event_seq: Set(w.event_seq),
        enqueue_time: Set(now),
        trace_parent: Set(w.trace_parent),
    }
}

pub(crate) async fn enqueue<C: ConnectionTrait>(
    db: &C,
    work: Vec<NewWork>,
    now: i64,
) -> Result<()> {
    let mut rows = work.into_iter().map(|w| work_row(w, now)).peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(CHUNK).collect();
        scoring_queue::Entity::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

pub(crate) fn work_item(m: scoring_queue::Model) -> Option<WorkItem> {
    Some(WorkItem {
        kind: WorkKind::from_i32(m.kind)?,
        id: m.id,
        partition: m.partition,
        tenant_id: m.tenant_id,
        subject_id: m.subject_id,
        event_seq: m.event_seq,
        enqueue_time_ms: m.enqueue_time,
        trace_parent: m.trace_parent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("t1", "lead-1"), partition_of("t1", "lead-1"));
        assert_ne!(
            (0..50).map(|i| partition_of("t1", &format!("l{i}"))).collect::<Vec<_>>(),
            vec![partition_of("t1", "l0"); 50]
        );
        let mut counts = [0u32; PARTITIONS as usize];
        for i in 0..64_000 {
            counts[partition_of("tenant", &format!("lead-{i}")) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }
}
