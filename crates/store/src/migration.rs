//! Schema migrations, written once with sea-query so they run unchanged on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

mod m0001_tenancy;
mod m0002_models;
mod m0003_ingest;
mod m0004_scoring;
mod m0005_trace_context;
mod m0006_dead_letters;
mod m0007_grade_action;
mod m0008_tumbling_windows;
mod m0009_disqualification_rule;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_tenancy::Migration),
            Box::new(m0002_models::Migration),
            Box::new(m0003_ingest::Migration),
            Box::new(m0004_scoring::Migration),
            Box::new(m0005_trace_context::Migration),
            Box::new(m0006_dead_letters::Migration),
            Box::new(m0007_grade_action::Migration),
            Box::new(m0008_tumbling_windows::Migration),
            Box::new(m0009_disqualification_rule::Migration),
        ]
    }
}
