//! Scoring work that fails. A queue row whose work fails (outside a transient database
//! problem) gets an attempt recorded; after `max_attempts` it moves out of the queue into
//! `scoring_dead_letters`, so that one bad item can never hold back the work behind it, of its
//! tenant or of any other. Its tenant sees it (`ListDeadLetters`) and puts it back in the queue
//! once the cause is fixed (`RetryDeadLetters`, audited).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::audit::{self, AuditContext, Entry};
use crate::entity::{lead_score, scoring_dead_letter, scoring_failure, scoring_queue};
use crate::page::Page;
use crate::queue::{CHUNK, NewWork, WorkKind, enqueue};
use crate::scoring::ScorerDb;
use crate::{Access, Error, Result, TenantScope};

/// Longest error text kept with a failure.
const MAX_ERROR_CHARS: usize = 1000;

/// A dead letter as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub kind: WorkKind,
    /// The lead (or company) whose work failed.
    pub subject_id: String,
    pub event_seq: Option<i64>,
    pub attempts: i32,
    pub error: String,
    pub enqueue_time_ms: i64,
    pub dead_time_ms: i64,
}

/// Error text safe to store and print: bounded, without control characters.
fn clean(error: &str) -> String {
    error.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_ERROR_CHARS).collect()
}

impl ScorerDb {
    /// Records a failed attempt at each queue row of `ids` (of `partitions`, which this worker
    /// must still hold); rows that have now failed `max_attempts` times move to the dead
    /// letters. Returns the (tenant, queue id) of the rows moved.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.record_failure", otel.kind = "client"))]
    pub async fn record_failure(
        &self,
        partitions: &[i32],
        ids: &[i64],
        error: &str,
        max_attempts: i32,
    ) -> Result<Vec<(String, i64)>> {
        let now = self.clock.now_ms();
        let error = clean(error);
        let scorer = self.begin(partitions).await?;
        let txn = &scorer.txn;
        let mut dead = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let rows = scoring_queue::Entity::find()
                .filter(scoring_queue::Column::Id.is_in(chunk.iter().copied()))
                .all(txn)
                .await?;
            for row in rows {
                let attempts = scoring_failure::Entity::find_by_id(row.id)
                    .one(txn)
                    .await?
                    .map_or(0, |f| f.attempts)
                    + 1;
                if attempts < max_attempts {
                    let failure = scoring_failure::ActiveModel {
                        queue_id: Set(row.id),
                        tenant_id: Set(row.tenant_id.clone()),
                        attempts: Set(attempts),
                        error: Set(error.clone()),
                        update_time: Set(now),
                    };
                    scoring_failure::Entity::insert(failure)
                        .on_conflict(
                            sea_orm::sea_query::OnConflict::column(
                                scoring_failure::Column::QueueId,
                            )
                            .update_columns([
                                scoring_failure::Column::Attempts,
                                scoring_failure::Column::Error,
                                scoring_failure::Column::UpdateTime,
                            ])
                            .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    continue;
                }
                scoring_dead_letter::ActiveModel {
                    id: sea_orm::NotSet,
                    tenant_id: Set(row.tenant_id.clone()),
                    partition: Set(row.partition),
                    kind: Set(row.kind),
                    subject_id: Set(row.subject_id.clone()),
                    event_seq: Set(row.event_seq),
                    enqueue_time: Set(row.enqueue_time),
                    trace_parent: Set(row.trace_parent.clone()),
                    attempts: Set(attempts),
                    error: Set(error.clone()),
                    dead_time: Set(now),
                }
                .insert(txn)
                .await?;
                scoring_failure::Entity::delete_by_id(row.id).exec(txn).await?;
                scoring_queue::Entity::delete_by_id(row.id).exec(txn).await?;
                dead.push((row.tenant_id, row.id));
            }
        }
        scorer.commit().await?;
        Ok(dead)
    }

    /// Takes a lead out of time re-evaluation (its `next_check` cleared) after its
    /// re-evaluation failed: its next event, attribute change or rescore evaluates it again.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_aside", otel.kind = "client"))]
    pub async fn set_aside(&self, tenant_id: &str, lead_id: &str) -> Result<()> {
        lead_score::Entity::update_many()
            .col_expr(
                lead_score::Column::NextCheck,
                sea_orm::sea_query::Expr::value(Option::<i64>::None),
            )
            .filter(lead_score::Column::TenantId.eq(tenant_id))
            .filter(lead_score::Column::LeadId.eq(lead_id))
            .exec(&self.session)
            .await?;
        Ok(())
    }

