//! `NativeServer`: the core server, configured and driven from JavaScript.

use std::path::Path;
use std::sync::{Arc, Mutex};

use napi_derive::napi;
use std::collections::HashMap;

use redesmyn::cache::{Loader, ModelCache};
use redesmyn::stream::StreamHandler;
use redesmyn::{Endpoint, Handler, RunningServer, Runtime, Server};
use redesmyn_onnx::{OnnxHandler, OnnxLoader, OnnxModel};
use redesmyn_python::workers::{WorkerLoader, WorkerPool};
use redesmyn_python::{PyHandler, PyLoader, PyStreamHandler, Target};

use crate::error::{BindingError, Result};
use crate::js_deployer::{DeployFn, JsDeployer};
use crate::js_handler::JsHandler;
use crate::js_loader::JsLoader;
use crate::js_stream::JsStreamHandler;
use crate::options::{EndpointSpec, RuntimeSpec, ServerOptions};

/// An endpoint built from its spec, with what outlives registration: its
/// artifact cache (for `cacheStats` and friends) and its Python worker pool.
struct Built {
    endpoint: Endpoint,
    cache: Option<Arc<ModelCache>>,
    pool: Option<Arc<WorkerPool>>,
}

#[napi(object)]
pub struct CacheStatsObject {
    pub hits: f64,
    pub misses: f64,
    pub loads: f64,
    pub load_failures: f64,
    pub evictions: f64,
    pub refreshes: f64,
    pub refresh_failures: f64,
    pub load_seconds_total: f64,
    /// Models in memory.
    pub size: f64,
}

#[napi(object)]
pub struct PredictionCacheStatsObject {
    /// Rows answered from the cache.
    pub hits: f64,
    /// Rows that went to the handler.
    pub misses: f64,
    /// Rows held.
    pub entries: f64,
    /// Memory held, approximately.
    pub bytes: f64,
}

#[napi(object)]
pub struct PredictOutput {
    /// The HTTP status the same request would have had.
    pub status: u32,
    pub id: String,
    /// The predictions as JSON text.
    pub predictions: Option<String>,
    /// `{"error": ..., "details": [...]}` as JSON text, when status is not 200.
    pub error: Option<String>,
    pub queue_ms: f64,
    pub handler_ms: f64,
    pub total_ms: f64,
    pub batch_size: u32,
}

#[napi(object)]
pub struct JobReply {
    /// The HTTP status the same job request would have had (202, 200, 4xx, 503).
    pub status: u32,
    /// The HTTP answer's JSON text.
    pub body: String,
}

enum State {
    /// Boxed: a server being configured is much larger than the other states.
    Configuring(Box<Server>),
    Starting,
    Running(Arc<RunningServer>),
    Stopped,
}

#[napi]
pub struct NativeServer {
    state: Arc<Mutex<State>>,
    port: Arc<Mutex<Option<u32>>>,
    grpc_port: Arc<Mutex<Option<u32>>>,
    caches: Mutex<HashMap<String, Arc<ModelCache>>>,
    management_port: Arc<Mutex<Option<u32>>>,
    /// Models built for `add_prepared`, by ticket.
    prepared: Mutex<HashMap<u32, Endpoint>>,
    next_ticket: std::sync::atomic::AtomicU32,
    /// Python worker pools, stopped after the server in `stop()`.
    pools: Mutex<Vec<Arc<WorkerPool>>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[napi]
impl NativeServer {
    #[napi(constructor)]
    pub fn new(options: ServerOptions) -> napi::Result<Self> {
        if let Some(log) = &options.log {
            redesmyn::logging::init(log.level.as_deref(), log.format.as_deref() != Some("text"))
                .map_err(BindingError::failed)?;
        } else {
            // REDESMYN_LOG alone also turns logs on.
            let _ = redesmyn::logging::init(None, true);
        }
        if let Some(python) = &options.python {
            redesmyn_python::configure(python.to_config()).map_err(|e| BindingError::failed(e.to_string()))?;
        }
        let server = Server::new(options.to_config()?);
        Ok(NativeServer {
            state: Arc::new(Mutex::new(State::Configuring(Box::new(server)))),
            port: Arc::new(Mutex::new(None)),
            grpc_port: Arc::new(Mutex::new(None)),
            caches: Mutex::new(HashMap::new()),
            management_port: Arc::new(Mutex::new(None)),
            prepared: Mutex::new(HashMap::new()),
            next_ticket: std::sync::atomic::AtomicU32::new(1),
            pools: Mutex::new(Vec::new()),
        })
    }

