//! `ScoringService` handlers: reads of what the worker stored. Lead scores come from the cache
//! (written through by the worker) or, on a miss, from the store, refilling the cache only
//! where no newer write-through landed meanwhile.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kelvin_engine::CompiledModel;
use kelvin_proto::v1 as pb;
use kelvin_proto::v1::scoring_service_server::ScoringService;
use kelvin_server::scores::{engine_company, engine_event, engine_lead, erased_key, score_pb};
use kelvin_server::{ApiError, Runtime, call_context};
use kelvin_store::{LeadFilter, Page, StoredScore, TenantScope};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::watch::Verdict;
use crate::{DEFAULT_MODEL, Hub, convert, score_key};

/// Most leads in one BatchGetScores call.
const MAX_BATCH: usize = 1000;
/// Changes read per query by a change stream.
const WATCH_PAGE: u64 = 500;

type Reply<T> = Result<Response<T>, Status>;

/// The `ScoringService` implementation.
#[derive(Debug, Clone)]
pub struct ScoringApi {
    runtime: Arc<Runtime>,
    hub: Arc<Hub>,
}

impl ScoringApi {
    pub(crate) fn new(runtime: Arc<Runtime>, hub: Arc<Hub>) -> Self {
        Self { runtime, hub }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.runtime.config.scoring.cache_ttl_seconds.max(1))
    }

    /// Refills the cache with scores read from the store, unless a newer write-through got
    /// there first. Cache errors only cost the next read a store round trip.
    /// The writes go out together (the Redis connection multiplexes them) rather than one
    /// round trip after another: a BatchGetScores after a flush refills up to 1000 keys.
    async fn refill(&self, scope: &TenantScope, scores: &[StoredScore]) {
        let ns = kelvin_cache::Namespace::tenant(scope.tenant_id(), scope.incarnation());
        let entries: Vec<_> =
            scores.iter().map(|s| crate::worker::cache_entry(ns.clone(), s)).collect();
        let ttl = self.ttl();
        let writes = entries
            .iter()
            .map(|(ns, key, value)| self.runtime.cache.set_if_absent(ns, key, value, ttl));
        if let Some(error) =
            futures::future::join_all(writes).await.into_iter().find_map(Result::err)
        {
            tracing::debug!(%error, "score cache refill failed");
        }
    }

    /// The cached scores of `leads` (`None`: read the store) and whether each lead carries an
    /// erasure mark. The marks come in the same round trip; a marked lead's cached score is
    /// never served (EraseLead may have returned before the worker dropped it) and the store's
    /// answer for it is not cached.
    async fn cached(
        &self,
        scope: &TenantScope,
        model: &str,
        leads: &[String],
    ) -> (Vec<Option<pb::LeadScore>>, Vec<bool>) {
        let mut keys: Vec<String> = leads.iter().map(|l| score_key(model, l)).collect();
        keys.extend(leads.iter().map(|l| erased_key(l)));
        let ns = kelvin_cache::Namespace::tenant(scope.tenant_id(), scope.incarnation());
        match self.runtime.cache.get_many(&ns, &keys).await {
            Ok(mut values) => {
                let marks: Vec<bool> =
                    values.split_off(leads.len()).iter().map(Option::is_some).collect();
                let hits = values
                    .into_iter()
                    .zip(&marks)
                    .map(|(v, erased)| {
                        v.filter(|_| !erased)
                            .and_then(|bytes| pb::LeadScore::decode(bytes.as_slice()).ok())
                    })
                    .collect();
                (hits, marks)
            }
            Err(error) => {
                tracing::debug!(%error, "score cache read failed; reading the store");
                (vec![None; leads.len()], vec![false; leads.len()])
            }
        }
    }
}

fn model_or_default(model_id: &str) -> &str {
    if model_id.is_empty() { DEFAULT_MODEL } else { model_id }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Ok(value)
}

