//! A row of table `api_keys` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `None` only for the platform operator's keys.
    pub org_id: Option<String>,
    /// `None` for an organization-wide key.
    pub tenant_id: Option<String>,
    pub role: String,
    pub display_name: String,
    pub creator: String,
    pub create_time: i64,
    pub expire_time: i64,
    pub revoke_time: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
