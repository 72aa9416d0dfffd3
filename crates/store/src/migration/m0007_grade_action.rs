//! The grade (fit × engagement cell, e.g. `A2`) and the band's action on stored scores and on
//! score changes, so that every score, change and stream message carries them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LeadScores {
    Table,
    TenantId,
    ModelId,
    Band,
    Grade,
    Action,
}

#[derive(DeriveIden)]
enum ScoreChanges {
    Table,
    Grade,
    PreviousGrade,
    Action,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for col in [LeadScores::Grade, LeadScores::Action] {
            manager
                .alter_table(
                    Table::alter()
                        .table(LeadScores::Table)
                        .add_column(string(col).default(""))
                        .to_owned(),
                )
                .await?;
        }
        for col in [ScoreChanges::Grade, ScoreChanges::PreviousGrade, ScoreChanges::Action] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ScoreChanges::Table)
                        .add_column(string(col).default(""))
                        .to_owned(),
                )
                .await?;
        }
        // GetBandCounts: leads per band and grade of a model, read from the index alone.
        manager
            .create_index(
                Index::create()
                    .name("ix_lead_scores_bands")
                    .table(LeadScores::Table)
                    .col(LeadScores::TenantId)
                    .col(LeadScores::ModelId)
                    .col(LeadScores::Band)
                    .col(LeadScores::Grade)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop().name("ix_lead_scores_bands").table(LeadScores::Table).to_owned(),
            )
            .await?;
        for col in [LeadScores::Grade, LeadScores::Action] {
            manager
                .alter_table(Table::alter().table(LeadScores::Table).drop_column(col).to_owned())
                .await?;
        }
        for col in [ScoreChanges::Grade, ScoreChanges::PreviousGrade, ScoreChanges::Action] {
            manager
                .alter_table(Table::alter().table(ScoreChanges::Table).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
