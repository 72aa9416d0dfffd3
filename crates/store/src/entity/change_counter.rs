//! A row of table `change_counters` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// The last change number handed out for a tenant. Taking the next numbers locks this row
/// until commit, so a tenant's change numbers become visible in order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub last: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
