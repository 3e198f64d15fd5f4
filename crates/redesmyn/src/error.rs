//! Every way a request can fail, as a transport-neutral [`ErrorKind`] plus a
//! message, and a retry-after hint where waiting helps.
//!
//! Nothing here knows HTTP or gRPC: each front door maps [`ErrorKind`] to its
//! own status once (`http::error` for HTTP). Metrics and logs record the
//! kind too, so a new front door never translates from another one's codes.

use std::time::Duration;

use std::fmt;

/// What went wrong, in terms any protocol can express. Each variant notes
/// the HTTP status and gRPC code it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The payload cannot be read at all: not JSON, empty (HTTP 400, gRPC INVALID_ARGUMENT).
    Malformed,
    /// Well-formed, but wrong for the model: a record that does not match the
    /// schema, a bad or missing parameter (HTTP 422, gRPC INVALID_ARGUMENT).
    InvalidArgument,
    /// No such model, route, or artifact for these parameters (HTTP 404, gRPC NOT_FOUND).
    NotFound,
    /// The address exists but not for this operation (HTTP 405, gRPC UNIMPLEMENTED).
    Unsupported,
    /// The payload is larger than allowed (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    TooLarge,
    /// A payload format the server does not read (HTTP 415, gRPC INVALID_ARGUMENT).
    UnsupportedFormat,
    /// The model's queue is full; retry later (HTTP 503, gRPC RESOURCE_EXHAUSTED).
    ResourceExhausted,
    /// The model cannot serve now: loading failed, or the server is stopping
    /// (HTTP 503, gRPC UNAVAILABLE).
    Unavailable,
    /// The request's deadline passed before it was answered (HTTP 504, gRPC DEADLINE_EXCEEDED).
    DeadlineExceeded,
    /// The client went away before the request ran (HTTP 499, gRPC CANCELLED).
    Cancelled,
    /// The handler failed or the server could not answer (HTTP 500, gRPC INTERNAL).
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("the request body is empty")]
    EmptyBody,
    #[error("the record does not match the schema: {0}")]
    InvalidRecord(RecordError),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported content type '{0}': send application/json")]
    UnsupportedMediaType(String),
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed { method: String, path: String, allowed: &'static str },
    #[error("{0}")]
    Handler(String),
    #[error("the queue of this endpoint is full; retry later")]
    QueueFull { retry_after: Duration },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the request's deadline of {0:?} passed before it was answered")]
    DeadlineExceeded(Duration),
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{message}")]
    ModelUnavailable { message: String, retry_after: Duration },
    /// The client closed its connection before the batch ran.
    #[error("the client closed the connection before the request was handled")]
    ClientGone,
    /// A unary prediction asked of a model whose handler streams.
    #[error("model '{0}' streams its predictions: ask for a stream (Accept: text/event-stream, V2 generate_stream, gRPC ModelStreamInfer)")]
    StreamOnly(String),
    /// A stream asked of a model whose handler answers once.
    #[error("model '{0}' does not stream its predictions")]
    NotStreaming(String),
    /// A V2 (Open Inference Protocol) request or answer that is not a valid
    /// tensor set: the message names the input or output at fault.
    #[error("{message}")]
    Tensor {
        message: String,
        /// The client's tensors are at fault (else the model's answer is).
        client: bool,
    },
}

impl RequestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RequestError::MalformedJson(_) | RequestError::EmptyBody => ErrorKind::Malformed,
            RequestError::InvalidRecord(_) | RequestError::InvalidParam(_) => ErrorKind::InvalidArgument,
            RequestError::NotFound { .. } | RequestError::ModelNotFound(_) => ErrorKind::NotFound,
            RequestError::MethodNotAllowed { .. } => ErrorKind::Unsupported,
            RequestError::StreamOnly(_) | RequestError::NotStreaming(_) => ErrorKind::InvalidArgument,
            RequestError::PayloadTooLarge { .. } => ErrorKind::TooLarge,
            RequestError::UnsupportedMediaType(_) => ErrorKind::UnsupportedFormat,
            RequestError::QueueFull { .. } => ErrorKind::ResourceExhausted,
            RequestError::ShuttingDown | RequestError::ModelUnavailable { .. } => ErrorKind::Unavailable,
            RequestError::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            RequestError::ClientGone => ErrorKind::Cancelled,
            RequestError::Handler(_) => ErrorKind::Internal,
            RequestError::Tensor { client: true, .. } => ErrorKind::InvalidArgument,
            RequestError::Tensor { client: false, .. } => ErrorKind::Internal,
        }
    }

    /// Whole seconds a client should wait before retrying, when waiting helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RequestError::QueueFull { retry_after } | RequestError::ModelUnavailable { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            RequestError::ShuttingDown => Some(1),
            _ => None,
        }
    }

    /// Where a body stopped matching the schema, for error details.
    pub fn details(&self) -> Vec<&RecordError> {
        match self {
            RequestError::InvalidRecord(e) => vec![e],
            _ => Vec::new(),
        }
    }
}

/// How a request ended, as metrics and logs record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Failed(ErrorKind),
}

impl Outcome {
    pub fn from_error(error: &RequestError) -> Self {
        Outcome::Failed(error.kind())
    }

    /// The `status` label that metrics record for a request, whatever its
    /// door: the HTTP status its kind stands for (see [`ErrorKind`]), so
    /// dashboards keep one set of values across REST, gRPC, jobs and
    /// in-process calls. `http::error` checks that it agrees with the HTTP
    /// door's own map.
    pub fn status_label(self) -> u16 {
        match self {
            Outcome::Ok => 200,
            Outcome::Failed(kind) => match kind {
                ErrorKind::Malformed => 400,
                ErrorKind::InvalidArgument => 422,
                ErrorKind::NotFound => 404,
                ErrorKind::Unsupported => 405,
                ErrorKind::TooLarge => 413,
                ErrorKind::UnsupportedFormat => 415,
                ErrorKind::ResourceExhausted | ErrorKind::Unavailable => 503,
                ErrorKind::DeadlineExceeded => 504,
                ErrorKind::Cancelled => 499,
                ErrorKind::Internal => 500,
            },
        }
    }
}

impl<T> From<&Result<T, RequestError>> for Outcome {
    fn from(result: &Result<T, RequestError>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.kind()),
        }
    }
}

impl From<DecodeError> for RequestError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Malformed(m) => RequestError::MalformedJson(m),
            DecodeError::Invalid(r) => RequestError::InvalidRecord(r),
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (400).
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// Valid JSON that does not match the schema (422).
    #[error("{0}")]
    Invalid(RecordError),
}

/// Where a body stopped matching the schema.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordError {
    /// Index of the record in the body (0 for a single-record body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.record, &self.field) {
            (Some(r), Some(field)) => write!(f, "record {r}, field '{field}': {}", self.message),
            (Some(r), None) => write!(f, "record {r}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_what_went_wrong_and_only_waiting_errors_say_when_to_retry() {
        let full = RequestError::QueueFull { retry_after: Duration::from_millis(1500) };
        assert_eq!(full.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(full.retry_after(), Some(2));
        assert_eq!(RequestError::ShuttingDown.kind(), ErrorKind::Unavailable);
        assert_eq!(RequestError::ShuttingDown.retry_after(), Some(1));
        assert_eq!(RequestError::ClientGone.kind(), ErrorKind::Cancelled);
        assert_eq!(RequestError::EmptyBody.kind(), ErrorKind::Malformed);
        assert_eq!(RequestError::InvalidParam("x".into()).kind(), ErrorKind::InvalidArgument);
        assert_eq!(RequestError::Handler("boom".into()).retry_after(), None);
    }
}