    /// Adds an endpoint: its spec, and the runtime that predicts for it.
    /// A Python runtime starts the interpreter and imports its functions
    /// now, so a wrong reference fails here rather than at the first request;
    /// an ONNX runtime loads its model now and checks the schema fits it.
    #[napi(ts_args_type = "spec: EndpointSpec, runtime: JsRuntime | JsStreamRuntime | PythonRuntime | OnnxRuntime")]
    pub fn register(&self, spec: EndpointSpec, runtime: RuntimeSpec<'_>) -> napi::Result<()> {
        Ok(self.add(&spec, runtime)?)
    }

    fn add(&self, spec: &EndpointSpec, runtime: RuntimeSpec<'_>) -> Result<()> {
        let Built { endpoint, cache, pool } = self.build(spec, runtime)?;
        match &mut *lock(&self.state) {
            State::Configuring(server) => {
                server.register(endpoint)?;
                if let Some(pool) = &pool {
                    server.add_pool_stats(spec.path.clone(), pool.stats());
                }
            }
            _ => return Err(BindingError::failed("endpoints must be registered before serve()")),
        }
        if let Some(cache) = cache {
            self.caches.lock().unwrap_or_else(|p| p.into_inner()).insert(spec.path.clone(), cache);
        }
        self.keep_pool(pool);
        Ok(())
    }

    /// Keeps a worker pool until `stop()`.
    fn keep_pool(&self, pool: Option<Arc<WorkerPool>>) {
        if let Some(pool) = pool {
            self.pools.lock().unwrap_or_else(|p| p.into_inner()).push(pool);
        }
    }

    /// Builds a model to add while serving (the management API's deployer
    /// calls this, then [`Self::add_prepared`]): its runtime starts now, as
    /// in `register`. Returns a ticket for `add_prepared`.
    #[napi(ts_args_type = "spec: EndpointSpec, runtime: JsRuntime | JsStreamRuntime | PythonRuntime | OnnxRuntime")]
    pub fn prepare_model(&self, spec: EndpointSpec, runtime: RuntimeSpec<'_>) -> napi::Result<u32> {
        if spec.version.is_none() && spec.name.is_none() {
            return Err(BindingError::invalid("a model added while serving needs a name").into());
        }
        // A worker pool of a model added while serving stops with the server; its
        // counters are not in /metrics (the registry's collectors are fixed at start).
        let Built { endpoint, pool, .. } = self.build(&spec, runtime)?;
        self.keep_pool(pool);
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = self.next_ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        prepared.insert(ticket, endpoint);
        Ok(ticket)
    }

    /// Adds a prepared model to the running server; resolves once it serves
    /// (its artifact loaded), or rejects with the load error.
    #[napi]
    pub async fn add_prepared(&self, ticket: u32) -> napi::Result<()> {
        let endpoint = self.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(&ticket);
        let endpoint = endpoint.ok_or_else(|| BindingError::invalid(format!("no prepared model {ticket}")))?;
        let running = self.running()?;
        running.add_model(endpoint.model).await.map_err(|e| BindingError::failed(e.to_string()))?;
        Ok(())
    }

