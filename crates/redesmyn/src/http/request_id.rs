//! Request ids: the client's `x-request-id` when it is a sensible token,
//! else a new UUID; echoed on every answer so logs and clients agree.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of `req`.
pub fn of(req: &HttpRequest) -> String {
    req.headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Sets the `x-request-id` header of an answer.
pub fn tag(response: &mut HttpResponse, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(X_REQUEST_ID, v);
    }
}
