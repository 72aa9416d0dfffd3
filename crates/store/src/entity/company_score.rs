//! A row of table `company_scores` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// A company's current score under one model (milli-points).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "company_scores")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_id: String,
    pub model_version: i64,
    pub fit: i64,
    pub leads: i64,
    pub total: i64,
    pub band: String,
    pub lead_count: i32,
    pub update_time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
