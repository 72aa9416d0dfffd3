//! Leads, companies, events and outcomes of one tenant: durable, idempotent writes and the
//! lead's export and erasure. Items arrive validated (by the ingest service); every write is
//! committed before the call returns.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TryInsertResult,
};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::audit::{self, Entry};
use std::collections::HashMap;

use crate::entity::{company, event, lead, lead_score, outcome, score_change, scoring_queue};
use crate::scoring::{CHUNK, NewWork, WorkKind};
use crate::types::now_ms;
use crate::{Access, AuditContext, Error, Result, TenantScope};

/// A lead to create or update. Attribute maps are merged into the stored ones; a `null` value
/// removes the attribute.
#[derive(Debug, Clone, Default)]
pub struct LeadUpsert {
    pub id: String,
    /// `None`: unchanged; `Some("")`: no company.
    pub company_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub enriched: Map<String, Value>,
}

/// A stored lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRow {
    pub id: String,
    pub company_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub enriched: Map<String, Value>,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
}

/// A company to create or update (attributes merged like a lead's).
#[derive(Debug, Clone, Default)]
pub struct CompanyUpsert {
    pub id: String,
    pub attributes: Map<String, Value>,
}

/// A stored company.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyRow {
    pub id: String,
    pub attributes: Map<String, Value>,
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub lead_id: String,
    pub kind: String,
    pub time_ms: i64,
    pub properties: Map<String, Value>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Ingestion order across Kelvin.
    pub seq: i64,
    pub event_id: String,
    pub lead_id: String,
    pub kind: String,
    pub time_ms: i64,
    pub properties: Map<String, Value>,
    pub ingest_time_ms: i64,
}

/// A won / lost outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutcome {
    pub id: String,
    pub lead_id: String,
    /// `won` or `lost`.
    pub kind: String,
    pub value: f64,
    pub currency: String,
    pub time_ms: i64,
}

/// What became of one idempotent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Accepted,
    /// Already stored (same tenant and id): nothing written.
    Duplicate,
}

/// Everything held about one lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadExport {
    pub lead: LeadRow,
    pub company: Option<CompanyRow>,
    pub events: Vec<StoredEvent>,
    pub outcomes: Vec<NewOutcome>,
}

/// One page of a lead's export: the lead, its company, and the next of its events and
/// outcomes (every event before any outcome, each oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct LeadExportPage {
    pub lead: LeadRow,
    pub company: Option<CompanyRow>,
    pub items: Vec<ExportItem>,
}

/// An event or an outcome of an exported lead.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    Event(StoredEvent),
    Outcome(NewOutcome),
}

impl ExportItem {
    /// The page token of an export page starting right after this item.
    pub fn page_token(&self) -> String {
        crate::Page::token(&match self {
            Self::Event(e) => format!("e:{}:{}", e.time_ms, e.event_id),
            Self::Outcome(o) => format!("o:{}:{}", o.time_ms, o.id),
        })
    }
}

/// Where an export page starts: after this (time, id) of the events or of the outcomes.
enum ExportAfter<'a> {
    Start,
    Event(i64, &'a str),
    Outcome(i64, &'a str),
}

fn export_after(key: Option<&str>) -> Result<ExportAfter<'_>> {
    let Some(key) = key else { return Ok(ExportAfter::Start) };
    let malformed = || Error::invalid("page_token", "malformed");
    let mut parts = key.splitn(3, ':');
    let (kind, time, id) = (parts.next(), parts.next(), parts.next());
    let time: i64 = time.and_then(|t| t.parse().ok()).ok_or_else(malformed)?;
    match (kind, id) {
        (Some("e"), Some(id)) => Ok(ExportAfter::Event(time, id)),
        (Some("o"), Some(id)) => Ok(ExportAfter::Outcome(time, id)),
        _ => Err(malformed()),
    }
}

fn outcome_row(m: outcome::Model) -> NewOutcome {
    NewOutcome {
        id: m.id,
        lead_id: m.lead_id,
        kind: m.kind,
        value: m.value,
        currency: m.currency,
        time_ms: m.time,
    }
}

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn merge(stored: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (k, v) in changes {
        if v.is_null() {
            stored.remove(&k);
        } else {
            stored.insert(k, v);
        }
    }
}