/// Points as milli-points, for score filters.
fn milli(field: &str, points: f64) -> Result<i64, ApiError> {
    if !points.is_finite() || points.abs() > 1e15 {
        return Err(ApiError::invalid(field, "must be a finite number of points"));
    }
    Ok((points * 1000.0).round() as i64)
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchScoreChangesResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ScoringService for ScoringApi {
    async fn get_score(
        &self,
        request: Request<pb::GetScoreRequest>,
    ) -> Reply<pb::GetScoreResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let lead = required("lead_id", &req.lead_id)?.to_owned();
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (mut hits, marks) = self.cached(&scope, model, std::slice::from_ref(&lead)).await;
        if let Some(Some(hit)) = hits.pop() {
            return Ok(Response::new(pb::GetScoreResponse { score: Some(hit) }));
        }
        let stored = access.lead_score(&scope, model, &lead).await.map_err(ApiError::from)?;
        if !marks.contains(&true) {
            self.refill(&scope, std::slice::from_ref(&stored)).await;
        }
        Ok(Response::new(pb::GetScoreResponse { score: Some(convert::lead_score(&stored)) }))
    }

    async fn batch_get_scores(
        &self,
        request: Request<pb::BatchGetScoresRequest>,
    ) -> Reply<pb::BatchGetScoresResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        if req.lead_ids.len() > MAX_BATCH {
            return Err(
                ApiError::invalid("lead_ids", format!("at most {MAX_BATCH} per call")).into()
            );
        }
        if let Some(i) = req.lead_ids.iter().position(String::is_empty) {
            return Err(ApiError::invalid(format!("lead_ids[{i}]"), "is empty").into());
        }
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (mut found, marks) = self.cached(&scope, model, &req.lead_ids).await;
        let marked: std::collections::HashSet<&str> = req
            .lead_ids
            .iter()
            .zip(&marks)
            .filter(|(_, erased)| **erased)
            .map(|(id, _)| id.as_str())
            .collect();
        let misses: Vec<String> = req
            .lead_ids
            .iter()
            .zip(&found)
            .filter(|(_, hit)| hit.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if !misses.is_empty() {
            let stored =
                access.lead_scores(&scope, model, &misses).await.map_err(ApiError::from)?;
            let unmarked: Vec<StoredScore> =
                stored.iter().filter(|s| !marked.contains(s.lead_id.as_str())).cloned().collect();
            self.refill(&scope, &unmarked).await;
            let by_id: std::collections::HashMap<&str, &StoredScore> =
                stored.iter().map(|s| (s.lead_id.as_str(), s)).collect();
            for (id, slot) in req.lead_ids.iter().zip(found.iter_mut()) {
                if slot.is_none() {
                    *slot = by_id.get(id.as_str()).map(|s| convert::lead_score(s));
                }
            }
        }
        let mut response = pb::BatchGetScoresResponse::default();
        for (id, score) in req.lead_ids.into_iter().zip(found) {
            match score {
                Some(s) => response.scores.push(s),
                None => response.missing_lead_ids.push(id),
            }
        }
        Ok(Response::new(response))
    }

    async fn explain_score(
        &self,
        request: Request<pb::ExplainScoreRequest>,
    ) -> Reply<pb::ExplainScoreResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let lead_id = required("lead_id", &req.lead_id)?;
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let stored = access.lead_score(&scope, model, lead_id).await.map_err(ApiError::from)?;
        let version = access
            .get_model_version(&scope, model, stored.model_version)
            .await
            .map_err(ApiError::from)?;
        let compiled = CompiledModel::from_json_value(version.spec)
            .map_err(|e| ApiError::Internal(format!("stored model does not compile: {e}")))?;
        let export = access.export_lead(&scope, lead_id).await.map_err(ApiError::from)?;
        let lead = engine_lead(&export.lead);
        let company = export.company.as_ref().map(engine_company);
        let events: Vec<_> = export.events.iter().map(engine_event).collect();
        let score = compiled.score(&lead, company.as_ref(), &events, stored.as_of_ms);
        let mut reply = convert::lead_score(&stored);
        reply.score = Some(score_pb(score, stored.model_version, stored.as_of_ms));
        Ok(Response::new(pb::ExplainScoreResponse { score: Some(reply) }))
    }

    async fn list_leads(
        &self,
        request: Request<pb::ListLeadsRequest>,
    ) -> Reply<pb::ListLeadsResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token).map_err(ApiError::from)?;
        let filter = LeadFilter {
            band: (!req.band.is_empty()).then(|| req.band.clone()),
            min_total: req.min_score.map(|m| milli("min_score", m)).transpose()?,
            changed_since_ms: req
                .changed_since
                .map(|t| {
                    kelvin_proto::convert::millis(&t).ok_or_else(|| {
                        ApiError::invalid("changed_since", "out of range or malformed")
                    })
                })
                .transpose()?,
        };
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (rows, next) =
            access.list_lead_scores(&scope, model, &filter, &page).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListLeadsResponse {
            scores: rows.iter().map(convert::lead_score).collect(),
            next_page_token: next,
        }))
    }

    async fn get_company_score(
        &self,
        request: Request<pb::GetCompanyScoreRequest>,
    ) -> Reply<pb::GetCompanyScoreResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let company = required("company_id", &req.company_id)?;
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let stored = access.company_score(&scope, model, company).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetCompanyScoreResponse {
            score: Some(convert::company_score(stored)),
        }))
    }

    async fn list_companies(
        &self,
        request: Request<pb::ListCompaniesRequest>,
    ) -> Reply<pb::ListCompaniesResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token).map_err(ApiError::from)?;
        let min = req.min_score.map(|m| milli("min_score", m)).transpose()?;
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let band = (!req.band.is_empty()).then_some(req.band.as_str());
        let (rows, next) = access
            .list_company_scores(&scope, model, band, min, &page)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListCompaniesResponse {
            scores: rows.into_iter().map(convert::company_score).collect(),
            next_page_token: next,
        }))
    }

    async fn get_score_history(
        &self,
        request: Request<pb::GetScoreHistoryRequest>,
    ) -> Reply<pb::GetScoreHistoryResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let lead = required("lead_id", &req.lead_id)?;
        let page = Page::parse(req.page_size, &req.page_token).map_err(ApiError::from)?;
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (rows, next) = access
            .score_history(&scope, model, lead, req.include_score_changes, &page)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetScoreHistoryResponse {
            changes: rows.into_iter().map(convert::change).collect(),
            next_page_token: next,
        }))
    }

    type WatchScoreChangesStream = WatchStream;

    async fn watch_score_changes(
        &self,
        request: Request<pb::WatchScoreChangesRequest>,
    ) -> Reply<Self::WatchScoreChangesStream> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        if req.after_cursor < -1 {
            return Err(ApiError::invalid("after_cursor", "must be -1, 0 or a cursor").into());
        }
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let head = access.change_head(&scope).await.map_err(ApiError::from)?;
        let mut cursor = match req.after_cursor {
            0 => head,
            -1 => 0,
            c => c,
        };
        let mut slot = self.hub.watcher.admit(&ctx.principal, scope.tenant_id(), head)?;
        let model = (!req.model_id.is_empty()).then(|| req.model_id.clone());
        let band_only = req.band_changes_only;
        let runtime = self.runtime.clone();
        let principal = ctx.principal;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_PAGE as usize);
        // The stream reads the store only when its tenant's head has passed its cursor; in
        // between it sleeps on the watcher (no timer, no query). The slot goes with the task.
        tokio::spawn(async move {
            let mut stopping = runtime.stopping();
            loop {
                if *stopping.borrow() {
                    return;
                }
                let verdict = *slot.verdict.borrow_and_update();
                match verdict {
                    Verdict::Valid => {}
                    Verdict::Revoked => {
                        let _ = tx
                            .send(Err(Status::unauthenticated(
                                "the API key or tenant is no longer valid",
                            )))
                            .await;
                        return;
                    }
                    Verdict::Unknown => {
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "the API key could not be re-checked; resume with after_cursor",
                            )))
                            .await;
                        return;
                    }
                }
                // Every change up to `head` is committed, so a read after taking it sees them.
                let head = *slot.head.borrow_and_update();
                if head > cursor {
                    let access = runtime.store.access(&principal);
                    let rows = match access
                        .changes_after(&scope, cursor, model.as_deref(), band_only, WATCH_PAGE)
                        .await
                    {
                        Ok(rows) => rows,
                        Err(error) => {
                            let _ = tx.send(Err(ApiError::from(error).into())).await;
                            return;
                        }
                    };
                    let full = rows.len() as u64 == WATCH_PAGE;
                    for row in rows {
                        cursor = row.change_no;
                        let message =
                            pb::WatchScoreChangesResponse { change: Some(convert::change(row)) };
                        if tx.send(Ok(message)).await.is_err() {
                            return; // the client went away
                        }
                    }
                    if full {
                        continue;
                    }
                    // Changes up to `head` that the filters left out are behind us too.
                    cursor = cursor.max(head);
                }
                tokio::select! {
                    _ = slot.head.changed() => {}
                    _ = slot.verdict.changed() => {}
                    _ = stopping.changed() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_rescore_status(
        &self,
        request: Request<pb::GetRescoreStatusRequest>,
    ) -> Reply<pb::GetRescoreStatusResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let model = model_or_default(&req.model_id);
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let status = access.rescore_status(&scope, model).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetRescoreStatusResponse {
            model_id: status.model_id,
            model_version: status.version,
            activate_time: status.activate_time_ms.map(kelvin_proto::convert::timestamp),
            total_leads: status.total_leads as i64,
            rescored_leads: status.rescored_leads as i64,
            done: status.version > 0 && status.rescored_leads >= status.total_leads,
        }))
    }

    async fn get_band_counts(
        &self,
        request: Request<pb::GetBandCountsRequest>,
    ) -> Reply<pb::GetBandCountsResponse> {
        let ctx = call_context(&request)?;
        let req = request.into_inner();
        let model = model_or_default(&req.model_id);
        let at = match req.as_of {
            Some(t) => Some(
                kelvin_proto::convert::millis(&t)
                    .ok_or_else(|| ApiError::invalid("as_of", "is malformed"))?,
            ),
            None => None,
        };
        let access = self.runtime.store.access(&ctx.principal);
        let scope = access.tenant_scope(&req.tenant_id).await.map_err(ApiError::from)?;
        let (version, rows) =
            access.band_counts(&scope, model, at).await.map_err(ApiError::from)?;
        let mut counts: Vec<pb::BandCount> = rows
            .into_iter()
            .map(|(band, grade, leads)| pb::BandCount { band, grade, leads })
            .collect();
        counts.sort_by(|a, b| (&a.band, &a.grade).cmp(&(&b.band, &b.grade)));
        let total_leads = counts.iter().map(|c| c.leads).sum();
        Ok(Response::new(pb::GetBandCountsResponse {
            model_id: model.to_owned(),
            model_version: version,
            counts,
            total_leads,
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Reply<pb::ListDeadLettersResponse> {
        let ctx = call_context(&request)?;
        Ok(Response::new(
            crate::dead_letters::list(&self.runtime, &ctx, request.into_inner()).await?,
        ))
    }

    async fn retry_dead_letters(
        &self,
        request: Request<pb::RetryDeadLettersRequest>,
    ) -> Reply<pb::RetryDeadLettersResponse> {
        let ctx = call_context(&request)?;
        Ok(Response::new(
            crate::dead_letters::retry(&self.runtime, &ctx, request.into_inner()).await?,
        ))
    }
}
