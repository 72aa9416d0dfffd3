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
    /// A lead filter asks for a band the model does not have (`Hot` for `hot`): a mistake, not
    /// an empty page. The service edge answers INVALID_ARGUMENT on the request's band.
    #[error("model `{model_id}` has no band `{band}`; its bands: {bands}")]
    UnknownBand { model_id: String, band: String, bands: String },
    /// A page key the store itself decodes (after [`crate::Page::parse`]) is not one it
    /// handed out: the service edge answers INVALID_ARGUMENT on the request's page token.
    #[error("malformed page token")]
    MalformedPageToken,
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

    /// Whether the error says nothing about the work being done: the database is unreachable,
    /// busy, or rolled the transaction back for concurrency. Such work is retried as it is;
    /// any other failure is the work's own (bad data, a refused value) and counts against it.
    pub fn is_transient(&self) -> bool {
        use sea_orm::{DbErr, RuntimeErr};
        match self {
            Self::Aborted(_) => true,
            Self::Db(DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) => true,
            Self::Db(
                DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)),
            ) => {
                match e.as_ref() {
                    sea_orm::sqlx::Error::Database(db) => {
                        let code = db.code().unwrap_or_default();
                        // SQLite: BUSY, LOCKED. PostgreSQL classes: connection exception,
                        // transaction rollback, insufficient resources, operator intervention,
                        // system error.
                        matches!(code.as_ref(), "5" | "6" | "517" | "262")
                            || ["08", "40", "53", "57", "58"].iter().any(|c| code.starts_with(c))
                    }
                    sea_orm::sqlx::Error::Io(_)
                    | sea_orm::sqlx::Error::Tls(_)
                    | sea_orm::sqlx::Error::Protocol(_)
                    | sea_orm::sqlx::Error::PoolTimedOut
                    | sea_orm::sqlx::Error::PoolClosed
                    | sea_orm::sqlx::Error::WorkerCrashed => true,
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
