//! Server-Sent Events: a streaming model's events written as they come.
//!
//! `Content-Type: text/event-stream; charset=utf-8`, one `data: <json>\n\n`
//! frame per chunk, no `event:` lines (what MLServer and Triton send). The
//! answer waits for the stream's first event: an error before any chunk is
//! an ordinary JSON error answer with its status; after it, errors are a
//! final `data: {"error": "..."}` frame. Each front door (native, V2
//! generate_stream) brings its own encoder for the frames' JSON.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::HttpResponse;

use crate::error::{Outcome, RequestError};
use crate::service::StreamCall;
use crate::stream::{ChunkStream, Event};

pub const CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";

/// Appends one SSE frame carrying `json`.
pub fn data(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// Appends the frame of an error after the first chunk: `{"error": "..."}`.
pub fn error_frame(out: &mut Vec<u8>, error: &RequestError) {
    let json = serde_json::to_vec(&serde_json::json!({ "error": error.to_string() }))
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    data(out, &json);
}

/// How a front door writes its events: appends the frames of one event.
pub trait Encoder: Send + 'static {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>);
}

impl<F: FnMut(&Event, &mut Vec<u8>) + Send + 'static> Encoder for F {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        self(event, out)
    }
}

/// The answer to a streaming request: a JSON error (built by `error`) when
/// the stream fails before its first event, else the event stream.
pub async fn respond(
    mut stream: ChunkStream,
    mut encoder: impl Encoder,
    mut call: StreamCall,
    error: impl FnOnce(&RequestError) -> HttpResponse,
) -> HttpResponse {
    let first = stream.next().await;
    if let Some(Event::Failed(e)) = &first {
        call.finish(Outcome::from_error(e));
        return error(e);
    }
    let mut head = Vec::new();
    if let Some(event) = &first {
        step(&mut call, event);
        encoder.encode(event, &mut head);
    }
    let state = Body { stream, encoder, call: Some(call), head: Some(head) };
    let body = futures::stream::unfold(state, |mut s| async move {
        if let Some(head) = s.head.take() {
            return Some((Ok::<_, actix_web::Error>(Bytes::from(head)), s));
        }
        let event = s.stream.next().await;
        let Some(event) = event else {
            if let Some(mut call) = s.call.take() {
                call.finish(Outcome::Ok);
            }
            return None;
        };
        if let Event::Failed(e) = &event {
            if let Some(mut call) = s.call.take() {
                call.finish(Outcome::from_error(e));
            }
        }
        if let Some(call) = s.call.as_mut() {
            step(call, &event);
        }
        let mut out = Vec::new();
        s.encoder.encode(&event, &mut out);
        Some((Ok(Bytes::from(out)), s))
    });
    // `x-accel-buffering: no` keeps nginx-style proxies from holding frames back.
    HttpResponse::build(StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header(("x-accel-buffering", HeaderValue::from_static("no")))
        .streaming(body)
}

/// The answer to a streaming request without rows: an empty event stream.
pub fn respond_empty() -> HttpResponse {
    HttpResponse::build(StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(Bytes::new())
}

/// The body's state: events still to come, and the request's scope.
struct Body<E> {
    stream: ChunkStream,
    encoder: E,
    /// Taken when the stream ends; dropped unfinished when the client left.
    call: Option<StreamCall>,
    /// The frames of the first event, written before anything else.
    head: Option<Vec<u8>>,
}

/// A step's event on the stream's span.
fn step(call: &mut StreamCall, event: &Event) {
    if let Event::Step { chunks, .. } = event {
        call.step(chunks.len());
    }
}
