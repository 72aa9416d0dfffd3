//! Erasing a lead (GDPR): everything held about it goes in one transaction, audited under a
//! keyed pseudonym of the lead, and the scoring worker is told to drop what it cached.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::Sha256;

use crate::audit::{self, AuditContext, Entry};
use crate::entity::{
    event, lead, lead_score, outcome, score_change, scoring_dead_letter, scoring_queue,
};
use crate::queue::{NewWork, WorkKind, enqueue};
use crate::{Access, Error, Result, TenantScope};

impl Access<'_> {
    /// Erases a lead, its events, outcomes, scores and score history in one transaction. The
    /// audit row names the lead only by its keyed pseudonym ([`crate::Store::lead_pseudonym`]):
    /// it keeps no personal data, and a plain hash would be reversed by guessing e-mail ids.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.erase_lead", otel.kind = "client"))]
    pub async fn erase_lead(
        &self,
        scope: &TenantScope,
        lead_id: &str,
        ctx: &AuditContext,
    ) -> Result<(u64, u64)> {
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let company_id =
            lead::Entity::find_by_id((scope.tenant_id().to_owned(), lead_id.to_owned()))
                .one(&txn)
                .await?
                .and_then(|l| l.company_id);
        lead_score::Entity::delete_many()
            .filter(lead_score::Column::TenantId.eq(scope.tenant_id()))
            .filter(lead_score::Column::LeadId.eq(lead_id))
            .exec(&txn)
            .await?;
        score_change::Entity::delete_many()
            .filter(score_change::Column::TenantId.eq(scope.tenant_id()))
            .filter(score_change::Column::LeadId.eq(lead_id))
            .exec(&txn)
            .await?;
        scoring_queue::Entity::delete_many()
            .filter(scoring_queue::Column::TenantId.eq(scope.tenant_id()))
            .filter(scoring_queue::Column::SubjectId.eq(lead_id))
            .filter(scoring_queue::Column::Kind.ne(WorkKind::Company as i32))
            .exec(&txn)
            .await?;
        scoring_dead_letter::Entity::delete_many()
            .filter(scoring_dead_letter::Column::TenantId.eq(scope.tenant_id()))
            .filter(scoring_dead_letter::Column::SubjectId.eq(lead_id))
            .filter(scoring_dead_letter::Column::Kind.ne(WorkKind::Company as i32))
            .exec(&txn)
            .await?;
        let lead = lead::Entity::delete_many()
            .filter(lead::Column::TenantId.eq(scope.tenant_id()))
            .filter(lead::Column::Id.eq(lead_id))
            .exec(&txn)
            .await?;
        let events = event::Entity::delete_many()
            .filter(event::Column::TenantId.eq(scope.tenant_id()))
            .filter(event::Column::LeadId.eq(lead_id))
            .exec(&txn)
            .await?;
        let outcomes = outcome::Entity::delete_many()
            .filter(outcome::Column::TenantId.eq(scope.tenant_id()))
            .filter(outcome::Column::LeadId.eq(lead_id))
            .exec(&txn)
            .await?;
        if lead.rows_affected == 0 && events.rows_affected == 0 && outcomes.rows_affected == 0 {
            return Err(Error::not_found("lead", lead_id));
        }
        // The scoring worker owning the lead drops its cache entries (it is their only writer,
        // so no write-through can land after the drop) and recomputes its company.
        let mut work = vec![NewWork {
            tenant_id: scope.tenant_id().to_owned(),
            kind: WorkKind::Erased,
            subject_id: lead_id.to_owned(),
            event_seq: None,
            trace_parent: None,
        }];
        work.extend(company_id.map(|c| NewWork {
            tenant_id: scope.tenant_id().to_owned(),
            kind: WorkKind::Company,
            subject_id: c,
            event_seq: None,
            trace_parent: None,
        }));
        enqueue(&txn, work, now).await?;
        let digest = lead_pseudonym(self.pseudonym_key, scope.tenant_id(), lead_id);
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(scope.org_id()),
                tenant_id: Some(scope.tenant_id()),
                action: "lead.erase",
                resource: format!("tenants/{}/leads/hmac-sha256:{digest}", scope.tenant_id()),
                before: None,
                after: Some(serde_json::json!({
                    "events_erased": events.rows_affected,
                    "outcomes_erased": outcomes.rows_affected,
                })),
            },
            now,
        )
        .await?;
        Ok((events.rows_affected, outcomes.rows_affected))
    }
}

pub(crate) fn lead_pseudonym(key: &[u8], tenant_id: &str, lead_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(tenant_id.as_bytes());
    mac.update(b"/");
    mac.update(lead_id.as_bytes());
    mac.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect()
}
