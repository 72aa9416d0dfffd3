//! Scoring: the work queue, stored scores with their incremental state, company scores, and the
//! per-tenant change stream.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScoringQueue {
    Table,
    Id,
    Partition,
    TenantId,
    Kind,
    SubjectId,
    EventSeq,
    EnqueueTime,
}

#[derive(DeriveIden)]
enum LeadScores {
    Table,
    TenantId,
    ModelId,
    LeadId,
    Partition,
    CompanyId,
    ModelVersion,
    Fit,
    Engagement,
    Total,
    Band,
    Disqualification,
    State,
    EventCount,
    AsOf,
    NextCheck,
    UpdateTime,
}

#[derive(DeriveIden)]
enum CompanyScores {
    Table,
    TenantId,
    ModelId,
    CompanyId,
    ModelVersion,
    Fit,
    Leads,
    Total,
    Band,
    LeadCount,
    UpdateTime,
}

#[derive(DeriveIden)]
enum ScoreChanges {
    Table,
    TenantId,
    ChangeNo,
    LeadId,
    ModelId,
    ModelVersion,
    PreviousBand,
    Band,
    PreviousTotal,
    Total,
    Cause,
    BandChanged,
    Time,
}

#[derive(DeriveIden)]
enum ChangeCounters {
    Table,
    TenantId,
    Last,
}

#[derive(DeriveIden)]
enum Leads {
    Table,
    TenantId,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ScoringQueue::Table)
                    .col(big_pk_auto(ScoringQueue::Id))
                    .col(integer(ScoringQueue::Partition))
                    .col(string(ScoringQueue::TenantId))
                    .col(integer(ScoringQueue::Kind))
                    .col(string(ScoringQueue::SubjectId))
                    .col(big_integer_null(ScoringQueue::EventSeq))
                    .col(big_integer(ScoringQueue::EnqueueTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scoring_queue_partition")
                    .table(ScoringQueue::Table)
                    .col(ScoringQueue::Partition)
                    .col(ScoringQueue::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scoring_queue_subject")
                    .table(ScoringQueue::Table)
                    .col(ScoringQueue::TenantId)
                    .col(ScoringQueue::SubjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LeadScores::Table)
                    .col(string(LeadScores::TenantId))
                    .col(string(LeadScores::ModelId))
                    .col(string(LeadScores::LeadId))
                    .col(integer(LeadScores::Partition))
                    .col(string_null(LeadScores::CompanyId))
                    .col(big_integer(LeadScores::ModelVersion))
                    .col(big_integer(LeadScores::Fit))
                    .col(big_integer(LeadScores::Engagement))
                    .col(big_integer(LeadScores::Total))
                    .col(string(LeadScores::Band))
                    .col(string(LeadScores::Disqualification))
                    .col(blob(LeadScores::State))
                    .col(big_integer(LeadScores::EventCount))
                    .col(big_integer(LeadScores::AsOf))
                    .col(big_integer_null(LeadScores::NextCheck))
                    .col(big_integer(LeadScores::UpdateTime))
                    .primary_key(
                        Index::create()
                            .col(LeadScores::TenantId)
                            .col(LeadScores::ModelId)
                            .col(LeadScores::LeadId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_lead_scores_lead")
                            .from(LeadScores::Table, (LeadScores::TenantId, LeadScores::LeadId))
                            .to(Leads::Table, (Leads::TenantId, Leads::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "ix_lead_scores_rank",
                vec![
                    LeadScores::TenantId,
                    LeadScores::ModelId,
                    LeadScores::Total,
                    LeadScores::LeadId,
                ],
            ),
            ("ix_lead_scores_lead", vec![LeadScores::TenantId, LeadScores::LeadId]),
            (
                "ix_lead_scores_company",
                vec![LeadScores::TenantId, LeadScores::ModelId, LeadScores::CompanyId],
            ),
            ("ix_lead_scores_next_check", vec![LeadScores::NextCheck]),
        ] {
            let mut index = Index::create();
            index.name(name).table(LeadScores::Table);
            for c in cols {
                index.col(c);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(CompanyScores::Table)
                    .col(string(CompanyScores::TenantId))
                    .col(string(CompanyScores::ModelId))
                    .col(string(CompanyScores::CompanyId))
                    .col(big_integer(CompanyScores::ModelVersion))
                    .col(big_integer(CompanyScores::Fit))
                    .col(big_integer(CompanyScores::Leads))
                    .col(big_integer(CompanyScores::Total))
                    .col(string(CompanyScores::Band))
                    .col(integer(CompanyScores::LeadCount))
                    .col(big_integer(CompanyScores::UpdateTime))
                    .primary_key(
                        Index::create()
                            .col(CompanyScores::TenantId)
                            .col(CompanyScores::ModelId)
                            .col(CompanyScores::CompanyId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_company_scores_rank")
                    .table(CompanyScores::Table)
                    .col(CompanyScores::TenantId)
                    .col(CompanyScores::ModelId)
                    .col(CompanyScores::Total)
                    .col(CompanyScores::CompanyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScoreChanges::Table)
                    .col(string(ScoreChanges::TenantId))
                    .col(big_integer(ScoreChanges::ChangeNo))
                    .col(string(ScoreChanges::LeadId))
                    .col(string(ScoreChanges::ModelId))
                    .col(big_integer(ScoreChanges::ModelVersion))
                    .col(string(ScoreChanges::PreviousBand))
                    .col(string(ScoreChanges::Band))
                    .col(big_integer(ScoreChanges::PreviousTotal))
                    .col(big_integer(ScoreChanges::Total))
                    .col(integer(ScoreChanges::Cause))
                    .col(boolean(ScoreChanges::BandChanged))
                    .col(big_integer(ScoreChanges::Time))
                    .primary_key(
                        Index::create().col(ScoreChanges::TenantId).col(ScoreChanges::ChangeNo),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_score_changes_lead")
                    .table(ScoreChanges::Table)
                    .col(ScoreChanges::TenantId)
                    .col(ScoreChanges::LeadId)
                    .col(ScoreChanges::ModelId)
                    .col(ScoreChanges::ChangeNo)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChangeCounters::Table)
                    .col(string(ChangeCounters::TenantId).primary_key())
                    .col(big_integer(ChangeCounters::Last))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ChangeCounters::Table.into_iden(),
            ScoreChanges::Table.into_iden(),
            CompanyScores::Table.into_iden(),
            LeadScores::Table.into_iden(),
            ScoringQueue::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
