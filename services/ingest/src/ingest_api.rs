//! `kelvin.v1.IngestService` handlers.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kelvin_cache::Namespace;
use kelvin_engine::Subject;
use kelvin_proto::convert::{json_struct, timestamp};
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::ingest_service_server::IngestService;
use kelvin_server::{ApiError, ApiResult, CallContext, Reply, Runtime, handle};
use kelvin_store::{AuditContext, ExportItem, NewOutcome, Page, StoredEvent, TenantScope, Written};
use prost::Message;
use tonic::{Request, Status, Streaming};

use crate::quota::Quotas;
use crate::upsert::Upserted;
use crate::validate::{self, Rejection};
use crate::warnings::{self, NumericReads};

/// The IngestService handlers.
pub struct IngestApi {
    runtime: Arc<Runtime>,
    quotas: Arc<Quotas>,
    /// What the tenants' active models read as numbers, for the warnings of results.
    numeric: Arc<NumericReads>,
}

impl IngestApi {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let quotas = Arc::new(Quotas::new(runtime.config.ingest.events_per_second));
        Self { runtime, quotas, numeric: Arc::default() }
    }
}

fn rejected(id: String, (field, reason): Rejection) -> pb::ItemResult {
    pb::ItemResult {
        id,
        status: pb::ItemStatus::Rejected as i32,
        field,
        reason,
        warnings: Vec::new(),
    }
}

fn written(id: String, w: Written) -> pb::ItemResult {
    let status = match w {
        Written::Accepted => pb::ItemStatus::Accepted,
        Written::Duplicate => pb::ItemStatus::Duplicate,
    };
    pb::ItemResult {
        id,
        status: status as i32,
        field: String::new(),
        reason: String::new(),
        warnings: Vec::new(),
    }
}

