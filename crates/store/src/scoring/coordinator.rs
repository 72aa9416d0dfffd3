//! The scoring worker's connection ([`ScorerDb`]): on PostgreSQL a dedicated session whose
//! advisory locks give replicas their member slots and partitions, the reads a worker needs
//! outside a scoring transaction, and [`ScorerDb::begin`], which opens one only while the
//! session still holds the partitions it is for.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::transaction::ScorerTxn;
use crate::entity::{lead, lead_score, model, model_version, scoring_queue, tenant};
use crate::queue::{CHUNK, PARTITIONS, WorkKind};
use crate::rows::{ActiveVersion, StoredScore, score_row};
use crate::sql::sql;
use crate::{Error, Result, Store};

/// Advisory-lock key spaces (first `int4` of `pg_try_advisory_lock(int4, int4)`).
const LOCK_MEMBER: i32 = 0x4b4c_0001;
const LOCK_PARTITION: i32 = 0x4b4c_0002;
/// Member slots a replica may take.
const MAX_MEMBERS: i32 = 1024;

impl Store {
    /// The scoring worker's connection. On PostgreSQL it is a dedicated session: the advisory
    /// locks that give the worker its partitions belong to it, and every scoring transaction
    /// runs on it and first checks that the session still holds them, so a worker that lost
    /// its session (and so its partitions) can never write. On SQLite the embedded server is
    /// the only worker and owns every partition.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scorer_db", otel.kind = "client"))]
    pub async fn scorer_db(&self) -> Result<ScorerDb> {
        match self.db.get_database_backend() {
            DbBackend::Postgres => {
                // Every query of this session is a key lookup or a range on an index. After
                // bulk writes (a first import, a rescore) the statistics autovacuum keeps lag
                // by a minute or more and say the tables are tiny, so the planner picks
                // sequential scans, and caches them in generic plans: tens of ms per 500-key
                // lookup on a 100k-row table instead of 2. So no sequential scan unless no
                // index applies. (Custom plans would fix it too, but planning every statement
                // costs the small batches of a steady flow more than it saves.)
                let separator = if self.url.contains('?') { '&' } else { '?' };
                let url = format!("{}{separator}options=-c%20enable_seqscan%3Doff", self.url);
                let mut options = ConnectOptions::new(url);
                options
                    .sqlx_logging(false)
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_timeout(Duration::from_secs(10))
                    .acquire_timeout(Duration::from_secs(30));
                let session = Database::connect(options).await?;
                Ok(ScorerDb {
                    session,
                    db: self.db.clone(),
                    coordinated: true,
                    clock: self.clock.clone(),
                })
            }
            _ => Ok(ScorerDb {
                session: self.db.clone(),
                db: self.db.clone(),
                coordinated: false,
                clock: self.clock.clone(),
            }),
        }
    }
}

/// The scoring worker's view of the store (see [`Store::scorer_db`]).
#[derive(Debug, Clone)]
pub struct ScorerDb {
    /// The dedicated session: advisory locks and scoring transactions.
    pub(crate) session: DatabaseConnection,
    /// The shared pool, for reads that need no lock.
    db: DatabaseConnection,
    coordinated: bool,
    /// The store's clock (dead letters' times).
    pub(crate) clock: kelvin_clock::Clock,
}

impl ScorerDb {
    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Whether several replicas share the work (PostgreSQL); otherwise this worker owns every
    /// partition.
    pub fn coordinated(&self) -> bool {
        self.coordinated
    }

    /// Joins the replica group: takes the first free member slot (a session advisory lock),
    /// released by PostgreSQL when this session ends, however it ends.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.join", otel.kind = "client"))]
    pub async fn join(&self) -> Result<i32> {
        if !self.coordinated {
            return Ok(0);
        }
        for slot in 0..MAX_MEMBERS {
            let row = self
                .session
                .query_one_raw(sql(
                    self.backend(),
                    "SELECT pg_try_advisory_lock($1, $2) AS ok",
                    vec![LOCK_MEMBER.into(), slot.into()],
                ))
                .await?;
            if row.map(|r| r.try_get::<bool>("", "ok")).transpose()?.unwrap_or(false) {
                return Ok(slot);
            }
        }
        Err(Error::FailedPrecondition(format!("all {MAX_MEMBERS} scoring member slots are taken")))
    }

