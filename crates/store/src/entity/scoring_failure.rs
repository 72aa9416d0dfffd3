//! A row of table `scoring_failures` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// Failed attempts at a scoring queue row (its work failed in a transaction of its own). A row
/// that fails `scoring.max_attempts` times becomes a dead letter.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scoring_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue_id: i64,
    pub tenant_id: String,
    pub attempts: i32,
    pub error: String,
    pub update_time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
