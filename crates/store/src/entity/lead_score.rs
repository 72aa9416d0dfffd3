//! A row of table `lead_scores` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// A lead's current score under one model, with the engine's incremental state. Points are
/// milli-points.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "lead_scores")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub lead_id: String,
    pub partition: i32,
    pub company_id: Option<String>,
    pub model_version: i64,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    pub disqualification: String,
    pub state: Vec<u8>,
    pub event_count: i64,
    pub as_of: i64,
    pub next_check: Option<i64>,
    pub update_time: i64,
    /// Fit × engagement cell (matrix models), empty otherwise.
    pub grade: String,
    /// What the band stands for ("sales call within 24 business hours").
    pub action: String,
    /// Id of the exclusion that disqualified the lead; empty otherwise.
    pub disqualification_rule: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