    /// The management API's deployer: `deploy(specJson)` builds and adds a
    /// model, `changed(changeJson)` persists a change. Before `serve()`.
    #[napi(
        ts_args_type = "deploy: (spec: string) => Promise<DeployOutput>, changed: (change: string) => Promise<DeployOutput>"
    )]
    pub fn set_deployer(&self, deploy: DeployFn, changed: DeployFn) -> napi::Result<()> {
        match &mut *lock(&self.state) {
            State::Configuring(server) => server.set_deployer(Arc::new(JsDeployer::new(deploy, changed))),
            _ => return Err(BindingError::failed("the deployer must be set before serve()").into()),
        }
        Ok(())
    }

    /// The folder management calls may name files in, unless the options set
    /// one (the repository being served). Before `serve()`.
    #[napi]
    pub fn set_management_root(&self, root: String) -> napi::Result<()> {
        match &mut *lock(&self.state) {
            State::Configuring(server) => server.set_management_root(root.into()),
            _ => return Err(BindingError::failed("the management root must be set before serve()").into()),
        }
        Ok(())
    }

    /// The version unversioned requests for model `name` reach when no
    /// traffic weights are set (`null`: the highest). Checked at `serve()`
    /// when set before, at once after.
    #[napi]
    pub fn set_default(&self, name: String, version: Option<String>) -> napi::Result<()> {
        match &mut *lock(&self.state) {
            State::Configuring(server) => {
                if let Some(version) = version {
                    server.set_default(name, version);
                }
                Ok(())
            }
            State::Running(running) => running
                .service()
                .set_default(&name, version.as_deref())
                .map_err(|e| BindingError::invalid(e.to_string()).into()),
            _ => Err(BindingError::failed("the server is stopped").into()),
        }
    }

    /// Removes a model's version (every version with `null`) while serving:
    /// out of lookup at once, unloaded once its requests are answered.
    #[napi]
    pub async fn remove_model(&self, name: String, version: Option<String>) -> napi::Result<()> {
        let running = self.running()?;
        let drain = std::time::Duration::from_secs(30);
        running
            .service()
            .remove(&name, version.as_deref(), drain)
            .await
            .map_err(|e| BindingError::invalid(e.to_string()))?;
        Ok(())
    }

    /// Traffic weights between the versions of model `name` (an empty map
    /// clears them): checked at `serve()` when set before, at once after.
    #[napi]
    pub fn set_traffic(&self, name: String, weights: HashMap<String, f64>) -> napi::Result<()> {
        let weights: std::collections::BTreeMap<String, f64> = weights.into_iter().collect();
        match &mut *lock(&self.state) {
            State::Configuring(server) => {
                server.set_traffic(name, weights);
                Ok(())
            }
            State::Running(running) => {
                let weights = Some(weights).filter(|w| !w.is_empty());
                running.service().set_traffic(&name, weights).map_err(|e| BindingError::invalid(e.to_string()).into())
            }
            _ => Err(BindingError::failed("the server is stopped").into()),
        }
    }

    fn build(&self, spec: &EndpointSpec, runtime: RuntimeSpec<'_>) -> Result<Built> {
        // Outputs a runtime knows before answering (an ONNX graph's), used
        // when the spec declares none.
        let mut known_outputs = Vec::new();
        // A Python worker pool: its size (the default batch concurrency), metrics and handle.
        let mut worker_count = None;
        let mut pool_started: Option<Arc<WorkerPool>> = None;
        let (handler, loader): (Runtime, Option<Arc<dyn Loader>>) = match runtime {
            RuntimeSpec::Js(js) => {
                let loader = match (js.load, js.release) {
                    (Some(load), Some(release)) => Some(Arc::new(JsLoader::new(&spec.path, load, release)) as _),
                    _ => None,
                };
                let handler: Arc<dyn Handler> = Arc::new(JsHandler::new(&spec.path, js.handler)?);
                (handler.into(), loader)
            }
            RuntimeSpec::JsStream(js) => {
                let loader = match (js.load, js.release) {
                    (Some(load), Some(release)) => Some(Arc::new(JsLoader::new(&spec.path, load, release)) as _),
                    _ => None,
                };
                let handler: Arc<dyn StreamHandler> = Arc::new(JsStreamHandler::new(&spec.path, js.open, js.pull)?);
                (handler.into(), loader)
            }
            RuntimeSpec::Python(py) if py.workers.as_ref().is_some_and(|w| w.count > 0) => {
                if py.stream.unwrap_or(false) {
                    return Err(BindingError::invalid(format!(
                        "endpoint '{}': a streaming Python handler runs in-process only (no workers)",
                        spec.path
                    )));
                }
                let handler = Target::parse(&py.handler)?;
                let loader = py.loader.as_deref().map(Target::parse).transpose()?;
                // Each worker keeps as many models as the endpoint's cache.
                let default_models = redesmyn::cache::CacheConfig::default().max_size as usize;
                let models = spec.cache.as_ref().map_or(1, |c| c.max_size.map_or(default_models, |n| n as usize));
                let Some(workers) = py.workers.as_ref().map(|w| w.options(models)) else {
                    unreachable!("the arm's guard checked `workers`")
                };
                let pool = WorkerPool::start(&handler, loader.as_ref(), &workers)
                    .map_err(|e| BindingError::invalid(format!("endpoint '{}': {e}", spec.path)))?;
                worker_count = Some(workers.count);
                pool_started = Some(Arc::clone(&pool));
                let handler: Arc<dyn Handler> = Arc::new(pool.handler());
                let loader = loader.map(|_| Arc::new(WorkerLoader) as Arc<dyn Loader>);
                (handler.into(), loader)
            }
            RuntimeSpec::Python(py) => {
                let target = Target::parse(&py.handler)?;
                let handler: Runtime = if py.stream.unwrap_or(false) {
                    let handler: Arc<dyn StreamHandler> = Arc::new(PyStreamHandler::new(target)?);
                    handler.into()
                } else {
                    let handler: Arc<dyn Handler> = Arc::new(PyHandler::new(target)?);
                    handler.into()
                };
                let loader = match &py.loader {
                    Some(loader) => Some(Arc::new(PyLoader::new(Target::parse(loader)?)?) as _),
                    None => None,
                };
                (handler, loader)
            }
            RuntimeSpec::Onnx(onnx) => {
                let schema = spec.schema()?;
                let context =
                    |e: redesmyn_onnx::OnnxError| BindingError::invalid(format!("endpoint '{}': {e}", spec.path));
                if spec.cache.is_some() {
                    let handler: Arc<dyn Handler> = Arc::new(OnnxHandler::cached(&schema));
                    (handler.into(), Some(Arc::new(OnnxLoader::new(onnx.options())) as _))
                } else {
                    let Some(path) = &onnx.path else {
                        return Err(BindingError::invalid(format!(
                            "endpoint '{}': an ONNX runtime needs the model's path",
                            spec.path
                        )));
                    };
                    let model = Arc::new(OnnxModel::load(Path::new(path), &onnx.options()).map_err(context)?);
                    let handler = OnnxHandler::new(model, &schema).map_err(context)?;
                    known_outputs = handler.outputs();
                    let handler: Arc<dyn Handler> = Arc::new(handler);
                    (handler.into(), None)
                }
            }
        };
        let stream = handler.is_stream();
        let declared = spec.outputs()?;
        let outputs = if declared.is_empty() { known_outputs } else { declared };
        let mut batch = spec.batch_config(stream);
        if let Some(count) = worker_count {
            // One batch per worker at once.
            if spec.batch.as_ref().is_none_or(|b| b.max_concurrent.is_none()) {
                batch.max_concurrent = count;
            }
        }
        let mut endpoint = Endpoint::new(spec.path.clone(), spec.schema()?, batch, handler)?
            .with_outputs(outputs)
            .with_inputs(spec.inputs()?);
        if let Some(name) = &spec.name {
            endpoint = endpoint.with_model_name(name);
        }
        if let Some(version) = &spec.version {
            endpoint = endpoint.with_version(version);
        }
        if let Some(predictions) = &spec.prediction_cache {
            if stream {
                return Err(BindingError::invalid(format!(
                    "endpoint '{}': a streaming endpoint cannot have a predictionCache",
                    spec.path
                )));
            }
            endpoint = endpoint.with_prediction_cache(predictions.config(&spec.path)?);
        }
        let cache = match (&spec.cache, loader) {
            (Some(cache), Some(loader)) => Some(Arc::new(cache.build(&spec.path, loader)?)),
            (Some(_), None) => {
                return Err(BindingError::invalid(format!("endpoint '{}': a cache needs a loader", spec.path)))
            }
            (None, _) => None,
        };
        if let Some(cache) = &cache {
            endpoint = endpoint.with_cache(Arc::clone(cache));
        }
        Ok(Built { endpoint, cache, pool: pool_started })
    }

    /// The path parameters of the models the endpoint at `path` holds in memory.
    #[napi]
    pub async fn cache_keys(&self, path: String) -> napi::Result<Vec<HashMap<String, String>>> {
        let cache = self.cache(&path)?;
        cache.sync().await;
        Ok(cache.keys().iter().map(|p| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).collect())
    }

    /// Counters of the endpoint's model cache.
    #[napi]
    pub async fn cache_stats(&self, path: String) -> napi::Result<CacheStatsObject> {
        let cache = self.cache(&path)?;
        cache.sync().await;
        let s = cache.stats();
        Ok(CacheStatsObject {
            hits: s.hits as f64,
            misses: s.misses as f64,
            loads: s.loads as f64,
            load_failures: s.load_failures as f64,
            evictions: s.evictions as f64,
            refreshes: s.refreshes as f64,
            refresh_failures: s.refresh_failures as f64,
            load_seconds_total: s.load_seconds_total,
            size: s.size as f64,
        })
    }

    /// Checks every cached model's artifact now and reloads what changed (all with `force`).
    #[napi]
    pub async fn cache_refresh(&self, path: String, force: Option<bool>) -> napi::Result<()> {
        self.cache(&path)?.refresh(force.unwrap_or(false)).await;
        Ok(())
    }

    /// Counters of the endpoint's prediction cache (needs a serving server).
    #[napi]
    pub fn prediction_cache_stats(&self, path: String) -> napi::Result<PredictionCacheStatsObject> {
        let s = self.prediction_cache(&path)?.stats();
        Ok(PredictionCacheStatsObject {
            hits: s.hits as f64,
            misses: s.misses as f64,
            entries: s.entries as f64,
            bytes: s.bytes as f64,
        })
    }

    /// Forgets every answer the endpoint's prediction cache holds.
    #[napi]
    pub fn prediction_cache_clear(&self, path: String) -> napi::Result<()> {
        self.prediction_cache(&path)?.clear();
        Ok(())
    }

    fn prediction_cache(&self, path: &str) -> Result<Arc<redesmyn::prediction_cache::PredictionCache>> {
        let running = match &*lock(&self.state) {
            State::Running(running) => Arc::clone(running),
            _ => return Err(BindingError::failed("the server is not serving; call serve() first")),
        };
        let model = running.model_at(path).ok_or_else(|| BindingError::invalid(format!("no endpoint at '{path}'")))?;
        model
            .prediction_cache()
            .cloned()
            .ok_or_else(|| BindingError::invalid(format!("endpoint '{path}' has no prediction cache")))
    }

    fn cache(&self, path: &str) -> Result<Arc<ModelCache>> {
        self.caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .ok_or_else(|| BindingError::invalid(format!("endpoint '{path}' has no model cache")))
    }

    /// Starts listening; resolves with the bound port.
    #[napi]
    pub async fn serve(&self) -> napi::Result<u32> {
        let server = match std::mem::replace(&mut *lock(&self.state), State::Starting) {
            State::Configuring(server) => server,
            other => {
                *lock(&self.state) = other;
                return Err(BindingError::failed("the server was already started").into());
            }
        };
        let runtime = tokio::runtime::Handle::current();
        let started = tokio::task::spawn_blocking(move || server.start(runtime))
            .await
            .map_err(|e| BindingError::failed(e.to_string()))?;
        match started {
            Ok(running) => {
                let port = running.port() as u32;
                *self.port.lock().unwrap_or_else(|p| p.into_inner()) = Some(port);
                *self.grpc_port.lock().unwrap_or_else(|p| p.into_inner()) = running.grpc_port().map(u32::from);
                *self.management_port.lock().unwrap_or_else(|p| p.into_inner()) =
                    running.management_port().map(u32::from);
                *lock(&self.state) = State::Running(Arc::new(running));
                Ok(port)
            }
            Err(e) => {
                *lock(&self.state) = State::Stopped;
                Err(BindingError::failed(e.to_string()).into())
            }
        }
    }

    /// Graceful stop: every accepted request is answered first.
    #[napi]
    pub async fn stop(&self) -> napi::Result<()> {
        let previous = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        if let State::Running(running) = previous {
            running.stop().await;
        }
        // Every accepted request is answered: the worker pools can go.
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|p| p.into_inner()));
        if !pools.is_empty() {
            tokio::task::spawn_blocking(move || pools.iter().for_each(|p| p.shutdown()))
                .await
                .map_err(|e| BindingError::failed(e.to_string()))?;
        }
        Ok(())
    }

    /// Predicts in-process through the endpoint at `path`: the same parsing,
    /// queue, batching and handler as HTTP. `records` is JSON text.
    #[napi]
    pub async fn predict(
        &self,
        path: String,
        params: HashMap<String, String>,
        records: String,
    ) -> napi::Result<PredictOutput> {
        let running = match &*lock(&self.state) {
            State::Running(running) => Arc::clone(running),
            _ => return Err(BindingError::failed("the server is not serving; call serve() first").into()),
        };
        let params = redesmyn::Params::new(params.into_iter().collect());
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok(match running.predict(&path, params, records.as_bytes()).await {
            Ok(p) => {
                let mut predictions = Vec::new();
                match &p.answer {
                    Some(a) => redesmyn::codec::predictions::write_predictions(&mut predictions, &a.predictions),
                    None => predictions.extend_from_slice(b"[]"),
                }
                let answer = p.answer.as_ref();
                PredictOutput {
                    status: 200,
                    id: p.id,
                    predictions: Some(String::from_utf8_lossy(&predictions).into_owned()),
                    error: None,
                    queue_ms: answer.map_or(0.0, |a| ms(a.queued)),
                    handler_ms: answer.map_or(0.0, |a| ms(a.handled)),
                    total_ms: ms(p.total),
                    batch_size: answer.map_or(0, |a| a.batch_rows as u32),
                }
            }
            Err(e) => PredictOutput {
                status: u32::from(redesmyn::http::error::status_of_kind(e.kind()).as_u16()),
                id: String::new(),
                predictions: None,
                error: Some(String::from_utf8_lossy(&redesmyn::http::error::json_body(&e)).into_owned()),
                queue_ms: 0.0,
                handler_ms: 0.0,
                total_ms: 0.0,
                batch_size: 0,
            },
        })
    }

    /// Schedules a job on the endpoint at `path`, as `POST <path>/jobs` would.
    #[napi]
    pub async fn schedule_job(
        &self,
        path: String,
        params: HashMap<String, String>,
        records: String,
        request_id: Option<String>,
    ) -> napi::Result<JobReply> {
        let running = self.running()?;
        let (jobs, model) = match (running.jobs(), running.model_at(&path)) {
            (Some(jobs), Some(model)) => (jobs, model),
            (None, _) => return Err(BindingError::failed("the server has no `jobs` option").into()),
            (_, None) => return Err(BindingError::failed(format!("no endpoint at '{path}'")).into()),
        };
        let given = redesmyn::Params::new(params.into_iter().collect());
        let reply = async {
            let params = model.require_params(&given)?;
            let params = model.param_names().iter().map(|n| (n.clone(), params.get(n).unwrap_or_default().to_string()));
            let submission = redesmyn::jobs::Submission {
                model: &model,
                format: redesmyn::jobs::Format::Records,
                version: None,
                params: params.collect(),
                body: records.into_bytes(),
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            };
            jobs.submit(submission).await
        };
        Ok(match reply.await {
            Ok(id) => JobReply { status: 202, body: serde_json::json!({ "id": id, "state": "queued" }).to_string() },
            Err(e) => job_error(&e),
        })
    }

    /// A job's state, result and telemetry, as `GET /jobs/{id}` answers.
    #[napi]
    pub async fn job(&self, id: String) -> napi::Result<JobReply> {
        let running = self.running()?;
        let jobs = running.jobs().ok_or_else(|| BindingError::failed("the server has no `jobs` option"))?;
        Ok(match jobs.get(&id).await {
            Ok(row) => JobReply { status: 200, body: redesmyn::jobs::view(&row).to_string() },
            Err(e) => job_error(&e),
        })
    }

    /// Cancels a queued job, as `DELETE /jobs/{id}`.
    #[napi]
    pub async fn cancel_job(&self, id: String) -> napi::Result<JobReply> {
        let running = self.running()?;
        let jobs = running.jobs().ok_or_else(|| BindingError::failed("the server has no `jobs` option"))?;
        Ok(match jobs.cancel(&id).await {
            Ok(()) => JobReply { status: 200, body: serde_json::json!({ "id": id, "state": "cancelled" }).to_string() },
            Err(e) => job_error(&e),
        })
    }

    fn running(&self) -> napi::Result<Arc<RunningServer>> {
        match &*lock(&self.state) {
            State::Running(running) => Ok(Arc::clone(running)),
            _ => Err(BindingError::failed("the server is not serving; call serve() first").into()),
        }
    }

    /// Prepares a run that scores a file through the endpoint at `path`
    /// (same checks, queue, batching and handler as HTTP).
    #[napi]
    pub fn score_run(
        &self,
        path: String,
        spec: crate::score_run::ScoreSpec,
    ) -> napi::Result<crate::score_run::NativeScoreRun> {
        let running = match &*lock(&self.state) {
            State::Running(running) => Arc::clone(running),
            _ => return Err(BindingError::failed("the server is not serving; call serve() first").into()),
        };
        Ok(crate::score_run::NativeScoreRun::new(running, path, spec))
    }

    /// Opens an in-process stream from the streaming endpoint at `path`
    /// (same parsing, queue, batching and handler as HTTP). Errors before
    /// the first chunk reject with the HTTP status in the message's JSON.
    #[napi]
    pub fn open_stream(
        &self,
        path: String,
        params: HashMap<String, String>,
        records: String,
    ) -> napi::Result<crate::stream_handle::NativeStream> {
        let running = match &*lock(&self.state) {
            State::Running(running) => Arc::clone(running),
            _ => return Err(BindingError::failed("the server is not serving; call serve() first").into()),
        };
        let params = redesmyn::Params::new(params.into_iter().collect());
        match running.stream(&path, params, records.as_bytes()) {
            Ok(stream) => Ok(crate::stream_handle::NativeStream::new(stream)),
            Err(e) => {
                let status = redesmyn::http::error::status_of_kind(e.kind()).as_u16();
                let body = String::from_utf8_lossy(&redesmyn::http::error::json_body(&e)).into_owned();
                Err(napi::Error::new(napi::Status::GenericFailure, format!("{status} {body}")))
            }
        }
    }

    /// The bound port once serving.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        *self.port.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bound management port once serving, when the management API has its own.
    #[napi(getter)]
    pub fn management_port(&self) -> Option<u32> {
        *self.management_port.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bound gRPC port once serving, when gRPC is on.
    #[napi(getter)]
    pub fn grpc_port(&self) -> Option<u32> {
        *self.grpc_port.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn job_error(err: &redesmyn::jobs::JobError) -> JobReply {
    let (status, body) = redesmyn::http::jobs::status_of(err);
    JobReply { status: u32::from(status.as_u16()), body: String::from_utf8_lossy(&body).into_owned() }
}
