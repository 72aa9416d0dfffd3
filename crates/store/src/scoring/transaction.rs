//! One scoring transaction ([`ScorerTxn`]): the fair take of queued work, the reads of leads,
//! companies, events and scores it applies, the score, change-stream and queue writes, all
//! committed together with the deletion of the work applied.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::entity::{company, company_score, event, lead, lead_score, score_change, scoring_queue};
use crate::queue::{
    CHUNK, FAIR_TENANTS, NewWork, PARTITIONS, WorkItem, WorkKind, enqueue, work_item,
};
use crate::rows::{
    CompanyRow, LeadRow, NewChange, ScoreChangeRecord, StoredCompanyScore, StoredEvent,
    StoredScore, change_row, company_row, event_row, lead_row, score_model, score_row,
};
use crate::sql::sql;
use crate::{Error, Result};

/// Rows of `E` of one tenant whose `key` column is one of `keys`, `CHUNK` keys per query.
async fn tenant_rows_by_keys<E, C>(
    db: &C,
    tenant: E::Column,
    tenant_id: &str,
    key: E::Column,
    keys: &[String],
) -> Result<Vec<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        out.extend(
            E::find()
                .filter(tenant.eq(tenant_id))
                .filter(key.is_in(chunk.iter().cloned()))
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

/// A queued event work row: id, lead, event seq, enqueue time, trace parent.
type QueuedEvent = (i64, String, Option<i64>, i64, Option<String>);

/// One scoring transaction: everything it writes commits together with the deletion of the
/// work it applied.
pub struct ScorerTxn {
    pub(crate) txn: DatabaseTransaction,
    pub(crate) backend: DbBackend,
}

impl std::fmt::Debug for ScorerTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerTxn").finish_non_exhaustive()
    }
}

impl ScorerTxn {
    /// Up to `limit` queue rows of `partitions`, taken fairly across tenants: the tenants
    /// with queued work are visited round-robin (the first after `after_tenant`, up to
    /// `FAIR_TENANTS` of them per batch), and when several have work each takes at most
    /// `max(limit * share_percent / 100, limit / tenants)` rows, oldest first. A tenant's
    /// backlog therefore never holds back another tenant's work for more than one batch.
    /// Returns the rows (in id order) and the last tenant visited (the next call's cursor).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.work", otel.kind = "client"))]
    pub async fn work(
        &self,
        partitions: &[i32],
        limit: u64,
        share_percent: u32,
        after_tenant: &str,
    ) -> Result<(Vec<WorkItem>, String)> {
        let all = partitions.len() >= PARTITIONS as usize;
        let mut tenants = self.tenants_with_work(partitions, all, after_tenant).await?;
        if tenants.len() < FAIR_TENANTS && !after_tenant.is_empty() {
            // Wrap around to the tenants before the cursor.
            for t in self.tenants_with_work(partitions, all, "").await? {
                if tenants.len() < FAIR_TENANTS && !tenants.contains(&t) {
                    tenants.push(t);
                }
            }
        }
        let Some(last) = tenants.last().cloned() else {
            return Ok((Vec::new(), String::new()));
        };
        let share = if tenants.len() == 1 {
            limit
        } else {
            (limit * u64::from(share_percent.min(100)) / 100)
                .max(limit / tenants.len() as u64)
                .max(1)
        };
        let mut rows = Vec::new();
        for tenant in &tenants {
            let room = limit.saturating_sub(rows.len() as u64);
            if room == 0 {
                break;
            }
            let mut query = scoring_queue::Entity::find()
                .filter(scoring_queue::Column::TenantId.eq(tenant.as_str()));
            if !all {
                query = query
                    .filter(scoring_queue::Column::Partition.is_in(partitions.iter().copied()));
            }
            rows.extend(
                query
                    .order_by_asc(scoring_queue::Column::Id)
                    .limit(share.min(room))
                    .all(&self.txn)
                    .await?,
            );
        }
        rows.sort_by_key(|m| m.id);
        Ok((rows.into_iter().filter_map(work_item).collect(), last))
    }