pub(crate) fn lead_row(m: lead::Model) -> LeadRow {
    LeadRow {
        id: m.id,
        company_id: m.company_id,
        attributes: object(&m.attributes),
        enriched: object(&m.enriched),
        create_time_ms: m.create_time,
        update_time_ms: m.update_time,
    }
}

pub(crate) fn company_row(m: company::Model) -> CompanyRow {
    CompanyRow { id: m.id, attributes: object(&m.attributes) }
}

pub(crate) fn event_row(m: event::Model) -> StoredEvent {
    StoredEvent {
        seq: m.seq,
        event_id: m.event_id,
        lead_id: m.lead_id,
        kind: m.kind,
        time_ms: m.time,
        properties: object(&m.properties),
        ingest_time_ms: m.ingest_time,
    }
}

fn written(result: TryInsertResult<u64>) -> Written {
    match result {
        TryInsertResult::Inserted(n) if n > 0 => Written::Accepted,
        _ => Written::Duplicate,
    }
}

/// A lead's attributes, enriched attributes and company as merged from one upsert call.
type MergedLead = (Map<String, Value>, Map<String, Value>, Option<String>);

impl Access<'_> {
    /// Creates or merges leads, in one transaction. Real upserts under concurrency: the rows
    /// are first created empty where missing (`ON CONFLICT DO NOTHING`, so two callers creating
    /// one lead never collide), then read under a row lock in id order (no lost merge, no
    /// deadlock between two batches), merged in request order and written once each.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.upsert_leads", otel.kind = "client"))]
    pub async fn upsert_leads(&self, scope: &TenantScope, leads: Vec<LeadUpsert>) -> Result<()> {
        let now = now_ms();
        let tenant_id = scope.tenant_id();
        let txn = crate::write_txn(self.db).await?;
        let ids: std::collections::BTreeSet<String> = leads.iter().map(|l| l.id.clone()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        for chunk in ids.chunks(CHUNK) {
            lead::Entity::insert_many(chunk.iter().map(|id| lead::ActiveModel {
                tenant_id: Set(tenant_id.to_owned()),
                id: Set(id.clone()),
                company_id: Set(None),
                attributes: Set("{}".into()),
                enriched: Set("{}".into()),
                create_time: Set(now),
                update_time: Set(now),
            }))
            .on_conflict_do_nothing_on([lead::Column::TenantId, lead::Column::Id])
            .exec_without_returning(&txn)
            .await?;
        }
        let mut rows: std::collections::BTreeMap<String, lead::Model> = Default::default();
        for chunk in ids.chunks(CHUNK) {
            rows.extend(
                lead::Entity::find()
                    .filter(lead::Column::TenantId.eq(tenant_id))
                    .filter(lead::Column::Id.is_in(chunk.iter().cloned()))
                    .order_by_asc(lead::Column::Id)
                    .lock_exclusive()
                    .all(&txn)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.clone(), r)),
            );
        }
        let mut work = Vec::with_capacity(leads.len());
        let mut companies = std::collections::BTreeSet::new();
        let mut merged: std::collections::BTreeMap<String, MergedLead> = Default::default();
        for up in leads {
            let current =
                rows.get(&up.id).ok_or_else(|| Error::not_found("lead", up.id.clone()))?;
            let (attributes, enriched, company) =
                merged.entry(up.id.clone()).or_insert_with(|| {
                    (
                        object(&current.attributes),
                        object(&current.enriched),
                        current.company_id.clone(),
                    )
                });
            if up.company_id.is_some() {
                companies.extend(company.clone());
            }
            merge(attributes, up.attributes);
            merge(enriched, up.enriched);
            match up.company_id {
                None => {}
                Some(c) if c.is_empty() => *company = None,
                Some(c) => *company = Some(c),
            }
            companies.extend(company.clone());
            work.push(NewWork {
                tenant_id: tenant_id.to_owned(),
                kind: WorkKind::Lead,
                subject_id: up.id,
                event_seq: None,
                trace_parent: None,
            });
        }
        for (id, (attributes, enriched, company)) in merged {
            let Some(current) = rows.remove(&id) else { continue };
            let mut active: lead::ActiveModel = current.into();
            active.attributes = Set(Value::Object(attributes).to_string());
            active.enriched = Set(Value::Object(enriched).to_string());
            active.company_id = Set(company);
            active.update_time = Set(now);
            active.update(&txn).await?;
        }
        work.extend(companies.into_iter().map(|c| NewWork {
            tenant_id: tenant_id.to_owned(),
            kind: WorkKind::Company,
            subject_id: c,
            event_seq: None,
            trace_parent: None,
        }));
        crate::scoring::enqueue(&txn, work, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates or merges companies, in one transaction; concurrent-safe like
    /// [`Access::upsert_leads`].
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.upsert_companies", otel.kind = "client"))]
    pub async fn upsert_companies(
        &self,
        scope: &TenantScope,
        companies: Vec<CompanyUpsert>,
    ) -> Result<()> {
        let now = now_ms();
        let tenant_id = scope.tenant_id();
        let txn = crate::write_txn(self.db).await?;
        let ids: std::collections::BTreeSet<String> =
            companies.iter().map(|c| c.id.clone()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        for chunk in ids.chunks(CHUNK) {
            company::Entity::insert_many(chunk.iter().map(|id| company::ActiveModel {
                tenant_id: Set(tenant_id.to_owned()),
                id: Set(id.clone()),
                attributes: Set("{}".into()),
                create_time: Set(now),
                update_time: Set(now),
            }))
            .on_conflict_do_nothing_on([company::Column::TenantId, company::Column::Id])
            .exec_without_returning(&txn)
            .await?;
        }
        let mut rows: std::collections::BTreeMap<String, company::Model> = Default::default();
        for chunk in ids.chunks(CHUNK) {
            rows.extend(
                company::Entity::find()
                    .filter(company::Column::TenantId.eq(tenant_id))
                    .filter(company::Column::Id.is_in(chunk.iter().cloned()))
                    .order_by_asc(company::Column::Id)
                    .lock_exclusive()
                    .all(&txn)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.clone(), r)),
            );
        }
        let work = companies
            .iter()
            .map(|c| NewWork {
                tenant_id: tenant_id.to_owned(),
                kind: WorkKind::CompanyAttributes,
                subject_id: c.id.clone(),
                event_seq: None,
                trace_parent: None,
            })
            .collect();
        let mut merged: std::collections::BTreeMap<String, Map<String, Value>> = Default::default();
        for up in companies {
            let current =
                rows.get(&up.id).ok_or_else(|| Error::not_found("company", up.id.clone()))?;
            let attributes =
                merged.entry(up.id.clone()).or_insert_with(|| object(&current.attributes));
            merge(attributes, up.attributes);
        }
        for (id, attributes) in merged {
            let Some(current) = rows.remove(&id) else { continue };
            let mut active: company::ActiveModel = current.into();
            active.attributes = Set(Value::Object(attributes).to_string());
            active.update_time = Set(now);
            active.update(&txn).await?;
        }
        crate::scoring::enqueue(&txn, work, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Stores events idempotently in one transaction: the same (tenant, event id) twice is
    /// stored once, the second time reported as a duplicate. Leads seen for the first time are
    /// created empty.
    ///
    /// `trace_parent` (W3C) is stored with each event's scoring work, so that scoring continues
    /// the caller's trace.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.ingest_events", otel.kind = "client"))]
    pub async fn ingest_events(
        &self,
        scope: &TenantScope,
        events: Vec<NewEvent>,
        trace_parent: Option<&str>,
    ) -> Result<Vec<Written>> {
        let now = now_ms();
        let tenant_id = scope.tenant_id();
        let txn = crate::write_txn(self.db).await?;
        let leads: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.lead_id.as_str()).collect();
        let lead_rows: Vec<_> = leads
            .into_iter()
            .map(|id| lead::ActiveModel {
                tenant_id: Set(tenant_id.to_owned()),
                id: Set(id.to_owned()),
                company_id: Set(None),
                attributes: Set("{}".into()),
                enriched: Set("{}".into()),
                create_time: Set(now),
                update_time: Set(now),
            })
            .collect();
        for chunk in lead_rows.chunks(500) {
            lead::Entity::insert_many(chunk.iter().cloned())
                .on_conflict_do_nothing_on([lead::Column::TenantId, lead::Column::Id])
                .exec_without_returning(&txn)
                .await?;
        }
        // One multi-row insert per chunk; the rows that come back are the ones stored now.
        let mut stored: HashMap<String, (i64, String)> = HashMap::new();
        for chunk in events.chunks(500) {
            let rows = chunk.iter().map(|e| event::ActiveModel {
                seq: sea_orm::NotSet,
                tenant_id: Set(tenant_id.to_owned()),
                event_id: Set(e.event_id.clone()),
                lead_id: Set(e.lead_id.clone()),
                kind: Set(e.kind.clone()),
                time: Set(e.time_ms),
                properties: Set(Value::Object(e.properties.clone()).to_string()),
                ingest_time: Set(now),
            });
            let inserted = event::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([event::Column::TenantId, event::Column::EventId])
                .exec_with_returning_many(&txn)
                .await?;
            if let sea_orm::TryInsertResult::Inserted(models) = inserted {
                stored.extend(models.into_iter().map(|m| (m.event_id, (m.seq, m.lead_id))));
            }
        }
        let mut work = Vec::with_capacity(stored.len());
        let mut results = Vec::with_capacity(events.len());
        for e in &events {
            // The first occurrence of an id stored now is accepted; any other is a duplicate.
            match stored.remove(&e.event_id) {
                Some((seq, lead_id)) => {
                    work.push(NewWork {
                        tenant_id: tenant_id.to_owned(),
                        kind: WorkKind::Event,
                        subject_id: lead_id,
                        event_seq: Some(seq),
                        trace_parent: trace_parent.map(str::to_owned),
                    });
                    results.push(Written::Accepted);
                }
                None => results.push(Written::Duplicate),
            }
        }
        crate::scoring::enqueue(&txn, work, now).await?;
        txn.commit().await?;
        Ok(results)
    }

    /// Stores outcomes idempotently (by outcome id), in one transaction.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.record_outcomes", otel.kind = "client"))]
    pub async fn record_outcomes(
        &self,
        scope: &TenantScope,
        outcomes: Vec<NewOutcome>,
    ) -> Result<Vec<Written>> {
        let txn = crate::write_txn(self.db).await?;
        let mut results = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let inserted = outcome::Entity::insert(outcome::ActiveModel {
                tenant_id: Set(scope.tenant_id().to_owned()),
                id: Set(o.id),
                lead_id: Set(o.lead_id),
                kind: Set(o.kind),
                value: Set(o.value),
                currency: Set(o.currency),
                time: Set(o.time_ms),
            })
            .on_conflict_do_nothing_on([outcome::Column::TenantId, outcome::Column::Id])
            .exec_without_returning(&txn)
            .await?;
            results.push(written(inserted));
        }
        txn.commit().await?;
        Ok(results)
    }

    /// Everything held about a lead.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.export_lead", otel.kind = "client"))]
    pub async fn export_lead(&self, scope: &TenantScope, lead_id: &str) -> Result<LeadExport> {
        let lead = lead::Entity::find_by_id((scope.tenant_id().to_owned(), lead_id.to_owned()))
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("lead", lead_id))?;
        let lead = lead_row(lead);
        let company = match &lead.company_id {
            Some(c) => company::Entity::find_by_id((scope.tenant_id().to_owned(), c.clone()))
                .one(self.db)
                .await?
                .map(company_row),
            None => None,
        };
        let events = event::Entity::find()
            .filter(event::Column::TenantId.eq(scope.tenant_id()))
            .filter(event::Column::LeadId.eq(lead_id))
            .order_by_asc(event::Column::Time)
            .order_by_asc(event::Column::EventId)
            .all(self.db)
            .await?
            .into_iter()
            .map(event_row)
            .collect();
        let outcomes = outcome::Entity::find()
            .filter(outcome::Column::TenantId.eq(scope.tenant_id()))
            .filter(outcome::Column::LeadId.eq(lead_id))
            .order_by_asc(outcome::Column::Time)
            .all(self.db)
            .await?
            .into_iter()
            .map(outcome_row)
            .collect();
        Ok(LeadExport { lead, company, events, outcomes })
    }

    /// One page of a lead's export: at most `limit` of its events and outcomes after the key
    /// of `after` (a key from [`ExportItem::page_token`], decoded by [`crate::Page::parse`]).
    /// Keyset reads over indexed columns: a page costs the same wherever it starts.
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.export_lead_page", otel.kind = "client"))]
    pub async fn export_lead_page(
        &self,
        scope: &TenantScope,
        lead_id: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<LeadExportPage> {
        use sea_orm::{Condition, QuerySelect};
        let after = export_after(after)?;
        let tenant = scope.tenant_id();
        let lead = lead::Entity::find_by_id((tenant.to_owned(), lead_id.to_owned()))
            .one(self.db)
            .await?
            .ok_or_else(|| Error::not_found("lead", lead_id))?;
        let lead = lead_row(lead);
        let company = match &lead.company_id {
            Some(c) => company::Entity::find_by_id((tenant.to_owned(), c.clone()))
                .one(self.db)
                .await?
                .map(company_row),
            None => None,
        };
        let mut items = Vec::new();
        if !matches!(after, ExportAfter::Outcome(..)) {
            let mut query = event::Entity::find()
                .filter(event::Column::TenantId.eq(tenant))
                .filter(event::Column::LeadId.eq(lead_id));
            if let ExportAfter::Event(time, id) = after {
                query = query.filter(
                    Condition::any().add(event::Column::Time.gt(time)).add(
                        Condition::all()
                            .add(event::Column::Time.eq(time))
                            .add(event::Column::EventId.gt(id)),
                    ),
                );
            }
            items.extend(
                query
                    .order_by_asc(event::Column::Time)
                    .order_by_asc(event::Column::EventId)
                    .limit(limit)
                    .all(self.db)
                    .await?
                    .into_iter()
                    .map(|m| ExportItem::Event(event_row(m))),
            );
        }
        let left = limit.saturating_sub(items.len() as u64);
        if left > 0 {
            let mut query = outcome::Entity::find()
                .filter(outcome::Column::TenantId.eq(tenant))
                .filter(outcome::Column::LeadId.eq(lead_id));
            if let ExportAfter::Outcome(time, id) = after {
                query = query.filter(
                    Condition::any().add(outcome::Column::Time.gt(time)).add(
                        Condition::all()
                            .add(outcome::Column::Time.eq(time))
                            .add(outcome::Column::Id.gt(id)),
                    ),
                );
            }
            items.extend(
                query
                    .order_by_asc(outcome::Column::Time)
                    .order_by_asc(outcome::Column::Id)
                    .limit(left)
                    .all(self.db)
                    .await?
                    .into_iter()
                    .map(|m| ExportItem::Outcome(outcome_row(m))),
            );
        }
        Ok(LeadExportPage { lead, company, items })
    }

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
        let now = now_ms();
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
        crate::entity::scoring_dead_letter::Entity::delete_many()
            .filter(crate::entity::scoring_dead_letter::Column::TenantId.eq(scope.tenant_id()))
            .filter(crate::entity::scoring_dead_letter::Column::SubjectId.eq(lead_id))
            .filter(crate::entity::scoring_dead_letter::Column::Kind.ne(WorkKind::Company as i32))
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
        crate::scoring::enqueue(&txn, work, now).await?;
        let digest = lead_pseudonym(self.pseudonym_key, scope.tenant_id(), lead_id);
        audit::record(
            &txn,
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
        txn.commit().await?;
        Ok((events.rows_affected, outcomes.rows_affected))
    }

    /// Number of events stored for the tenant (tests and operators).
    #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.count_events", otel.kind = "client"))]
    pub async fn count_events(&self, scope: &TenantScope) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(event::Entity::find()
            .filter(event::Column::TenantId.eq(scope.tenant_id()))
            .count(self.db)
            .await?)
    }
}

/// HMAC-SHA256 of `tenant/lead` under `key`, first 16 bytes in hex (tenant ids hold no `/`).
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
