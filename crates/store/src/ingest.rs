//! Leads, companies, events and outcomes of one tenant: durable, idempotent writes. Items
//! arrive validated (by the ingest service); every write is committed, with the scoring work it
//! causes, before the call returns. A lead's export is in `export.rs`, its erasure in
//! `erasure.rs`.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TryInsertResult,
};
use serde_json::{Map, Value};

use crate::entity::{company, event, lead, outcome};
use crate::queue::{CHUNK, NewWork, WorkKind, enqueue};
use crate::rows::object;
use crate::{Access, Error, Result, TenantScope};

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

/// A company to create or update (attributes merged like a lead's).
#[derive(Debug, Clone, Default)]
pub struct CompanyUpsert {
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

fn merge(stored: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (k, v) in changes {
        if v.is_null() {
            stored.remove(&k);
        } else {
            stored.insert(k, v);
        }
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
        let now = self.clock.now_ms();
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
        enqueue(&txn, work, now).await?;
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
        let now = self.clock.now_ms();
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
        enqueue(&txn, work, now).await?;
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
        let now = self.clock.now_ms();
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
        enqueue(&txn, work, now).await?;
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
