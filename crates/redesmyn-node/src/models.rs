//! `NativeModels`: the models of a server while it serves: models added
//! (built first, then added once loaded), removed, given default versions
//! and traffic weights.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use napi_derive::napi;

use crate::error::BindingError;
use crate::options::{EndpointSpec, RuntimeSpec};
use crate::shared::{lock, Shared, State};

#[napi]
pub struct NativeModels {
    shared: Arc<Shared>,
}

impl NativeModels {
    pub fn new(shared: Arc<Shared>) -> Self {
        NativeModels { shared }
    }
}

#[napi]
impl NativeModels {
    /// Builds a model to add while serving (the management API's deployer
    /// calls this, then [`Self::add_prepared`]): its runtime starts now, as
    /// at registration. Returns a ticket for `addPrepared`.
    #[napi(
        ts_args_type = "spec: EndpointSpec, runtime: JsRuntimeSpec | JsStreamRuntimeSpec | PythonRuntimeSpec | OnnxRuntimeSpec | PipelineRuntimeSpec"
    )]
    pub fn prepare(&self, spec: EndpointSpec, runtime: RuntimeSpec<'_>) -> napi::Result<u32> {
        if spec.version.is_none() && spec.name.is_none() {
            return Err(BindingError::invalid("a model added while serving needs a name").into());
        }
        let built = self.shared.with_models(|models| crate::build::build(&spec, runtime, models))?;
        let ticket = self.shared.next_ticket.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.prepared).insert(ticket, built);
        Ok(ticket)
    }

    /// Adds a prepared model to the running server; resolves once it serves
    /// (its artifact loaded), or rejects with the load error.
    #[napi]
    pub async fn add_prepared(&self, ticket: u32) -> napi::Result<()> {
        let built = lock(&self.shared.prepared).remove(&ticket);
        let built = built.ok_or_else(|| BindingError::invalid(format!("no prepared model {ticket}")))?;
        let running = self.shared.running()?;
        running.add_model(built).await.map_err(|e| BindingError::failed(e.to_string()))?;
        Ok(())
    }

    /// The version unversioned requests for model `name` reach when no
    /// traffic weights are set (`null`: the highest). Checked at `serve()`
    /// when set before, at once after.
    #[napi]
    pub fn set_default(&self, name: String, version: Option<String>) -> napi::Result<()> {
        match &mut *lock(&self.shared.state) {
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
    pub async fn remove(&self, name: String, version: Option<String>) -> napi::Result<()> {
        let running = self.shared.running()?;
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
        let weights: BTreeMap<String, f64> = weights.into_iter().collect();
        match &mut *lock(&self.shared.state) {
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
}
