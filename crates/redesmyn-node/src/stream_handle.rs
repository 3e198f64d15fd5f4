//! `NativeStream`: an in-process stream from a streaming endpoint, read one
//! event at a time (`endpoint.predictStream()` wraps it in an async iterator).

use std::sync::Arc;

use napi_derive::napi;
use redesmyn::{ChunkStream, Event};
use tokio::sync::{Mutex, Notify};

/// One event of an in-process stream.
#[napi(object)]
pub struct StreamEventOutput {
    /// `[{"row": i, "prediction": ...} | {"row": i, "done": true}, ...]` as JSON text.
    pub events: Option<String>,
    /// `{"error": ...}` as JSON text when the stream failed; nothing follows.
    pub error: Option<String>,
    /// The HTTP status the failure stands for.
    pub status: Option<u32>,
}

#[napi]
pub struct NativeStream {
    inner: Arc<Mutex<Option<ChunkStream>>>,
    closed: Arc<Notify>,
}

impl NativeStream {
    pub fn new(stream: Option<ChunkStream>) -> Self {
        NativeStream { inner: Arc::new(Mutex::new(stream)), closed: Arc::new(Notify::new()) }
    }
}

#[napi]
impl NativeStream {
    /// The next event, or null once the stream ended.
    #[napi]
    pub async fn next(&self) -> Option<StreamEventOutput> {
        let mut guard = self.inner.lock().await;
        let stream = guard.as_mut()?;
        let event = tokio::select! {
            event = stream.next() => event,
            _ = self.closed.notified() => None,
        };
        match event {
            None => {
                *guard = None;
                None
            }
            Some(Event::Failed(e)) => {
                *guard = None;
                Some(StreamEventOutput {
                    events: None,
                    error: Some(String::from_utf8_lossy(&redesmyn::http::error::json_body(&e)).into_owned()),
                    status: Some(u32::from(redesmyn::http::error::status_of_kind(e.kind()).as_u16())),
                })
            }
            Some(event) => Some(StreamEventOutput {
                events: Some(String::from_utf8_lossy(&redesmyn::codec::events::array(&event)).into_owned()),
                error: None,
                status: None,
            }),
        }
    }

    /// Ends the stream: the rows are given up, as when a client leaves.
    #[napi]
    pub fn close(&self) {
        match self.inner.try_lock() {
            Ok(mut guard) => *guard = None,
            // A `next()` is waiting: it drops the stream and returns null.
            Err(_) => self.closed.notify_one(),
        }
    }
}
