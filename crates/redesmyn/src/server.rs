//! Lifecycle: collect endpoints, start the front door and background tasks,
//! report readiness, and stop in order. Requests are the service's concern
//! (`service.rs`), their HTTP form the front door's (`http/`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use tokio::runtime::Handle;

use crate::cache::ModelCache;
pub use crate::config::ServerConfig;
use crate::emf::Emf;
use crate::error::RequestError;
use crate::grpc::backend::ServiceBackend;
use crate::handler::Params;
use crate::http::{self, HttpState, Route};
use crate::jobs::Jobs;
use crate::management::{Deployer, Management};
use crate::metrics::Metrics;
use crate::model::{Endpoint, ModelKey, ModelRegistry};
use crate::service::InferenceService;
pub use crate::service::Prediction;
use crate::stream::ChunkStream;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("an endpoint is already registered at '{0}'")]
    DuplicatePath(String),
    #[error(transparent)]
    Registry(#[from] crate::model::RegistryError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the HTTP server thread failed to start: {0}")]
    Start(String),
    #[error(transparent)]
    Jobs(#[from] crate::jobs::store::StoreError),
    #[error("model '{0}': {1}")]
    Routing(String, String),
    #[error("could not listen for gRPC on {addr}: {source}")]
    GrpcBind { addr: String, source: std::io::Error },
}

/// Models and their endpoint paths, collected before the server starts.
pub struct Server {
    config: ServerConfig,
    registry: ModelRegistry,
    paths: Vec<(String, ModelKey)>,
    deployer: Option<Arc<dyn Deployer>>,
    traffic: Vec<(String, BTreeMap<String, f64>)>,
    defaults: Vec<(String, String)>,
    /// Runtimes' worker pools by endpoint path, for `/metrics`.
    pools: Vec<(String, Arc<dyn crate::metrics::PoolStats>)>,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Server {
            config,
            registry: ModelRegistry::new(),
            paths: Vec::new(),
            deployer: None,
            traffic: Vec::new(),
            defaults: Vec::new(),
            pools: Vec::new(),
        }
    }

    /// What builds models for the management API (`POST /models`).
    pub fn set_deployer(&mut self, deployer: Arc<dyn Deployer>) {
        self.deployer = Some(deployer);
    }

    /// The folder management calls may name files in, when the options
    /// gave none (the model repository being served).
    pub fn set_management_root(&mut self, root: std::path::PathBuf) {
        if let Some(m) = &mut self.config.management {
            m.root.get_or_insert(root);
        }
    }

    /// The version unversioned requests for `name` reach (without traffic
    /// weights), checked at start.
    pub fn set_default(&mut self, name: impl Into<String>, version: impl Into<String>) {
        self.defaults.push((name.into(), version.into()));
    }

    /// Traffic weights between the versions of `name`, checked at start.
    pub fn set_traffic(&mut self, name: impl Into<String>, weights: BTreeMap<String, f64>) {
        self.traffic.push((name.into(), weights));
    }

    /// Registers the endpoint's model (named after its path, made unique)
    /// and binds the path to it.
    pub fn register(&mut self, mut endpoint: Endpoint) -> Result<(), ServerError> {
        let normalized = |p: &str| p.trim_end_matches('/').to_string();
        if self.paths.iter().any(|(p, _)| normalized(p) == normalized(&endpoint.path)) {
            return Err(ServerError::DuplicatePath(endpoint.path));
        }
        if !endpoint.named {
            endpoint.model.name = self.registry.free_name(&endpoint.model.name);
        }
        let key = self.registry.insert(endpoint.model)?;
        self.paths.push((endpoint.path, key));
        Ok(())
    }

    /// Reports a runtime's worker pool in `/metrics`, under the endpoint's path.
    pub fn add_pool_stats(&mut self, path: impl Into<String>, stats: Arc<dyn crate::metrics::PoolStats>) {
        self.pools.push((path.into(), stats));
    }

    /// Binds and starts serving. Batchers run on `runtime`; HTTP runs on
    /// actix's own worker threads, with signal handling left to the host.
    pub fn start(self, runtime: Handle) -> Result<RunningServer, ServerError> {
        let Server { config, registry, paths, deployer, traffic, defaults, pools } = self;
        let path_of = |key: &ModelKey| paths.iter().find(|(_, k)| k == key).map(|(p, _)| p.clone());
        let label = |key: &ModelKey| path_of(key).unwrap_or_else(|| key.name.clone());
        let emf = config.emf.clone().filter(|_| config.metrics).map(|c| Arc::new(Emf::new(c)));
        let metrics = config.metrics.then(|| {
            let caches = registry.iter().filter_map(|m| Some((label(&m.key()), m.cache.clone()?))).collect();
            Arc::new(Metrics::new(caches, emf.clone()).with_pools(pools))
        });
        let service = Arc::new(InferenceService::start(registry, label, metrics.clone(), &runtime));
        for (name, version) in defaults {
            service
                .set_default(&name, Some(&version))
                .map_err(|e| ServerError::Routing(name.clone(), e.to_string()))?;
        }
        for (name, weights) in traffic {
            service.set_traffic(&name, Some(weights)).map_err(|e| ServerError::Routing(name.clone(), e.to_string()))?;
        }
        let routes: Vec<Route> =
            paths.iter().map(|(path, key)| Route { path: path.clone(), key: key.clone() }).collect();
        let management = config
            .management
            .clone()
            .map(|m| Arc::new(Management::new(m, Arc::clone(&service), deployer, config.shutdown_timeout)));
        let own_port =
            management.as_ref().is_some_and(|_| config.management.as_ref().is_some_and(|m| m.port.is_some()));
        let ready = Arc::new(AtomicBool::new(false));
        let jobs = match config.jobs.clone() {
            Some(jobs) => Some(Jobs::start(jobs, Arc::clone(&service), &runtime)?),
            None => None,
        };
        // Bound before anything serves, so a taken port fails the start.
        let grpc_listener = match config.grpc_port {
            Some(port) => {
                let addr = format!("{}:{port}", config.host);
                let bind = || -> std::io::Result<std::net::TcpListener> {
                    let listener = std::net::TcpListener::bind(&addr)?;
                    listener.set_nonblocking(true)?;
                    Ok(listener)
                };
                Some(bind().map_err(|source| ServerError::GrpcBind { addr: addr.clone(), source })?)
            }
            None => None,
        };
        let state = Arc::new(HttpState {
            routes,
            metrics,
            body_limit: config.body_limit,
            ready: Arc::clone(&ready),
            service: Arc::clone(&service),
            jobs: jobs.clone(),
            routing_header: config.routing_header.clone(),
            management: management.clone().filter(|_| !own_port),
            repository_extension: management.is_some(),
        });
        let workers = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let (addrs, handle, thread) = http::serve(&config, workers, Arc::clone(&state))?;
        let port = addrs.first().map_or(0, SocketAddr::port);
        tracing::info!(port, workers, "listening");
        let management_http = match (&management, config.management.as_ref().and_then(|m| m.port.map(|p| (m, p)))) {
            (Some(m), Some((options, p))) => {
                let host = options.host.clone().unwrap_or_else(|| config.host.clone());
                let (m, limit, header) = (Arc::clone(m), config.body_limit, config.routing_header.clone());
                let configure = move |cfg: &mut actix_web::web::ServiceConfig| {
                    http::management::configure(cfg, &m, limit, &header);
                    cfg.default_service(actix_web::web::to(http::not_found));
                };
                let timeout = config.shutdown_timeout.as_secs();
                let started = http::serve_app(format!("{host}:{p}"), 1, timeout, "redesmyn-management", configure);
                let (addrs, handle, thread) = match started {
                    Ok(s) => s,
                    Err(e) => {
                        drop(handle.stop(false));
                        return Err(e);
                    }
                };
                let port = addrs.first().map_or(0, SocketAddr::port);
                tracing::info!(port, "management API listening");
                Some(ManagementHttp { port, handle, thread: Mutex::new(Some(thread)) })
            }
            _ => None,
        };
        let grpc = match grpc_listener {
            Some(listener) => {
                let grpc_port = listener.local_addr().map_or(0, |a| a.port());
                let backend = Arc::new(
                    ServiceBackend::new(Arc::clone(&service), Arc::clone(&ready))
                        .with_routing_header(config.routing_header.as_str()),
                );
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let task = runtime.spawn(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return tracing::error!(error = %e, "gRPC listener failed"),
                    };
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    if let Err(e) = crate::grpc::server::serve(backend, listener, shutdown).await {
                        tracing::error!(error = %e, "gRPC server failed");
                    }
                });
                tracing::info!(port = grpc_port, "gRPC listening");
                Some(Grpc { port: grpc_port, stop: Mutex::new(Some(stop)), task: Mutex::new(Some(task)) })
            }
            None => None,
        };
        // Background refreshes and EMF flushes; ready once every prefetch is done.
        let caches: Vec<Arc<ModelCache>> = service.caches().collect();
        let mut background: Vec<tokio::task::JoinHandle<()>> =
            caches.iter().map(|c| runtime.spawn(Arc::clone(c).run_refresh())).collect();
        if let Some(emf) = &emf {
            background.push(runtime.spawn(Arc::clone(emf).run()));
        }
        let prefetches: Vec<Arc<ModelCache>> = caches.into_iter().filter(|c| c.config().prefetch).collect();
        if prefetches.is_empty() {
            ready.store(true, Ordering::Release);
        } else {
            let became_ready = Arc::clone(&ready);
            runtime.spawn(async move {
                for cache in prefetches {
                    match cache.prefetch().await {
                        Ok(n) => tracing::info!(models = n, "prefetch done"),
                        Err(e) => tracing::warn!(error = %e, "prefetch failed"),
                    }
                }
                became_ready.store(true, Ordering::Release);
            });
        }
        Ok(RunningServer {
            port,
            handle,
            thread: Mutex::new(Some(thread)),
            state,
            service,
            ready,
            background,
            emf,
            grpc,
            jobs,
            management,
            management_http,
            shutdown_timeout: config.shutdown_timeout,
        })
    }
}

