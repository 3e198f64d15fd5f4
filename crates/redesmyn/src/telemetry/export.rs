//! Finished spans leave the request path here: `on_end` only tries to put
//! a span on a bounded queue (a full queue drops it and counts the drop),
//! and one task on the server's runtime sends what is queued to the
//! exporter in batches, every `export_delay` or as soon as a batch is full.
//! A collector that is slow or down costs the spans it cannot take (counted
//! as failed) and nothing else. The SDK's own batch processor keeps its
//! drop count private, and runs its exports off the tokio runtime the OTLP
//! clients need; this one does neither.

use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

/// What became of finished spans, shown in `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ExportCounts {
    pub exported: Counter,
    /// Dropped because the queue was full.
    pub dropped: Counter,
    /// Lost because the collector refused them or could not be reached.
    pub failed: Counter,
}

/// How often a failing collector is logged.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

enum Message {
    Span(Box<SpanData>),
    /// Export everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The span processor: a bounded queue in front of [`run`].
#[derive(Debug)]
pub(super) struct BoundedQueue {
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    counts: ExportCounts,
}

impl BoundedQueue {
    /// The processor and the task that exports what it queues.
    pub(super) fn new<E: SpanExporter + 'static>(
        exporter: E,
        max_queue: usize,
        batch: usize,
        delay: Duration,
        counts: ExportCounts,
    ) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (sender, receiver) = mpsc::channel(max_queue);
        let task = run(exporter, receiver, batch, delay, counts.clone());
        (BoundedQueue { sender: Mutex::new(Some(sender)), counts }, task)
    }

    fn sender(&self) -> Option<mpsc::Sender<Message>> {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Exports everything queued so far, waiting at most `timeout`.
    pub(super) async fn flush(&self, timeout: Duration) {
        let Some(sender) = self.sender() else { return };
        let (done, flushed) = oneshot::channel();
        if tokio::time::timeout(timeout, sender.send(Message::Flush(done))).await.is_ok() {
            let _ = tokio::time::timeout(timeout, flushed).await;
        }
    }

    /// Stops taking spans; the task exports what is queued and ends.
    pub(super) fn close(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl SpanProcessor for BoundedQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let sent = match &*self.sender.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(sender) => sender.try_send(Message::Span(Box::new(span))).is_ok(),
            None => false,
        };
        if !sent {
            self.counts.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Exports happen on the server's runtime; `flush` waits for them.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        match self.sender.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(_) => Ok(()),
            None => Err(OTelSdkError::AlreadyShutdown),
        }
    }
}

/// Sends queued spans to `exporter` in batches of up to `batch`, every
/// `delay` or sooner when a batch is full, until the queue closes.
async fn run<E: SpanExporter>(
    mut exporter: E,
    mut queue: mpsc::Receiver<Message>,
    batch: usize,
    delay: Duration,
    counts: ExportCounts,
) {
    let mut spans: Vec<SpanData> = Vec::with_capacity(batch);
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    // A collector that is down is logged once per interval, not per export.
    let mut warned: Option<tokio::time::Instant> = None;
    let mut lost_since_warning = 0u64;
    while open {
        let until = tokio::time::Instant::now() + delay;
        // Collect until the batch is full, a flush is asked for, the delay
        // is over or the queue closes.
        while spans.len() < batch && flushed.is_empty() {
            match tokio::time::timeout_at(until, queue.recv()).await {
                Ok(Some(Message::Span(span))) => spans.push(*span),
                Ok(Some(Message::Flush(done))) => flushed.push(done),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        if !spans.is_empty() {
            let sent = std::mem::replace(&mut spans, Vec::with_capacity(batch));
            let n = sent.len() as u64;
            match exporter.export(sent).await {
                Ok(()) => {
                    counts.exported.inc_by(n);
                }
                Err(e) => {
                    counts.failed.inc_by(n);
                    lost_since_warning += n;
                    if warned.is_none_or(|at| at.elapsed() >= WARN_INTERVAL) {
                        warned = Some(tokio::time::Instant::now());
                        let spans = std::mem::take(&mut lost_since_warning);
                        tracing::warn!(target: "redesmyn::telemetry", spans, error = %e, "spans not exported (counted in redesmyn_trace_spans_failed_total)");
                    }
                }
            }
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
    let _ = exporter.shutdown();
}
