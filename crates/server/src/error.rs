//! The one place where errors become gRPC statuses. Internal details are logged, never sent.
//!
//! Messages are bounded here too: an error may quote what the caller sent (an id, a field path
//! through a document's keys), and a 1 MB id echoed back would not even fit in the
//! `grpc-message` header that carries it.

use std::borrow::Cow;

use tonic::Status;

/// The longest message a status carries, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The longest quoted value (between backticks) a message keeps, in characters.
const MAX_QUOTED_CHARS: usize = 64;
/// The longest field path or description of a `google.rpc.BadRequest` detail, in characters.
const MAX_DETAIL_CHARS: usize = 128;
/// The most bytes of field paths and descriptions a `google.rpc.BadRequest` detail lists: with
/// the message, well within the 16 KiB of headers that clients accept.
const MAX_DETAILS_BYTES: usize = 4096;

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

/// Names the request field a parsed value came from: the store's value types
/// ([`kelvin_store::ResourceId`], [`kelvin_store::DisplayName`], [`kelvin_store::Labels`]) say
/// only why a value is wrong, the service says where (`.at("template.template_id")`).
pub trait At<T> {
    fn at(self, field: &str) -> ApiResult<T>;
}

impl<T> At<T> for Result<T, kelvin_store::Invalid> {
    fn at(self, field: &str) -> ApiResult<T> {
        self.map_err(|e| ApiError::invalid(format!("{field}{}", e.suffix), e.reason))
    }
}

/// Every page request names its fields the same way (`page_size`, `page_token`).
impl From<kelvin_store::PageInvalid> for ApiError {
    fn from(e: kelvin_store::PageInvalid) -> Self {
        let field = match e.field {
            kelvin_store::PageField::Size => "page_size",
            kelvin_store::PageField::Token => "page_token",
        };
        Self::invalid(field, e.reason)
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        use kelvin_store::Error as S;
        let bounded = |message: String| bounded_message(&message).into_owned();
        match error {
            ApiError::Store(e) => match e {
                S::NotFound { .. } => Status::not_found(bounded(e.to_string())),
                S::AlreadyExists { .. } => Status::already_exists(bounded(e.to_string())),
                S::PermissionDenied(_) => Status::permission_denied(bounded(e.to_string())),
                S::UnknownBand { .. } => Status::from(ApiError::invalid("band", e.to_string())),
                S::MalformedPageToken => Status::from(ApiError::invalid("page_token", "malformed")),
                S::Aborted(_) => Status::aborted(bounded(e.to_string())),
                S::FailedPrecondition(_) => Status::failed_precondition(bounded(e.to_string())),
                // The database is unreachable or busy: the caller may retry (logged, with no
                // detail sent).
                S::Db(_) if e.is_transient() => {
                    tracing::warn!(error = %e, "store unavailable");
                    Status::unavailable("the store is unavailable; retry shortly")
                }
                S::Db(_) | S::Config(_) => internal(&e),
            },
            e @ ApiError::InvalidArgument { .. } => {
                Status::invalid_argument(bounded(e.to_string()))
            }
            ApiError::InvalidDocument { ref field, ref violations } => {
                use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
                // Every problem in the message too (bounded below), not only the first: a
                // client that shows only the message (grpcurl, a log line) sees them all.
                let listed: Vec<String> =
                    violations.iter().map(|(path, m)| format!("{path}: {m}")).collect();
                let message = format!(
                    "invalid {field}: {} ({} problem(s) in {field})",
                    listed.join("; "),
                    violations.len()
                );
                // The details travel in a header too (with the message): as many violations
                // as fit in `MAX_DETAILS_BYTES`, each cut to `MAX_DETAIL_CHARS`.
                let mut budget = MAX_DETAILS_BYTES;
                let listed = violations
                    .iter()
                    .map(|(path, description)| {
                        FieldViolation::new(
                            elide(&format!("{field}.{path}"), MAX_DETAIL_CHARS),
                            elide(description, MAX_DETAIL_CHARS),
                        )
                    })
                    .take_while(|v| {
                        let size = v.field.len() + v.description.len();
                        budget = budget.saturating_sub(size);
                        budget > 0
                    })
                    .collect::<Vec<_>>();
                Status::with_error_details(
                    tonic::Code::InvalidArgument,
                    bounded(message),
                    ErrorDetails::with_bad_request(listed),
                )
            }
            ApiError::ResourceExhausted(m) => Status::resource_exhausted(bounded(m)),
            ApiError::Throttled { message, retry_after } => {
                use tonic_types::{ErrorDetails, StatusExt};
                Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    bounded(message),
                    ErrorDetails::with_retry_info(Some(retry_after)),
                )
            }
            ApiError::Unauthenticated(m) => Status::unauthenticated(bounded(m)),
            ApiError::PermissionDenied(m) => Status::permission_denied(bounded(m)),
            e @ ApiError::Internal(_) => internal(&e),
        }
    }
}

