//! Helpers for tests and benchmarks, compiled only with the `testing` feature (or in the
//! store's own tests): unscoped reads across tenants and raw SQL, which no production caller
//! may reach.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::entity::{event, lead, lead_score, outcome, score_change, scoring_queue};
use crate::{Result, Store};

impl Store {
    /// Rows that mention a lead, table by table: what an erasure must leave at zero.
    /// (Audit rows name an erased lead only by a hash.)
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.lead_footprint", otel.kind = "client"))]
    pub async fn lead_footprint(
        &self,
        tenant_id: &str,
        lead_id: &str,
    ) -> Result<Vec<(&'static str, u64)>> {
        use sea_orm::PaginatorTrait;
        let db = &self.db;
        Ok(vec![
            (
                "leads",
                lead::Entity::find()
                    .filter(lead::Column::TenantId.eq(tenant_id))
                    .filter(lead::Column::Id.eq(lead_id))
                    .count(db)
                    .await?,
            ),
            (
                "events",
                event::Entity::find()
                    .filter(event::Column::TenantId.eq(tenant_id))
                    .filter(event::Column::LeadId.eq(lead_id))
                    .count(db)
                    .await?,
            ),
            (
                "outcomes",
                outcome::Entity::find()
                    .filter(outcome::Column::TenantId.eq(tenant_id))
                    .filter(outcome::Column::LeadId.eq(lead_id))
                    .count(db)
                    .await?,
            ),
            (
                "lead_scores",
                lead_score::Entity::find()
                    .filter(lead_score::Column::TenantId.eq(tenant_id))
                    .filter(lead_score::Column::LeadId.eq(lead_id))
                    .count(db)
                    .await?,
            ),
            (
                "score_changes",
                score_change::Entity::find()
                    .filter(score_change::Column::TenantId.eq(tenant_id))
                    .filter(score_change::Column::LeadId.eq(lead_id))
                    .count(db)
                    .await?,
            ),
            (
                "scoring_queue",
                scoring_queue::Entity::find()
                    .filter(scoring_queue::Column::TenantId.eq(tenant_id))
                    .filter(scoring_queue::Column::SubjectId.eq(lead_id))
                    .count(db)
                    .await?,
            ),
        ])
    }

    /// Queue rows not applied yet (all tenants): 0 once the workers caught up.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.pending_scoring_work", otel.kind = "client"))]
    pub async fn pending_scoring_work(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(scoring_queue::Entity::find().count(&self.db).await?)
    }

    /// Events absorbed into a tenant's stored scores under `model_id` (the sum over its
    /// leads): equal to the tenant's stored events once scoring caught up, if nothing was
    /// counted twice.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scored_event_count", otel.kind = "client"))]
    pub async fn scored_event_count(&self, tenant_id: &str, model_id: &str) -> Result<i64> {
        let total: Option<Option<i64>> = lead_score::Entity::find()
            .filter(lead_score::Column::TenantId.eq(tenant_id))
            .filter(lead_score::Column::ModelId.eq(model_id))
            .select_only()
            // SUM of a bigint is a numeric on PostgreSQL: cast it back.
            .column_as(sea_orm::sea_query::Expr::cust("CAST(SUM(event_count) AS BIGINT)"), "n")
            .into_tuple::<Option<i64>>()
            .one(&self.db)
            .await?;
        Ok(total.flatten().unwrap_or(0))
    }

    /// Runs raw SQL (tests use it to prepare databases and to break them on purpose).
    pub async fn execute_unprepared(&self, sql: &str) -> Result<()> {
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }
}
