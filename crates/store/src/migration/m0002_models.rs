//! Scoring models, their immutable versions, activations and organization templates.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Models {
    Table,
    TenantId,
    Id,
    DisplayName,
    ActiveVersion,
    LatestVersion,
    CreateTime,
    UpdateTime,
    Revision,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    TenantId,
    ModelId,
    Version,
    SpecJson,
    SpecSha256,
    Creator,
    Comment,
    CreateTime,
    PublishTime,
}

#[derive(DeriveIden)]
enum ModelActivations {
    Table,
    Id,
    TenantId,
    ModelId,
    Version,
    PreviousVersion,
    Kind,
    Actor,
    Time,
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    OrgId,
    Id,
    DisplayName,
    SpecJson,
    ParametersJson,
    Creator,
    CreateTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Models::Table)
                    .col(string(Models::TenantId))
                    .col(string(Models::Id))
                    .col(string(Models::DisplayName))
                    .col(big_integer(Models::ActiveVersion))
                    .col(big_integer(Models::LatestVersion))
                    .col(big_integer(Models::CreateTime))
                    .col(big_integer(Models::UpdateTime))
                    .col(big_integer(Models::Revision))
                    .primary_key(Index::create().col(Models::TenantId).col(Models::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ModelVersions::Table)
                    .col(string(ModelVersions::TenantId))
                    .col(string(ModelVersions::ModelId))
                    .col(big_integer(ModelVersions::Version))
                    .col(text(ModelVersions::SpecJson))
                    .col(string(ModelVersions::SpecSha256))
                    .col(string(ModelVersions::Creator))
                    .col(text(ModelVersions::Comment))
                    .col(big_integer(ModelVersions::CreateTime))
                    .col(big_integer_null(ModelVersions::PublishTime))
                    .primary_key(
                        Index::create()
                            .col(ModelVersions::TenantId)
                            .col(ModelVersions::ModelId)
                            .col(ModelVersions::Version),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ModelActivations::Table)
                    .col(string(ModelActivations::Id).primary_key())
                    .col(string(ModelActivations::TenantId))
                    .col(string(ModelActivations::ModelId))
                    .col(big_integer(ModelActivations::Version))
                    .col(big_integer(ModelActivations::PreviousVersion))
                    .col(string(ModelActivations::Kind))
                    .col(string(ModelActivations::Actor))
                    .col(big_integer(ModelActivations::Time))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_model_activations_tenant")
                    .table(ModelActivations::Table)
                    .col(ModelActivations::TenantId)
                    .col(ModelActivations::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Templates::Table)
                    .col(string(Templates::OrgId))
                    .col(string(Templates::Id))
                    .col(string(Templates::DisplayName))
                    .col(text(Templates::SpecJson))
                    .col(text(Templates::ParametersJson))
                    .col(string(Templates::Creator))
                    .col(big_integer(Templates::CreateTime))
                    .primary_key(Index::create().col(Templates::OrgId).col(Templates::Id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Templates::Table.into_iden(),
            ModelActivations::Table.into_iden(),
            ModelVersions::Table.into_iden(),
            Models::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
