//! The tower layer every call goes through: request id, span, authentication and permission.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use kelvin_auth::{TokenOrigin, VerifiedToken, Verifier, permission_for};
use kelvin_store::Store;
use tonic::Status;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::admission::{Admission, Share, Slot, grpc_timeout, with_retry};

/// Metadata key of the request id (taken from the caller when valid, generated otherwise).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Shared state of the layer.
pub(crate) struct Gate {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) store: Store,
    /// Load shedding and per-caller shares (see `admission`).
    pub(crate) admission: Admission,
    /// Set by the health watcher while the store does not answer: calls fail fast instead of
    /// each waiting for a connection that will not come.
    pub(crate) store_down: Arc<AtomicBool>,
    /// The deadline of a call whose client set none (or a longer one).
    pub(crate) max_deadline: Duration,
}

/// Server-side expiry is answered a little before the transport's own timer (which would say
/// CANCELLED) fires at the same deadline: a tenth of it, between 5 and 50 ms.
fn deadline_margin(deadline: Duration) -> Duration {
    (deadline / 10).clamp(Duration::from_millis(5), Duration::from_millis(50))
}

#[derive(Clone)]
pub(crate) struct CallLayer {
    gate: Arc<Gate>,
}

impl CallLayer {
    pub(crate) fn new(gate: Gate) -> Self {
        Self { gate: Arc::new(gate) }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallService { inner, gate: self.gate.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct CallService<S> {
    inner: S,
    gate: Arc<Gate>,
}

/// A caller's request path as it may appear in a message: bounded, whatever was sent.
fn shown(path: &str) -> String {
    match path.char_indices().nth(128) {
        Some((at, _)) => format!("{}…", &path[..at]),
        None => path.to_owned(),
    }
}

/// Health checks and reflection are open: probes and tools need them without a token.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

impl<S, B> Service<Request<B>> for CallService<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let path = request.uri().path().to_owned();
        let request_id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(v) if valid_request_id(v) => v.clone(),
            _ => {
                let fresh = HeaderValue::from_str(&uuid::Uuid::now_v7().to_string());
                let fresh = fresh.unwrap_or_else(|_| HeaderValue::from_static("unknown"));
                request.headers_mut().insert(REQUEST_ID_HEADER, fresh.clone());
                fresh
            }
        };
        let span = tracing::info_span!(
            "rpc",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %path,
            request_id = %request_id.to_str().unwrap_or_default(),
            actor = tracing::field::Empty,
            grpc.status = tracing::field::Empty,
        );
        kelvin_telemetry::set_remote_parent(&span, request.headers());
        Box::pin(
            async move {
                let started = Instant::now();
                let public = is_public(&path);
                let mut response = if public {
                    inner.call(request).await?
                } else {
                    let deadline = grpc_timeout(request.headers())
                        .map_or(gate.max_deadline, |d| d.min(gate.max_deadline));
                    let deadline = deadline.saturating_sub(deadline_margin(deadline));
                    match gate.enter(&path, request.headers()).await {
                        Ok((principal, slot, share)) => {
                            tracing::Span::current().record("actor", principal.actor());
                            request.extensions_mut().insert(principal);
                            let answer = tokio::time::timeout(deadline, inner.call(request)).await;
                            drop((slot, share));
                            match answer {
                                Ok(response) => response?,
                                Err(_) => Status::deadline_exceeded(
                                    "the call did not finish within its deadline",
                                )
                                .into_http(),
                            }
                        }
                        Err(status) => status.into_http(),
                    }
                };
                response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned();
                tracing::Span::current().record("grpc.status", code.as_str());
                // Unknown paths share one label: callers must not be able to mint series.
                let method = if public || permission_for(&path).is_some() {
                    path.clone()
                } else {
                    "other".to_owned()
                };
                kelvin_telemetry::metrics::instruments().rpc_duration.record(
                    started.elapsed().as_secs_f64(),
                    &[
                        kelvin_telemetry::metrics::kv("rpc.method", method),
                        kelvin_telemetry::metrics::kv("rpc.grpc.status_code", code.clone()),
                    ],
                );
                if !public {
                    tracing::info!(elapsed_ms = started.elapsed().as_secs_f64() * 1e3, grpc.status = %code, "call");
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

impl Gate {
    /// Lets a call in, or refuses it at once: the store is known to be down (UNAVAILABLE), the
    /// process is at capacity (UNAVAILABLE), the token fails, or its caller already holds its
    /// share of the slots (RESOURCE_EXHAUSTED). The slot and share are held until the handler
    /// answers.
    async fn enter(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<(kelvin_auth::Principal, Option<Slot>, Option<Share>), Status> {
        if self.store_down.load(Ordering::Relaxed) {
            return Err(with_retry(
                tonic::Code::Unavailable,
                "the store is unavailable; retry shortly",
                Duration::from_secs(1),
            ));
        }
        // The token first (a signature check, no I/O), so that the caller's share is taken
        // before any slot of the process: one key's flood is refused at its share and never
        // fills the slots every tenant needs. Streams have limits of their own and hold no slot.
        let verified = self.verify(headers).await?;
        let (share, slot) = if kelvin_proto::codec::is_streaming(path) {
            (None, None)
        } else {
            let caller = match verified.principal.api_key_id() {
                Some(key) => format!("key:{key}"),
                None => format!("actor:{}", verified.principal.actor()),
            };
            let share = self.admission.share(&caller)?;
            (Some(share), Some(self.admission.slot()?))
        };
        self.authorize(path, &verified).await?;
        Ok((verified.principal, slot, share))
    }

    /// Verifies the bearer token (signature, claims); no store access.
    async fn verify(&self, headers: &http::HeaderMap) -> Result<VerifiedToken, Status> {
        let value = headers.get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing bearer token in `authorization` metadata")
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Status::unauthenticated("`authorization` must be `Bearer <token>`"))?;
        self.verifier.verify(token).await.map_err(|e| Status::unauthenticated(e.to_string()))
    }

    /// Checks that the token's API key is not revoked and the permission table.
    async fn authorize(&self, path: &str, verified: &VerifiedToken) -> Result<(), Status> {
        if verified.origin == TokenOrigin::Kelvin
            && let Some(key_id) = verified.principal.api_key_id()
        {
            use kelvin_store::ApiKeyState;
            let state = self.store.api_key_state(key_id).await.map_err(|error| {
                tracing::error!(%error, "cannot check API key");
                Status::unavailable("cannot check the token now, retry")
            })?;
            match state {
                ApiKeyState::Active => {}
                // Signed with this server's key but naming no key it issued: a hand-made token.
                ApiKeyState::Unknown => {
                    return Err(Status::unauthenticated(
                        "unknown API key: this token was not issued by this server (mint one with the `admin-token` command or CreateApiKey)",
                    ));
                }
                ApiKeyState::Revoked | ApiKeyState::Expired | ApiKeyState::TenantInactive => {
                    return Err(Status::unauthenticated("token revoked or expired"));
                }
            }
        }
        let roles = permission_for(path).ok_or_else(|| {
            Status::permission_denied(format!("`{}` is not open to any role", shown(path)))
        })?;
        let role = verified.principal.role();
        if !roles.contains(&role) {
            return Err(Status::permission_denied(format!(
                "role `{}` may not call `{}`",
                role.as_str(),
                shown(path)
            )));
        }
        Ok(())
    }
}
