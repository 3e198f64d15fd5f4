//! Dynamic batching.
//!
//! Each (endpoint, path-parameter values) key has its own queue and batcher
//! task, so requests for different model variants never share a batch. A
//! batch closes when its rows reach `max_size` or `max_delay` after its first
//! request arrived; the batcher sleeps on a timer, woken early only when the
//! queue holds a full batch, and never polls. At most `max_concurrent`
//! batches of a key run at once: while they run, requests keep queueing and
//! the next batch takes all of them, so batches grow with load by themselves.
//! That is why the default delay is zero: an idle server answers a lone
//! request at once, a busy one still forms full batches. With a zero delay,
//! the batch after one of several requests waits briefly for those clients'
//! next requests (`refill.rs`), so batches do not alternate between one
//! request and all the others.
//!
//! Streaming models queue and batch the same way; their batches run in
//! `stream.rs`, answering each request through its own event channel
//! instead of a single reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polars::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::cache::ModelCache;
use crate::error::RequestError;
use crate::handler::{Batch, Handler, Params, Runtime};
use crate::metrics::EndpointMetrics;
use crate::pending::{prepare, Job, Responder};
pub use crate::pending::{Answer, Liveness, Reply};
use crate::stream::{self, ChunkStream, OpenStreams, STREAM_BUFFER};
use crate::telemetry::{BatchSpan, SpanContext};
use refill::Refill;

/// How requests are grouped into batches.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Rows at which a batch closes. A single request with more rows runs alone.
    pub max_size: usize,
    /// How long a batch waits for more requests after its first one arrived.
    pub max_delay: Duration,
    /// Batches of one key that may run at the same time.
    pub max_concurrent: usize,
    /// Requests that may wait in one key's queue; more get 503.
    pub max_queue: usize,
    /// Time a request may spend queued and in its handler before a 504.
    pub timeout: Option<Duration>,
    /// Split what is queued evenly over the free batch slots instead of
    /// filling one batch first, so that `max_concurrent` handlers that run
    /// in parallel (worker processes) share the load.
    pub spread: bool,
    /// When a batch of several requests fails, run it again in halves to
    /// answer the requests that did not cause it (`isolate.rs`).
    pub isolate: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_size: 64,
            // Eager: a batch takes what is queued when the handler is free.
            max_delay: Duration::ZERO,
            max_concurrent: 1,
            max_queue: 4096,
            timeout: None,
            spread: false,
            isolate: true,
        }
    }
}

/// A batcher with nothing to do for this long ends, and is started again by
/// the next request of its key.
const IDLE_EXIT: Duration = Duration::from_secs(60);

/// The queues of one endpoint, one per key, created on first use.
pub struct Queues {
    runtime: Runtime,
    cache: Option<Arc<ModelCache>>,
    metrics: Option<EndpointMetrics>,
    config: BatchConfig,
    tasks: Handle,
    /// Turned on by [`Queues::shutdown`]: running streams end.
    stopping: watch::Sender<bool>,
    /// The streams of this model that are open.
    open_streams: Arc<OpenStreams>,
    state: Mutex<QueuesState>,
}

struct QueuesState {
    open: bool,
    lanes: HashMap<Arc<Params>, Lane>,
    tasks: Vec<JoinHandle<()>>,
}

/// The sending side of one key's queue. Queued rows and requests are
/// counted so the batcher is woken once a batch is full (or its refill has
/// come back), not on every request. The permits bound the key's running
/// batches, whoever starts them.
#[derive(Clone)]
struct Lane {
    sender: mpsc::Sender<Job>,
    queued_rows: Arc<AtomicUsize>,
    queued_jobs: Arc<AtomicUsize>,
    full: Arc<Notify>,
    permits: Arc<Semaphore>,
    refill: Arc<Refill>,
}

impl Queues {
    pub fn new(handler: impl Into<Runtime>, config: BatchConfig, tasks: Handle) -> Self {
        Self::with_parts(handler.into(), None, None, config, tasks)
    }

