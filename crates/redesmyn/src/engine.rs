//! The engine: schedule predictions from Rust without blocking, poll them
//! back later, and read each model's state.
//!
//! A thin layer over [`InferenceService`]: [`Engine::schedule`] resolves the
//! model at once (an unknown model or a missing parameter fails there),
//! queues the request on the service's runtime like any other (same
//! batches, deadlines and metrics as HTTP traffic) and returns a
//! [`Ticket`]. [`Engine::try_poll`] answers `None` until the result is in,
//! then hands it over exactly once; [`Engine::wait`] awaits it. Each result
//! carries its timings, batch size, request id and the request's own
//! metadata: any `Send` value given at scheduling and moved back out with
//! the result, so a large input is never cloned for telemetry.
//!
//! ```
//! use std::sync::Arc;
//! use polars::prelude::*;
//! use redesmyn::engine::{Engine, Scheduled};
//! use redesmyn::{Batch, BatchConfig, Endpoint, Field, FieldType, Numeric, Predictions, Schema, Server, ServerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Runtime::new()?;
//! let schema = Schema::new(vec![Field::new("x", FieldType::Number(Numeric::F64))])?;
//! let double: Arc<dyn redesmyn::Handler> = Arc::new(|batch: Batch| async move {
//!     let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
//!     Ok(Predictions::Column((x * 2.0).into_series()))
//! });
//! let mut server = Server::new(ServerConfig { port: 0, ..Default::default() });
//! server.register(Endpoint::new("/double", schema, BatchConfig::default(), double)?)?;
//! let running = server.start(runtime.handle().clone())?;
//!
//! let engine: Engine<&str> = Engine::new(Arc::clone(running.service()), runtime.handle().clone());
//! let frame = df!("x" => [1.0, 2.0])?;
//! let ticket = engine.schedule(Scheduled::new("double", frame).metadata("from the docs"))?;
//! let done = runtime.block_on(engine.wait(&ticket))?;
//! assert_eq!(done.metadata, "from the docs");
//! let Some(Predictions::Column(y)) = done.predictions else { panic!("one column") };
//! assert_eq!(y.f64()?.into_no_null_iter().collect::<Vec<_>>(), [2.0, 4.0]);
//! runtime.block_on(running.stop());
//! # Ok(())
//! # }
//! ```

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polars::prelude::DataFrame;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::RequestError;
use crate::handler::{Params, Predictions};
use crate::model::ModelKey;
use crate::service::{InferenceService, ServedModel};

/// A request to schedule: a model, its rows, and what to carry along.
pub struct Scheduled<M> {
    pub model: String,
    /// `None`: the model's current version.
    pub version: Option<String>,
    /// Values of the model's path parameters, if it has any.
    pub params: Vec<(String, String)>,
    pub frame: DataFrame,
    /// `None`: a new UUID.
    pub request_id: Option<String>,
    pub metadata: M,
}

impl Scheduled<()> {
    /// A request for `model`'s current version, with no metadata.
    pub fn new(model: impl Into<String>, frame: DataFrame) -> Self {
        Scheduled { model: model.into(), version: None, params: Vec::new(), frame, request_id: None, metadata: () }
    }
}

impl<M> Scheduled<M> {
    /// The same request, carrying `metadata` to its result.
    pub fn metadata<N>(self, metadata: N) -> Scheduled<N> {
        let Scheduled { model, version, params, frame, request_id, .. } = self;
        Scheduled { model, version, params, frame, request_id, metadata }
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}

/// Names a scheduled request; redeemed once, by [`Engine::try_poll`] or
/// [`Engine::wait`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    seq: u64,
    request_id: Arc<str>,
}

impl Ticket {
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

/// A finished request: its predictions (`None` for a frame with no rows),
/// where its time went, and its metadata.
#[derive(Debug)]
pub struct Done<M> {
    pub request_id: String,
    pub model: ModelKey,
    pub predictions: Option<Predictions>,
    /// From scheduling to the answer.
    pub duration: Duration,
    /// Waiting in the model's queue.
    pub queue_wait: Duration,
    /// The handler's call on the batch this request rode in.
    pub handler: Duration,
    /// Rows in that batch (0 when every row came from the prediction cache).
    pub batch_size: usize,
    /// Rows answered by the prediction cache.
    pub cached_rows: usize,
    pub metadata: M,
}

/// Why a request has no result.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request failed: an unknown model, a bad parameter, a full queue,
    /// a deadline, the handler's error.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The ticket was redeemed already, or is not this engine's.
    #[error("no scheduled request for ticket {0}")]
    UnknownTicket(String),
}

/// What a model is doing, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// No request in flight.
    Idle,
    /// Requests in flight.
    Busy,
    /// Requests in flight and no artifact loaded yet (an artifact-cache model's first load).
    Loading,
    /// The last request finished with the handler's error; the next success clears it.
    Failed(String),
}

