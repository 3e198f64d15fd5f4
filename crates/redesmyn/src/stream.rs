//! Streaming handlers: a batch whose handler yields its output step by step.
//!
//! Requests of a streaming model queue and batch exactly as unary ones do
//! (`batch.rs`: the same lanes, keys, sizes and delays); only the running of
//! a batch differs. The handler is opened once per batch and yields
//! [`Step`]s. A step carries one chunk for any subset of the batch's rows
//! (a non-null value in `chunks`; null means "nothing this step") and may
//! end rows early (`ended`); when the handler finishes, every row still open
//! ends. Each row's chunks go to its own request, so several clients share a
//! handler call while each receives only its own output.
//!
//! Flow control: every request has a bounded channel of [`STREAM_BUFFER`]
//! events. Before pulling the next step, the batch waits until each of its
//! open requests can take one more, so a client that reads slowly pauses
//! its batch's handler instead of growing a buffer. A request whose client
//! left (its [`ChunkStream`] dropped) ends its rows; once no request of the
//! batch is left, the handler's stream is dropped, which closes the
//! generator behind it (Python `close()`, JavaScript `return()`).
//!
//! Deadlines: the model's timeout bounds the time from a request's arrival
//! to the handler's first step, and then each gap between consecutive
//! steps; a client that cannot take a step within it is cut off. Without a
//! timeout, a stalled client holds its batch (but no memory beyond its
//! buffer). Stopping the server fails every open stream with
//! [`RequestError::ShuttingDown`].

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use polars::prelude::*;
use tokio::sync::{mpsc, watch};

use crate::error::RequestError;
use std::sync::Arc;

use crate::cache::ModelCache;
use crate::handler::{Batch, HandlerError, Params, Predictions};
pub use crate::handler::{Step, Steps, StreamHandler};
use crate::metrics::EndpointMetrics;
pub use crate::pending::Event;
use crate::pending::{prepare, Job, Responder};

/// Events a streaming request may have waiting for its client.
pub const STREAM_BUFFER: usize = 16;

