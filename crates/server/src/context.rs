//! What a handler knows about its call (the verified principal and the request id), and
//! [`handle`], the boundary every unary and streaming handler goes through: it extracts the call
//! context and the request, runs the handler's body, and turns its [`ApiError`] into a
//! `tonic::Status` there and only there. Handler bodies return [`ApiResult`], so `?` works on
//! store errors (and every other error `ApiError` converts from) with no `map_err` at the call
//! site.

use std::future::Future;

use kelvin_auth::Principal;
use kelvin_store::{Access, TenantScope};
use tonic::{Request, Response, Status};

use crate::{ApiError, ApiResult, Runtime};

/// What every handler of a `kelvin.v1` service answers.
pub type Reply<T> = Result<Response<T>, Status>;

/// The caller of one RPC.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub principal: Principal,
    pub request_id: String,
}

impl CallContext {
    /// The store as this caller reaches it.
    pub fn access<'a>(&'a self, runtime: &'a Runtime) -> Access<'a> {
        runtime.store.access(&self.principal)
    }

    /// The store as this caller reaches it, and the tenant `tenant_id` within that reach
    /// (INVALID_ARGUMENT on `tenant_id` when empty, NOT_FOUND when it is out of reach or
    /// missing): what most handlers start with.
    pub async fn tenant<'a>(
        &'a self,
        runtime: &'a Runtime,
        tenant_id: &str,
    ) -> ApiResult<(Access<'a>, TenantScope)> {
        use crate::At;
        let tenant_id = kelvin_store::required(tenant_id).at("tenant_id")?;
        let access = self.access(runtime);
        let scope = access.tenant_scope(tenant_id).await?;
        Ok((access, scope))
    }
}

/// The call context the authentication layer attached to `request`.
pub fn call_context<T>(request: &Request<T>) -> Result<CallContext, ApiError> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no authenticated principal".into()))?;
    let request_id = request
        .metadata()
        .get(crate::call::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(CallContext { principal, request_id })
}

/// Serves one call: `handler` gets the call context and the request message and answers the
/// response message or an [`ApiError`], which becomes the call's status here (see
/// [`ApiError`]'s `From` impl: the one mapping of errors to statuses).
///
/// ```text
/// async fn get_model(&self, request: Request<pb::GetModelRequest>) -> Reply<pb::GetModelResponse> {
///     handle(request, |ctx, req| async move {
///         let (access, scope) = ctx.tenant(&self.runtime, &req.tenant_id).await?;
///         let model = access.get_model(&scope, &req.model_id).await?;
///         Ok(pb::GetModelResponse { model: Some(model_pb(model)) })
///     })
///     .await
/// }
/// ```
pub async fn handle<T, R, F, Fut>(request: Request<T>, handler: F) -> Reply<R>
where
    F: FnOnce(CallContext, T) -> Fut,
    Fut: Future<Output = ApiResult<R>>,
{
    let ctx = call_context(&request)?;
    respond(handler(ctx, request.into_inner()).await)
}

/// A handler's answer as the call's reply.
fn respond<R>(answer: ApiResult<R>) -> Reply<R> {
    match answer {
        Ok(reply) => Ok(Response::new(reply)),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request the authentication layer did not pass: UNAUTHENTICATED, and the handler's
    /// body never runs.
    #[tokio::test]
    async fn a_call_without_a_principal_never_reaches_the_handler() {
        let reply: Reply<()> =
            handle(Request::new(()), |_, _| async { panic!("the handler ran") }).await;
        assert_eq!(reply.err().map(|s| s.code()), Some(tonic::Code::Unauthenticated));
    }

    /// A handler's error becomes its status at the boundary: a store error through `?`, with
    /// no conversion at the call site.
    #[test]
    fn a_handler_error_becomes_its_status() {
        let body = || -> ApiResult<()> {
            let missing: kelvin_store::Result<()> =
                Err(kelvin_store::Error::NotFound { kind: "tenant", id: "acme".into() });
            missing?;
            Ok(())
        };
        let status = respond(body()).err();
        assert_eq!(status.as_ref().map(|s| s.code()), Some(tonic::Code::NotFound));
        assert_eq!(
            status.map(|s| s.message().to_owned()).as_deref(),
            Some("tenant `acme` not found")
        );
        assert_eq!(respond(Ok(7)).ok().map(Response::into_inner), Some(7));
    }

    /// `kelvin-server` is what every service shares; the engine is the rules and scoring
    /// services' own business (score conversions live in `kelvin-scores`).
    #[test]
    fn the_server_does_not_depend_on_the_engine() {
        let manifest = include_str!("../Cargo.toml");
        assert!(!manifest.contains("kelvin-engine"), "kelvin-server depends on kelvin-engine");
    }
}
