//! Lifecycle: collect endpoints, start the doors (HTTP, gRPC, management)
//! and background tasks, report readiness, and stop in order. Requests are
//! the service's concern (`service.rs`), their wire forms the doors'
//! (`http/`, `grpc/`); the in-process door is `server/client.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;

pub use crate::config::ServerConfig;
use crate::emf::Emf;
use crate::grpc::door::{self as grpc, GrpcDoor};
use crate::http::{self, HttpState, Listening, Route};
use crate::jobs::Jobs;
use crate::management::Management;
use crate::metrics::Metrics;
use crate::model::{ModelKey, RuntimeResources};
use crate::service::InferenceService;
pub use crate::service::Prediction;
use crate::telemetry::Telemetry;

mod background;
mod builder;
mod client;
mod running;

pub use builder::Server;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("an endpoint is already registered at '{0}'")]
    DuplicatePath(String),
    #[error(transparent)]
    Registry(#[from] crate::model::RegistryError),
    #[error(transparent)]
    Http(#[from] http::ServeError),
    #[error(transparent)]
    Jobs(#[from] crate::jobs::store::StoreError),
    #[error("model '{0}': {1}")]
    Routing(String, String),
    #[error(transparent)]
    GrpcBind(#[from] grpc::BindError),
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

impl Server {
    /// Binds and starts serving. Batchers run on `runtime`; HTTP runs on
    /// actix's own worker threads, with signal handling left to the host.
    pub fn start(self, runtime: Handle) -> Result<RunningServer, ServerError> {
        let Server { config, registry, paths, deployer, traffic, defaults, pools, resources } = self;
        let path_of = |key: &ModelKey| paths.iter().find(|(_, k)| k == key).map(|(p, _)| p.clone());
        let label = |key: &ModelKey| path_of(key).unwrap_or_else(|| key.name.clone());
        let emf = config.emf.clone().filter(|_| config.metrics).map(|c| Arc::new(Emf::new(c)));
        // Checked first: a bad setting fails the start before anything binds.
        let telemetry = Telemetry::start(&config.telemetry, &runtime)?;
        let metrics = config.metrics.then(|| {
            let caches = registry.iter().filter_map(|m| Some((label(&m.key()), m.cache.clone()?))).collect();
            let metrics = Metrics::new(caches, emf.clone()).with_pools(pools);
            Arc::new(match &telemetry {
                Some(t) => metrics.with_spans(t.counts()),
                None => metrics,
            })
        });
        if let Some(telemetry) = &telemetry {
            telemetry.install();
        }
        let service = Arc::new(InferenceService::start(registry, label, metrics.clone(), &runtime));
        for (name, version) in defaults {
            service
                .set_default(&name, Some(&version))
                .map_err(|e| ServerError::Routing(name.clone(), e.to_string()))?;
        }
        for (name, weights) in traffic {
            service.set_traffic(&name, Some(weights)).map_err(|e| ServerError::Routing(name.clone(), e.to_string()))?;
        }
        let routes = paths.into_iter().map(|(path, key)| Route { path, key }).collect();
        let management = config
            .management
            .clone()
            .map(|m| Arc::new(Management::new(m, Arc::clone(&service), deployer, config.shutdown_timeout)));
        let own_port = config.management.as_ref().and_then(|m| Some((m.host.clone(), m.port?)));
        let ready = Arc::new(AtomicBool::new(false));
        let jobs = config.jobs.clone().map(|jobs| Jobs::start(jobs, Arc::clone(&service), &runtime)).transpose()?;
        // Bound before anything serves, so a taken port fails the start.
        let grpc_listener = config.grpc_port.map(|port| grpc::bind(&config.host, port)).transpose()?;
        let state = Arc::new(HttpState {
            routes,
            metrics,
            body_limit: config.body_limit,
            ready: Arc::clone(&ready),
            service: Arc::clone(&service),
            jobs: jobs.clone(),
            routing_header: config.routing_header.clone(),
            management: management.clone().filter(|_| own_port.is_none()),
            repository_extension: management.is_some(),
        });
        let workers = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let http = http::serve(&config, workers, Arc::clone(&state))?;
        tracing::info!(port = http.port, workers, "listening");
        let management_http = match (&management, own_port) {
            (Some(m), Some((host, port))) => {
                let addr = format!("{}:{port}", host.unwrap_or_else(|| config.host.clone()));
                let timeout = config.shutdown_timeout.as_secs();
                match http::management::serve_own_port(m, addr, config.body_limit, &config.routing_header, timeout) {
                    Ok(listening) => Some(listening),
                    Err(e) => {
                        http.abort();
                        return Err(e.into());
                    }
                }
            }
            _ => None,
        };
        let grpc = grpc_listener.map(|listener| {
            let header = config.routing_header.as_str();
            GrpcDoor::start(listener, Arc::clone(&service), Arc::clone(&ready), header, &runtime)
        });
        let background = background::start(&service, emf.as_ref(), &ready, &runtime);
        Ok(RunningServer {
            http,
            state,
            service,
            ready,
            background,
            emf,
            grpc,
            jobs,
            management,
            management_http,
            resources: Mutex::new(resources),
            shutdown_timeout: config.shutdown_timeout,
            telemetry,
        })
    }
}

/// A server that is listening.
pub struct RunningServer {
    http: Listening,
    state: Arc<HttpState>,
    service: Arc<InferenceService>,
    ready: Arc<AtomicBool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    emf: Option<Arc<Emf>>,
    grpc: Option<GrpcDoor>,
    jobs: Option<Arc<Jobs>>,
    management: Option<Arc<Management>>,
    /// The management API on its own port.
    management_http: Option<Listening>,
    /// What runtimes keep running, shut down once every request is answered.
    resources: Mutex<Vec<Arc<dyn RuntimeResources>>>,
    shutdown_timeout: std::time::Duration,
    /// The tracer this server started, stopped (and its spans exported) last.
    telemetry: Option<Arc<Telemetry>>,
}

impl RunningServer {
    /// Reports not ready at once (`/health/ready`, the V2 readiness routes,
    /// gRPC `ServerReady`) while every request is still answered: the start
    /// of a rollout's drain, so load balancers stop sending new requests
    /// before [`Self::stop`].
    pub fn drain(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// Graceful stop, in order: not ready; open streams get half the stop
    /// timeout to finish, then what is left ends with an error event (the
    /// other half lets those events reach their clients); background tasks
    /// end; no new connections and every accepted request answered (HTTP,
    /// gRPC and management together); jobs stop; batchers drain; the HTTP
    /// thread is joined; EMF flushed.
    pub async fn stop(&self) {
        self.ready.store(false, Ordering::Release);
        let _ = tokio::time::timeout(self.shutdown_timeout / 2, self.service.streams_closed()).await;
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
                m.stop().await;
            }
        };
        tokio::join!(self.http.stop_accepting(), grpc, management);
        if let Some(jobs) = &self.jobs {
            jobs.stop(self.shutdown_timeout).await;
        }
        self.service.shutdown().await;
        let resources = std::mem::take(&mut *self.resources.lock().unwrap_or_else(|p| p.into_inner()));
        if !resources.is_empty() {
            let _ = tokio::task::spawn_blocking(move || resources.iter().for_each(|r| r.shutdown())).await;
        }
        self.http.join().await;
        if let Some(emf) = &self.emf {
            emf.flush();
        }
        if let Some(telemetry) = &self.telemetry {
            telemetry.stop().await;
        }
    }

    /// Exports the spans ended so far (a no-op while tracing is off).
    pub async fn flush_traces(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.flush().await;
        }
    }
}
