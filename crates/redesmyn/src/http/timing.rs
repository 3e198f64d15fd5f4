//! `Server-Timing` and `x-batch-size`: where a request's time went (queue,
//! handler, total) and how big the batch it rode in was; `x-cached-rows`
//! when some of its rows came from the prediction cache (a request answered
//! wholly from the cache rode in no batch: `x-batch-size: 0`).

use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;

use crate::pending::Answer;

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const X_BATCH_SIZE: HeaderName = HeaderName::from_static("x-batch-size");
const X_CACHED_ROWS: HeaderName = HeaderName::from_static("x-cached-rows");

/// Adds the timing headers of `answer`, `total` after arrival.
pub fn tag(response: &mut HttpResponse, answer: &Answer, total: Duration) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&answer.timing(total)) {
        headers.insert(SERVER_TIMING, v);
    }
    headers.insert(X_BATCH_SIZE, HeaderValue::from(answer.batch_rows));
    if answer.cached_rows > 0 {
        headers.insert(X_CACHED_ROWS, HeaderValue::from(answer.cached_rows));
    }
}