    /// Queues whose batches get the model their parameters select, and
    /// that record queueing and batches in `metrics`.
    pub fn with_parts(
        runtime: Runtime,
        cache: Option<Arc<ModelCache>>,
        metrics: Option<EndpointMetrics>,
        config: BatchConfig,
        tasks: Handle,
    ) -> Self {
        Queues {
            runtime,
            cache,
            metrics,
            config,
            tasks,
            stopping: watch::channel(false).0,
            open_streams: Arc::default(),
            state: Mutex::new(QueuesState { open: true, lanes: HashMap::new(), tasks: Vec::new() }),
        }
    }

    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// What predicts for the model (a pipeline's step runs it directly).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Queues a parsed request and returns the receiver of its answer.
    /// `client`, when given, is asked before the batch runs whether the
    /// client is still there; `trace` is the request's span, when traced.
    pub fn submit(
        &self,
        params: Params,
        frame: DataFrame,
        client: Option<Arc<dyn Liveness>>,
        trace: Option<SpanContext>,
    ) -> Result<oneshot::Receiver<Reply>, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(params, frame, Responder::Once(reply), client, Instant::now(), trace)?;
        Ok(answer)
    }

    /// Queues a parsed request for a streaming model and returns its
    /// events. `arrived` is when the request came in: its deadline for the
    /// first chunk counts from there.
    pub fn submit_stream(
        &self,
        params: Params,
        frame: DataFrame,
        client: Option<Arc<dyn Liveness>>,
        arrived: Instant,
    ) -> Result<ChunkStream, RequestError> {
        let rows = frame.height();
        let (sender, events) = mpsc::channel(STREAM_BUFFER);
        self.enqueue(params, frame, Responder::Stream(sender), client, arrived, None)?;
        Ok(ChunkStream::new(events, rows, arrived, self.open_streams.open(), self.metrics.clone()))
    }

    /// Whether this model's handler streams.
    pub fn streams(&self) -> bool {
        self.runtime.is_stream()
    }

    fn enqueue(
        &self,
        params: Params,
        frame: DataFrame,
        reply: Responder,
        client: Option<Arc<dyn Liveness>>,
        arrived: Instant,
        trace: Option<SpanContext>,
    ) -> Result<(), RequestError> {
        let deadline = self.config.timeout.map(|t| arrived + t);
        let mut job = Job { frame, enqueued: arrived, deadline, reply, client, trace };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.open {
            return Err(RequestError::ShuttingDown);
        }
        let rows = job.rows();
        let params = Arc::new(params);
        // Two tries: the batcher of this key may have just ended on idle.
        for _ in 0..2 {
            let lane = match state.lanes.get(&params) {
                Some(lane) if !lane.sender.is_closed() => lane.clone(),
                ended => {
                    // A batcher that ended on idle hands its permits on: a
                    // batch it did not start (see `run_alone`) may still run.
                    let permits = match ended {
                        Some(old) => Arc::clone(&old.permits),
                        None => Arc::new(Semaphore::new(self.config.max_concurrent.max(1))),
                    };
                    let (sender, rx) = mpsc::channel(self.config.max_queue.max(1));
                    let lane = Lane {
                        sender,
                        queued_rows: Arc::default(),
                        queued_jobs: Arc::default(),
                        full: Arc::default(),
                        permits,
                        refill: Arc::new(Refill::new(self.config.max_delay.is_zero())),
                    };
                    let batcher = Batcher {
                        runner: self.runner(),
                        config: self.config.clone(),
                        params: Arc::clone(&params),
                        permits: Arc::clone(&lane.permits),
                        queued_rows: Arc::clone(&lane.queued_rows),
                        queued_jobs: Arc::clone(&lane.queued_jobs),
                        full: Arc::clone(&lane.full),
                        refill: Arc::clone(&lane.refill),
                    };
                    state.tasks.retain(|t| !t.is_finished());
                    state.tasks.push(self.tasks.spawn(batcher.run(rx)));
                    state.lanes.insert(Arc::clone(&params), lane.clone());
                    lane
                }
            };
            if let Some(permit) = self.idle_slot(&lane) {
                // Nothing queued and a batch slot free: this request is the
                // whole batch, so it runs at once on the submitter's own
                // thread instead of hopping to the batcher and back.
                let here = Handle::try_current().unwrap_or_else(|_| self.tasks.clone());
                self.runner().spawn(&here, params, vec![job], permit, &lane.refill);
                return Ok(());
            }
            // Count the rows before sending, so the batcher never takes off
            // rows that were not yet counted.
            let queued = lane.queued_rows.fetch_add(rows, Ordering::AcqRel) + rows;
            let jobs = lane.queued_jobs.fetch_add(1, Ordering::AcqRel) + 1;
            let sent = lane.sender.try_send(job);
            if sent.is_err() {
                lane.queued_rows.fetch_sub(rows, Ordering::AcqRel);
                lane.queued_jobs.fetch_sub(1, Ordering::AcqRel);
            }
            match sent {
                Ok(()) => {
                    if queued >= self.config.max_size || jobs >= lane.refill.wake_at() {
                        lane.full.notify_one();
                    }
                    if let Some(m) = &self.metrics {
                        m.queue_depth.inc();
                    }
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(RequestError::QueueFull { retry_after: Duration::from_secs(1) })
                }
                // The batcher ended on idle: the next try starts a new one.
                Err(mpsc::error::TrySendError::Closed(j)) => job = j,
            }
        }
        Err(RequestError::ShuttingDown)
    }

    /// A batch slot for a request that need not wait for the batcher: the
    /// batching window is zero (eager), nothing of its key is queued, no
    /// refill is pending, and fewer than `max_concurrent` batches run. With
    /// a window, requests always wait in the queue to be batched.
    fn idle_slot(&self, lane: &Lane) -> Option<OwnedSemaphorePermit> {
        if !self.config.max_delay.is_zero()
            || lane.queued_rows.load(Ordering::Acquire) != 0
            || lane.refill.pending().is_some()
        {
            return None;
        }
        Arc::clone(&lane.permits).try_acquire_owned().ok()
    }

    fn runner(&self) -> Runner {
        Runner {
            runtime: self.runtime.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
            timeout: self.config.timeout,
            stopping: self.stopping.subscribe(),
            isolate: self.config.isolate,
        }
    }

    /// Resolves once every open stream of this model has ended.
    pub async fn streams_closed(&self) {
        self.open_streams.closed().await;
    }

    /// Ends every running stream with [`RequestError::ShuttingDown`]; streams
    /// that start after this fail the same way.
    pub fn end_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Stops taking requests, lets every queued and running batch finish
    /// (open streams end with an error), and waits for the batchers to end.
    pub async fn shutdown(&self) {
        self.end_streams();
        let tasks = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.open = false;
            state.lanes.clear();
            std::mem::take(&mut state.tasks)
        };
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// What running a batch needs, whoever starts it: the batcher, or a
/// submitter whose request is a batch of its own.
struct Runner {
    runtime: Runtime,
    cache: Option<Arc<ModelCache>>,
    metrics: Option<EndpointMetrics>,
    timeout: Option<Duration>,
    stopping: watch::Receiver<bool>,
    /// A failed batch of several requests runs again in parts (`isolate.rs`).
    isolate: bool,
}

