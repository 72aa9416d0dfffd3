//! Leads, companies, events and outcomes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leads {
    Table,
    TenantId,
    Id,
    CompanyId,
    Attributes,
    Enriched,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum Companies {
    Table,
    TenantId,
    Id,
    Attributes,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Seq,
    TenantId,
    EventId,
    LeadId,
    Kind,
    Time,
    Properties,
    IngestTime,
}

#[derive(DeriveIden)]
enum Outcomes {
    Table,
    TenantId,
    Id,
    LeadId,
    Kind,
    Value,
    Currency,
    Time,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Leads::Table)
                    .col(string(Leads::TenantId))
                    .col(string(Leads::Id))
                    .col(string_null(Leads::CompanyId))
                    .col(text(Leads::Attributes))
                    .col(text(Leads::Enriched))
                    .col(big_integer(Leads::CreateTime))
                    .col(big_integer(Leads::UpdateTime))
                    .primary_key(Index::create().col(Leads::TenantId).col(Leads::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Companies::Table)
                    .col(string(Companies::TenantId))
                    .col(string(Companies::Id))
                    .col(text(Companies::Attributes))
                    .col(big_integer(Companies::CreateTime))
                    .col(big_integer(Companies::UpdateTime))
                    .primary_key(Index::create().col(Companies::TenantId).col(Companies::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_pk_auto(Events::Seq))
                    .col(string(Events::TenantId))
                    .col(string(Events::EventId))
                    .col(string(Events::LeadId))
                    .col(string(Events::Kind))
                    .col(big_integer(Events::Time))
                    .col(text(Events::Properties))
                    .col(big_integer(Events::IngestTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_events_tenant_event")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::EventId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_events_tenant_lead")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::LeadId)
                    .col(Events::Time)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outcomes::Table)
                    .col(string(Outcomes::TenantId))
                    .col(string(Outcomes::Id))
                    .col(string(Outcomes::LeadId))
                    .col(string(Outcomes::Kind))
                    .col(double(Outcomes::Value))
                    .col(string(Outcomes::Currency))
                    .col(big_integer(Outcomes::Time))
                    .primary_key(Index::create().col(Outcomes::TenantId).col(Outcomes::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outcomes_tenant_lead")
                    .table(Outcomes::Table)
                    .col(Outcomes::TenantId)
                    .col(Outcomes::LeadId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Outcomes::Table.into_iden(),
            Events::Table.into_iden(),
            Companies::Table.into_iden(),
            Leads::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
