//! Model management: deploy, list, add versions, remove and split traffic
//! while serving. The HTTP shape is `http/management.rs`; this module is
//! the lifecycle behind it.
//!
//! Building a model from a runtime name and a file (sklearn, ONNX, a
//! custom class, ...) is the host's job: the core calls a [`Deployer`],
//! which builds the model and adds it to the service
//! ([`InferenceService::add`]) before it answers. The core checks
//! everything it can before calling it: names, the token, and that `path`
//! names something inside the model root ([`confine`]) — nothing outside
//! is ever read. A model being loaded, one that failed (with the reason)
//! and one being unloaded are remembered here, beside the ready ones the
//! service holds.

mod confine;
mod token;

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};

pub use confine::{confine, ConfineError};
pub use token::{check as check_token, Access};

use crate::service::{ChangeError, InferenceService, ServedModel};
use crate::stats::ModelStats;

/// `management: { token, host?, port?, root? }`.
#[derive(Debug, Clone)]
pub struct ManagementConfig {
    /// Every call needs `Authorization: Bearer <token>`.
    pub token: String,
    /// Listen apart from the inference port (with `port`); by default on the
    /// inference host.
    pub host: Option<String>,
    /// Its own port (0 picks one); `None` serves the routes on the inference port.
    pub port: Option<u16>,
    /// What `path` may name: files and folders under this folder only.
    /// Without one, every deploy by path is refused.
    pub root: Option<PathBuf>,
}

/// A model to load, checked: `path` is canonical and inside the root.
#[derive(Debug, Clone, Serialize)]
pub struct DeploySpec {
    pub name: String,
    pub version: Option<String>,
    /// The runtime (`sklearn`, `xgboost`, `onnx`, ...), or `None` to load
    /// the model folder `path` as its `model-settings.json` says.
    pub runtime: Option<String>,
    pub path: PathBuf,
    /// Batching, timeouts, inputs and outputs, as in `model-settings.json`.
    pub config: Value,
}

/// A change that took effect, for the host to persist, with the model's
/// state after it: the versions it serves and its traffic weights.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub name: String,
    /// The version deployed or removed (`None`: every version removed).
    pub version: Option<String>,
    /// What was deployed.
    pub spec: Option<DeploySpec>,
    /// The versions served now (`null` for an unversioned model).
    pub versions: Vec<Option<String>>,
    pub traffic: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Deployed,
    Removed,
    Traffic,
}

/// Builds models for the service; implemented by the host (the Node
/// binding calls into the TypeScript repository code).
pub trait Deployer: Send + Sync {
    /// Loads `spec` and adds its model(s) to the service; resolves once
    /// they serve, or with the load error.
    fn deploy(&self, spec: DeploySpec) -> BoxFuture<'static, Result<(), String>>;
    /// A change took effect: persist it where the host keeps its models.
    fn changed(&self, change: Change) -> BoxFuture<'static, Result<(), String>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Path(#[from] ConfineError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("model '{0}' failed to load: {1}")]
    Load(String, String),
    #[error("this server cannot load models by path (no model root or no deployer)")]
    Unsupported,
}

impl From<ChangeError> for ManagementError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Registry(e) => ManagementError::Conflict(e.to_string()),
            ChangeError::Load(name, reason) => ManagementError::Load(name, reason),
            ChangeError::NotFound(m) => ManagementError::NotFound(m),
            ChangeError::Traffic(e) => ManagementError::Invalid(e.to_string()),
            e @ ChangeError::InUse { .. } => ManagementError::Conflict(e.to_string()),
        }
    }
}

/// Where a model is that the service does not hold (yet, or any more).
#[derive(Debug, Clone)]
enum Pending {
    Loading,
    Failed(String),
    Unloading,
}

type Key = (String, Option<String>);

/// A deploy request as it comes in.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub name: Option<String>,
    pub runtime: Option<String>,
    /// MLServer's and Seldon's word for the runtime.
    pub framework: Option<String>,
    pub path: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub config: Value,
}