impl Runner {
    /// Runs `jobs` as one batch in a task on `on`, holding `permit` until
    /// every request in it is answered (or its stream has ended). A unary
    /// batch of several requests arms the key's `refill` when it ends.
    fn spawn(
        &self,
        on: &Handle,
        params: Arc<Params>,
        jobs: Vec<Job>,
        permit: OwnedSemaphorePermit,
        refill: &Arc<Refill>,
    ) {
        let cache = self.cache.clone();
        let metrics = self.metrics.clone();
        match &self.runtime {
            Runtime::Unary(handler) => {
                let handler = Arc::clone(handler);
                let refill = Arc::clone(refill);
                let isolating = self.isolate;
                drop(on.spawn(async move {
                    let (requests, started) = (jobs.len(), Instant::now());
                    // A failed batch's clients may retry: batching them together
                    // again would repeat the failure, so only a success arms it.
                    let ran = run_batch(handler.as_ref(), cache.as_deref(), metrics.as_ref(), params, jobs, isolating);
                    if ran.await {
                        refill.arm(requests, started.elapsed());
                    }
                    drop(permit);
                }));
            }
            Runtime::Stream(handler) => {
                let handler = Arc::clone(handler);
                let context = stream::BatchContext { timeout: self.timeout, stopping: self.stopping.clone() };
                drop(on.spawn(async move {
                    stream::run_batch(handler.as_ref(), cache.as_deref(), metrics.as_ref(), params, jobs, context)
                        .await;
                    drop(permit);
                }));
            }
        }
    }
}

