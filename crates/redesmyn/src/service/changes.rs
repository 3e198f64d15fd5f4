//! The live model set of a running service: an immutable [`Index`] of the
//! served models, swapped whole on every change (`arc-swap`), and the
//! changes themselves: add a model, remove a version after its requests are
//! answered, traffic weights, a name's default version. The request path
//! (resolve, check, queue, deadline) stays in `service.rs` and only reads
//! the index.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock, InferenceService, ServedModel};
use crate::model::{Model, ModelKey, RegistryError, Traffic, TrafficError};

/// One immutable snapshot of the served models.
#[derive(Default, Clone)]
pub(super) struct Index {
    /// In registration order.
    pub(super) models: Vec<Arc<ServedModel>>,
    /// Each name's models (its versions), in registration order.
    pub(super) by_name: HashMap<String, Vec<Arc<ServedModel>>>,
    /// Traffic weights between a name's versions, where set.
    pub(super) traffic: HashMap<String, Arc<Traffic>>,
    /// The version a name's unversioned requests reach without traffic,
    /// where set (else the unversioned model, else the highest version).
    pub(super) defaults: HashMap<String, String>,
}

impl Index {
    /// What unversioned requests for `name` reach without traffic weights:
    /// the default version when set, else the unversioned model, else the
    /// highest version.
    pub(super) fn default_of<'a>(&self, name: &str, models: &'a [Arc<ServedModel>]) -> Option<&'a Arc<ServedModel>> {
        let pinned = self.defaults.get(name);
        pinned
            .and_then(|v| models.iter().find(|m| m.key.version.as_ref() == Some(v)))
            .or_else(|| models.iter().find(|m| m.key.version.is_none()))
            .or_else(|| {
                models.iter().max_by(|a, b| {
                    version_order(a.key.version.as_deref().unwrap_or(""), b.key.version.as_deref().unwrap_or(""))
                })
            })
    }

    pub(super) fn with(mut self, model: Arc<ServedModel>) -> Self {
        self.by_name.entry(model.key.name.clone()).or_default().push(Arc::clone(&model));
        self.models.push(model);
        self
    }
}

/// A model name's versions as the registry holds them now.
pub struct ModelGroup {
    pub name: String,
    /// In registration order.
    pub models: Vec<Arc<ServedModel>>,
    pub traffic: Option<Arc<Traffic>>,
    /// The version unversioned requests reach when no traffic is set.
    pub default_version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("model '{0}' could not be loaded: {1}")]
    Load(String, String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    /// The model runs as a step of a pipeline that stays.
    #[error("model '{model}' is a step of pipeline '{pipeline}': remove the pipeline first")]
    InUse { model: String, pipeline: String },
}

/// `a` before `b` as versions: numbers by value, else as text.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

impl InferenceService {
    /// Adds a model while serving: its queues start, its artifact cache
    /// loads first when it prefetches (a load error leaves the registry as
    /// it was), and only then does it enter the index.
    pub async fn add(&self, model: Model, label: String) -> Result<Arc<ServedModel>, ChangeError> {
        let key = model.key();
        let duplicate = || RegistryError::Duplicate { name: key.name.clone(), version: key.version.clone() };
        if self.resolve(&key.name, key.version.as_deref()).is_ok() {
            return Err(duplicate().into());
        }
        let served = Arc::new(ServedModel::start(model, label, self.metrics.as_deref(), &self.runtime));
        if let Some(cache) = &served.cache {
            if cache.config().prefetch {
                if let Err(e) = cache.prefetch().await {
                    served.queues.shutdown().await;
                    return Err(ChangeError::Load(key.name.clone(), e.to_string()));
                }
            }
            let refresh = self.runtime.spawn(Arc::clone(cache).run_refresh()).abort_handle();
            *lock(&served.refresh) = Some(refresh);
        }
        let added = {
            let _change = lock(&self.changes);
            let current = self.index.load_full();
            let taken = current.by_name.get(&key.name).is_some_and(|ms| ms.iter().any(|m| m.key == key));
            (!taken).then(|| self.index.store(Arc::new((*current).clone().with(Arc::clone(&served)))))
        };
        if added.is_none() {
            served.retire().await;
            return Err(duplicate().into());
        }
        Ok(served)
    }

