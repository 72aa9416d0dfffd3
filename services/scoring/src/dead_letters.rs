//! `ListDeadLetters` and `RetryDeadLetters`: the scoring work of a tenant that failed too often
//! (see the worker's `isolate`), shown to the tenant and put back in the queue on request.

use kelvin_proto::convert::timestamp;
use kelvin_proto::v1 as pb;
use kelvin_server::{ApiError, ApiResult, CallContext, Runtime};
use kelvin_store::{AuditContext, DeadLetter, Page, WorkKind};

/// Most dead letters one retry names.
const MAX_RETRY_IDS: usize = 1000;

fn kind_name(kind: WorkKind) -> &'static str {
    match kind {
        WorkKind::Event => "event",
        WorkKind::Lead => "lead",
        WorkKind::Company => "company",
        WorkKind::Erased => "erased",
        WorkKind::CompanyAttributes => "company_attributes",
    }
}

fn dead_letter(d: DeadLetter) -> pb::DeadLetter {
    pb::DeadLetter {
        dead_letter_id: d.id,
        kind: kind_name(d.kind).into(),
        subject_id: d.subject_id,
        attempts: d.attempts,
        error: d.error,
        enqueue_time: Some(timestamp(d.enqueue_time_ms)),
        dead_time: Some(timestamp(d.dead_time_ms)),
    }
}

pub(crate) async fn list(
    runtime: &Runtime,
    ctx: CallContext,
    req: pb::ListDeadLettersRequest,
) -> ApiResult<pb::ListDeadLettersResponse> {
    let page = Page::parse(req.page_size, &req.page_token)?;
    let (access, scope) = ctx.tenant(runtime, &req.tenant_id).await?;
    let (rows, next_page_token) = access.dead_letters(&scope, &page).await?;
    Ok(pb::ListDeadLettersResponse {
        dead_letters: rows.into_iter().map(dead_letter).collect(),
        next_page_token,
    })
}

pub(crate) async fn retry(
    runtime: &Runtime,
    ctx: CallContext,
    req: pb::RetryDeadLettersRequest,
) -> ApiResult<pb::RetryDeadLettersResponse> {
    if req.dead_letter_ids.len() > MAX_RETRY_IDS {
        return Err(ApiError::invalid(
            "dead_letter_ids",
            format!("at most {MAX_RETRY_IDS} per call (leave it empty to retry all)"),
        ));
    }
    let (access, scope) = ctx.tenant(runtime, &req.tenant_id).await?;
    let audit = AuditContext {
        request_id: ctx.request_id.clone(),
        reason: "retry of failed scoring work".into(),
    };
    let retried = access.retry_dead_letters(&scope, &req.dead_letter_ids, &audit).await?;
    Ok(pb::RetryDeadLettersResponse { retried: retried as i64 })
}