type Outcome<M> = Result<Done<M>, RequestError>;

/// A request in flight: its result arrives on the receiver.
struct Slot<M> {
    result: oneshot::Receiver<Outcome<M>>,
}

/// Per model: requests in flight and the last failure.
#[derive(Default)]
struct Activity {
    in_flight: usize,
    failed: Option<String>,
}

/// Schedules predictions on a running service and hands results back.
pub struct Engine<M = ()> {
    service: Arc<InferenceService>,
    runtime: Handle,
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Slot<M>>>,
    activity: Arc<Mutex<HashMap<ModelKey, Activity>>>,
}

impl<M: Send + 'static> Engine<M> {
    /// An engine over `service` (a running server's
    /// [`crate::RunningServer::service`]); requests run on `runtime`.
    pub fn new(service: Arc<InferenceService>, runtime: Handle) -> Self {
        Engine {
            service,
            runtime,
            next: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            activity: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Queues `request` and returns at once. Fails here, with nothing
    /// queued, for an unknown model or version or a missing parameter.
    pub fn schedule(&self, request: Scheduled<M>) -> Result<Ticket, RequestError> {
        let Scheduled { model, version, params, frame, request_id, metadata } = request;
        let model = self.service.resolve(&model, version.as_deref())?;
        let params = model.require_params(&Params::new(params))?;
        let request_id: Arc<str> = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()).into();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (send, result) = oneshot::channel();
        lock(&self.slots).insert(seq, Slot { result });
        let key = model.key().clone();
        lock(&self.activity).entry(key.clone()).or_default().in_flight += 1;
        let activity = Arc::clone(&self.activity);
        let id = request_id.to_string();
        self.runtime.spawn(async move {
            let scheduled = Instant::now();
            let answer = model.infer(params, frame, scheduled, None).await;
            let done = answer.map(|answer| Done {
                request_id: id,
                model: key.clone(),
                duration: scheduled.elapsed(),
                queue_wait: answer.as_ref().map_or(Duration::ZERO, |a| a.queued),
                handler: answer.as_ref().map_or(Duration::ZERO, |a| a.handled),
                batch_size: answer.as_ref().map_or(0, |a| a.batch_rows),
                cached_rows: answer.as_ref().map_or(0, |a| a.cached_rows),
                predictions: answer.map(|a| a.predictions),
                metadata,
            });
            {
                let mut activity = lock(&activity);
                let entry = activity.entry(key).or_default();
                entry.in_flight -= 1;
                match &done {
                    Ok(_) => entry.failed = None,
                    Err(RequestError::Handler(message)) => entry.failed = Some(message.clone()),
                    Err(_) => {}
                }
            }
            let _ = send.send(done);
        });
        Ok(Ticket { seq, request_id })
    }

    /// The result if it is in (then the ticket is spent), `None` if not yet.
    pub fn try_poll(&self, ticket: &Ticket) -> Option<Result<Done<M>, EngineError>> {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get_mut(&ticket.seq) else {
            return Some(Err(EngineError::UnknownTicket(ticket.request_id.to_string())));
        };
        match slot.result.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => None,
            Ok(outcome) => {
                slots.remove(&ticket.seq);
                Some(outcome.map_err(EngineError::from))
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                slots.remove(&ticket.seq);
                Some(Err(RequestError::ShuttingDown.into()))
            }
        }
    }

    /// Waits for the result (the ticket is spent).
    pub async fn wait(&self, ticket: &Ticket) -> Result<Done<M>, EngineError> {
        let slot = lock(&self.slots).remove(&ticket.seq);
        let Some(slot) = slot else {
            return Err(EngineError::UnknownTicket(ticket.request_id.to_string()));
        };
        match slot.result.await {
            Ok(outcome) => outcome.map_err(EngineError::from),
            Err(_) => Err(RequestError::ShuttingDown.into()),
        }
    }

    /// Requests scheduled and not yet redeemed.
    pub fn pending(&self) -> usize {
        lock(&self.slots).len()
    }

    /// What the model of this name and version is doing.
    pub fn state(&self, model: &str, version: Option<&str>) -> Result<ModelState, RequestError> {
        let served = self.service.resolve(model, version)?;
        let activity = lock(&self.activity);
        let (in_flight, failed) = activity.get(served.key()).map_or((0, None), |a| (a.in_flight, a.failed.clone()));
        Ok(state_of(&served, in_flight, failed))
    }
}

fn state_of(model: &ServedModel, in_flight: usize, failed: Option<String>) -> ModelState {
    match (in_flight, failed) {
        (0, Some(message)) => ModelState::Failed(message),
        (0, None) => ModelState::Idle,
        _ if model.loaded_variants() == Some(0) => ModelState::Loading,
        _ => ModelState::Busy,
    }
}
