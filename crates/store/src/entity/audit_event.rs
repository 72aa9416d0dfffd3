//! A row of table `audit_events` (sea-orm entity); the schema is created by `src/migration/`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// UUIDv7: ordering by id is ordering by time.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `None` for platform-level events.
    pub org_id: Option<String>,
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    /// JSON of the resource before / after the change.
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub request_id: String,
    pub reason: String,
    pub time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
