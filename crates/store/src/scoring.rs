//! What the scoring workers read and write: the work queue, stored scores with their
//! incremental state, company scores and the per-tenant change stream, plus the PostgreSQL
//! advisory locks that split the work between replicas.
//!
//! This is, with the purge sweeper, an unscoped entry point: workers act for the platform on
//! every tenant. Each row still names its tenant, and every query below filters on it.
//!
//! Exactly once: every piece of work is a `scoring_queue` row written in the transaction that
//! stored its cause (an event, a lead or company change, an erasure), and deleted in the
//! transaction that applies it to the scores. [`ScorerTxn::consume`] fails unless it deletes
//! every row it was given, so two workers can never both apply the same row.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    Statement, Value as DbValue,
};

use crate::entity::{
    company, company_score, event, lead, lead_score, model, model_activation, model_version,
    score_change, scoring_queue, tenant,
};
use crate::ingest::{CompanyRow, LeadRow, StoredEvent, company_row, event_row, lead_row};
use crate::{Error, Result, Store};

/// Number of partitions the work is split into. Fixed: a lead's partition is stored with its
/// work and score, so changing it would need a migration.
pub const PARTITIONS: i32 = 64;

/// Rows per statement when a list goes into `IN (...)` or a multi-row insert.
pub(crate) const CHUNK: usize = 500;
/// Most tenants whose queued work one scoring batch takes.
pub const FAIR_TENANTS: usize = 16;

/// Advisory-lock key spaces (first `int4` of `pg_try_advisory_lock(int4, int4)`).
const LOCK_MEMBER: i32 = 0x4b4c_0001;
const LOCK_PARTITION: i32 = 0x4b4c_0002;
/// Member slots a replica may take.
const MAX_MEMBERS: i32 = 1024;

/// The partition of a lead or company: a stable hash (64-bit FNV-1a) of the tenant and the id.
pub fn partition_of(tenant_id: &str, subject_id: &str) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant_id.bytes().chain([0xff]).chain(subject_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % PARTITIONS as u64) as i32
}

/// What a queue row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkKind {
    /// A new event of the lead (`event_seq`).
    Event = 0,
    /// The lead's attributes or company changed.
    Lead = 1,
    /// The company's attributes or leads changed (`subject_id` is the company).
    Company = 2,
    /// The lead was erased: drop what remains of it outside the database (cache entries).
    Erased = 3,
    /// The company's attributes changed: recompute it and rescore its leads.
    CompanyAttributes = 4,
}

impl WorkKind {
    pub(crate) fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Event,
            1 => Self::Lead,
            2 => Self::Company,
            3 => Self::Erased,
            4 => Self::CompanyAttributes,
            _ => return None,
        })
    }
}

/// One queue row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub id: i64,
    pub partition: i32,
    pub tenant_id: String,
    pub kind: WorkKind,
    pub subject_id: String,
    pub event_seq: Option<i64>,
    pub enqueue_time_ms: i64,
    /// The trace of the call that enqueued it (W3C `traceparent`).
    pub trace_parent: Option<String>,
}

/// Work to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWork {
    pub tenant_id: String,
    pub kind: WorkKind,
    pub subject_id: String,
    pub event_seq: Option<i64>,
    /// The trace to continue when applying it (W3C `traceparent`).
    pub trace_parent: Option<String>,
}

pub(crate) fn work_row(w: NewWork, now: i64) -> scoring_queue::ActiveModel {
    scoring_queue::ActiveModel {
        id: sea_orm::NotSet,
        partition: Set(partition_of(&w.tenant_id, &w.subject_id)),
        tenant_id: Set(w.tenant_id),
        kind: Set(w.kind as i32),
        subject_id: Set(w.subject_id),
        event_seq: Set(w.event_seq),
        enqueue_time: Set(now),
        trace_parent: Set(w.trace_parent),
    }
}

pub(crate) async fn enqueue<C: ConnectionTrait>(
    db: &C,
    work: Vec<NewWork>,
    now: i64,
) -> Result<()> {
    let mut rows = work.into_iter().map(|w| work_row(w, now)).peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(CHUNK).collect();
        scoring_queue::Entity::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

/// A model version scoring must apply: the active version of a tenant's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVersion {
    pub tenant_id: String,
    /// See [`crate::TenantScope::incarnation`].
    pub tenant_incarnation: i64,
    pub model_id: String,
    pub version: i64,
}

