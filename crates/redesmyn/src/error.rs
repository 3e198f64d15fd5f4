//! Every way a request can fail, with its HTTP status and JSON body.

use std::time::Duration;

use crate::cache::CacheError;
use crate::decode::{DecodeError, RecordError};

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
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::MalformedJson(_) | RequestError::EmptyBody => 400,
            RequestError::NotFound { .. } | RequestError::ModelNotFound(_) => 404,
            RequestError::MethodNotAllowed { .. } => 405,
            RequestError::PayloadTooLarge { .. } => 413,
            RequestError::UnsupportedMediaType(_) => 415,
            RequestError::InvalidRecord(_) | RequestError::InvalidParam(_) => 422,
            RequestError::Handler(_) => 500,
            RequestError::QueueFull { .. } | RequestError::ShuttingDown | RequestError::ModelUnavailable { .. } => 503,
            RequestError::DeadlineExceeded(_) => 504,
            // nginx's "client closed request"; rarely seen, the client is gone.
            RequestError::ClientGone => 499,
        }
    }

    /// Seconds a client should wait before retrying (the `Retry-After` header).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RequestError::QueueFull { retry_after } | RequestError::ModelUnavailable { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            RequestError::ShuttingDown => Some(1),
            _ => None,
        }
    }

    /// `{"error": "...", "details": [...]}`.
    pub fn to_json(&self) -> Vec<u8> {
        let details: Vec<&RecordError> = match self {
            RequestError::InvalidRecord(e) => vec![e],
            _ => Vec::new(),
        };
        let body = serde_json::json!({ "error": self.to_string(), "details": details });
        serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":"internal error","details":[]}"#.to_vec())
    }
}

impl From<CacheError> for RequestError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::InvalidParam(p) => RequestError::InvalidParam(p.to_string()),
            e @ CacheError::NotFound { .. } => RequestError::ModelNotFound(e.to_string()),
            ref e2 @ CacheError::Unavailable { retry_after, .. } => {
                RequestError::ModelUnavailable { message: e2.to_string(), retry_after }
            }
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
