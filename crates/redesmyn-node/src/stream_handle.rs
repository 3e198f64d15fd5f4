//! `NativeStream`: an in-process stream from a streaming endpoint, read one
//! event at a time (`endpoint.predictStream()` wraps it in an async iterator).

use std::sync::Arc;

use napi_derive::napi;
use redesmyn::{ChunkStream, Event};
use tokio::sync::{Mutex, Notify};

use crate::failure::ErrorReport;

/// One event of an in-process stream.
#[napi(object)]
pub struct StreamEventReport {
    /// `[{"row": i, "prediction": ...} | {"row": i, "done": true}, ...]` as JSON text.
    pub events: Option<String>,
    /// Why the stream failed (before or after its first chunk); nothing follows.
    pub error: Option<ErrorReport>,
}

#[napi]
pub struct NativeStream {
    inner: Arc<Mutex<Option<ChunkStream>>>,
    /// A stream that failed to open: its one event.
    failed: std::sync::Mutex<Option<ErrorReport>>,
    closed: Arc<Notify>,
}

impl NativeStream {
    pub fn new(stream: Option<ChunkStream>) -> Self {
        NativeStream {
            inner: Arc::new(Mutex::new(stream)),
            failed: Default::default(),
            closed: Arc::new(Notify::new()),
        }
    }

    /// A stream that could not open: `error` is its only event.
    pub fn failed(error: ErrorReport) -> Self {
        NativeStream { failed: std::sync::Mutex::new(Some(error)), ..NativeStream::new(None) }
    }
}

#[napi]
impl NativeStream {
    /// The next event, or null once the stream ended.
    #[napi]
    pub async fn next(&self) -> Option<StreamEventReport> {
        if let Some(error) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Some(StreamEventReport { events: None, error: Some(error) });
        }
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
                Some(StreamEventReport { events: None, error: Some((&e).into()) })
            }
            Some(event) => Some(StreamEventReport {
                events: Some(String::from_utf8_lossy(&redesmyn::codec::events::array(&event)).into_owned()),
                error: None,
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
