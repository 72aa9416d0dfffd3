//! A row of table `model_activations` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

/// A durable "model activated" entry (publish or rollback): the scoring service consumes them
/// to rescore the tenant's leads.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "model_activations")]
pub struct Model {
    /// UUIDv7: consumption order is id order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub model_id: String,
    pub version: i64,
    pub previous_version: i64,
    /// `publish` or `rollback`.
    pub kind: String,
    pub actor: String,
    pub time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
