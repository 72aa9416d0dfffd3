//! The one place where errors become gRPC statuses. Internal details are logged, never sent.

use tonic::Status;

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] kelvin_store::Error),
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// A document (a scoring model spec) with problems, each at its field path: answered as
    /// INVALID_ARGUMENT with a `google.rpc.BadRequest` detail listing them all.
    #[error("invalid {field}: {}", .violations.first().map(|(p, m)| format!("{p}: {m}")).unwrap_or_default())]
    InvalidDocument { field: String, violations: Vec<(String, String)> },
    /// A quota (rate, batch size) was exceeded; the message says which and when to retry.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A rate or concurrency limit (of the caller, its key or its tenant) refused the call:
    /// RESOURCE_EXHAUSTED at once with a `google.rpc.RetryInfo` detail saying when to try
    /// again.
    #[error("{message}")]
    Throttled { message: String, retry_after: std::time::Duration },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A bad request field: INVALID_ARGUMENT naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), message: message.into() }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        use kelvin_store::Error as S;
        match error {
            ApiError::Store(e) => match e {
                S::NotFound { .. } => Status::not_found(e.to_string()),
                S::AlreadyExists { .. } => Status::already_exists(e.to_string()),
                S::PermissionDenied(_) => Status::permission_denied(e.to_string()),
                S::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
                S::Aborted(_) => Status::aborted(e.to_string()),
                S::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
                // The database is unreachable or busy: the caller may retry (logged, with no
                // detail sent).
                S::Db(_) if e.is_transient() => {
                    tracing::warn!(error = %e, "store unavailable");
                    Status::unavailable("the store is unavailable; retry shortly")
                }
                S::Db(_) | S::Config(_) => internal(&e),
            },
            e @ ApiError::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
            ApiError::InvalidDocument { ref field, ref violations } => {
                use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
                let message = format!("{} ({} problem(s) in {field})", error, violations.len());
                let details = ErrorDetails::with_bad_request(
                    violations
                        .iter()
                        .map(|(path, description)| {
                            FieldViolation::new(format!("{field}.{path}"), description)
                        })
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(tonic::Code::InvalidArgument, message, details)
            }
            ApiError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ApiError::Throttled { message, retry_after } => {
                use tonic_types::{ErrorDetails, StatusExt};
                Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    message,
                    ErrorDetails::with_retry_info(Some(retry_after)),
                )
            }
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            e @ ApiError::Internal(_) => internal(&e),
        }
    }
}

fn internal(error: &dyn std::error::Error) -> Status {
    let incident = uuid::Uuid::now_v7();
    tracing::error!(%incident, error = %error, "internal error");
    Status::internal(format!("internal error (incident {incident})"))
}
