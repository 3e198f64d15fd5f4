//! What the handles of one server share: its lifecycle state (configuring,
//! running, stopped), the artifact caches by endpoint path, and models
//! prepared to be added while serving.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};

use redesmyn::cache::ModelCache;
use redesmyn::model::{Built, ModelRegistry};
use redesmyn::pipeline::StepModels;
use redesmyn::{RunningServer, Server};

use crate::error::{BindingError, Result};

pub enum State {
    /// Boxed: a server being configured is much larger than the other states.
    Configuring(Box<Server>),
    Starting,
    Running(Arc<RunningServer>),
    Stopped,
}

pub struct Shared {
    pub state: Mutex<State>,
    pub caches: Mutex<HashMap<String, Arc<ModelCache>>>,
    /// Models built for `NativeModels::add_prepared`, by ticket.
    pub prepared: Mutex<HashMap<u32, Built>>,
    pub next_ticket: AtomicU32,
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(server: Server) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(State::Configuring(Box::new(server))),
            caches: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            next_ticket: AtomicU32::new(1),
        })
    }

    /// The running server, or an error saying to call `serve()` first.
    pub fn running(&self) -> Result<Arc<RunningServer>> {
        match &*lock(&self.state) {
            State::Running(running) => Ok(Arc::clone(running)),
            _ => Err(BindingError::failed("the server is not serving; call serve() first")),
        }
    }

    /// Changes the server before `serve()`; `what` names the change in the error after.
    pub fn configure<T>(&self, what: &str, change: impl FnOnce(&mut Server) -> T) -> Result<T> {
        match &mut *lock(&self.state) {
            State::Configuring(server) => Ok(change(server)),
            _ => Err(BindingError::failed(format!("{what} before serve()"))),
        }
    }

    /// Calls `f` with the server's models as a pipeline's steps find them:
    /// those registered so far, or those serving.
    pub fn with_models<T>(&self, f: impl FnOnce(&dyn StepModels) -> T) -> T {
        let running = match &*lock(&self.state) {
            State::Configuring(server) => return f(server.registry()),
            State::Running(running) => Some(Arc::clone(running)),
            _ => None,
        };
        match running {
            Some(running) => f(running.service().as_ref()),
            None => f(&ModelRegistry::new()),
        }
    }

    /// The artifact cache of the endpoint at `path`.
    pub fn cache(&self, path: &str) -> Result<Arc<ModelCache>> {
        lock(&self.caches)
            .get(path)
            .cloned()
            .ok_or_else(|| BindingError::invalid(format!("endpoint '{path}' has no model cache")))
    }
}