/// Counts a model's open streams, so that a stop can let them finish.
#[derive(Debug, Default)]
pub struct OpenStreams {
    count: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

impl OpenStreams {
    /// One more open stream, until the returned guard is dropped.
    pub fn open(self: &Arc<Self>) -> OpenStream {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        OpenStream(Arc::clone(self))
    }

    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once no stream is open.
    pub async fn closed(&self) {
        loop {
            // Registered before the check, so a close in between still wakes it.
            let closed = self.closed.notified();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// An open stream, counted until dropped.
#[derive(Debug)]
pub struct OpenStream(Arc<OpenStreams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// The client's side of a streaming request: its events, ending after the
/// last row's end or a failure. Dropping it tells the batch the client left.
pub struct ChunkStream {
    rx: mpsc::Receiver<Event>,
    open_rows: Vec<bool>,
    left: usize,
    finished: bool,
    arrived: Instant,
    chunks: u64,
    metrics: Option<EndpointMetrics>,
    /// Counted among the model's open streams while it lives.
    _open: OpenStream,
}

impl ChunkStream {
    pub(crate) fn new(
        rx: mpsc::Receiver<Event>,
        rows: usize,
        arrived: Instant,
        open: OpenStream,
        metrics: Option<EndpointMetrics>,
    ) -> Self {
        if let Some(m) = &metrics {
            m.streams_open.inc();
        }
        ChunkStream {
            rx,
            open_rows: vec![true; rows],
            left: rows,
            finished: rows == 0,
            arrived,
            chunks: 0,
            metrics,
            _open: open,
        }
    }

    /// Rows of the request.
    pub fn rows(&self) -> usize {
        self.open_rows.len()
    }

    /// Chunks received so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// The next event, `None` once every row ended or after a failure.
    pub async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let event = match self.rx.recv().await {
            Some(event) => event,
            None => Event::Failed(RequestError::Handler("the stream ended before its rows were done".into())),
        };
        match &event {
            Event::Step { chunks, ended } => {
                if self.chunks == 0 && !chunks.is_empty() {
                    if let Some(m) = &self.metrics {
                        m.first_chunk(self.arrived.elapsed());
                    }
                }
                self.chunks += chunks.len() as u64;
                for &row in ended {
                    if self.open_rows.get(row).copied().unwrap_or(false) {
                        self.open_rows[row] = false;
                        self.left -= 1;
                    }
                }
                self.finished = self.left == 0;
            }
            Event::Failed(_) => self.finished = true,
        }
        Some(event)
    }

    /// The events as a `Stream`, for front doors that write one.
    pub fn into_stream(self) -> impl Stream<Item = Event> + Send + 'static {
        futures::stream::unfold(self, |mut s| async move { s.next().await.map(|e| (e, s)) })
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.streams_open.dec();
            m.stream_chunks(self.chunks);
        }
    }
}

/// A request of a streaming batch, as the batch runner sees it.
pub(crate) struct Sink {
    pub sender: mpsc::Sender<Event>,
    pub rows: usize,
    pub deadline: Option<Instant>,
}

/// A request whose rows are still open.
struct Open {
    sender: mpsc::Sender<Event>,
    offset: usize,
    ended: Vec<bool>,
    left: usize,
    deadline: Option<Instant>,
}

/// Runs one streaming batch to its end: until every row ended, the handler
/// finished or failed, every client left, or the server stops.
pub(crate) async fn run(steps: Steps, sinks: Vec<Sink>, timeout: Option<Duration>, mut stop: watch::Receiver<bool>) {
    let total: usize = sinks.iter().map(|s| s.rows).sum();
    let mut offset = 0;
    let mut open: Vec<Open> = sinks
        .into_iter()
        .map(|s| {
            let o = Open { sender: s.sender, offset, ended: vec![false; s.rows], left: s.rows, deadline: s.deadline };
            offset += s.rows;
            o
        })
        .collect();
    let mut steps = steps;
    let mut first = true;
    loop {
        // Requests whose client left end their rows here.
        open.retain(|o| !o.sender.is_closed() && o.left > 0);
        if open.is_empty() {
            break;
        }
        let wait_until = |first: bool, open: &[Open]| -> Option<Instant> {
            if first {
                open.iter().filter_map(|o| o.deadline).min()
            } else {
                timeout.map(|t| Instant::now() + t)
            }
        };
        // Flow control: one free slot per open request before the next pull.
        let reserve_until = wait_until(false, &open);
        let mut permits = Vec::with_capacity(open.len());
        for o in &open {
            let reserve = o.sender.clone().reserve_owned();
            let permit = match reserve_until {
                Some(t) => tokio::time::timeout_at(t.into(), reserve).await.ok().and_then(Result::ok),
                None => reserve.await.ok(),
            };
            permits.push(permit);
        }
        // A client that could not take a step in time is cut off (its
        // stream reports the cut), as is one that left meanwhile.
        let mut kept = Vec::with_capacity(open.len());
        let mut kept_permits = Vec::with_capacity(open.len());
        for (o, p) in open.into_iter().zip(permits) {
            if let Some(p) = p {
                kept.push(o);
                kept_permits.push(p);
            }
        }
        open = kept;
        let mut permits = kept_permits;
        if open.is_empty() {
            break;
        }
        let step_until = wait_until(first, &open);
        let pulled = {
            let next = AssertUnwindSafe(steps.next()).catch_unwind();
            let all_gone = futures::future::join_all(open.iter().map(|o| o.sender.closed()));
            let timed = async {
                match step_until {
                    Some(t) => tokio::time::timeout_at(t.into(), next).await.ok(),
                    None => Some(next.await),
                }
            };
            tokio::select! {
                pulled = timed => match pulled {
                    Some(pulled) => Pulled::from(pulled),
                    None => Pulled::Failed(RequestError::DeadlineExceeded(timeout.unwrap_or_default())),
                },
                _ = all_gone => Pulled::AllGone,
                _ = stop.wait_for(|stopping| *stopping) => Pulled::Stopped,
            }
        };
        first = false;
        let step = match pulled {
            Pulled::Step(step) => step,
            Pulled::AllGone => break,
            Pulled::Stopped => {
                for permit in permits {
                    permit.send(Event::Failed(RequestError::ShuttingDown));
                }
                break;
            }
            Pulled::Finished => {
                // Every row still open ends with the handler.
                for (o, permit) in open.iter().zip(permits) {
                    let ended = (0..o.ended.len()).filter(|&r| !o.ended[r]).collect();
                    permit.send(Event::Step { chunks: Vec::new(), ended });
                }
                break;
            }
            Pulled::Failed(error) => {
                for permit in permits {
                    permit.send(Event::Failed(error.clone()));
                }
                break;
            }
        };
        let present = match &step.chunks {
            Some(chunks) if chunks.len() != total => {
                let message = format!("the handler yielded {} values for a batch of {total} rows", chunks.len());
                tracing::error!(error = %message, "streaming handler failed");
                for permit in permits.drain(..) {
                    permit.send(Event::Failed(RequestError::Handler(message.clone())));
                }
                break;
            }
            Some(chunks) => present_rows(chunks),
            None => Vec::new(),
        };
        for (o, permit) in open.iter_mut().zip(permits) {
            let rows = o.offset..o.offset + o.ended.len();
            let mut chunks = Vec::new();
            if let Some(all) = &step.chunks {
                for b in rows.clone() {
                    if present[b] && !o.ended[b - o.offset] {
                        chunks.push((b - o.offset, all.slice(b, 1)));
                    }
                }
            }
            let mut ended = Vec::new();
            for &b in &step.ended {
                if rows.contains(&b) && !o.ended[b - o.offset] {
                    o.ended[b - o.offset] = true;
                    o.left -= 1;
                    ended.push(b - o.offset);
                }
            }
            if !chunks.is_empty() || !ended.is_empty() {
                permit.send(Event::Step { chunks, ended });
            }
        }
    }
    // Dropping the steps closes the handler's generator if it is not done.
    drop(steps);
}

/// How a pull of the next step ended.
enum Pulled {
    Step(Step),
    Finished,
    Failed(RequestError),
    AllGone,
    Stopped,
}

impl From<std::thread::Result<Option<Result<Step, HandlerError>>>> for Pulled {
    fn from(pulled: std::thread::Result<Option<Result<Step, HandlerError>>>) -> Self {
        match pulled {
            Ok(Some(Ok(step))) => Pulled::Step(step),
            Ok(None) => Pulled::Finished,
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e.message, detail = e.detail.as_deref().unwrap_or(""), "streaming handler failed");
                Pulled::Failed(RequestError::Handler(e.message))
            }
            Err(panic) => {
                let what = crate::handler::panic_message(panic.as_ref());
                tracing::error!(panic = %what, "streaming handler panicked");
                Pulled::Failed(RequestError::Handler(format!("the handler panicked: {what}")))
            }
        }
    }
}