/// Validates `items`, writes the valid ones with `write`, and answers one result per item in
/// request order.
async fn batch<I, T, F, Fut>(
    items: Vec<I>,
    id_of: impl Fn(&I) -> String,
    check: impl Fn(usize, I) -> Result<T, Rejection>,
    write: F,
) -> Result<Vec<pb::ItemResult>, ApiError>
where
    F: FnOnce(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Written>, ApiError>>,
{
    let mut results: Vec<Option<pb::ItemResult>> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut ids = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let id = id_of(&item);
        match check(i, item) {
            Ok(v) => {
                valid.push(v);
                ids.push((results.len(), id));
                results.push(None);
            }
            Err(r) => results.push(Some(rejected(id, r))),
        }
    }
    if !valid.is_empty() {
        let outcome = write(valid).await?;
        for ((slot, id), w) in ids.into_iter().zip(outcome) {
            results[slot] = Some(written(id, w));
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// A batch over the configured size: INVALID_ARGUMENT naming the field, like every limit on
/// the size of one request (retrying the same call cannot help); RESOURCE_EXHAUSTED is kept
/// for rates and concurrency, which a retry later can pass.
fn check_batch(runtime: &Runtime, field: &str, len: usize) -> Result<(), ApiError> {
    let max = runtime.config.ingest.max_batch;
    if len > max {
        return Err(ApiError::invalid(
            field,
            format!("{len} items in one call, over the limit of {max}"),
        ));
    }
    Ok(())
}

/// Gives each accepted item its warnings (`warnings[i]` for the i-th item; results are in
/// request order, one per item).
fn attach(results: &mut [pb::ItemResult], warnings: Vec<Vec<pb::ItemWarning>>) {
    for (result, w) in results.iter_mut().zip(warnings) {
        if result.status == pb::ItemStatus::Accepted as i32 {
            result.warnings = w;
        }
    }
}

fn counts(results: &[pb::ItemResult]) -> (i32, i32, i32) {
    let count = |s: pb::ItemStatus| results.iter().filter(|r| r.status == s as i32).count() as i32;
    (
        count(pb::ItemStatus::Accepted),
        count(pb::ItemStatus::Duplicate),
        count(pb::ItemStatus::Rejected),
    )
}

impl IngestApi {
    /// One batch of events for one tenant: quota, validation, durable idempotent write.
    async fn ingest(
        runtime: &Runtime,
        quotas: &Quotas,
        numeric: &NumericReads,
        ctx: &CallContext,
        tenant_id: &str,
        events: Vec<pb::EventInput>,
        trace_parent: Option<&str>,
    ) -> Result<Vec<pb::ItemResult>, ApiError> {
        check_batch(runtime, "events", events.len())?;
        let (access, scope) = ctx.tenant(runtime, tenant_id).await?;
        if let Err(error) = admit(runtime, quotas, &scope, events.len()) {
            count_events(tenant_id, "throttled", events.len());
            return Err(error);
        }
        let now = runtime.clock.now_ms();
        let max_bytes = runtime.config.ingest.max_item_bytes;
        let models = numeric.of(&access, &scope).await;
        let warned: Vec<_> = if warnings::reads_any(&models, Subject::Event) {
            events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let props = [(format!("events[{i}].properties"), e.properties.as_ref())];
                    warnings::check(&models, Subject::Event, &props)
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut results = batch(
            events,
            |e| e.event_id.clone(),
            |i, e| validate::event(i, e, now, max_bytes),
            |valid| async { Ok(access.ingest_events(&scope, valid, trace_parent).await?) },
        )
        .await?;
        attach(&mut results, warned);
        let (accepted, duplicates, rejected) = counts(&results);
        count_events(tenant_id, "accepted", accepted as usize);
        count_events(tenant_id, "duplicate", duplicates as usize);
        count_events(tenant_id, "rejected", rejected as usize);
        Ok(results)
    }
}

impl IngestApi {
    /// UpsertLeads and UpsertCompanies: batch limit, reach, quota, warnings, validation and one
    /// write for the valid items; one result per item, in request order.
    async fn upsert<I: Upserted>(
        &self,
        ctx: &CallContext,
        tenant_id: &str,
        items: Vec<I>,
    ) -> ApiResult<Vec<pb::ItemResult>> {
        check_batch(&self.runtime, I::FIELD, items.len())?;
        let (access, scope) = ctx.tenant(&self.runtime, tenant_id).await?;
        admit(&self.runtime, &self.quotas, &scope, items.len())?;
        let max_bytes = self.runtime.config.ingest.max_item_bytes;
        let models = self.numeric.of(&access, &scope).await;
        let warned: Vec<_> = if warnings::reads_any(&models, I::SUBJECT) {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| warnings::check(&models, I::SUBJECT, &item.documents(i)))
                .collect()
        } else {
            Vec::new()
        };
        let mut results = batch(
            items,
            I::id,
            |i, item| item.validate(i, max_bytes),
            |valid| async {
                let n = valid.len();
                I::write(&access, &scope, valid).await?;
                Ok(vec![Written::Accepted; n])
            },
        )
        .await?;
        attach(&mut results, warned);
        Ok(results)
    }
}

/// Takes `items` from the tenant's quota: every item any ingest RPC writes (event, lead,
/// company, outcome, erasure) counts, so that no write RPC lets one tenant take the store's
/// write capacity from the others. Refused: RESOURCE_EXHAUSTED with RetryInfo.
fn admit(
    runtime: &Runtime,
    quotas: &Quotas,
    scope: &TenantScope,
    items: usize,
) -> Result<(), ApiError> {
    quotas.take(scope.tenant_id(), items.max(1)).map_err(|wait| ApiError::Throttled {
        message: format!(
            "tenant `{}` is over its quota of {} items/s; retry in {wait:.2}s",
            scope.tenant_id(),
            runtime.config.ingest.events_per_second
        ),
        retry_after: std::time::Duration::from_secs_f64(wait.max(0.001)),
    })
}

/// Adds to `kelvin.ingest.events` (the tenant is known to exist: it was resolved first).
fn count_events(tenant_id: &str, outcome: &'static str, n: usize) {
    use kelvin_telemetry::metrics::{instruments, kv};
    if n > 0 {
        instruments()
            .ingest_events
            .add(n as u64, &[kv("tenant", tenant_id.to_owned()), kv("outcome", outcome)]);
    }
}

fn export_event(e: StoredEvent) -> pb::EventInput {
    pb::EventInput {
        event_id: e.event_id,
        r#type: e.kind,
        time: Some(timestamp(e.time_ms)),
        properties: Some(json_struct(e.properties)),
        lead_id: e.lead_id,
    }
}

fn export_outcome(o: NewOutcome) -> pb::Outcome {
    let kind = if o.kind == "won" { pb::OutcomeKind::Won } else { pb::OutcomeKind::Lost };
    pb::Outcome {
        outcome_id: o.id,
        lead_id: o.lead_id,
        kind: kind as i32,
        value: o.value,
        currency: o.currency,
        time: Some(timestamp(o.time_ms)),
    }
}

/// Resolves once the server starts shutting down (never, if the runtime is gone).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    if stopping.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

type EventAcks = Pin<Box<dyn Stream<Item = Result<pb::StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn upsert_leads(
        &self,
        request: Request<pb::UpsertLeadsRequest>,
    ) -> Reply<pb::UpsertLeadsResponse> {
        handle(request, |ctx, req| async move {
            let results = self.upsert(&ctx, &req.tenant_id, req.leads).await?;
            Ok(pb::UpsertLeadsResponse { results })
        })
        .await
    }

    async fn upsert_companies(
        &self,
        request: Request<pb::UpsertCompaniesRequest>,
    ) -> Reply<pb::UpsertCompaniesResponse> {
        handle(request, |ctx, req| async move {
            let results = self.upsert(&ctx, &req.tenant_id, req.companies).await?;
            Ok(pb::UpsertCompaniesResponse { results })
        })
        .await
    }

    async fn ingest_events(
        &self,
        request: Request<pb::IngestEventsRequest>,
    ) -> Reply<pb::IngestEventsResponse> {
        handle(request, |ctx, req| async move {
            let trace = kelvin_telemetry::current_traceparent();
            let results = Self::ingest(
                &self.runtime,
                &self.quotas,
                &self.numeric,
                &ctx,
                &req.tenant_id,
                req.events,
                trace.as_deref(),
            )
            .await?;
            let (accepted, duplicates, rejected) = counts(&results);
            Ok(pb::IngestEventsResponse { results, accepted, duplicates, rejected })
        })
        .await
    }

    type StreamEventsStream = EventAcks;

    async fn stream_events(
        &self,
        request: Request<Streaming<pb::StreamEventsRequest>>,
    ) -> Reply<Self::StreamEventsStream> {
        handle(request, |ctx, mut inbound| async move {
            let runtime = self.runtime.clone();
            let quotas = self.quotas.clone();
            let numeric = self.numeric.clone();
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            // The stream's call span ends when this handler returns: its trace goes with the task.
            let trace = kelvin_telemetry::current_traceparent();
            let mut stopping = runtime.stopping();
            tokio::spawn(async move {
                loop {
                    // Once the server is shutting down, no new message is acknowledged: the client
                    // is told to resume on another replica instead of being cut off at the end of
                    // the grace period with messages it cannot know the fate of.
                    let message = tokio::select! {
                        biased;
                        () = stopped(&mut stopping) => {
                            let _ = tx
                                .send(Err(Status::unavailable(
                                    "the server is shutting down; resume the stream on another replica",
                                )))
                                .await;
                            break;
                        }
                        message = inbound.next() => message,
                    };
                    let Some(message) = message else { break };
                    let reply = match message {
                        Ok(batch) => {
                            let sequence = batch.sequence;
                            Self::ingest(
                                &runtime,
                                &quotas,
                                &numeric,
                                &ctx,
                                &batch.tenant_id,
                                batch.events,
                                trace.as_deref(),
                            )
                            .await
                            .map(|results| {
                                let (accepted, duplicates, rejected) = counts(&results);
                                pb::StreamEventsResponse {
                                    sequence,
                                    results,
                                    accepted,
                                    duplicates,
                                    rejected,
                                }
                            })
                            .map_err(Status::from)
                        }
                        Err(status) => Err(status),
                    };
                    let failed = reply.is_err();
                    // The client went away: nothing more to acknowledge.
                    if tx.send(reply).await.is_err() || failed {
                        break;
                    }
                }
            });
            let acks: EventAcks = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(acks)
        })
        .await
    }

    async fn record_outcomes(
        &self,
        request: Request<pb::RecordOutcomesRequest>,
    ) -> Reply<pb::RecordOutcomesResponse> {
        handle(request, |ctx, req| async move {
            check_batch(&self.runtime, "outcomes", req.outcomes.len())?;
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            admit(&self.runtime, &self.quotas, &scope, req.outcomes.len())?;
            let results = batch(
                req.outcomes,
                |o| o.outcome_id.clone(),
                validate::outcome,
                |valid| async { Ok(access.record_outcomes(&scope, valid).await?) },
            )
            .await?;
            Ok(pb::RecordOutcomesResponse { results })
        })
        .await
    }

    async fn erase_lead(
        &self,
        request: Request<pb::EraseLeadRequest>,
    ) -> Reply<pb::EraseLeadResponse> {
        handle(request, |ctx, req| async move {
            if req.lead_id.is_empty() {
                return Err(ApiError::invalid("lead_id", "is required"));
            }
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            admit(&self.runtime, &self.quotas, &scope, 1)?;
            // The mark goes first: once the erasure commits, no cached score of the lead can be
            // served, whenever the scoring worker gets to drop them. A failed mark erases nothing.
            let ttl = kelvin_scores::erased_ttl(self.runtime.config.scoring.cache_ttl_seconds);
            self.runtime
                .cache
                .set(
                    &Namespace::tenant(scope.tenant_id(), scope.incarnation()),
                    &kelvin_scores::erased_key(&req.lead_id),
                    b"1",
                    Some(ttl),
                )
                .await
                .map_err(|e| {
                    ApiError::Internal(format!("cannot mark the lead erased in the cache: {e}"))
                })?;
            let audit = AuditContext {
                request_id: ctx.request_id.clone(),
                reason: "erasure request".into(),
            };
            let (events_erased, outcomes_erased) =
                access.erase_lead(&scope, &req.lead_id, &audit).await?;
            Ok(pb::EraseLeadResponse {
                events_erased: events_erased as i64,
                outcomes_erased: outcomes_erased as i64,
            })
        })
        .await
    }

    async fn export_lead(
        &self,
        request: Request<pb::ExportLeadRequest>,
    ) -> Reply<pb::ExportLeadResponse> {
        handle(request, |ctx, req| async move {
            if req.lead_id.is_empty() {
                return Err(ApiError::invalid("lead_id", "is required"));
            }
            let page = Page::parse(req.page_size, &req.page_token)?;
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            // One more than the page, to learn whether another page follows.
            let export = access
                .export_lead_page(&scope, &req.lead_id, page.after.as_deref(), page.size + 1)
                .await?;
            let mut reply = pb::ExportLeadResponse {
                lead: Some(pb::LeadRecord {
                    lead_id: export.lead.id.clone(),
                    company_id: export.lead.company_id.clone().unwrap_or_default(),
                    attributes: Some(json_struct(export.lead.attributes)),
                    enriched: Some(json_struct(export.lead.enriched)),
                    create_time: Some(timestamp(export.lead.create_time_ms)),
                    update_time: Some(timestamp(export.lead.update_time_ms)),
                }),
                company: export.company.map(|c| pb::CompanyInput {
                    company_id: c.id,
                    attributes: Some(json_struct(c.attributes)),
                }),
                ..Default::default()
            };
            // Half the response limit: a page stops before the item that would pass it (every
            // page holds at least one item, which validation keeps far smaller).
            let budget = self.runtime.config.server.max_response_bytes / 2;
            let mut size = reply.encoded_len();
            let mut items = export.items.into_iter().peekable();
            let mut taken = 0u64;
            let mut last_token = String::new();
            while let Some(item) = items.next_if(|_| taken < page.size) {
                let token = item.page_token();
                let grew = match item {
                    ExportItem::Event(e) => {
                        let e = export_event(e);
                        let len = e.encoded_len();
                        reply.events.push(e);
                        len
                    }
                    ExportItem::Outcome(o) => {
                        let o = export_outcome(o);
                        let len = o.encoded_len();
                        reply.outcomes.push(o);
                        len
                    }
                };
                size += prost::length_delimiter_len(grew) + 1 + grew;
                taken += 1;
                last_token = token;
                if size >= budget {
                    break;
                }
            }
            if items.peek().is_some() {
                reply.next_page_token = last_token;
            }
            Ok(reply)
        })
        .await
    }
}
