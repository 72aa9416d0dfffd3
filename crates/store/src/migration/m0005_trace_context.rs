//! The trace context of queued work: the scoring of an event continues its ingestion's trace.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScoringQueue {
    Table,
    TraceParent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ScoringQueue::Table)
                    .add_column(string_null(ScoringQueue::TraceParent))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ScoringQueue::Table)
                    .drop_column(ScoringQueue::TraceParent)
                    .to_owned(),
            )
            .await
    }
}