/// A server that is listening.
pub struct RunningServer {
    port: u16,
    handle: ServerHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
    state: Arc<HttpState>,
    service: Arc<InferenceService>,
    ready: Arc<AtomicBool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    emf: Option<Arc<Emf>>,
    grpc: Option<Grpc>,
    jobs: Option<Arc<Jobs>>,
    management: Option<Arc<Management>>,
    management_http: Option<ManagementHttp>,
    shutdown_timeout: std::time::Duration,
}

/// The management API on its own port.
struct ManagementHttp {
    port: u16,
    handle: ServerHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The gRPC front door: its port, the signal that stops it, its task.
struct Grpc {
    port: u16,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Grpc {
    /// Stops accepting, lets requests in flight finish (within `timeout`).
    async fn stop(&self, timeout: std::time::Duration) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!("gRPC connections still open after the stop timeout; closing them");
                abort.abort();
            }
        }
    }
}

impl RunningServer {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound gRPC port, when gRPC is on.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc.as_ref().map(|g| g.port)
    }

    /// The service every front door calls: models by name and version.
    pub fn service(&self) -> &Arc<InferenceService> {
        &self.service
    }

    /// The bound management port, when the management API has its own.
    pub fn management_port(&self) -> Option<u16> {
        self.management_http.as_ref().map(|m| m.port)
    }

    /// The management lifecycle, when the server has a `management` option.
    pub fn management(&self) -> Option<&Arc<Management>> {
        self.management.as_ref()
    }

    /// Adds a model while serving (see [`InferenceService::add`]); it is
    /// reached by name (V2, `POST /predictions/{name}[/versions/{v}]`).
    pub async fn add_model(&self, model: crate::model::Model) -> Result<(), crate::service::ChangeError> {
        let label = match &model.version {
            Some(v) => format!("/predictions/{}/versions/{v}", model.name),
            None => format!("/predictions/{}", model.name),
        };
        self.service.add(model, label).await.map(|_| ())
    }

    /// The job queue, when the server has a `jobs` option.
    pub fn jobs(&self) -> Option<&Arc<Jobs>> {
        self.jobs.as_ref()
    }

    /// The model served at endpoint `path` now (`None` once removed).
    pub fn model_at(&self, path: &str) -> Option<Arc<crate::service::ServedModel>> {
        let route = self.state.routes.iter().find(|r| r.path == path)?;
        self.service.resolve(&route.key.name, route.key.version.as_deref()).ok()
    }

    /// The model at `path`, or a not-found error naming `method`.
    fn model_for(&self, method: &str, path: &str) -> Result<Arc<crate::service::ServedModel>, RequestError> {
        self.model_at(path).ok_or_else(|| RequestError::NotFound { method: method.into(), path: path.into() })
    }

    /// Predicts in-process through the model of the endpoint at `path`,
    /// with the same decoding, queue, batching and handler as HTTP requests.
    /// `body` is JSON records, as in a request.
    pub async fn predict(&self, path: &str, params: Params, body: &[u8]) -> Result<Prediction, RequestError> {
        self.model_for("predict", path)?.predict_records(&params, body).await
    }

    /// Scores a file through the model of the endpoint at `path`, with the
    /// same checks, queue, batching and handler as HTTP requests
    /// (see [`crate::score`]).
    pub async fn score(
        &self,
        path: &str,
        options: crate::score::ScoreOptions,
        progress: impl FnMut(&crate::score::Progress) + Send,
    ) -> Result<crate::score::Summary, crate::score::ScoreError> {
        let model = self.model_for("score", path)?;
        crate::score::score(&model, options, progress).await
    }

    /// Streams in-process from the streaming model of the endpoint at
    /// `path`, as [`Self::predict`]; `None` for an empty array of records.
    pub fn stream(&self, path: &str, params: Params, body: &[u8]) -> Result<Option<ChunkStream>, RequestError> {
        self.model_for("stream", path)?.stream_records(&params, body)
    }

    /// Graceful stop, in order: not ready; open streams end with an error
    /// event; background tasks end; no new
    /// connections and every accepted request answered (HTTP and gRPC
    /// together); batchers drain;
    /// the HTTP thread is joined; EMF flushed.
    pub async fn stop(&self) {
        self.ready.store(false, Ordering::Release);
        self.service.end_streams();
        for task in &self.background {
            task.abort();
        }
        let grpc = async {
            if let Some(grpc) = &self.grpc {
                grpc.stop(self.shutdown_timeout).await;
            }
        };
        let management = async {
            if let Some(m) = &self.management_http {
                m.handle.stop(true).await;
                let thread = m.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(thread) = thread {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
        };
        tokio::join!(self.handle.stop(true), grpc, management);
        if let Some(jobs) = &self.jobs {
            jobs.stop(self.shutdown_timeout).await;
        }
        self.service.shutdown().await;
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(emf) = &self.emf {
            emf.flush();
        }
    }
}
