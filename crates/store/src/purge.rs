//! Erasing soft-deleted tenants once their purge time has passed.

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::Result;
use crate::audit::{self, AuditContext, Entry};
use crate::entity::{
    api_key, change_counter, company, company_score, event, lead, lead_score, model,
    model_activation, model_version, outcome, score_change, scoring_dead_letter, scoring_failure,
    scoring_queue, tenant,
};

/// Erases every tenant due for purge: its API keys, its own row and (as later features add
/// tenant-owned tables) all its data, in one transaction per tenant. Audit rows stay, holding
/// identifiers only.
pub(crate) async fn purge_due_tenants(
    db: &DatabaseConnection,
    now: i64,
) -> Result<Vec<(String, i64)>> {
    let due = tenant::Entity::find()
        .filter(tenant::Column::State.eq("deleted"))
        .filter(tenant::Column::PurgeTime.lte(now))
        .all(db)
        .await?;
    let mut purged = Vec::new();
    for t in due {
        let txn = crate::write_txn(db).await?;
        purge_tenant(&txn, &t.id).await?;
        audit::commit(
            txn,
            "system:purge",
            &AuditContext { request_id: String::new(), reason: "purge time reached".into() },
            Entry {
                org_id: Some(&t.org_id),
                tenant_id: Some(&t.id),
                action: "tenant.purge",
                resource: format!("tenants/{}", t.id),
                before: None,
                after: None,
            },
            now,
        )
        .await?;
        tracing::info!(tenant = %t.id, "tenant purged");
        purged.push((t.id, t.create_time));
    }
    Ok(purged)
}

async fn purge_tenant<C: ConnectionTrait>(db: &C, tenant_id: &str) -> Result<()> {
    api_key::Entity::delete_many().filter(api_key::Column::TenantId.eq(tenant_id)).exec(db).await?;
    model_activation::Entity::delete_many()
        .filter(model_activation::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    model_version::Entity::delete_many()
        .filter(model_version::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    model::Entity::delete_many().filter(model::Column::TenantId.eq(tenant_id)).exec(db).await?;
    scoring_queue::Entity::delete_many()
        .filter(scoring_queue::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    scoring_failure::Entity::delete_many()
        .filter(scoring_failure::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    scoring_dead_letter::Entity::delete_many()
        .filter(scoring_dead_letter::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    lead_score::Entity::delete_many()
        .filter(lead_score::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    company_score::Entity::delete_many()
        .filter(company_score::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    score_change::Entity::delete_many()
        .filter(score_change::Column::TenantId.eq(tenant_id))
        .exec(db)
        .await?;
    change_counter::Entity::delete_by_id(tenant_id.to_owned()).exec(db).await?;
    event::Entity::delete_many().filter(event::Column::TenantId.eq(tenant_id)).exec(db).await?;
    outcome::Entity::delete_many().filter(outcome::Column::TenantId.eq(tenant_id)).exec(db).await?;
    lead::Entity::delete_many().filter(lead::Column::TenantId.eq(tenant_id)).exec(db).await?;
    company::Entity::delete_many().filter(company::Column::TenantId.eq(tenant_id)).exec(db).await?;
    tenant::Entity::delete_by_id(tenant_id.to_owned()).exec(db).await?;
    Ok(())
}