    /// Member slots of the live replicas (sessions holding a member lock), ascending.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.members", otel.kind = "client"))]
    pub async fn members(&self) -> Result<Vec<i32>> {
        if !self.coordinated {
            return Ok(vec![0]);
        }
        self.locks_held(LOCK_MEMBER, false).await
    }

    /// Partitions whose lock this session holds.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.held_partitions", otel.kind = "client"))]
    pub async fn held_partitions(&self) -> Result<Vec<i32>> {
        if !self.coordinated {
            return Ok((0..PARTITIONS).collect());
        }
        self.locks_held(LOCK_PARTITION, true).await
    }

    async fn locks_held(&self, space: i32, mine: bool) -> Result<Vec<i32>> {
        let text = format!(
            "SELECT objid::bigint AS k FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND objsubid = 2 AND classid::bigint = $1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) {} \
             ORDER BY 1",
            if mine { "AND pid = pg_backend_pid()" } else { "" }
        );
        let rows = self
            .session
            .query_all_raw(sql(self.backend(), &text, vec![i64::from(space).into()]))
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64>("", "k")? as i32))
            .collect::<std::result::Result<Vec<_>, sea_orm::DbErr>>()
            .map_err(Error::from)
    }

    /// Tries to take partition `p`; `false` while another replica holds it.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.try_lock_partition", otel.kind = "client"))]
    pub async fn try_lock_partition(&self, p: i32) -> Result<bool> {
        if !self.coordinated {
            return Ok(true);
        }
        let row = self
            .session
            .query_one_raw(sql(
                self.backend(),
                "SELECT pg_try_advisory_lock($1, $2) AS ok",
                vec![LOCK_PARTITION.into(), p.into()],
            ))
            .await?;
        Ok(row.map(|r| r.try_get::<bool>("", "ok")).transpose()?.unwrap_or(false))
    }

    /// Hands partition `p` back.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.unlock_partition", otel.kind = "client"))]
    pub async fn unlock_partition(&self, p: i32) -> Result<()> {
        if self.coordinated {
            self.session
                .execute_raw(sql(
                    self.backend(),
                    "SELECT pg_advisory_unlock($1, $2)",
                    vec![LOCK_PARTITION.into(), p.into()],
                ))
                .await?;
        }
        Ok(())
    }

    /// The active version of every model of every active tenant.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.active_versions", otel.kind = "client"))]
    pub async fn active_versions(&self) -> Result<Vec<ActiveVersion>> {
        let active: HashMap<String, i64> = tenant::Entity::find()
            .filter(tenant::Column::State.eq("active"))
            .select_only()
            .column(tenant::Column::Id)
            .column(tenant::Column::CreateTime)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(model::Entity::find()
            .filter(model::Column::ActiveVersion.gt(0))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|m| {
                Some(ActiveVersion {
                    tenant_incarnation: *active.get(&m.tenant_id)?,
                    tenant_id: m.tenant_id,
                    model_id: m.id,
                    version: m.active_version,
                })
            })
            .collect())
    }

    /// The spec (JSON text) of one model version.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.model_spec", otel.kind = "client"))]
    pub async fn model_spec(
        &self,
        tenant_id: &str,
        model_id: &str,
        version: i64,
    ) -> Result<String> {
        model_version::Entity::find_by_id((tenant_id.to_owned(), model_id.to_owned(), version))
            .one(&self.db)
            .await?
            .map(|v| v.spec_json)
            .ok_or_else(|| Error::not_found("model version", format!("{model_id}@{version}")))
    }

    /// Leads of a tenant after `after` by id (a page of a rescore pass).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.lead_ids", otel.kind = "client"))]
    pub async fn lead_ids(&self, tenant_id: &str, after: &str, limit: u64) -> Result<Vec<String>> {
        Ok(lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant_id))
            .filter(lead::Column::Id.gt(after))
            .order_by_asc(lead::Column::Id)
            .limit(limit)
            .select_only()
            .column(lead::Column::Id)
            .into_tuple::<String>()
            .all(&self.db)
            .await?)
    }

    /// Those of `lead_ids` with queued event or attribute work of their own. A rescore pass
    /// leaves them to that work, which scores them under the active version anyway and knows
    /// what changed them (a lead first seen through an event that arrived after the publish is
    /// scored for its event, not as a rescore).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.leads_with_work", otel.kind = "client"))]
    pub async fn leads_with_work(
        &self,
        tenant_id: &str,
        lead_ids: &[String],
    ) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in lead_ids.chunks(CHUNK) {
            let rows: Vec<String> = scoring_queue::Entity::find()
                .filter(scoring_queue::Column::TenantId.eq(tenant_id))
                .filter(scoring_queue::Column::SubjectId.is_in(chunk.iter().cloned()))
                .filter(
                    scoring_queue::Column::Kind
                        .is_in([WorkKind::Event as i32, WorkKind::Lead as i32]),
                )
                .select_only()
                .column(scoring_queue::Column::SubjectId)
                .distinct()
                .into_tuple()
                .all(&self.session)
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// How many leads a tenant has (the length of a rescore pass).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.lead_count", otel.kind = "client"))]
    pub async fn lead_count(&self, tenant_id: &str) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant_id))
            .count(&self.db)
            .await?)
    }

    /// When the oldest work not applied yet was enqueued (all partitions); `None` when the
    /// queue is empty. One primary-key probe: cheap enough to run every rebalance.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.oldest_work_time", otel.kind = "client"))]
    pub async fn oldest_work_time(&self) -> Result<Option<i64>> {
        Ok(scoring_queue::Entity::find()
            .order_by_asc(scoring_queue::Column::Id)
            .select_only()
            .column(scoring_queue::Column::EnqueueTime)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?)
    }

    /// The version each lead's stored score under `model_id` was computed with.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.score_versions", otel.kind = "client"))]
    pub async fn score_versions(
        &self,
        tenant_id: &str,
        model_id: &str,
        lead_ids: &[String],
    ) -> Result<HashMap<String, i64>> {
        let mut out = HashMap::new();
        for chunk in lead_ids.chunks(CHUNK) {
            let rows: Vec<(String, i64)> = lead_score::Entity::find()
                .filter(lead_score::Column::TenantId.eq(tenant_id))
                .filter(lead_score::Column::ModelId.eq(model_id))
                .filter(lead_score::Column::LeadId.is_in(chunk.iter().cloned()))
                .select_only()
                .column(lead_score::Column::LeadId)
                .column(lead_score::Column::ModelVersion)
                .into_tuple()
                .all(&self.session)
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Leads of `partitions` whose band time may have moved by `now`, soonest first.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.due_leads", otel.kind = "client"))]
    pub async fn due_leads(
        &self,
        partitions: &[i32],
        now: i64,
        limit: u64,
    ) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = lead_score::Entity::find()
            .filter(lead_score::Column::NextCheck.lte(now))
            .filter(lead_score::Column::Partition.is_in(partitions.iter().copied()))
            .order_by_asc(lead_score::Column::NextCheck)
            .limit(limit)
            .select_only()
            .column(lead_score::Column::TenantId)
            .column(lead_score::Column::LeadId)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut seen = std::collections::HashSet::new();
        Ok(rows.into_iter().filter(|r| seen.insert(r.clone())).collect())
    }

    /// Scores of `partitions` that changed at or after `since` (to refresh the cache after
    /// taking partitions over).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scores_changed_since", otel.kind = "client"))]
    pub async fn scores_changed_since(
        &self,
        partitions: &[i32],
        since: i64,
    ) -> Result<Vec<StoredScore>> {
        Ok(lead_score::Entity::find()
            .filter(lead_score::Column::Partition.is_in(partitions.iter().copied()))
            .filter(lead_score::Column::UpdateTime.gte(since))
            .all(&self.db)
            .await?
            .into_iter()
            .map(score_row)
            .collect())
    }

    /// Starts a scoring transaction for work in `partitions`; fails with `Aborted` when this
    /// session no longer holds all of them (the worker must then re-read what it owns).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.begin", otel.kind = "client"))]
    pub async fn begin(&self, partitions: &[i32]) -> Result<ScorerTxn> {
        let txn = crate::write_txn(&self.session).await?;
        if self.coordinated && !partitions.is_empty() {
            let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            let text = format!(
                "SELECT count(*)::bigint AS n FROM pg_locks WHERE locktype = 'advisory' \
                 AND granted AND pid = pg_backend_pid() AND objsubid = 2 \
                 AND classid::bigint = $1 AND objid::bigint IN ({list})"
            );
            let n = txn
                .query_one_raw(sql(self.backend(), &text, vec![i64::from(LOCK_PARTITION).into()]))
                .await?
                .map(|r| r.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or(0);
            if n != partitions.len() as i64 {
                txn.rollback().await?;
                return Err(Error::Aborted("this worker no longer holds its partitions".into()));
            }
        }
        Ok(ScorerTxn { txn, backend: self.backend() })
    }
}
