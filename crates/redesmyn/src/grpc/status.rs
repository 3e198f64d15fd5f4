//! The one map from neutral errors to gRPC statuses: every status a gRPC
//! client sees is built here, with the error's message.

use tonic::{Code, Status};

use crate::error::{ErrorKind, RequestError};

/// The gRPC code of an error kind.
pub fn code_of_kind(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Malformed | ErrorKind::InvalidArgument | ErrorKind::UnsupportedFormat => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unsupported => Code::Unimplemented,
        ErrorKind::TooLarge | ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The status of `err`: its code and message.
pub fn status_of(err: &RequestError) -> Status {
    Status::new(code_of_kind(err.kind()), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_kind_has_the_code_grpc_clients_know() {
        let code = |e: RequestError| status_of(&e).code();
        assert_eq!(code(RequestError::MalformedJson("x".into())), Code::InvalidArgument);
        assert_eq!(code(RequestError::InvalidParam("x".into())), Code::InvalidArgument);
        assert_eq!(code(RequestError::ModelNotFound("x".into())), Code::NotFound);
        assert_eq!(code(RequestError::QueueFull { retry_after: Duration::from_secs(1) }), Code::ResourceExhausted);
        assert_eq!(code(RequestError::ShuttingDown), Code::Unavailable);
        assert_eq!(code(RequestError::DeadlineExceeded(Duration::from_secs(1))), Code::DeadlineExceeded);
        assert_eq!(code(RequestError::ClientGone), Code::Cancelled);
        assert_eq!(code(RequestError::Handler("boom".into())), Code::Internal);
        assert_eq!(status_of(&RequestError::Handler("boom".into())).message(), "boom");
    }
}