    /// Removes a model's version, or every version of it with `None`: out
    /// of lookup first, then each removed model's requests in flight are
    /// answered (within `drain`), then its queues drain and it is dropped.
    /// Traffic weights lose the removed versions (and go when none is left).
    pub async fn remove(
        &self,
        name: &str,
        version: Option<&str>,
        drain: Duration,
    ) -> Result<Vec<ModelKey>, ChangeError> {
        let removed: Vec<Arc<ServedModel>> = {
            let _change = lock(&self.changes);
            let current = self.index.load_full();
            let gone =
                |m: &ServedModel| m.key.name == name && (version.is_none() || m.key.version.as_deref() == version);
            let removed: Vec<_> = current.models.iter().filter(|m| gone(m)).cloned().collect();
            if removed.is_empty() {
                return Err(ChangeError::NotFound(match version {
                    Some(v) => format!("model '{name}' has no version '{v}'"),
                    None => format!("unknown model '{name}'"),
                }));
            }
            // A step names a version, or none (then any version may be the one it runs).
            let runs = |k: &ModelKey| {
                k.name == name && (version.is_none() || k.version.is_none() || k.version.as_deref() == version)
            };
            if let Some(user) = current.models.iter().filter(|m| !gone(m)).find(|m| m.uses.iter().any(runs)) {
                return Err(ChangeError::InUse { model: name.to_string(), pipeline: user.key.name.clone() });
            }
            let mut next = Index::default();
            for model in current.models.iter().filter(|m| !gone(m)) {
                next = next.with(Arc::clone(model));
            }
            next.traffic = current.traffic.clone();
            next.defaults = current.defaults.clone();
            if version.is_none() || next.defaults.get(name).map(String::as_str) == version {
                next.defaults.remove(name);
            }
            if let Some(traffic) = current.traffic.get(name) {
                let left: BTreeMap<String, f64> = traffic
                    .weights()
                    .iter()
                    .filter(|(v, _)| version.is_some_and(|gone| gone != v.as_str()))
                    .map(|(v, w)| (v.clone(), *w))
                    .collect();
                match Traffic::new(left) {
                    Ok(t) => next.traffic.insert(name.to_string(), Arc::new(t)),
                    Err(_) => next.traffic.remove(name),
                };
            }
            self.index.store(Arc::new(next));
            removed
        };
        let keys = removed.iter().map(|m| m.key.clone()).collect();
        for model in removed {
            // Every request that found the model holds it: once only this
            // reference is left, none is on its way to the queues.
            let until = Instant::now() + drain;
            while Arc::strong_count(&model) > 1 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            model.retire().await;
        }
        Ok(keys)
    }

    /// Sets (or with `None` clears) the traffic weights between a model's
    /// versions; every weighted version must exist.
    pub fn set_traffic(&self, name: &str, weights: Option<BTreeMap<String, f64>>) -> Result<(), ChangeError> {
        let _change = lock(&self.changes);
        let current = self.index.load_full();
        let Some(models) = current.by_name.get(name) else {
            return Err(ChangeError::NotFound(format!("unknown model '{name}'")));
        };
        let mut next = (*current).clone();
        match weights {
            Some(weights) => {
                if let Some(v) = weights.keys().find(|v| !models.iter().any(|m| m.key.version.as_deref() == Some(v))) {
                    return Err(TrafficError::UnknownVersion(v.clone(), name.to_string()).into());
                }
                next.traffic.insert(name.to_string(), Arc::new(Traffic::new(weights)?));
            }
            None => {
                next.traffic.remove(name);
            }
        }
        self.index.store(Arc::new(next));
        Ok(())
    }

    /// A model name's versions, traffic and default version now.
    pub fn group(&self, name: &str) -> Option<ModelGroup> {
        let index = self.index.load();
        let models = index.by_name.get(name)?.clone();
        Some(ModelGroup {
            name: name.to_string(),
            default_version: index.default_of(name, &models).and_then(|m| m.key.version.clone()),
            models,
            traffic: index.traffic.get(name).cloned(),
        })
    }

    /// The names served, in registration order of their first model.
    pub fn names(&self) -> Vec<String> {
        let index = self.index.load();
        let mut names: Vec<String> = Vec::new();
        for m in &index.models {
            if !names.contains(&m.key.name) {
                names.push(m.key.name.clone());
            }
        }
        names
    }

    /// Points a name's unversioned requests (without traffic weights) at
    /// one of its versions; `None` goes back to the unversioned model, else
    /// the highest version.
    pub fn set_default(&self, name: &str, version: Option<&str>) -> Result<(), ChangeError> {
        let _change = lock(&self.changes);
        let current = self.index.load_full();
        let Some(models) = current.by_name.get(name) else {
            return Err(ChangeError::NotFound(format!("unknown model '{name}'")));
        };
        let mut next = (*current).clone();
        match version {
            Some(v) if !models.iter().any(|m| m.key.version.as_deref() == Some(v)) => {
                return Err(ChangeError::NotFound(format!("model '{name}' has no version '{v}'")));
            }
            Some(v) => next.defaults.insert(name.to_string(), v.to_string()),
            None => next.defaults.remove(name),
        };
        self.index.store(Arc::new(next));
        Ok(())
    }
}
