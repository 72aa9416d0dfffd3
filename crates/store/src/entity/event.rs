//! A row of table `events` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// A stored event. `seq` orders ingestion (what scoring consumes); `(tenant_id, event_id)` is
/// unique, which is what makes ingestion idempotent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub tenant_id: String,
    pub event_id: String,
    pub lead_id: String,
    pub kind: String,
    pub time: i64,
    pub properties: String,
    pub ingest_time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