/// The lifecycle of models on a running server.
pub struct Management {
    config: ManagementConfig,
    service: Arc<InferenceService>,
    deployer: Option<Arc<dyn Deployer>>,
    /// How long a removal waits for requests in flight.
    drain: Duration,
    pending: Mutex<HashMap<Key, Pending>>,
    /// What each deployed version was loaded from (a new version's runtime
    /// defaults to its model's).
    specs: Mutex<HashMap<Key, DeploySpec>>,
}

/// A name or version: letters, digits, `_`, `.`, `-`, not starting with a
/// dot; at most 128 characters (it becomes a folder name and a URL segment).
pub fn check_name(what: &str, value: &str) -> Result<(), ManagementError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ManagementError::Invalid(format!(
            "'{what}' {value:?} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.'"
        )))
    }
}

impl Management {
    pub fn new(
        config: ManagementConfig,
        service: Arc<InferenceService>,
        deployer: Option<Arc<dyn Deployer>>,
        drain: Duration,
    ) -> Self {
        Management {
            config,
            service,
            deployer,
            drain,
            pending: Mutex::new(HashMap::new()),
            specs: Mutex::new(HashMap::new()),
        }
    }

    pub fn token(&self) -> &str {
        &self.config.token
    }

    pub fn service(&self) -> &Arc<InferenceService> {
        &self.service
    }