    /// The queue rows `ids` that are still queued (a worker applying a failed batch's items
    /// one by one).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.work_by_ids", otel.kind = "client"))]
    pub async fn work_by_ids(&self, ids: &[i64]) -> Result<Vec<WorkItem>> {
        Ok(scoring_queue::Entity::find()
            .filter(scoring_queue::Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(scoring_queue::Column::Id)
            .all(&self.txn)
            .await?
            .into_iter()
            .filter_map(work_item)
            .collect())
    }

    /// Up to `FAIR_TENANTS` tenants with queued work in `partitions`, in id order after
    /// `after`: a loose index scan (one index probe per tenant, however long its backlog).
    async fn tenants_with_work(
        &self,
        partitions: &[i32],
        all: bool,
        after: &str,
    ) -> Result<Vec<String>> {
        let filter = if all {
            String::new()
        } else {
            let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            format!(" AND q.partition IN ({list})")
        };
        let text = format!(
            "WITH RECURSIVE t(tenant_id, n) AS ( \
               SELECT (SELECT MIN(q.tenant_id) FROM scoring_queue q WHERE q.tenant_id > $1{filter}), 1 \
               UNION ALL \
               SELECT (SELECT MIN(q.tenant_id) FROM scoring_queue q \
                       WHERE q.tenant_id > t.tenant_id{filter}), t.n + 1 \
               FROM t WHERE t.tenant_id IS NOT NULL AND t.n < $2 \
             ) SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL"
        );
        let rows = self
            .txn
            .query_all_raw(sql(
                self.backend,
                &text,
                vec![after.into(), (FAIR_TENANTS as i64).into()],
            ))
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<String>("", "tenant_id")?)).collect()
    }

    /// Events by ingestion sequence number, with their tenant.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.events_by_seq", otel.kind = "client"))]
    pub async fn events_by_seq(&self, seqs: &[i64]) -> Result<Vec<(String, StoredEvent)>> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(CHUNK) {
            let rows = event::Entity::find()
                .filter(event::Column::Seq.is_in(chunk.iter().copied()))
                .all(&self.txn)
                .await?;
            out.extend(rows.into_iter().map(|m| (m.tenant_id.clone(), event_row(m))));
        }
        Ok(out)
    }

    /// Every stored event of the given leads of a tenant.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.lead_events", otel.kind = "client"))]
    pub async fn lead_events(
        &self,
        tenant_id: &str,
        lead_ids: &[String],
    ) -> Result<Vec<StoredEvent>> {
        let rows = tenant_rows_by_keys::<event::Entity, _>(
            &self.txn,
            event::Column::TenantId,
            tenant_id,
            event::Column::LeadId,
            lead_ids,
        )
        .await?;
        Ok(rows.into_iter().map(event_row).collect())
    }

    /// Leads of a tenant by id (absent ones are left out).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.leads", otel.kind = "client"))]
    pub async fn leads(&self, tenant_id: &str, ids: &[String]) -> Result<Vec<LeadRow>> {
        let rows = tenant_rows_by_keys::<lead::Entity, _>(
            &self.txn,
            lead::Column::TenantId,
            tenant_id,
            lead::Column::Id,
            ids,
        )
        .await?;
        Ok(rows.into_iter().map(lead_row).collect())
    }

    /// Companies of a tenant by id (absent ones are left out).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.companies", otel.kind = "client"))]
    pub async fn companies(&self, tenant_id: &str, ids: &[String]) -> Result<Vec<CompanyRow>> {
        let rows = tenant_rows_by_keys::<company::Entity, _>(
            &self.txn,
            company::Column::TenantId,
            tenant_id,
            company::Column::Id,
            ids,
        )
        .await?;
        Ok(rows.into_iter().map(company_row).collect())
    }

    /// Ids of a company's leads.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.company_lead_ids", otel.kind = "client"))]
    pub async fn company_lead_ids(&self, tenant_id: &str, company_id: &str) -> Result<Vec<String>> {
        Ok(lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant_id))
            .filter(lead::Column::CompanyId.eq(company_id))
            .select_only()
            .column(lead::Column::Id)
            .into_tuple::<String>()
            .all(&self.txn)
            .await?)
    }

    /// Stored scores (every model) of the given leads of a tenant.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scores", otel.kind = "client"))]
    pub async fn scores(&self, tenant_id: &str, lead_ids: &[String]) -> Result<Vec<StoredScore>> {
        let rows = tenant_rows_by_keys::<lead_score::Entity, _>(
            &self.txn,
            lead_score::Column::TenantId,
            tenant_id,
            lead_score::Column::LeadId,
            lead_ids,
        )
        .await?;
        Ok(rows.into_iter().map(score_row).collect())
    }

    /// Stored scores under `model_id` of a company's leads.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.company_member_scores", otel.kind = "client"))]
    pub async fn company_member_scores(
        &self,
        tenant_id: &str,
        model_id: &str,
        company_id: &str,
    ) -> Result<Vec<StoredScore>> {
        Ok(lead_score::Entity::find()
            .filter(lead_score::Column::TenantId.eq(tenant_id))
            .filter(lead_score::Column::ModelId.eq(model_id))
            .filter(lead_score::Column::CompanyId.eq(company_id))
            .all(&self.txn)
            .await?
            .into_iter()
            .map(score_row)
            .collect())
    }

    /// Creates or replaces lead scores.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.put_scores", otel.kind = "client"))]
    pub async fn put_scores(&self, scores: Vec<StoredScore>) -> Result<()> {
        use lead_score::Column as C;
        let mut rows = scores.into_iter().map(score_model).peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(CHUNK / 2).collect();
            lead_score::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([C::TenantId, C::ModelId, C::LeadId])
                        .update_columns([
                            C::Partition,
                            C::CompanyId,
                            C::ModelVersion,
                            C::Fit,
                            C::Engagement,
                            C::Total,
                            C::Band,
                            C::Grade,
                            C::Action,
                            C::Disqualification,
                            C::State,
                            C::EventCount,
                            C::AsOf,
                            C::NextCheck,
                            C::UpdateTime,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&self.txn)
                .await?;
        }
        Ok(())
    }

    /// Removes a lead's score under models that are no longer active.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_scores", otel.kind = "client"))]
    pub async fn delete_scores(
        &self,
        tenant_id: &str,
        lead_id: &str,
        model_ids: &[String],
    ) -> Result<()> {
        if model_ids.is_empty() {
            return Ok(());
        }
        lead_score::Entity::delete_many()
            .filter(lead_score::Column::TenantId.eq(tenant_id))
            .filter(lead_score::Column::LeadId.eq(lead_id))
            .filter(lead_score::Column::ModelId.is_in(model_ids.iter().cloned()))
            .exec(&self.txn)
            .await?;
        Ok(())
    }

    /// Creates, replaces or (with `None`) removes a company's score under a model.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.put_company_score", otel.kind = "client"))]
    pub async fn put_company_score(
        &self,
        key: (&str, &str, &str),
        score: Option<StoredCompanyScore>,
    ) -> Result<()> {
        use company_score::Column as C;
        match score {
            None => {
                company_score::Entity::delete_by_id((
                    key.0.to_owned(),
                    key.1.to_owned(),
                    key.2.to_owned(),
                ))
                .exec(&self.txn)
                .await?;
            }
            Some(s) => {
                company_score::Entity::insert(company_score::ActiveModel {
                    tenant_id: Set(s.tenant_id),
                    model_id: Set(s.model_id),
                    company_id: Set(s.company_id),
                    model_version: Set(s.model_version),
                    fit: Set(s.fit),
                    leads: Set(s.leads),
                    total: Set(s.total),
                    band: Set(s.band),
                    lead_count: Set(s.lead_count),
                    update_time: Set(s.update_time_ms),
                })
                .on_conflict(
                    OnConflict::columns([C::TenantId, C::ModelId, C::CompanyId])
                        .update_columns([
                            C::ModelVersion,
                            C::Fit,
                            C::Leads,
                            C::Total,
                            C::Band,
                            C::LeadCount,
                            C::UpdateTime,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&self.txn)
                .await?;
            }
        }
        Ok(())
    }

    /// Appends changes to their tenants' streams and returns them numbered. The numbers of a
    /// tenant come from its counter row, locked until this transaction commits: a reader that
    /// sees change `n` has already been able to see every change before it.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.append_changes", otel.kind = "client"))]
    pub async fn append_changes(&self, changes: Vec<NewChange>) -> Result<Vec<ScoreChangeRecord>> {
        let mut by_tenant: BTreeMap<String, Vec<NewChange>> = BTreeMap::new();
        for c in changes {
            by_tenant.entry(c.tenant_id.clone()).or_default().push(c);
        }
        let mut out = Vec::new();
        for (tenant_id, changes) in by_tenant {
            let n = changes.len() as i64;
            let last: i64 = self
                .txn
                .query_one_raw(sql(
                    self.backend,
                    "INSERT INTO change_counters (tenant_id, last) VALUES ($1, $2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET last = change_counters.last + excluded.last \
                     RETURNING last",
                    vec![tenant_id.clone().into(), n.into()],
                ))
                .await?
                .map(|r| r.try_get::<i64>("", "last"))
                .transpose()?
                .ok_or_else(|| Error::Aborted("change counter returned no row".into()))?;
            let first = last - n + 1;
            let rows: Vec<score_change::Model> = changes
                .into_iter()
                .enumerate()
                .map(|(i, c)| score_change::Model {
                    tenant_id: c.tenant_id,
                    change_no: first + i as i64,
                    band_changed: c.previous_band != c.band,
                    lead_id: c.lead_id,
                    model_id: c.model_id,
                    model_version: c.model_version,
                    previous_band: c.previous_band,
                    band: c.band,
                    previous_total: c.previous_total,
                    total: c.total,
                    cause: c.cause as i32,
                    time: c.time_ms,
                    grade: c.grade,
                    previous_grade: c.previous_grade,
                    action: c.action,
                })
                .collect();
            for chunk in rows.chunks(CHUNK / 2) {
                score_change::Entity::insert_many(
                    chunk.iter().cloned().map(sea_orm::IntoActiveModel::into_active_model),
                )
                .exec_without_returning(&self.txn)
                .await?;
            }
            out.extend(rows.into_iter().map(change_row));
        }
        Ok(out)
    }

    /// Enqueues follow-up work (company recomputations, fan-out to a company's leads).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.enqueue", otel.kind = "client"))]
    pub async fn enqueue(&self, work: Vec<NewWork>, now: i64) -> Result<()> {
        enqueue(&self.txn, work, now).await
    }

    /// Deletes the queue rows `ids`: all of them, or the transaction fails (`Aborted`) because
    /// another worker applied some of them.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.consume", otel.kind = "client"))]
    pub async fn consume(&self, ids: &[i64]) -> Result<()> {
        let mut deleted = 0;
        for chunk in ids.chunks(CHUNK) {
            deleted += scoring_queue::Entity::delete_many()
                .filter(scoring_queue::Column::Id.is_in(chunk.iter().copied()))
                .exec(&self.txn)
                .await?
                .rows_affected;
        }
        if deleted != ids.len() as u64 {
            return Err(Error::Aborted(format!(
                "{} of {} work items were already applied by another worker",
                ids.len() as u64 - deleted,
                ids.len()
            )));
        }
        Ok(())
    }

    /// Deletes the event work of rebuilt leads for events their rebuild from stored events has
    /// just absorbed (`absorbed`: lead → event seqs; events stored later keep their work).
    /// One indexed read of the leads' queued event work, then a delete of only what matched:
    /// during a rescore there is usually nothing queued, so nothing to delete.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.consume_absorbed", otel.kind = "client"))]
    /// Returns the enqueue times and trace parents of the rows it deleted.
    pub async fn consume_absorbed(
        &self,
        tenant_id: &str,
        absorbed: &HashMap<String, HashSet<i64>>,
    ) -> Result<Vec<(i64, Option<String>)>> {
        let leads: Vec<&String> = absorbed.keys().collect();
        let mut matched: Vec<(i64, i64, Option<String>)> = Vec::new();
        for chunk in leads.chunks(CHUNK) {
            let queued: Vec<QueuedEvent> = scoring_queue::Entity::find()
                .filter(scoring_queue::Column::TenantId.eq(tenant_id))
                .filter(scoring_queue::Column::SubjectId.is_in(chunk.iter().map(|l| l.as_str())))
                .filter(scoring_queue::Column::Kind.eq(WorkKind::Event as i32))
                .select_only()
                .column(scoring_queue::Column::Id)
                .column(scoring_queue::Column::SubjectId)
                .column(scoring_queue::Column::EventSeq)
                .column(scoring_queue::Column::EnqueueTime)
                .column(scoring_queue::Column::TraceParent)
                .into_tuple()
                .all(&self.txn)
                .await?;
            matched.extend(queued.into_iter().filter_map(|(id, lead, seq, enqueued, parent)| {
                let seq = seq?;
                absorbed
                    .get(&lead)
                    .is_some_and(|seqs| seqs.contains(&seq))
                    .then_some((id, enqueued, parent))
            }));
        }
        for chunk in matched.chunks(CHUNK) {
            scoring_queue::Entity::delete_many()
                .filter(scoring_queue::Column::Id.is_in(chunk.iter().map(|(id, _, _)| *id)))
                .exec(&self.txn)
                .await?;
        }
        Ok(matched.into_iter().map(|(_, enqueued, parent)| (enqueued, parent)).collect())
    }

    /// Ends the transaction without writing anything.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rollback", otel.kind = "client"))]
    pub async fn rollback(self) -> Result<()> {
        self.txn.rollback().await?;
        Ok(())
    }

    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.commit", otel.kind = "client"))]
    pub async fn commit(self) -> Result<()> {
        self.txn.commit().await?;
        Ok(())
    }
}
