//! Fair and failure-proof scoring work: an index for taking work per tenant; attempts of queue rows that failed, and the dead letters, rows that
//! failed too often and were moved out of the queue so that they block nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScoringQueue {
    Table,
    TenantId,
    Id,
}

#[derive(DeriveIden)]
enum ScoringFailures {
    Table,
    QueueId,
    TenantId,
    Attempts,
    Error,
    UpdateTime,
}

#[derive(DeriveIden)]
enum ScoringDeadLetters {
    Table,
    Id,
    TenantId,
    Partition,
    Kind,
    SubjectId,
    EventSeq,
    EnqueueTime,
    TraceParent,
    Attempts,
    Error,
    DeadTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Fair batches visit the tenants with queued work and read each one's oldest rows.
        manager
            .create_index(
                Index::create()
                    .name("ix_scoring_queue_tenant")
                    .table(ScoringQueue::Table)
                    .col(ScoringQueue::TenantId)
                    .col(ScoringQueue::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScoringFailures::Table)
                    .col(big_integer(ScoringFailures::QueueId).primary_key())
                    .col(string(ScoringFailures::TenantId))
                    .col(integer(ScoringFailures::Attempts))
                    .col(text(ScoringFailures::Error))
                    .col(big_integer(ScoringFailures::UpdateTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScoringDeadLetters::Table)
                    .col(big_pk_auto(ScoringDeadLetters::Id))
                    .col(string(ScoringDeadLetters::TenantId))
                    .col(integer(ScoringDeadLetters::Partition))
                    .col(integer(ScoringDeadLetters::Kind))
                    .col(string(ScoringDeadLetters::SubjectId))
                    .col(big_integer_null(ScoringDeadLetters::EventSeq))
                    .col(big_integer(ScoringDeadLetters::EnqueueTime))
                    .col(string_null(ScoringDeadLetters::TraceParent))
                    .col(integer(ScoringDeadLetters::Attempts))
                    .col(text(ScoringDeadLetters::Error))
                    .col(big_integer(ScoringDeadLetters::DeadTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scoring_dead_letters_tenant")
                    .table(ScoringDeadLetters::Table)
                    .col(ScoringDeadLetters::TenantId)
                    .col(ScoringDeadLetters::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ScoringDeadLetters::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ScoringFailures::Table).to_owned()).await?;
        manager
            .drop_index(
                Index::drop().name("ix_scoring_queue_tenant").table(ScoringQueue::Table).to_owned(),
            )
            .await
    }
}