/// A stored lead score (points in milli-points), read and written by the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredScore {
    pub tenant_id: String,
    pub model_id: String,
    pub lead_id: String,
    pub company_id: Option<String>,
    pub model_version: i64,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    /// Fit × engagement cell of matrix models (`A2`), empty otherwise.
    pub grade: String,
    /// The band's action, empty when the model gives none.
    pub action: String,
    /// Reason of the exclusion that disqualified the lead; empty otherwise.
    pub disqualification: String,
    /// Id of that exclusion; empty otherwise (and on scores stored before it was kept).
    pub disqualification_rule: String,
    /// The engine's incremental state (`LeadState::to_bytes`).
    pub state: Vec<u8>,
    /// Events absorbed into `state`.
    pub event_count: i64,
    pub as_of_ms: i64,
    /// When time alone will next move the band (decay, expiry), if it will.
    pub next_check_ms: Option<i64>,
    /// When the score last changed.
    pub update_time_ms: i64,
}

pub(crate) fn score_row(m: lead_score::Model) -> StoredScore {
    StoredScore {
        tenant_id: m.tenant_id,
        model_id: m.model_id,
        lead_id: m.lead_id,
        company_id: m.company_id,
        model_version: m.model_version,
        fit: m.fit,
        engagement: m.engagement,
        total: m.total,
        band: m.band,
        grade: m.grade,
        action: m.action,
        disqualification: m.disqualification,
        disqualification_rule: m.disqualification_rule,
        state: m.state,
        event_count: m.event_count,
        as_of_ms: m.as_of,
        next_check_ms: m.next_check,
        update_time_ms: m.update_time,
    }
}

fn score_model(s: StoredScore) -> lead_score::ActiveModel {
    lead_score::ActiveModel {
        partition: Set(partition_of(&s.tenant_id, &s.lead_id)),
        tenant_id: Set(s.tenant_id),
        model_id: Set(s.model_id),
        lead_id: Set(s.lead_id),
        company_id: Set(s.company_id),
        model_version: Set(s.model_version),
        fit: Set(s.fit),
        engagement: Set(s.engagement),
        total: Set(s.total),
        band: Set(s.band),
        grade: Set(s.grade),
        action: Set(s.action),
        disqualification: Set(s.disqualification),
        disqualification_rule: Set(s.disqualification_rule),
        state: Set(s.state),
        event_count: Set(s.event_count),
        as_of: Set(s.as_of_ms),
        next_check: Set(s.next_check_ms),
        update_time: Set(s.update_time_ms),
    }
}

/// A stored company score (milli-points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCompanyScore {
    pub tenant_id: String,
    pub model_id: String,
    pub company_id: String,
    pub model_version: i64,
    pub fit: i64,
    pub leads: i64,
    pub total: i64,
    pub band: String,
    pub lead_count: i32,
    pub update_time_ms: i64,
}

pub(crate) fn company_score_row(m: company_score::Model) -> StoredCompanyScore {
    StoredCompanyScore {
        tenant_id: m.tenant_id,
        model_id: m.model_id,
        company_id: m.company_id,
        model_version: m.model_version,
        fit: m.fit,
        leads: m.leads,
        total: m.total,
        band: m.band,
        lead_count: m.lead_count,
        update_time_ms: m.update_time,
    }
}

/// Why a score changed (stored as its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    Events = 1,
    Attributes = 2,
    Time = 3,
    Rescore = 4,
}

/// A change to append to a tenant's change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub tenant_id: String,
    pub lead_id: String,
    pub model_id: String,
    pub model_version: i64,
    pub previous_band: String,
    pub band: String,
    pub previous_grade: String,
    pub grade: String,
    /// The new band's action.
    pub action: String,
    pub previous_total: i64,
    pub total: i64,
    pub cause: ChangeCause,
    pub time_ms: i64,
}

/// A change of the stream, with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreChangeRecord {
    pub change_no: i64,
    pub tenant_id: String,
    pub lead_id: String,
    pub model_id: String,
    pub model_version: i64,
    pub previous_band: String,
    pub band: String,
    pub previous_grade: String,
    pub grade: String,
    pub action: String,
    pub previous_total: i64,
    pub total: i64,
    /// `ChangeCause` as a number (1 events, 2 attributes, 3 time, 4 rescore).
    pub cause: i32,
    pub time_ms: i64,
}

