//! A row of table `score_changes` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// One change of a lead's score; `change_no` orders a tenant's changes in commit order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "score_changes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub change_no: i64,
    pub lead_id: String,
    pub model_id: String,
    pub model_version: i64,
    pub previous_band: String,
    pub band: String,
    pub previous_total: i64,
    pub total: i64,
    pub cause: i32,
    pub band_changed: bool,
    pub time: i64,
    /// Fit × engagement cell (matrix models), empty otherwise.
    pub grade: String,
    pub previous_grade: String,
    /// The action of the new band.
    pub action: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