    /// Forgets the failed attempts of queue rows that have now been applied.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.clear_failures", otel.kind = "client"))]
    pub async fn clear_failures(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(CHUNK) {
            scoring_failure::Entity::delete_many()
                .filter(scoring_failure::Column::QueueId.is_in(chunk.iter().copied()))
                .exec(&self.session)
                .await?;
        }
        Ok(())
    }
}

impl Access<'_> {
    /// A page of the tenant's dead letters, oldest first.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.dead_letters", otel.kind = "client"))]
    pub async fn dead_letters(
        &self,
        scope: &TenantScope,
        page: &Page,
    ) -> Result<(Vec<DeadLetter>, String)> {
        let mut query = scoring_dead_letter::Entity::find()
            .filter(scoring_dead_letter::Column::TenantId.eq(scope.tenant_id()))
            .order_by_asc(scoring_dead_letter::Column::Id);
        if let Some(after) = &page.after {
            let after: i64 = after.parse().map_err(|_| Error::MalformedPageToken)?;
            query = query.filter(scoring_dead_letter::Column::Id.gt(after));
        }
        let rows = query.limit(page.fetch_limit()).all(self.db).await?;
        let (rows, next) = page.finish(rows, |r| r.id.to_string());
        Ok((
            rows.into_iter()
                .filter_map(|r| {
                    Some(DeadLetter {
                        id: r.id,
                        kind: WorkKind::from_i32(r.kind)?,
                        subject_id: r.subject_id,
                        event_seq: r.event_seq,
                        attempts: r.attempts,
                        error: r.error,
                        enqueue_time_ms: r.enqueue_time,
                        dead_time_ms: r.dead_time,
                    })
                })
                .collect(),
            next,
        ))
    }

    /// Puts the tenant's dead letters `ids` (all of them when empty) back in the scoring queue,
    /// with their attempts forgotten, and audits it. Returns how many were requeued.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.retry_dead_letters", otel.kind = "client"))]
    pub async fn retry_dead_letters(
        &self,
        scope: &TenantScope,
        ids: &[i64],
        ctx: &AuditContext,
    ) -> Result<u64> {
        let now = self.clock.now_ms();
        let txn = crate::write_txn(self.db).await?;
        let mut query = scoring_dead_letter::Entity::find()
            .filter(scoring_dead_letter::Column::TenantId.eq(scope.tenant_id()));
        if !ids.is_empty() {
            query = query.filter(scoring_dead_letter::Column::Id.is_in(ids.iter().copied()));
        }
        let rows = query.all(&txn).await?;
        if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|r| r.id == **id)) {
            return Err(Error::not_found("dead letter", missing.to_string()));
        }
        let work: Vec<NewWork> = rows
            .iter()
            .filter_map(|r| {
                Some(NewWork {
                    tenant_id: r.tenant_id.clone(),
                    kind: WorkKind::from_i32(r.kind)?,
                    subject_id: r.subject_id.clone(),
                    event_seq: r.event_seq,
                    trace_parent: None,
                })
            })
            .collect();
        let retried: Vec<i64> = rows.iter().map(|r| r.id).collect();
        for chunk in retried.chunks(CHUNK) {
            scoring_dead_letter::Entity::delete_many()
                .filter(scoring_dead_letter::Column::TenantId.eq(scope.tenant_id()))
                .filter(scoring_dead_letter::Column::Id.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await?;
        }
        enqueue(&txn, work, now).await?;
        audit::commit(
            txn,
            self.principal.actor(),
            ctx,
            Entry {
                org_id: Some(scope.org_id()),
                tenant_id: Some(scope.tenant_id()),
                action: "scoring.retry_dead_letters",
                resource: format!("tenants/{}/dead-letters", scope.tenant_id()),
                before: None,
                after: Some(serde_json::json!({ "retried": retried })),
            },
            now,
        )
        .await?;
        Ok(retried.len() as u64)
    }
}