    /// `POST /models` (and, with `name`/`version` from the path,
    /// `POST /models/{name}/versions/{version}`): checks, loads, answers
    /// with the model once it serves. A version defaults to `1`; the
    /// runtime of a new version defaults to its model's.
    pub async fn deploy(&self, request: DeployRequest) -> Result<Value, ManagementError> {
        let name = request.name.ok_or_else(|| ManagementError::Invalid("'name' is missing".into()))?;
        check_name("name", &name)?;
        let version = request.version.unwrap_or_else(|| "1".into());
        check_name("version", &version)?;
        let given = request.path.ok_or_else(|| ManagementError::Invalid("'path' is missing".into()))?;
        let inherited = || {
            let specs = lock(&self.specs);
            specs.iter().find(|((n, _), _)| *n == name).and_then(|(_, s)| s.runtime.clone())
        };
        let runtime = request.runtime.or(request.framework).or_else(inherited).ok_or_else(|| {
            ManagementError::Invalid(
                "'runtime' is missing (sklearn, xgboost, lightgbm, onnx, python, typescript)".into(),
            )
        })?;
        if !runtime.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(ManagementError::Invalid(format!("'runtime' {runtime:?} is not a runtime name")));
        }
        if !request.config.is_null() && !request.config.is_object() {
            return Err(ManagementError::Invalid("'config' must be an object".into()));
        }
        let root = self.config.root.as_deref().ok_or(ManagementError::Unsupported)?;
        // Nothing is read before the path is known to be inside the root.
        let path = confine(root, &given)?;
        let spec = DeploySpec { name, version: Some(version), runtime: Some(runtime), path, config: request.config };
        self.load(spec).await
    }

    /// The V2 repository extension's `load`: the model folder `<root>/<name>`
    /// as its settings say (already served: nothing to do).
    pub async fn load_folder(&self, name: &str) -> Result<Value, ManagementError> {
        check_name("model", name)?;
        if self.service.group(name).is_some() {
            return Ok(self.view(name).unwrap_or(Value::Null));
        }
        let root = self.config.root.as_deref().ok_or(ManagementError::Unsupported)?;
        let missing =
            || ManagementError::NotFound(format!("the model root has no folder '{name}' with a model-settings.json"));
        // `name` is one plain segment (checked above): joining it cannot leave the root, but a link can.
        if !root.join(name).is_dir() {
            return Err(missing());
        }
        let path = confine(root, name)?;
        if !path.join("model-settings.json").is_file() {
            return Err(missing());
        }
        let spec = DeploySpec { name: name.into(), version: None, runtime: None, path, config: Value::Null };
        self.load(spec).await
    }

    async fn load(&self, spec: DeploySpec) -> Result<Value, ManagementError> {
        let deployer = self.deployer.clone().ok_or(ManagementError::Unsupported)?;
        let key: Key = (spec.name.clone(), spec.version.clone());
        let exists = match &spec.version {
            Some(v) => self.service.resolve(&spec.name, Some(v)).is_ok(),
            None => self.service.group(&spec.name).is_some(),
        };
        {
            let mut pending = lock(&self.pending);
            if exists || matches!(pending.get(&key), Some(Pending::Loading | Pending::Unloading)) {
                let v = spec.version.as_deref().map(|v| format!(" version '{v}'")).unwrap_or_default();
                return Err(ManagementError::Conflict(format!(
                    "model '{}'{v} is already served or changing",
                    spec.name
                )));
            }
            pending.insert(key.clone(), Pending::Loading);
        }
        let started = std::time::Instant::now();
        let loaded = deployer.deploy(spec.clone()).await.and_then(|()| {
            let served = match &spec.version {
                Some(v) => self.service.resolve(&spec.name, Some(v)).is_ok(),
                None => self.service.group(&spec.name).is_some(),
            };
            served.then_some(()).ok_or_else(|| "the deployer added no model".to_string())
        });
        if let Err(reason) = loaded {
            lock(&self.pending).insert(key, Pending::Failed(reason.clone()));
            return Err(ManagementError::Load(spec.name, reason));
        }
        lock(&self.pending).remove(&key);
        lock(&self.specs).insert(key, spec.clone());
        tracing::info!(
            model = %spec.name,
            version = spec.version.as_deref().unwrap_or(""),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "model deployed"
        );
        let name = spec.name.clone();
        let change = self.change(ChangeKind::Deployed, &name, spec.version.clone(), Some(spec));
        self.persist(&deployer, change).await;
        Ok(self.view(&name).unwrap_or(Value::Null))
    }

    /// `DELETE /models/{name}[/versions/{version}]`: out of lookup at once,
    /// unloaded once its requests in flight are answered.
    pub async fn remove(&self, name: &str, version: Option<&str>) -> Result<Value, ManagementError> {
        let failed: Vec<Key> = {
            let mut pending = lock(&self.pending);
            let gone: Vec<Key> = pending
                .iter()
                .filter(|((n, v), p)| {
                    n == name && (version.is_none() || v.as_deref() == version) && matches!(p, Pending::Failed(_))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in &gone {
                pending.remove(k);
            }
            gone
        };
        let keys: Vec<Key> = match self.service.group(name) {
            Some(group) => group
                .models
                .iter()
                .map(|m| (m.key().name.clone(), m.key().version.clone()))
                .filter(|(_, v)| version.is_none() || v.as_deref() == version)
                .collect(),
            None => Vec::new(),
        };
        if keys.is_empty() && !failed.is_empty() {
            return Ok(
                json!({ "removed": failed.iter().map(|(n, v)| json!({"name": n, "version": v})).collect::<Vec<_>>() }),
            );
        }
        for k in &keys {
            lock(&self.pending).insert(k.clone(), Pending::Unloading);
        }
        let removed = self.service.remove(name, version, self.drain).await;
        for k in &keys {
            lock(&self.pending).remove(k);
            lock(&self.specs).remove(k);
        }
        let removed = removed?;
        if let Some(deployer) = &self.deployer {
            let change = self.change(ChangeKind::Removed, name, version.map(Into::into), None);
            self.persist(deployer, change).await;
        }
        let list: Vec<Value> = removed.iter().map(|k| json!({ "name": k.name, "version": k.version })).collect();
        Ok(json!({ "removed": list }))
    }

    /// `PUT /models/{name}/traffic`: `None` (or `{}`) clears the weights.
    pub async fn set_traffic(
        &self,
        name: &str,
        weights: Option<BTreeMap<String, f64>>,
    ) -> Result<Value, ManagementError> {
        let weights = weights.filter(|w| !w.is_empty());
        self.service.set_traffic(name, weights)?;
        if let Some(deployer) = &self.deployer {
            self.persist(deployer, self.change(ChangeKind::Traffic, name, None, None)).await;
        }
        Ok(self.view(name).unwrap_or(Value::Null))
    }

    fn change(&self, kind: ChangeKind, name: &str, version: Option<String>, spec: Option<DeploySpec>) -> Change {
        let group = self.service.group(name);
        Change {
            kind,
            name: name.into(),
            version,
            spec,
            versions: group.iter().flat_map(|g| g.models.iter().map(|m| m.key().version.clone())).collect(),
            traffic: group.and_then(|g| g.traffic).map(|t| t.weights().clone()),
        }
    }

    /// Persisting is best effort: the change already serves; a failure to
    /// write it is logged (the next restart would not see it).
    async fn persist(&self, deployer: &Arc<dyn Deployer>, change: Change) {
        if let Err(e) = deployer.changed(change).await {
            tracing::error!(error = %e, "could not persist a management change");
        }
    }

    /// `GET /models/{name}`: versions with state, traffic, default, stats.
    pub fn view(&self, name: &str) -> Option<Value> {
        let group = self.service.group(name);
        let pending: Vec<(Option<String>, Pending)> = lock(&self.pending)
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, v), p)| (v.clone(), p.clone()))
            .collect();
        if group.is_none() && pending.is_empty() {
            return None;
        }
        let shares = group.as_ref().and_then(|g| g.traffic.as_ref()).map(|t| t.shares());
        let mut versions: Vec<Value> = Vec::new();
        if let Some(group) = &group {
            for model in &group.models {
                let version = model.key().version.clone();
                let state = match pending.iter().find(|(v, _)| *v == version) {
                    Some((_, Pending::Unloading)) => "unloading",
                    _ => "ready",
                };
                versions.push(version_view(model, state, None));
            }
        }
        for (version, p) in &pending {
            let (state, reason) = match p {
                Pending::Loading => ("loading", None),
                Pending::Failed(r) => ("failed", Some(r.clone())),
                // Out of the registry already, answering its last requests.
                Pending::Unloading => ("unloading", None),
            };
            if group.as_ref().is_some_and(|g| g.models.iter().any(|m| m.key().version == *version)) {
                continue;
            }
            versions.push(json!({ "version": version, "state": state, "reason": reason }));
        }
        Some(json!({
            "name": name,
            "versions": versions,
            "default_version": group.as_ref().and_then(|g| g.default_version.clone()),
            "traffic": group.as_ref().and_then(|g| g.traffic.as_ref()).map(|t| t.weights().clone()),
            "traffic_shares": shares,
        }))
    }

    /// `GET /models`.
    pub fn list(&self) -> Value {
        let mut names = self.service.names();
        for (n, _) in lock(&self.pending).keys() {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let models: Vec<Value> = names.iter().filter_map(|n| self.view(n)).collect();
        json!({ "models": models })
    }

    /// `POST /v2/repository/index`: every version served, loading or failed,
    /// and the root's model folders not loaded (`UNAVAILABLE`), in Triton's
    /// shape `[{name, version, state, reason}]`.
    pub fn index(&self, ready_only: bool) -> Value {
        let mut out: Vec<Value> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for model in self.service.models() {
            let key = model.key();
            seen.push(key.name.clone());
            out.push(json!({ "name": key.name, "version": key.version.clone().unwrap_or_default(), "state": "READY", "reason": "" }));
        }
        if !ready_only {
            for ((name, version), p) in lock(&self.pending).iter() {
                let (state, reason) = match p {
                    Pending::Loading => ("LOADING", String::new()),
                    Pending::Failed(r) => ("UNAVAILABLE", r.clone()),
                    Pending::Unloading => ("UNLOADING", String::new()),
                };
                seen.push(name.clone());
                out.push(json!({ "name": name, "version": version.clone().unwrap_or_default(), "state": state, "reason": reason }));
            }
            if let Some(root) = &self.config.root {
                let mut folders: Vec<String> = std::fs::read_dir(root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.path().join("model-settings.json").is_file())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.') && !seen.contains(n))
                    .collect();
                folders.sort();
                for name in folders {
                    out.push(json!({ "name": name, "version": "", "state": "UNAVAILABLE", "reason": "unloaded" }));
                }
            }
        }
        Value::Array(out)
    }
}

fn version_view(model: &ServedModel, state: &str, reason: Option<String>) -> Value {
    let key = model.key();
    let empty = ModelStats::default();
    let stats = model.stats().map_or(&empty, |s| s).snapshot(&key.name, key.version.as_deref().unwrap_or(""));
    json!({
        "version": key.version,
        "state": state,
        "reason": reason,
        "requests": stats.inference_stats.success.count + stats.inference_stats.fail.count,
        "stats": stats,
    })
}

#[cfg(test)]
mod tests;
