//! A row of table `scoring_queue` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// Work for the scoring workers, consumed exactly once: a row is deleted in the transaction
/// that applies it. `kind`: see `crate::queue::WorkKind`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scoring_queue")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub partition: i32,
    pub tenant_id: String,
    pub kind: i32,
    /// Lead id, or company id for company work.
    pub subject_id: String,
    pub event_seq: Option<i64>,
    pub enqueue_time: i64,
    /// W3C `traceparent` of the call that enqueued the work, when traces are exported.
    pub trace_parent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
