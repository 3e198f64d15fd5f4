//! `Server-Timing` and `x-batch-size`: where a request's time went (queue,
//! handler, total) and how big the batch it rode in was; `x-cached-rows`
//! when some of its rows came from the prediction cache (a request answered
//! wholly from the cache rode in no batch: `x-batch-size: 0`).

use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;

use crate::batch::Answer;

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const X_BATCH_SIZE: HeaderName = HeaderName::from_static("x-batch-size");
const X_CACHED_ROWS: HeaderName = HeaderName::from_static("x-cached-rows");

/// Adds the timing headers of `answer`, `total` after arrival.
pub fn tag(response: &mut HttpResponse, answer: &Answer, total: Duration) {
    let headers = response.headers_mut();
    let timing = format!(
        "queue;dur={}, handler;dur={}, total;dur={}",
        Millis(answer.queued),
        Millis(answer.handled),
        Millis(total)
    );
    if let Ok(v) = HeaderValue::from_str(&timing) {
        headers.insert(SERVER_TIMING, v);
    }
    headers.insert(X_BATCH_SIZE, HeaderValue::from(answer.batch_rows));
    if answer.cached_rows > 0 {
        headers.insert(X_CACHED_ROWS, HeaderValue::from(answer.cached_rows));
    }
}

/// The `Server-Timing` value of a response, for the request log.
pub fn of(response: &HttpResponse) -> &str {
    response.headers().get(SERVER_TIMING).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A duration in milliseconds with three decimals, formatted with integer
/// arithmetic (fixed-precision float formatting is slow).
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_have_three_decimals() {
        assert_eq!(Millis(Duration::from_micros(12_345)).to_string(), "12.345");
        assert_eq!(Millis(Duration::from_micros(7)).to_string(), "0.007");
    }
}
