//! `NativeServer`: the core server, configured and driven from JavaScript.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use redesmyn::{Endpoint, Handler, RunningServer, Server};
use redesmyn_python::{PyHandler, Target};

use crate::from_js::NativeOutput;
use crate::js_handler::JsHandler;
use crate::options::{EndpointSpec, ServerOptions};
use crate::to_js::RawValue;

enum State {
    Configuring(Server),
    Starting,
    Running(RunningServer),
    Stopped,
}

#[napi]
pub struct NativeServer {
    state: Arc<Mutex<State>>,
    port: Arc<Mutex<Option<u32>>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn failure(message: impl Into<String>) -> Error {
    Error::new(Status::GenericFailure, message.into())
}

#[napi]
impl NativeServer {
    #[napi(constructor)]
    pub fn new(options: ServerOptions) -> Result<Self> {
        if let Some(python) = &options.python {
            redesmyn_python::configure(python.to_config()).map_err(|e| failure(e.to_string()))?;
        }
        let server = Server::new(options.to_config()?);
        Ok(NativeServer { state: Arc::new(Mutex::new(State::Configuring(server))), port: Arc::new(Mutex::new(None)) })
    }

    /// Adds an endpoint whose handler is a JavaScript function
    /// `(batch) => Promise<NativeOutput>`.
    #[napi(ts_args_type = "spec: EndpointSpec, handler: (batch: object) => Promise<object>")]
    pub fn register(&self, spec: EndpointSpec, handler: Function<'_, RawValue, Promise<NativeOutput>>) -> Result<()> {
        self.add(&spec, Arc::new(JsHandler::new(handler)?))
    }

    /// Adds an endpoint whose handler is a Python function `'module:function'`.
    /// Starts the interpreter and imports the function now, so a wrong
    /// reference fails here rather than at the first request.
    #[napi]
    pub fn register_python(&self, spec: EndpointSpec, target: String) -> Result<()> {
        let target = Target::parse(&target).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
        let handler = PyHandler::new(target).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
        self.add(&spec, Arc::new(handler))
    }

    fn add(&self, spec: &EndpointSpec, handler: Arc<dyn Handler>) -> Result<()> {
        let endpoint = Endpoint::new(spec.path.clone(), spec.schema()?, spec.batch_config(), handler)
            .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
        match &mut *lock(&self.state) {
            State::Configuring(server) => {
                server.register(endpoint).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))
            }
            _ => Err(failure("endpoints must be registered before serve()")),
        }
    }

    /// Starts listening; resolves with the bound port.
    #[napi]
    pub async fn serve(&self) -> Result<u32> {
        let server = match std::mem::replace(&mut *lock(&self.state), State::Starting) {
            State::Configuring(server) => server,
            other => {
                *lock(&self.state) = other;
                return Err(failure("the server was already started"));
            }
        };
        let runtime = tokio::runtime::Handle::current();
        let started = tokio::task::spawn_blocking(move || server.start(runtime))
            .await
            .map_err(|e| failure(e.to_string()))?;
        match started {
            Ok(running) => {
                let port = running.port() as u32;
                *self.port.lock().unwrap_or_else(|p| p.into_inner()) = Some(port);
                *lock(&self.state) = State::Running(running);
                Ok(port)
            }
            Err(e) => {
                *lock(&self.state) = State::Stopped;
                Err(failure(e.to_string()))
            }
        }
    }

    /// Graceful stop: every accepted request is answered first.
    #[napi]
    pub async fn stop(&self) -> Result<()> {
        let previous = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        if let State::Running(running) = previous {
            running.stop().await;
        }
        Ok(())
    }

    /// The bound port once serving.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        *self.port.lock().unwrap_or_else(|p| p.into_inner())
    }
}
