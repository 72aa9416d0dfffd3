//! What the scoring workers read and write: the work queue, stored scores with their
//! incremental state, company scores and the per-tenant change stream, plus the PostgreSQL
//! advisory locks that split the work between replicas.
//!
//! This is, with the purge sweeper, an unscoped entry point: workers act for the platform on
//! every tenant. Each row still names its tenant, and every query filters on it.
//!
//! Exactly once: every piece of work is a `scoring_queue` row (`queue.rs`) written in the
//! transaction that stored its cause (an event, a lead or company change, an erasure), and
//! deleted in the transaction that applies it to the scores. [`ScorerTxn::consume`] fails unless
//! it deletes every row it was given, so two workers can never both apply the same row.
//!
//! - `coordinator.rs`: [`ScorerDb`], the worker's session, its partition locks and its reads.
//! - `transaction.rs`: [`ScorerTxn`], one scoring transaction.

mod coordinator;
mod transaction;

pub use coordinator::ScorerDb;
pub use transaction::ScorerTxn;