struct Batcher {
    runner: Runner,
    config: BatchConfig,
    params: Arc<Params>,
    permits: Arc<Semaphore>,
    queued_rows: Arc<AtomicUsize>,
    queued_jobs: Arc<AtomicUsize>,
    full: Arc<Notify>,
    refill: Arc<Refill>,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let max_size = self.config.max_size.max(1);
        let mut carry: Option<Job> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match tokio::time::timeout(IDLE_EXIT, rx.recv()).await {
                    Ok(Some(job)) => job,
                    Ok(None) => break,
                    Err(_) => {
                        // Idle: refuse new jobs, then serve what slipped in.
                        rx.close();
                        match rx.recv().await {
                            Some(job) => job,
                            None => break,
                        }
                    }
                },
            };
            // Wait for a free slot first: while the handler is busy, requests
            // pile up in the queue and the batch below takes them all.
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                break;
            };
            // Eager, right after a batch of several requests ended: wait
            // (briefly) for that many requests to come back.
            let refill = self.refill.pending();
            // Spreading: this batch takes its share of the queue (or of the
            // requests the refill waits for), the free slots the rest.
            let max_size = match self.config.spread {
                true => {
                    let coming = refill.map_or(0, |(requests, _)| requests);
                    let queued = self.queued_rows.load(Ordering::Acquire).max(coming).max(1);
                    queued.div_ceil(self.permits.available_permits() + 1).clamp(1, max_size)
                }
                false => max_size,
            };
            let mut rows = first.rows();
            let (wanted, close_at) = match refill {
                Some((requests, until)) => (requests, until),
                None => (usize::MAX, first.enqueued + self.config.max_delay),
            };
            let close_at = tokio::time::Instant::from_std(close_at);
            let mut jobs = vec![first];
            // Collect until the batch is full or its delay is over. While
            // waiting, the batcher sleeps: arriving requests do not wake it
            // unless they fill the batch.
            let mut last_round = false;
            let mut yielded = false;
            'collect: loop {
                while rows < max_size {
                    match rx.try_recv() {
                        Ok(job) => {
                            if rows + job.rows() > max_size {
                                carry = Some(job);
                                break 'collect;
                            }
                            rows += job.rows();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                if rows >= max_size || jobs.len() >= wanted || last_round {
                    break;
                }
                if tokio::time::Instant::now() >= close_at {
                    // No time left to wait: give the threads parsing requests
                    // one chance to queue what they hold (a single yield of
                    // the CPU, not a wait), then take it.
                    if yielded {
                        break;
                    }
                    yielded = true;
                    std::thread::yield_now();
                    continue;
                }
                tokio::select! {
                    _ = self.full.notified() => {}
                    _ = tokio::time::sleep_until(close_at) => last_round = true,
                }
            }
            // Rows count as queued until their batch leaves (the submitters
            // compare the count with a full batch).
            self.queued_rows.fetch_sub(rows, Ordering::AcqRel);
            self.queued_jobs.fetch_sub(jobs.len(), Ordering::AcqRel);
            self.refill.disarm();
            if let Some(m) = &self.runner.metrics {
                m.queue_depth.dec_by(jobs.len() as i64);
            }
            self.runner.spawn(&Handle::current(), Arc::clone(&self.params), jobs, permit, &self.refill);
        }
        // Wait for running batches before reporting this batcher done.
        let _ = self.permits.acquire_many(self.config.max_concurrent.max(1) as u32).await;
    }
}

/// Runs one batch and answers every request in it, whatever happens; when
/// it fails and `isolating`, runs it again in parts so that only the
/// requests that cause the failure fail (`isolate.rs`). Whether the handler
/// answered the whole batch.
async fn run_batch(
    handler: &dyn Handler,
    cache: Option<&ModelCache>,
    metrics: Option<&EndpointMetrics>,
    params: Arc<Params>,
    jobs: Vec<Job>,
    isolating: bool,
) -> bool {
    let Some((jobs, model, frame)) = prepare(cache, &params, jobs).await else {
        return false;
    };
    let total: usize = jobs.iter().map(Job::rows).sum();
    let handler_started = Instant::now();
    // Traced requests get a batch span (nothing is allocated for untraced ones).
    let span = BatchSpan::start(jobs.iter().map(|j| j.trace.as_ref()), total);
    if let Some(span) = &span {
        for job in &jobs {
            if let Some(request) = &job.trace {
                span.queue_wait(request, job.enqueued, handler_started);
            }
        }
    }
    let handler_span = span.as_ref().map(|s| s.handler("handler"));
    let batch =
        Batch { frame, params: Arc::clone(&params), loaded: model, trace: span.as_ref().map(|s| s.context().clone()) };
    let result = isolate::call(handler, batch, total).await;
    let handled = handler_started.elapsed();
    let failed = result.as_ref().err().map(String::as_str);
    if let Some(handler_span) = handler_span {
        handler_span.end(failed);
    }
    let batch_span = span.as_ref().map(|s| s.context().clone());
    if let Some(span) = span {
        span.end(failed);
    }
    if let Some(m) = metrics {
        m.batch(total, handled);
        for job in &jobs {
            m.queued(handler_started.saturating_duration_since(job.enqueued));
        }
    }
    match result {
        Ok(predictions) => {
            isolate::answer_all(jobs, &predictions, total, handler_started, handled, batch_span.as_ref());
            true
        }
        Err(message) if isolating && jobs.len() > 1 => {
            let mut retry = isolate::Retry { handler, cache, metrics, params };
            crate::bisect::bisect(&mut retry, jobs, message).await;
            false
        }
        Err(message) => {
            isolate::fail_all(jobs, &message);
            false
        }
    }
}

mod isolate;
#[cfg(test)]
mod properties;
mod refill;
#[cfg(test)]
mod tests;
