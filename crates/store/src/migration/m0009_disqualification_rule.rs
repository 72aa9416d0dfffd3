//! The id of the exclusion that disqualified a lead, beside its reason, on stored scores: a
//! reason is text for sales, the id is what a model's author looks up (issue 16).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LeadScores {
    Table,
    DisqualificationRule,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(LeadScores::Table)
                    .add_column(string(LeadScores::DisqualificationRule).default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(LeadScores::Table)
                    .drop_column(LeadScores::DisqualificationRule)
                    .to_owned(),
            )
            .await
    }
}
