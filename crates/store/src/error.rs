//! Store errors. The service edge maps them to gRPC codes in one place.

/// What went wrong, phrased so that a caller outside the principal's reach learns nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Absent, or out of the caller's reach: the two are indistinguishable on purpose.
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// An etag or expected version did not match.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("store configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { kind, id: id.into() }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
