//! `ErrorReport`: a request that failed, as JavaScript sees it: its neutral
//! kind (`invalid_argument`, `not_found`, …), message, the records at
//! fault and, where waiting helps, when to retry. The TypeScript layer maps
//! the kind to the status an HTTP client would have had, once
//! (`src/errors.ts`); the binding knows no HTTP.

use napi_derive::napi;
use redesmyn::{ErrorKind, RequestError};

/// Where a body stopped matching the schema.
#[napi(object)]
pub struct RecordErrorReport {
    /// The record's index in the body.
    pub record: Option<u32>,
    pub field: Option<String>,
    pub message: String,
}

#[napi(object)]
pub struct ErrorReport {
    /// `malformed`, `invalid_argument`, `not_found`, `unsupported`,
    /// `too_large`, `unsupported_format`, `resource_exhausted`,
    /// `unavailable`, `deadline_exceeded`, `cancelled`, `internal`, and for
    /// jobs `conflict` (a job that can no longer be cancelled).
    pub kind: String,
    pub message: String,
    pub details: Vec<RecordErrorReport>,
    pub retry_after_ms: Option<f64>,
}

/// The name JavaScript sees for a kind.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Malformed => "malformed",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::UnsupportedFormat => "unsupported_format",
        ErrorKind::ResourceExhausted => "resource_exhausted",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::DeadlineExceeded => "deadline_exceeded",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::Internal => "internal",
    }
}

impl ErrorReport {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorReport { kind: kind.into(), message: message.into(), details: Vec::new(), retry_after_ms: None }
    }
}

impl From<&RequestError> for ErrorReport {
    fn from(e: &RequestError) -> Self {
        let details = e
            .details()
            .into_iter()
            .map(|r| RecordErrorReport {
                record: r.record.map(|i| i as u32),
                field: r.field.clone(),
                message: r.message.clone(),
            })
            .collect();
        ErrorReport {
            kind: kind_name(e.kind()).into(),
            message: e.to_string(),
            details,
            retry_after_ms: e.retry_after().map(|s| s as f64 * 1e3),
        }
    }
}

impl From<&redesmyn::jobs::JobError> for ErrorReport {
    fn from(e: &redesmyn::jobs::JobError) -> Self {
        use redesmyn::jobs::JobError;
        let kind = match e {
            JobError::Request(e) => return ErrorReport::from(e),
            JobError::MalformedId(_) => "malformed",
            JobError::NotFound(_) => "not_found",
            JobError::NotCancellable(..) => "conflict",
            JobError::Store(_) | JobError::Unavailable => "unavailable",
        };
        ErrorReport::new(kind, e.to_string())
    }
}
