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
use kelvin_scores::{
    cache_entry, company_score, decode_lead_score, engine_company, engine_event, engine_lead,
    erased_key, lead_score, score_key, score_pb,
};
use kelvin_server::{ApiError, Reply, Runtime, handle};
use kelvin_store::{LeadFilter, Page, StoredScore, TenantScope};
use tonic::{Request, Status};

use crate::watch::Verdict;
use crate::{DEFAULT_MODEL, Hub};

/// Most leads in one BatchGetScores call.
const MAX_BATCH: usize = 1000;
/// Changes read per query by a change stream.
const WATCH_PAGE: u64 = 500;

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
        let entries: Vec<_> = scores.iter().map(|s| cache_entry(ns.clone(), s)).collect();
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
                        v.filter(|_| !erased).and_then(|bytes| decode_lead_score(&bytes))
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
        handle(request, |ctx, req| async move {
            let lead = required("lead_id", &req.lead_id)?.to_owned();
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let (mut hits, marks) = self.cached(&scope, model, std::slice::from_ref(&lead)).await;
            if let Some(Some(hit)) = hits.pop() {
                return Ok(pb::GetScoreResponse { score: Some(hit) });
            }
            let stored = access.lead_score(&scope, model, &lead).await?;
            if !marks.contains(&true) {
                self.refill(&scope, std::slice::from_ref(&stored)).await;
            }
            Ok(pb::GetScoreResponse { score: Some(lead_score(&stored)) })
        })
        .await
    }

    async fn batch_get_scores(
        &self,
        request: Request<pb::BatchGetScoresRequest>,
    ) -> Reply<pb::BatchGetScoresResponse> {
        handle(request, |ctx, req| async move {
            if req.lead_ids.len() > MAX_BATCH {
                return Err(ApiError::invalid("lead_ids", format!("at most {MAX_BATCH} per call")));
            }
            if let Some(i) = req.lead_ids.iter().position(String::is_empty) {
                return Err(ApiError::invalid(format!("lead_ids[{i}]"), "is empty"));
            }
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
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
                let stored = access.lead_scores(&scope, model, &misses).await?;
                let unmarked: Vec<StoredScore> = stored
                    .iter()
                    .filter(|s| !marked.contains(s.lead_id.as_str()))
                    .cloned()
                    .collect();
                self.refill(&scope, &unmarked).await;
                let by_id: std::collections::HashMap<&str, &StoredScore> =
                    stored.iter().map(|s| (s.lead_id.as_str(), s)).collect();
                for (id, slot) in req.lead_ids.iter().zip(found.iter_mut()) {
                    if slot.is_none() {
                        *slot = by_id.get(id.as_str()).map(|s| lead_score(s));
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
            Ok(response)
        })
        .await
    }

    async fn explain_score(
        &self,
        request: Request<pb::ExplainScoreRequest>,
    ) -> Reply<pb::ExplainScoreResponse> {
        handle(request, |ctx, req| async move {
            let lead_id = required("lead_id", &req.lead_id)?;
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let stored = access.lead_score(&scope, model, lead_id).await?;
            let version = access.get_model_version(&scope, model, stored.model_version).await?;
            let compiled = CompiledModel::from_json_value(version.spec)
                .map_err(|e| ApiError::Internal(format!("stored model does not compile: {e}")))?;
            let export = access.export_lead(&scope, lead_id).await?;
            let lead = engine_lead(&export.lead);
            let company = export.company.as_ref().map(engine_company);
            let events: Vec<_> = export.events.iter().map(engine_event).collect();
            let score = compiled.score(&lead, company.as_ref(), &events, stored.as_of_ms);
            let mut reply = lead_score(&stored);
            reply.score = Some(score_pb(score, stored.model_version, stored.as_of_ms));
            Ok(pb::ExplainScoreResponse { score: Some(reply) })
        })
        .await
    }

    async fn list_leads(
        &self,
        request: Request<pb::ListLeadsRequest>,
    ) -> Reply<pb::ListLeadsResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
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
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let (rows, next) = access.list_lead_scores(&scope, model, &filter, &page).await?;
            Ok(pb::ListLeadsResponse {
                scores: rows.iter().map(lead_score).collect(),
                next_page_token: next,
            })
        })
        .await
    }

    async fn get_company_score(
        &self,
        request: Request<pb::GetCompanyScoreRequest>,
    ) -> Reply<pb::GetCompanyScoreResponse> {
        handle(request, |ctx, req| async move {
            let company = required("company_id", &req.company_id)?;
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let stored = access.company_score(&scope, model, company).await?;
            Ok(pb::GetCompanyScoreResponse { score: Some(company_score(stored)) })
        })
        .await
    }

    async fn list_companies(
        &self,
        request: Request<pb::ListCompaniesRequest>,
    ) -> Reply<pb::ListCompaniesResponse> {
        handle(request, |ctx, req| async move {
            let page = Page::parse(req.page_size, &req.page_token)?;
            let min = req.min_score.map(|m| milli("min_score", m)).transpose()?;
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let band = (!req.band.is_empty()).then_some(req.band.as_str());
            let (rows, next) = access.list_company_scores(&scope, model, band, min, &page).await?;
            Ok(pb::ListCompaniesResponse {
                scores: rows.into_iter().map(company_score).collect(),
                next_page_token: next,
            })
        })
        .await
    }

    async fn get_score_history(
        &self,
        request: Request<pb::GetScoreHistoryRequest>,
    ) -> Reply<pb::GetScoreHistoryResponse> {
        handle(request, |ctx, req| async move {
            let lead = required("lead_id", &req.lead_id)?;
            let page = Page::parse(req.page_size, &req.page_token)?;
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let (rows, next) =
                access.score_history(&scope, model, lead, req.include_score_changes, &page).await?;
            Ok(pb::GetScoreHistoryResponse {
                changes: rows.into_iter().map(kelvin_scores::change).collect(),
                next_page_token: next,
            })
        })
        .await
    }

    type WatchScoreChangesStream = WatchStream;

    async fn watch_score_changes(
        &self,
        request: Request<pb::WatchScoreChangesRequest>,
    ) -> Reply<Self::WatchScoreChangesStream> {
        handle(request, |ctx, req| async move {
            if req.after_cursor < -1 {
                return Err(ApiError::invalid("after_cursor", "must be -1, 0 or a cursor"));
            }
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let head = access.change_head(&scope).await?;
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
                            let message = pb::WatchScoreChangesResponse {
                                change: Some(kelvin_scores::change(row)),
                            };
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
            let stream: WatchStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(stream)
        })
        .await
    }

    async fn get_rescore_status(
        &self,
        request: Request<pb::GetRescoreStatusRequest>,
    ) -> Reply<pb::GetRescoreStatusResponse> {
        handle(request, |ctx, req| async move {
            let model = model_or_default(&req.model_id);
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let status = access.rescore_status(&scope, model).await?;
            Ok(pb::GetRescoreStatusResponse {
                model_id: status.model_id,
                model_version: status.version,
                activate_time: status.activate_time_ms.map(kelvin_proto::convert::timestamp),
                total_leads: status.total_leads as i64,
                rescored_leads: status.rescored_leads as i64,
                done: status.version > 0 && status.rescored_leads >= status.total_leads,
            })
        })
        .await
    }

    async fn get_band_counts(
        &self,
        request: Request<pb::GetBandCountsRequest>,
    ) -> Reply<pb::GetBandCountsResponse> {
        handle(request, |ctx, req| async move {
            let model = model_or_default(&req.model_id);
            let at = match req.as_of {
                Some(t) => Some(
                    kelvin_proto::convert::millis(&t)
                        .ok_or_else(|| ApiError::invalid("as_of", "is malformed"))?,
                ),
                None => None,
            };
            let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
            let (version, rows) = access.band_counts(&scope, model, at).await?;
            let mut counts: Vec<pb::BandCount> = rows
                .into_iter()
                .map(|(band, grade, leads)| pb::BandCount { band, grade, leads })
                .collect();
            counts.sort_by(|a, b| (&a.band, &a.grade).cmp(&(&b.band, &b.grade)));
            let total_leads = counts.iter().map(|c| c.leads).sum();
            Ok(pb::GetBandCountsResponse {
                model_id: model.to_owned(),
                model_version: version,
                counts,
                total_leads,
            })
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Reply<pb::ListDeadLettersResponse> {
        handle(request, |ctx, req| crate::dead_letters::list(&self.runtime, ctx, req)).await
    }

    async fn retry_dead_letters(
        &self,
        request: Request<pb::RetryDeadLettersRequest>,
    ) -> Reply<pb::RetryDeadLettersResponse> {
        handle(request, |ctx, req| crate::dead_letters::retry(&self.runtime, ctx, req)).await
    }
}
