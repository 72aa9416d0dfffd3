//! What a handler knows about its call: the verified principal and the request id.

use kelvin_auth::Principal;
use tonic::Request;

use crate::ApiError;

/// The caller of one RPC.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub principal: Principal,
    pub request_id: String,
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
