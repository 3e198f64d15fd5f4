//! The one map from neutral errors to HTTP: status, JSON body and headers.
//!
//! Every error HTTP clients see is built here:
//! `{"error": "<message>", "details": [...]}` with `Retry-After` when
//! waiting helps, `Allow` on a 405 and `x-request-id` when the request has one.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::error::{ErrorKind, Outcome, RequestError};

/// nginx's "client closed request": rarely seen, the client is gone.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The HTTP status of an error kind.
pub fn status_of_kind(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Malformed => StatusCode::BAD_REQUEST,
        ErrorKind::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::ResourceExhausted | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Cancelled => {
            StatusCode::from_u16(CLIENT_CLOSED_REQUEST).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status of an error kind on the V2 (Open Inference Protocol)
/// routes: as [`status_of_kind`], except that every bad request is a 400
/// (what Triton answers and V2 clients expect).
pub fn v2_status_of_kind(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::UnsupportedFormat => StatusCode::BAD_REQUEST,
        other => status_of_kind(other),
    }
}

/// The HTTP status of an error kind on the V2 generate extension's routes,
/// as its specification (`generate_rest.yaml`) documents them: 422 for
/// input that does not validate, 424 when generation fails, 429 when the
/// model is overloaded; the other kinds as everywhere else.
pub fn generate_status_of_kind(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Malformed | ErrorKind::InvalidArgument | ErrorKind::UnsupportedFormat => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorKind::Internal => StatusCode::FAILED_DEPENDENCY,
        ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        other => status_of_kind(other),
    }
}

/// The HTTP status of an outcome. Metrics label requests with it whatever
/// their front door, so dashboards keep the values they had.
pub fn status_of(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Ok => StatusCode::OK,
        Outcome::Failed(kind) => status_of_kind(kind),
    }
}

/// `{"error": "...", "details": [...]}`.
pub fn json_body(err: &RequestError) -> Vec<u8> {
    let body = serde_json::json!({ "error": err.to_string(), "details": err.details() });
    serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":"internal error","details":[]}"#.to_vec())
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "application/json")).body(body)
}

/// The response for `err`, tagged with the request id when there is one.
pub fn error_response(err: &RequestError, id: Option<&str>) -> HttpResponse {
    answer_error(err, id, status_of_kind(err.kind()), json_body(err))
}

/// A V2 error answer: `{"error": "..."}`, the V2 status, and the same
/// headers as [`error_response`].
pub fn v2_error_response(err: &RequestError, id: Option<&str>) -> HttpResponse {
    let body = serde_json::to_vec(&serde_json::json!({ "error": err.to_string() }))
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    answer_error(err, id, v2_status_of_kind(err.kind()), body)
}

/// A generate route's error: `{"error": "..."}` with the status
/// [`generate_status_of_kind`] gives.
pub fn generate_error_response(err: &RequestError, id: Option<&str>) -> HttpResponse {
    let body = serde_json::to_vec(&serde_json::json!({ "error": err.to_string() }))
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    answer_error(err, id, generate_status_of_kind(err.kind()), body)
}

/// `body` with `status` and the headers every error carries: Retry-After,
/// Allow and the request id, where they apply.
fn answer_error(err: &RequestError, id: Option<&str>, status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = json_response(status, body);
    let headers = response.headers_mut();
    if let Some(secs) = err.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let RequestError::MethodNotAllowed { allowed, .. } = err {
        headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    if let Some(id) = id {
        super::request_id::tag(&mut response, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_status_http_clients_know() {
        let status = |e: RequestError| status_of_kind(e.kind()).as_u16();
        assert_eq!(status(RequestError::MalformedJson("x".into())), 400);
        assert_eq!(status(RequestError::EmptyBody), 400);
        assert_eq!(status(RequestError::InvalidParam("x".into())), 422);
        assert_eq!(status(RequestError::ModelNotFound("x".into())), 404);
        assert_eq!(status(RequestError::PayloadTooLarge { limit: 1 }), 413);
        assert_eq!(status(RequestError::UnsupportedMediaType("text/plain".into())), 415);
        assert_eq!(status(RequestError::Handler("x".into())), 500);
        assert_eq!(status(RequestError::ShuttingDown), 503);
        assert_eq!(status(RequestError::DeadlineExceeded(std::time::Duration::from_secs(1))), 504);
        assert_eq!(status(RequestError::ClientGone), 499);
        assert_eq!(status_of(Outcome::Ok).as_u16(), 200);
    }

    const KINDS: [ErrorKind; 11] = [
        ErrorKind::Malformed,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Unsupported,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedFormat,
        ErrorKind::ResourceExhausted,
        ErrorKind::Unavailable,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];

    #[test]
    fn the_metrics_status_label_is_the_http_status_of_each_outcome() {
        assert_eq!(Outcome::Ok.status_label(), status_of(Outcome::Ok).as_u16());
        for kind in KINDS {
            assert_eq!(Outcome::Failed(kind).status_label(), status_of_kind(kind).as_u16(), "{kind:?}");
        }
    }

    #[test]
    fn generate_routes_answer_the_codes_their_specification_documents() {
        let status = |kind| generate_status_of_kind(kind).as_u16();
        assert_eq!(status(ErrorKind::Malformed), 422);
        assert_eq!(status(ErrorKind::InvalidArgument), 422);
        assert_eq!(status(ErrorKind::Internal), 424);
        assert_eq!(status(ErrorKind::ResourceExhausted), 429);
        assert_eq!(status(ErrorKind::NotFound), 404);
        assert_eq!(status(ErrorKind::Unavailable), 503);
    }
}
