//! `NativeServer`: one server's lifecycle (configure, register, serve,
//! stop) and its ports. What a serving server does is behind its handles:
//! `models()` (added, removed, traffic), `caches()`, `jobs()` and
//! `client()` (in-process predictions, streams, scoring).

use std::sync::Arc;

use napi_derive::napi;
use redesmyn::Server;

use crate::build::build;
use crate::caches::NativeCaches;
use crate::client::NativeClient;
use crate::error::BindingError;
use crate::jobs::NativeJobs;
use crate::js_deployer::{DeployFn, JsDeployer};
use crate::models::NativeModels;
use crate::options::{EndpointSpec, RuntimeSpec, ServerSpec};
use crate::shared::{lock, Shared, State};

#[napi]
pub struct NativeServer {
    shared: Arc<Shared>,
}

#[napi]
impl NativeServer {
    #[napi(constructor)]
    pub fn new(spec: ServerSpec) -> napi::Result<Self> {
        if let Some(log) = &spec.log {
            redesmyn::logging::init(log.level.as_deref(), log.format.as_deref() != Some("text"))
                .map_err(BindingError::failed)?;
        } else {
            // REDESMYN_LOG alone also turns logs on.
            let _ = redesmyn::logging::init(None, true);
        }
        if let Some(python) = &spec.python {
            redesmyn_python::configure(python.to_config()).map_err(|e| BindingError::failed(e.to_string()))?;
        }
        Ok(NativeServer { shared: Shared::new(Server::new(spec.to_config()?)) })
    }

    /// Adds an endpoint: its spec, and the runtime that predicts for it.
    /// A Python runtime starts the interpreter and imports its functions
    /// now, so a wrong reference fails here rather than at the first request;
    /// an ONNX runtime loads its model now and checks the schema fits it.
    #[napi(
        ts_args_type = "spec: EndpointSpec, runtime: JsRuntimeSpec | JsStreamRuntimeSpec | PythonRuntimeSpec | OnnxRuntimeSpec | PipelineRuntimeSpec"
    )]
    pub fn register(&self, spec: EndpointSpec, runtime: RuntimeSpec<'_>) -> napi::Result<()> {
        let cache = self.shared.configure("endpoints must be registered", |server| -> napi::Result<_> {
            let built = build(&spec, runtime, server.registry())?;
            let cache = built.cache.clone();
            server.register_built(built).map_err(BindingError::from)?;
            Ok(cache)
        })??;
        if let Some(cache) = cache {
            lock(&self.shared.caches).insert(spec.path.clone(), cache);
        }
        Ok(())
    }

    /// The management API's deployer: `deploy(specJson)` builds and adds a
    /// model, `changed(changeJson)` persists a change. Before `serve()`.
    #[napi(
        ts_args_type = "deploy: (spec: string) => Promise<DeployOutput>, changed: (change: string) => Promise<DeployOutput>"
    )]
    pub fn set_deployer(&self, deploy: DeployFn, changed: DeployFn) -> napi::Result<()> {
        let deployer = Arc::new(JsDeployer::new(deploy, changed));
        Ok(self.shared.configure("the deployer must be set", |server| server.set_deployer(deployer))?)
    }

    /// The folder management calls may name files in, unless the options set
    /// one (the repository being served). Before `serve()`.
    #[napi]
    pub fn set_management_root(&self, root: String) -> napi::Result<()> {
        Ok(self
            .shared
            .configure("the management root must be set", |server| server.set_management_root(root.into()))?)
    }

    /// Starts listening; resolves with the bound port.
    #[napi]
    pub async fn serve(&self) -> napi::Result<u32> {
        let server = match std::mem::replace(&mut *lock(&self.shared.state), State::Starting) {
            State::Configuring(server) => server,
            other => {
                *lock(&self.shared.state) = other;
                return Err(BindingError::failed("the server was already started").into());
            }
        };
        let runtime = tokio::runtime::Handle::current();
        let started = tokio::task::spawn_blocking(move || server.start(runtime))
            .await
            .map_err(|e| BindingError::failed(e.to_string()))?;
        match started {
            Ok(running) => {
                let port = u32::from(running.port());
                *lock(&self.shared.state) = State::Running(Arc::new(running));
                Ok(port)
            }
            Err(e) => {
                *lock(&self.shared.state) = State::Stopped;
                Err(BindingError::failed(e.to_string()).into())
            }
        }
    }

    /// Reports not ready at once while answering every request, the start
    /// of a drain before `stop()` (a no-op when not serving).
    #[napi]
    pub fn drain(&self) {
        if let Ok(running) = self.shared.running() {
            running.drain();
        }
    }

    /// Graceful stop: every accepted request is answered first, then the
    /// runtimes' worker pools stop.
    #[napi]
    pub async fn stop(&self) -> napi::Result<()> {
        let previous = std::mem::replace(&mut *lock(&self.shared.state), State::Stopped);
        if let State::Running(running) = previous {
            running.stop().await;
        }
        Ok(())
    }

    /// The bound port once serving.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.shared.running().ok().map(|r| u32::from(r.port()))
    }

    /// The bound management port once serving, when the management API has its own.
    #[napi(getter)]
    pub fn management_port(&self) -> Option<u32> {
        self.shared.running().ok().and_then(|r| r.management_port()).map(u32::from)
    }

    /// The bound gRPC port once serving, when gRPC is on.
    #[napi(getter)]
    pub fn grpc_port(&self) -> Option<u32> {
        self.shared.running().ok().and_then(|r| r.grpc_port()).map(u32::from)
    }

    /// The models while serving: added, removed, default versions, traffic.
    #[napi]
    pub fn models(&self) -> NativeModels {
        NativeModels::new(Arc::clone(&self.shared))
    }

    /// The endpoints' artifact and prediction caches.
    #[napi]
    pub fn caches(&self) -> NativeCaches {
        NativeCaches::new(Arc::clone(&self.shared))
    }

    /// The asynchronous jobs (with the `jobs` option).
    #[napi]
    pub fn jobs(&self) -> NativeJobs {
        NativeJobs::new(Arc::clone(&self.shared))
    }

    /// In-process predictions, streams and file scoring.
    #[napi]
    pub fn client(&self) -> NativeClient {
        NativeClient::new(Arc::clone(&self.shared))
    }
}