/// `message` with every quoted value shortened to `MAX_QUOTED_CHARS` characters and the whole
/// to `MAX_MESSAGE_BYTES` bytes, each cut marked with an ellipsis.
fn bounded_message(message: &str) -> Cow<'_, str> {
    let quoted = message
        .split('`')
        .enumerate()
        .any(|(i, part)| i % 2 == 1 && part.chars().nth(MAX_QUOTED_CHARS).is_some());
    if !quoted && message.len() <= MAX_MESSAGE_BYTES {
        return Cow::Borrowed(message);
    }
    let parts: Vec<Cow<'_, str>> = message
        .split('`')
        .enumerate()
        .map(
            |(i, part)| {
                if i % 2 == 1 { elide(part, MAX_QUOTED_CHARS) } else { Cow::Borrowed(part) }
            },
        )
        .collect();
    let joined = parts.join("`");
    Cow::Owned(truncate_bytes(&joined, MAX_MESSAGE_BYTES).into_owned())
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn elide(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

/// `text` cut to at most `max` bytes (an ellipsis included) on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

fn internal(error: &dyn std::error::Error) -> Status {
    let incident = uuid::Uuid::now_v7();
    tracing::error!(%incident, error = %error, "internal error");
    Status::internal(format!("internal error (incident {incident})"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Issue 17: the store says why a value is wrong and the service says where; the
    /// statuses read exactly as when the store spelled the fields itself.
    #[test]
    fn the_edge_names_the_fields_the_store_no_longer_spells() {
        use kelvin_store::{Error as S, Labels, Page, ResourceId};
        let message = |e: ApiError| {
            let status = Status::from(e);
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            status.message().to_owned()
        };
        let id = ResourceId::parse("Bad").at("template.template_id").unwrap_err();
        assert_eq!(
            message(id),
            "invalid template.template_id: must be 1-63 characters of [a-z0-9-], start with a \
             letter and not end with '-'"
        );
        let empty = ResourceId::parse("").at("tenant_id").unwrap_err();
        assert_eq!(message(empty), "invalid tenant_id: is required");
        let labels = [("a b".to_owned(), String::new())].into();
        let labels = Labels::parse(&labels).at("labels").unwrap_err();
        assert_eq!(
            message(labels),
            "invalid labels[a b]: keys are 1-63 characters of [A-Za-z0-9-_./]"
        );
        let size = ApiError::from(Page::parse(-1, "").unwrap_err());
        assert_eq!(message(size), "invalid page_size: must be between 0 and 1000");
        let token = ApiError::from(Page::parse(0, "!!").unwrap_err());
        assert_eq!(message(token), "invalid page_token: malformed");
        let key = ApiError::Store(S::MalformedPageToken);
        assert_eq!(message(key), "invalid page_token: malformed");
        let band = ApiError::Store(S::UnknownBand {
            model_id: "m".into(),
            band: "Hot".into(),
            bands: "hot, cold".into(),
        });
        assert_eq!(
            message(band),
            "invalid band: model `m` has no band `Hot`; its bands: hot, cold"
        );
    }

    /// Finding 12: a 1 MB id came back whole in the status message (and did not fit in the
    /// `grpc-message` header): quoted values are cut, and every message is bounded.
    #[test]
    fn messages_never_echo_unbounded_caller_input() {
        let id = "é".repeat(500_000);
        let status = Status::from(ApiError::Store(kelvin_store::Error::NotFound {
            kind: "tenant",
            id: id.clone(),
        }));
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().len() <= MAX_MESSAGE_BYTES, "{}", status.message().len());
        let short = format!("tenant `{}…` not found", "é".repeat(MAX_QUOTED_CHARS));
        assert_eq!(status.message(), short);

        let status = Status::from(ApiError::invalid("field", "x".repeat(1 << 20)));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        assert!(status.message().starts_with("invalid field: xxx"), "{}", status.message());
        assert!(status.message().ends_with('…'));

        // Details are bounded too, and kept.
        let status = Status::from(ApiError::InvalidDocument {
            field: "spec".into(),
            violations: vec![(format!("fit.{}", "k".repeat(1 << 20)), "bad".into())],
        });
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        // The details repeat the message: bounded too (a spec key of 15 KB broke the call).
        assert!(status.details().len() <= 8192, "{}", status.details().len());
        use tonic_types::StatusExt as _;
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert!(
            violation.field.chars().count() <= MAX_DETAIL_CHARS + 1,
            "{}",
            violation.field.len()
        );
    }

    #[test]
    fn short_messages_are_unchanged() {
        let status = Status::from(ApiError::Store(kelvin_store::Error::NotFound {
            kind: "tenant",
            id: "acme-fr".into(),
        }));
        assert_eq!(status.message(), "tenant `acme-fr` not found");
        assert_eq!(bounded_message("a `b` c"), "a `b` c");
        assert_eq!(bounded_message(""), "");
    }
}
