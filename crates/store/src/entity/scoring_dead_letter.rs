//! A row of table `scoring_dead_letters` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// Scoring work that failed too often, moved out of the queue so that it blocks no other work;
/// visible to its tenant and put back in the queue by a retry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scoring_dead_letters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    pub partition: i32,
    pub kind: i32,
    pub subject_id: String,
    pub event_seq: Option<i64>,
    pub enqueue_time: i64,
    pub trace_parent: Option<String>,
    pub attempts: i32,
    pub error: String,
    pub dead_time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
