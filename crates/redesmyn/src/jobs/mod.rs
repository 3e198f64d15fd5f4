//! Asynchronous jobs: a prediction accepted now, run later through the
//! same service, queues, batches and handler as online requests, its
//! result kept for a while under an unguessable id.
//!
//! submit (decode-check, write to the [`store`], then 202) → dispatcher
//! (claims the oldest queued jobs while a slot is free) → the model's
//! queue → result written with the job's terminal state.
//!
//! Priority: jobs never wait in the store for the batcher; at most
//! `max_running` of them are in the model queues at once, so an online
//! request finds at most that many job requests ahead of it, however many
//! jobs are queued (docs/decisions.md). Queued jobs live only in SQLite,
//! so a crash loses none: the next start queues again every job that had
//! not completed, and a job's result is written together with its final
//! state, so it completes once.

pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::batch::Answer;
use crate::codec::predictions::response_body;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::handler::{Params, Predictions};
use crate::metrics::Protocol;
use crate::service::{Call, InferenceRequest, InferenceService, ServedModel, Target};
use crate::telemetry::Incoming;
use crate::v2::binary::parse_rest;
use crate::v2::infer;
use crate::v2::output::{encode_rest, ResponseMeta};
pub use store::State;
use store::{Completion, JobRow, NewJob, Store, StoreError};

/// The `jobs` server option.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Where the SQLite file lives; created when missing.
    pub dir: PathBuf,
    /// How long a finished job (and its result) is kept.
    pub retention: Duration,
    /// Jobs that may wait at once; more get 503.
    pub max_queued: usize,
    /// Largest result kept, in bytes of JSON; a larger one fails its job.
    pub max_result_bytes: usize,
    /// Jobs handed to the model queues at once: the most job requests an
    /// online request can find ahead of it.
    pub max_running: usize,
    /// When set, every job route needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl JobsConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JobsConfig {
            dir: dir.into(),
            retention: Duration::from_secs(24 * 3600),
            max_queued: 100_000,
            max_result_bytes: 16 * 1024 * 1024,
            max_running: 64,
            token: None,
        }
    }
}

/// How a job's body is encoded, which is also how its result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A native endpoint's records; the result is `{"id", "predictions"}`.
    Records,
    /// A V2 infer body (JSON); the result is a V2 infer response.
    V2,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Records => "records",
            Format::V2 => "v2",
        }
    }
}

/// A job as a client submits it.
pub struct Submission<'a> {
    pub model: &'a ServedModel,
    pub format: Format,
    /// V2: the version the path named (it may stand for a parameter).
    pub version: Option<String>,
    pub params: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub request_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("'{0}' is not a job id")]
    MalformedId(String),
    #[error("no job '{0}'")]
    NotFound(String),
    #[error("job '{0}' is {1} and can no longer be cancelled")]
    NotCancellable(String, &'static str),
    #[error("the job store is unavailable")]
    Unavailable,
}

