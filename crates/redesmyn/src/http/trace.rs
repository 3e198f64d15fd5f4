//! W3C trace context at the HTTP doors: the caller's `traceparent` and
//! `tracestate` continue in the request's span (`Call::traced`), and the
//! answer names that span in its own `traceparent`, so a caller that sent
//! none can still find the trace.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::service::Call;
use crate::telemetry::{Incoming, TRACEPARENT};

/// Starts `call`'s span from `req`'s headers (nothing while tracing is off).
pub fn open(call: Call, req: &HttpRequest) -> Call {
    call.traced(Incoming::Http(req.headers()))
}

/// Sets the `traceparent` header of an answer to the request's span.
pub fn tag(response: &mut HttpResponse, call: &Call) {
    tag_with(response, call.traceparent());
}

/// Sets the `traceparent` header to `traceparent` (a stream's, taken
/// before its call went to the stream).
pub fn tag_with(response: &mut HttpResponse, traceparent: Option<String>) {
    if let Some(value) = traceparent.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(HeaderName::from_static(TRACEPARENT), value);
    }
}