/// Rows with a chunk this step: a non-null value (in any column).
fn present_rows(chunks: &Predictions) -> Vec<bool> {
    let mut present = vec![false; chunks.len()];
    let mut mark = |series: &Series| {
        present.iter_mut().zip(series.is_not_null().iter()).for_each(|(p, valid)| *p |= valid == Some(true))
    };
    match chunks {
        Predictions::Column(series) => mark(series),
        Predictions::Columns(frame) => frame.columns().iter().for_each(|c| mark(c.as_materialized_series())),
    }
    present
}

/// What a streaming batch needs besides its requests.
pub(crate) struct BatchContext {
    pub timeout: Option<Duration>,
    pub stopping: watch::Receiver<bool>,
}

/// Runs one streaming batch (formed by `batch.rs`) until its streams end.
pub(crate) async fn run_batch(
    handler: &dyn StreamHandler,
    cache: Option<&ModelCache>,
    metrics: Option<&EndpointMetrics>,
    params: Arc<Params>,
    jobs: Vec<Job>,
    context: BatchContext,
) {
    let Some((jobs, model, frame)) = prepare(cache, &params, jobs).await else {
        return;
    };
    let total = frame.height();
    let handler_started = Instant::now();
    let mut sinks = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Some(m) = metrics {
            m.queued(handler_started.saturating_duration_since(job.enqueued));
        }
        let rows = job.rows();
        match job.reply {
            Responder::Stream(sender) => {
                if *context.stopping.borrow() {
                    let _ = sender.try_send(Event::Failed(RequestError::ShuttingDown));
                    continue;
                }
                sinks.push(Sink { sender, rows, deadline: job.deadline })
            }
            once => once.fail(RequestError::Handler("this model streams: ask for a stream".into())),
        }
    }
    if sinks.is_empty() {
        return;
    }
    let opened = AssertUnwindSafe(async { handler.open(Batch { frame, params, loaded: model, trace: None }) })
        .catch_unwind()
        .await;
    match opened {
        Ok(steps) => run(steps, sinks, context.timeout, context.stopping).await,
        Err(_) => {
            for sink in sinks {
                let _ = sink.sender.try_send(Event::Failed(RequestError::Handler("the handler panicked".into())));
            }
        }
    }
    if let Some(m) = metrics {
        m.batch(total, handler_started.elapsed());
    }
}

#[cfg(test)]
mod tests;