/// The job queue of a running server.
pub struct Jobs {
    store: Arc<Store>,
    service: Arc<InferenceService>,
    config: JobsConfig,
    slots: Arc<Semaphore>,
    wake: Notify,
    stopping: AtomicBool,
    dispatcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runtime: Handle,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Jobs {
    /// Opens the store (queuing again what a crash interrupted) and starts
    /// dispatching on `runtime`.
    pub fn start(
        config: JobsConfig,
        service: Arc<InferenceService>,
        runtime: &Handle,
    ) -> Result<Arc<Jobs>, StoreError> {
        let store = Arc::new(Store::open(&config.dir)?);
        let jobs = Arc::new(Jobs {
            store,
            service,
            slots: Arc::new(Semaphore::new(config.max_running.max(1))),
            config,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            dispatcher: Mutex::new(None),
            runtime: runtime.clone(),
        });
        let task = runtime.spawn(Arc::clone(&jobs).dispatch());
        *jobs.dispatcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(jobs)
    }

    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// Runs a store call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, JobError> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || call(&store)).await {
            Ok(result) => result.map_err(JobError::from),
            Err(_) => Err(JobError::Unavailable),
        }
    }

    /// Checks the body as the online path would (a bad body is a 4xx now,
    /// not a failed job later), writes the job, and returns its id.
    pub async fn submit(&self, submission: Submission<'_>) -> Result<String, JobError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(RequestError::ShuttingDown.into());
        }
        let Submission { model, format, version, params, body, request_id } = submission;
        match format {
            Format::Records => {
                decode_request(model.schema(), &body)?;
            }
            Format::V2 => {
                let parsed = parse_rest(&body, None, model.schema()).map_err(RequestError::from)?;
                let from_version = version.clone().and_then(|v| {
                    (model.key().version.as_deref() != Some(v.as_str()) && model.param_names().len() == 1)
                        .then(|| (model.param_names()[0].clone(), v))
                });
                infer::params(model, &parsed.parameters, from_version)?;
            }
        }
        let key = model.key();
        let job = NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            format: format.as_str().into(),
            model: key.name.clone(),
            version: match format {
                Format::Records => key.version.clone(),
                Format::V2 => version,
            },
            params: serde_json::to_string(&params.into_iter().collect::<HashMap<_, _>>())
                .unwrap_or_else(|_| "{}".into()),
            body,
            request_id,
            submitted_ms: now_ms(),
        };
        let id = job.id.clone();
        let max_queued = self.config.max_queued;
        self.blocking(move |s| s.insert(&job, max_queued)).await.map_err(|e| match e {
            JobError::Store(StoreError::Full(_)) => {
                RequestError::QueueFull { retry_after: Duration::from_secs(1) }.into()
            }
            other => other,
        })?;
        self.wake.notify_one();
        Ok(id)
    }

    /// The job of this id, as stored.
    pub async fn get(&self, id: &str) -> Result<JobRow, JobError> {
        let id = parse_id(id)?;
        let key = id.clone();
        self.blocking(move |s| s.get(&key)).await?.ok_or(JobError::NotFound(id))
    }

    /// Cancels a job that has not started.
    pub async fn cancel(&self, id: &str) -> Result<(), JobError> {
        let id = parse_id(id)?;
        let key = id.clone();
        match self.blocking(move |s| s.cancel(&key, now_ms())).await? {
            None => Err(JobError::NotFound(id)),
            Some(State::Cancelled) => Ok(()),
            Some(state) => Err(JobError::NotCancellable(id, state.as_str())),
        }
    }

    /// Stops dispatching and waits (up to `timeout`) for the jobs in the
    /// model queues to be written; any not written by then run again at
    /// the next start.
    pub async fn stop(&self, timeout: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
        let task = self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let all = self.config.max_running.max(1) as u32;
        let _ = tokio::time::timeout(timeout, self.slots.acquire_many(all)).await;
    }

    /// Claims queued jobs while slots are free, and sweeps expired ones.
    async fn dispatch(self: Arc<Self>) {
        let sweep_every = self.config.retention.clamp(Duration::from_millis(200), Duration::from_secs(60));
        let mut last_sweep: Option<Instant> = None;
        while !self.stopping.load(Ordering::Acquire) {
            if last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
                last_sweep = Some(Instant::now());
                let before = now_ms() - self.config.retention.as_millis() as i64;
                match self.blocking(move |s| s.sweep(before)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(jobs = n, "expired jobs deleted"),
                    Err(e) => tracing::warn!(error = %e, "job sweep failed"),
                }
            }
            let free = self.slots.available_permits();
            if free > 0 {
                match self.blocking(move |s| s.claim(free, now_ms())).await {
                    Ok(claimed) if !claimed.is_empty() => {
                        for job in claimed {
                            let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else { return };
                            self.runtime.spawn(Arc::clone(&self).run(job, slot));
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sweep_every) => {}
            }
        }
    }

    /// Runs one job through its model and writes how it ended.
    async fn run(self: Arc<Self>, job: NewJob, slot: OwnedSemaphorePermit) {
        let started = Instant::now();
        let result = self.execute(&job).await;
        let (result, answer) = match result {
            Ok((body, _)) if body.len() > self.config.max_result_bytes => (
                Err(format!(
                    "the result is {} bytes, over the limit of {} bytes",
                    body.len(),
                    self.config.max_result_bytes
                )),
                None,
            ),
            Ok((body, answer)) => (Ok(body), answer),
            Err(e) => (Err(e.to_string()), None),
        };
        let done = Completion {
            finished_ms: now_ms(),
            queue_ns: answer.as_ref().map(|a| a.queued.as_nanos() as i64),
            handler_ns: answer.as_ref().map(|a| a.handled.as_nanos() as i64),
            batch_rows: answer.as_ref().map(|a| a.batch_rows as i64),
            result,
        };
        self.record(&job.id, done).await;
        tracing::debug!(job = %job.id, ms = started.elapsed().as_secs_f64() * 1e3, "job done");
        drop(slot);
        self.wake.notify_one();
    }

    /// Writes how a job ended. While the store cannot be written (a full
    /// disk, a read-only file) the write is tried again, backing off to
    /// every 5 s, so the job completes once the store recovers; a server
    /// stopped meanwhile runs the job again at its next start.
    async fn record(&self, id: &str, done: Completion) {
        let done = Arc::new(done);
        let mut wait = Duration::from_millis(100);
        loop {
            let (key, completion) = (id.to_string(), Arc::clone(&done));
            match self.blocking(move |s| s.complete(&key, &completion)).await {
                Ok(true) => return,
                Ok(false) => return tracing::warn!(job = %id, "job was no longer running when it ended"),
                Err(e) if wait == Duration::from_millis(100) => {
                    tracing::error!(job = %id, error = %e, "could not record a finished job; trying again until the store recovers")
                }
                Err(_) => {}
            }
            if self.stopping.load(Ordering::Acquire) {
                return tracing::warn!(job = %id, "stopped before the job's end could be recorded; it runs again at the next start");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// The job's answer in its online response's shape.
    async fn execute(&self, job: &NewJob) -> Result<(Vec<u8>, Option<Answer>), RequestError> {
        let given: HashMap<String, String> = serde_json::from_str(&job.params).unwrap_or_default();
        match job.format.as_str() {
            "v2" => {
                let target = Target::named(&job.model).version(job.version.as_deref());
                let mut call = self
                    .service
                    .open(Protocol::Native, job.request_id.as_str(), target)?
                    .at("job")
                    .traced(Incoming::Root);
                let from_version = call.take_version_param();
                let model = Arc::clone(call.model());
                let parsed = parse_rest(&job.body, None, model.schema())?;
                let params = infer::params(&model, &parsed.parameters, from_version)?;
                let request = infer::Request {
                    parameters: parsed.parameters,
                    inputs: parsed.inputs,
                    outputs: parsed.outputs,
                    binary_output: false,
                    arrived: call.arrived(),
                    client: None,
                    deadline: None,
                    trace: call.trace(),
                };
                let inferred = infer::infer(&model, params, request).await;
                let outcome = Outcome::from(&inferred);
                call.finish(outcome, outcome.status_label(), inferred.as_ref().ok().and_then(|i| i.answer.as_ref()));
                let inferred = inferred?;
                let key = model.key();
                let meta = ResponseMeta {
                    model_name: &key.name,
                    model_version: key.version.as_deref(),
                    id: Some(&job.request_id),
                    parameters: None,
                };
                // Results are kept as JSON: every output is written inline.
                let outputs: Vec<_> = inferred.outputs.into_iter().map(|(o, _)| (o, false)).collect();
                Ok((encode_rest(meta, &outputs).body, inferred.answer))
            }
            _ => {
                let model = self.service.resolve(&job.model, job.version.as_deref())?;
                let call = Call::on(Arc::clone(&model), Protocol::Native, job.request_id.as_str())
                    .at("job")
                    .traced(Incoming::Root);
                let params: Params = model.params_from(|n| given.get(n).map(String::as_str));
                let request = InferenceRequest { params, arrived: call.arrived(), client: None, trace: call.trace() };
                let answer = model.predict(request, |schema| decode_request(schema, &job.body)).await;
                let outcome = Outcome::from(&answer);
                call.finish(outcome, outcome.status_label(), answer.as_ref().ok().and_then(Option::as_ref));
                let answer = answer?;
                let empty = Predictions::Column(Default::default());
                let predictions = answer.as_ref().map_or(&empty, |a| &a.predictions);
                Ok((response_body(&job.request_id, predictions), answer))
            }
        }
    }
}

/// Job ids are UUIDs (v4: 122 random bits); anything else is malformed.
fn parse_id(id: &str) -> Result<String, JobError> {
    uuid::Uuid::try_parse(id).map(|u| u.hyphenated().to_string()).map_err(|_| JobError::MalformedId(id.into()))
}

/// A stored job as JSON: state, result (the online answer's shape),
/// error, and telemetry.
pub fn view(row: &JobRow) -> serde_json::Value {
    use serde_json::{json, Value};
    let time = |ms: Option<i64>| -> Value {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map_or(Value::Null, |t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
    };
    let result = row.result.as_deref().and_then(|r| serde_json::from_slice::<Value>(r).ok()).unwrap_or(Value::Null);
    let params: Value = serde_json::from_str(&row.job.params).unwrap_or(Value::Null);
    let ms = |ns: Option<i64>| ns.map_or(Value::Null, |n| json!(n as f64 / 1e6));
    let waited = match (row.started_ms, row.queue_ns) {
        // Time in the job queue, then in the model's queue.
        (Some(started), Some(q)) => json!((started - row.job.submitted_ms) as f64 + q as f64 / 1e6),
        _ => Value::Null,
    };
    json!({
        "id": row.job.id,
        "state": row.state.as_str(),
        "model": row.job.model,
        "result": result,
        "error": row.error,
        "telemetry": {
            "submitted_at": time(Some(row.job.submitted_ms)),
            "started_at": time(row.started_ms),
            "finished_at": time(row.finished_ms),
            "queue_ms": waited,
            "handler_ms": ms(row.handler_ns),
            "batch_size": row.batch_rows,
            "request_id": row.job.request_id,
            "params": params,
        },
    })
}

#[cfg(test)]
mod tests;
