//! Python in a pool of worker processes (`python: { workers: N }`): N
//! supervised processes of the same environment as in-process Python, each
//! importing the handler's module and loading the models it is asked for.
//!
//! A batch goes to an idle worker as an Arrow IPC stream in shared memory
//! (`region.rs`), with one short control line over a socket
//! (`process.rs`); predictions come back the same way. A worker that dies
//! fails only the batch it held and is restarted (`supervisor.rs`).
//! Workers start at registration, stop with [`WorkerPool::shutdown`], and
//! never outlive the host process (parent-death signal, and EOF on their
//! control socket).

mod process;
mod region;
mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::future::BoxFuture;
use redesmyn::cache::{LoadedModel, Loader};
use redesmyn::metrics::PoolStats;
use redesmyn::{Batch, Handler, HandlerError, Params, Predictions};

use crate::environment;
use crate::interpreter::{self, PythonError};
use crate::target::Target;
pub use process::exit_text;
use process::Launch;
use supervisor::{Job, Shared, Stats};

/// How an endpoint's worker pool runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Worker processes (at least 1).
    pub count: usize,
    /// A worker whose resident memory exceeds this after a batch is replaced.
    pub max_rss_mib: Option<u64>,
    /// A batch running longer is failed and its worker killed and replaced.
    pub timeout: Option<Duration>,
    /// Models each worker keeps loaded (the endpoint cache's size).
    pub models: usize,
}

/// A pool of Python worker processes for one endpoint.
pub struct WorkerPool {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pids: Vec<u32>,
}

impl WorkerPool {
    /// Starts `options.count` workers and waits until every one imported
    /// `handler` (and `loader`): an import error fails here, with Python's
    /// message.
    pub fn start(handler: &Target, loader: Option<&Target>, options: &WorkerOptions) -> Result<Arc<Self>, PythonError> {
        if !cfg!(target_os = "linux") {
            return Err(PythonError::Config("Python worker processes need Linux (memfd, PR_SET_PDEATHSIG)".into()));
        }
        let config = interpreter::config();
        let executable = environment::chosen_executable(&config, std::env::var_os("VIRTUAL_ENV").map(PathBuf::from))
            .map_err(PythonError::Start)?;
        let launch = Launch {
            executable,
            paths: interpreter::absolute_paths(&config.path),
            handler: handler.to_string(),
            loader: loader.map(ToString::to_string),
            models: options.models.max(1),
            timeout: options.timeout,
        };
        let count = options.count.max(1);
        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared {
            launch,
            max_rss: options.max_rss_mib.map(|m| m * 1024 * 1024),
            queue: Mutex::new(receiver),
            closing: AtomicBool::new(false),
            stats: Arc::new(Stats::new(count)),
        });
        let (started, ready) = mpsc::channel();
        let mut threads = Vec::with_capacity(count);
        for slot in 0..count {
            let shared = Arc::clone(&shared);
            let started = started.clone();
            let thread = std::thread::Builder::new()
                .name(format!("redesmyn-py-worker-{slot}"))
                .spawn(move || supervisor::run(shared, slot, started))
                .map_err(|e| PythonError::Start(format!("could not start a worker thread: {e}")))?;
            threads.push(thread);
        }
        drop(started);
        let mut pool =
            WorkerPool { shared, sender: Mutex::new(Some(sender)), threads: Mutex::new(threads), pids: Vec::new() };
        let mut pids = Vec::with_capacity(count);
        let mut first_error = None;
        for report in ready.iter() {
            match report {
                Ok(pid) => pids.push(pid),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Some(e) = first_error {
            pool.shutdown();
            return Err(e);
        }
        tracing::info!(workers = count, pids = ?pids, handler = %handler, "Python workers ready");
        pool.pids = pids;
        Ok(Arc::new(pool))
    }

    /// The first workers' process ids.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Workers alive, restarts by cause and batches by worker, for `/metrics`.
    pub fn stats(&self) -> Arc<dyn PoolStats> {
        Arc::clone(&self.shared.stats) as Arc<dyn PoolStats>
    }

    /// The endpoint's handler.
    pub fn handler(self: &Arc<Self>) -> WorkerHandler {
        WorkerHandler { pool: Arc::clone(self) }
    }

    /// Stops taking batches, lets each worker finish the one it holds, then
    /// closes their control sockets and waits for them to exit (killing any
    /// that take more than a few seconds). Blocks; idempotent.
    pub fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn submit(&self, job: Job) -> Result<(), HandlerError> {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let stopped = || HandlerError::new("the Python workers are stopped");
        sender.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An endpoint's handler: each batch goes to the next idle worker.
pub struct WorkerHandler {
    pool: Arc<WorkerPool>,
}

impl Handler for WorkerHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let model = match &batch.loaded {
            Some(loaded) => match Arc::clone(loaded).downcast::<WorkerModel>() {
                Ok(model) => Some(model),
                Err(_) => {
                    let error = HandlerError::new("a Python worker pool needs the model of its own loader (py.loader)");
                    return Box::pin(async move { Err(error) });
                }
            },
            None => None,
        };
        let params = batch.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let traceparent = batch.traceparent();
        let submitted = self.pool.submit(Job { frame: batch.frame, params, model, reply, traceparent });
        Box::pin(async move {
            submitted?;
            answer.await.map_err(|_| HandlerError::new("the Python worker pool stopped before answering"))?
        })
    }
}

/// A model of a worker pool's cache, as the core holds it: which artifact
/// to load. Each worker loads it itself, on its first batch that needs it.
pub struct WorkerModel {
    /// Unique per load: a refreshed artifact is a new model to the workers.
    pub id: u64,
    pub path: String,
    pub params: Vec<(String, String)>,
}

/// The cache loader of a worker pool: records the artifact; the workers
/// run the Python loader (their own copy of the model each).
pub struct WorkerLoader;

static NEXT_MODEL: AtomicU64 = AtomicU64::new(1);

impl Loader for WorkerLoader {
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>> {
        let model = WorkerModel {
            id: NEXT_MODEL.fetch_add(1, Ordering::Relaxed),
            path: artifact.to_string_lossy().into_owned(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        Box::pin(async move { Ok(Arc::new(model) as LoadedModel) })
    }
}
