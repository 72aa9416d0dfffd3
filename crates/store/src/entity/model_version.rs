//! A row of table `model_versions` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "model_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    /// Canonical JSON of the spec; never updated once written.
    pub spec_json: String,
    pub spec_sha256: String,
    pub creator: String,
    pub comment: String,
    pub create_time: i64,
    /// First publication; `None` while a draft.
    pub publish_time: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
