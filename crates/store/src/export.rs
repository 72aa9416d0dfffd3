//! A lead's export: everything held about it, whole or a keyset page at a time (its events,
//! then its outcomes, each oldest first).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::{company, event, lead, outcome};
use crate::ingest::NewOutcome;
use crate::rows::{CompanyRow, LeadRow, StoredEvent, company_row, event_row, lead_row};
use crate::{Access, Error, Result, TenantScope};

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
    let malformed = || Error::MalformedPageToken;
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

impl Access<'_> {
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
}
