//! Organizations, tenants, API keys and the audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    DisplayName,
    CreateRequestId,
    CreateTime,
    UpdateTime,
    Version,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    OrgId,
    DisplayName,
    Labels,
    State,
    CreateRequestId,
    CreateTime,
    UpdateTime,
    DeleteTime,
    PurgeTime,
    Version,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrgId,
    TenantId,
    Role,
    DisplayName,
    Creator,
    CreateTime,
    ExpireTime,
    RevokeTime,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OrgId,
    TenantId,
    Actor,
    Action,
    Resource,
    BeforeJson,
    AfterJson,
    RequestId,
    Reason,
    Time,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(string(Organizations::Id).primary_key())
                    .col(string(Organizations::DisplayName))
                    .col(string_null(Organizations::CreateRequestId).unique_key())
                    .col(big_integer(Organizations::CreateTime))
                    .col(big_integer(Organizations::UpdateTime))
                    .col(big_integer(Organizations::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(string(Tenants::Id).primary_key())
                    .col(string(Tenants::OrgId))
                    .col(string(Tenants::DisplayName))
                    .col(text(Tenants::Labels))
                    .col(string(Tenants::State))
                    .col(string_null(Tenants::CreateRequestId))
                    .col(big_integer(Tenants::CreateTime))
                    .col(big_integer(Tenants::UpdateTime))
                    .col(big_integer_null(Tenants::DeleteTime))
                    .col(big_integer_null(Tenants::PurgeTime))
                    .col(big_integer(Tenants::Version))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenants_org")
                            .from(Tenants::Table, Tenants::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_tenants_org_request")
                    .table(Tenants::Table)
                    .col(Tenants::OrgId)
                    .col(Tenants::CreateRequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tenants_purge")
                    .table(Tenants::Table)
                    .col(Tenants::PurgeTime)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string(ApiKeys::Id).primary_key())
                    .col(string_null(ApiKeys::OrgId))
                    .col(string_null(ApiKeys::TenantId))
                    .col(string(ApiKeys::Role))
                    .col(string(ApiKeys::DisplayName))
                    .col(string(ApiKeys::Creator))
                    .col(big_integer(ApiKeys::CreateTime))
                    .col(big_integer(ApiKeys::ExpireTime))
                    .col(big_integer_null(ApiKeys::RevokeTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_scope")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrgId)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(string(AuditEvents::Id).primary_key())
                    .col(string_null(AuditEvents::OrgId))
                    .col(string_null(AuditEvents::TenantId))
                    .col(string(AuditEvents::Actor))
                    .col(string(AuditEvents::Action))
                    .col(string(AuditEvents::Resource))
                    .col(text_null(AuditEvents::BeforeJson))
                    .col(text_null(AuditEvents::AfterJson))
                    .col(string(AuditEvents::RequestId))
                    .col(text(AuditEvents::Reason))
                    .col(big_integer(AuditEvents::Time))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_org")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrgId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_tenant")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TenantId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Tenants::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
