//! What a server will serve, collected before it starts: endpoints (a
//! model and its path), default versions, traffic weights, the management
//! deployer and runtimes' worker pools. `Server::start` (in `server.rs`)
//! checks and starts them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ServerError;
use crate::config::ServerConfig;
use crate::management::Deployer;
use crate::model::{Built, Endpoint, ModelKey, ModelRegistry, RuntimeResources};

/// Models and their endpoint paths, collected before the server starts.
pub struct Server {
    pub(super) config: ServerConfig,
    pub(super) registry: ModelRegistry,
    pub(super) paths: Vec<(String, ModelKey)>,
    pub(super) deployer: Option<Arc<dyn Deployer>>,
    pub(super) traffic: Vec<(String, BTreeMap<String, f64>)>,
    pub(super) defaults: Vec<(String, String)>,
    /// Runtimes' worker pools by endpoint path, for `/metrics`.
    pub(super) pools: Vec<(String, Arc<dyn crate::metrics::PoolStats>)>,
    /// What runtimes keep running (worker pools), shut down after the server stops.
    pub(super) resources: Vec<Arc<dyn RuntimeResources>>,
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
            resources: Vec::new(),
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

    /// The models registered so far (a pipeline's steps are found here).
    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
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

    /// Registers a model built by [`crate::model::build`]: its endpoint, and
    /// its runtime's resources (reported in `/metrics` under the endpoint's
    /// path, shut down after the server stops).
    pub fn register_built(&mut self, built: Built) -> Result<(), ServerError> {
        let path = built.endpoint.path.clone();
        self.register(built.endpoint)?;
        if let Some(resources) = built.resources {
            if let Some(stats) = resources.stats() {
                self.pools.push((path, stats));
            }
            self.resources.push(resources);
        }
        Ok(())
    }

    /// Reports a runtime's worker pool in `/metrics`, under the endpoint's path.
    pub fn add_pool_stats(&mut self, path: impl Into<String>, stats: Arc<dyn crate::metrics::PoolStats>) {
        self.pools.push((path.into(), stats));
    }
}