pub(crate) fn change_row(m: score_change::Model) -> ScoreChangeRecord {
    ScoreChangeRecord {
        change_no: m.change_no,
        tenant_id: m.tenant_id,
        lead_id: m.lead_id,
        model_id: m.model_id,
        model_version: m.model_version,
        previous_band: m.previous_band,
        band: m.band,
        previous_grade: m.previous_grade,
        grade: m.grade,
        action: m.action,
        previous_total: m.previous_total,
        total: m.total,
        cause: m.cause,
        time_ms: m.time,
    }
}

fn work_item(m: scoring_queue::Model) -> Option<WorkItem> {
    Some(WorkItem {
        kind: WorkKind::from_i32(m.kind)?,
        id: m.id,
        partition: m.partition,
        tenant_id: m.tenant_id,
        subject_id: m.subject_id,
        event_seq: m.event_seq,
        enqueue_time_ms: m.enqueue_time,
        trace_parent: m.trace_parent,
    })
}

/// Replaces `$1`, `$2`… with `?` for SQLite (parameters are always used in order).
fn sql(backend: DbBackend, text: &str, values: Vec<DbValue>) -> Statement {
    let text = match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => {
            let mut out = String::with_capacity(text.len());
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    Statement::from_sql_and_values(backend, text, values)
}

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
                Ok(ScorerDb { session, db: self.db.clone(), coordinated: true })
            }
            _ => Ok(ScorerDb { session: self.db.clone(), db: self.db.clone(), coordinated: false }),
        }
    }
}

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
                crate::entity::outcome::Entity::find()
                    .filter(crate::entity::outcome::Column::TenantId.eq(tenant_id))
                    .filter(crate::entity::outcome::Column::LeadId.eq(lead_id))
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
}

/// The scoring worker's view of the store (see [`Store::scorer_db`]).
#[derive(Debug, Clone)]
pub struct ScorerDb {
    /// The dedicated session: advisory locks and scoring transactions.
    pub(crate) session: DatabaseConnection,
    /// The shared pool, for reads that need no lock.
    db: DatabaseConnection,
    coordinated: bool,
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

/// One scoring transaction: everything it writes commits together with the deletion of the
/// work it applied.
pub struct ScorerTxn {
    pub(crate) txn: DatabaseTransaction,
    backend: DbBackend,
}

impl std::fmt::Debug for ScorerTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerTxn").finish_non_exhaustive()
    }
}

impl ScorerTxn {
    /// Up to `limit` queue rows of `partitions`, taken fairly across tenants: the tenants
    /// with queued work are visited round-robin (the first after `after_tenant`, up to
    /// [`FAIR_TENANTS`] of them per batch), and when several have work each takes at most
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

    /// Up to [`FAIR_TENANTS`] tenants with queued work in `partitions`, in id order after
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
            let queued: Vec<(i64, String, Option<i64>, i64, Option<String>)> =
                scoring_queue::Entity::find()
                    .filter(scoring_queue::Column::TenantId.eq(tenant_id))
                    .filter(
                        scoring_queue::Column::SubjectId.is_in(chunk.iter().map(|l| l.as_str())),
                    )
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

/// The activation time of a tenant's model version (for rescore status).
pub(crate) async fn activation_time<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    model_id: &str,
    version: i64,
) -> Result<Option<i64>> {
    Ok(model_activation::Entity::find()
        .filter(model_activation::Column::TenantId.eq(tenant_id))
        .filter(model_activation::Column::ModelId.eq(model_id))
        .filter(model_activation::Column::Version.eq(version))
        .order_by_desc(model_activation::Column::Id)
        .one(db)
        .await?
        .map(|a| a.time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("t1", "lead-1"), partition_of("t1", "lead-1"));
        assert_ne!(
            (0..50).map(|i| partition_of("t1", &format!("l{i}"))).collect::<Vec<_>>(),
            vec![partition_of("t1", "l0"); 50]
        );
        let mut counts = [0u32; PARTITIONS as usize];
        for i in 0..64_000 {
            counts[partition_of("tenant", &format!("lead-{i}")) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn sqlite_placeholders_are_rewritten() {
        let s = sql(DbBackend::Sqlite, "SELECT $1, '$x', $12", vec![1.into(), 2.into()]);
        assert_eq!(s.sql, "SELECT ?, '$x', ?");
        let p = sql(DbBackend::Postgres, "SELECT $1", vec![1.into()]);
        assert_eq!(p.sql, "SELECT $1");
    }
}
