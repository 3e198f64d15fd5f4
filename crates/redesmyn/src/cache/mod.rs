//! The model cache: URL path parameters select a model variant, whose
//! artifact a path template locates in a store; a loader turns the artifact
//! into a model. Loads are lazy and single-flight, at most `max_size` models
//! stay in memory (least recently used evicted), and a background refresh
//! reloads models whose artifact changed while the old one keeps serving.

pub mod cloud;
mod download;
mod mirror;
mod schedule;
mod store;
mod store_error;
mod template;

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use moka::future::Cache;
use moka::notification::RemovalCause;
use regex::Regex;

pub use download::{download, Limits};
pub use mirror::{Mirror, MirrorReport};
pub use schedule::Refresh;
pub use store::{ArtifactStore, Fetched, FsStore, ObjectStoreStore, StoreError, StoreOptions, Version};
pub use template::{check_value, InvalidParam, PathTemplate, TemplateError};

use crate::error::RequestError;
use crate::params::Params;

/// A loaded artifact: what a loader made of a model variant's file (a
/// Python object, a JavaScript value's handle, …). Handlers downcast it.
/// Dropping the last clone releases it. ("Model" is the registry entry,
/// `crate::model::Model`; this is one loaded variant of its artifact.)
pub type LoadedModel = Arc<dyn Any + Send + Sync>;

/// Turns a local artifact into a model.
pub trait Loader: Send + Sync + 'static {
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>>;
}

impl<F, Fut> Loader for F
where
    F: Fn(std::path::PathBuf, Params) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<LoadedModel, String>> + Send + 'static,
{
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>> {
        Box::pin(self(artifact.to_path_buf(), params.clone()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// A parameter value that could name something outside the store (422).
    #[error("{0}")]
    InvalidParam(InvalidParam),
    /// No artifact for these parameters (404).
    #[error("no model for {params}")]
    NotFound { params: String },
    /// The artifact exists but could not be fetched or loaded (503).
    #[error("the model for {params} could not be loaded: {message}")]
    Unavailable { params: String, message: String, retry_after: Duration },
}

/// Why a cache could not be set up (at registration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("a pattern is given for '{0}', which is not a path parameter")]
    UnknownParam(String),
    #[error("the pattern for '{name}' is not a valid regular expression: {message}")]
    Pattern { name: String, message: String },
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Models kept in memory.
    pub max_size: u64,
    pub refresh: Option<Refresh>,
    /// Load every artifact the template finds before the server is ready.
    pub prefetch: bool,
    /// Optional regular expression each parameter's values must match.
    pub patterns: Vec<(String, String)>,
    /// First wait before a failed load is tried again; doubles per failure, up to 30 s.
    pub retry_backoff: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: 8,
            refresh: None,
            prefetch: false,
            patterns: Vec::new(),
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// Counters for metrics and `cache.stats()`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub loads: AtomicU64,
    pub load_failures: AtomicU64,
    pub evictions: AtomicU64,
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
    /// Sum of load durations, in microseconds.
    pub load_micros: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub load_failures: u64,
    pub evictions: u64,
    pub refreshes: u64,
    pub refresh_failures: u64,
    pub load_seconds_total: f64,
    pub size: u64,
}

/// A model and the artifact version it came from.
struct Entry {
    model: LoadedModel,
    version: Version,
}

struct Failure {
    attempts: u32,
    retry_at: Instant,
    message: String,
}

/// Told how long each load took (the metrics histogram).
type LoadHook = Box<dyn Fn(Duration) + Send + Sync>;

pub struct ModelCache {
    template: PathTemplate,
    param_order: Vec<String>,
    store: Arc<dyn ArtifactStore>,
    loader: Arc<dyn Loader>,
    config: CacheConfig,
    patterns: Vec<(String, Regex)>,
    models: Cache<Params, Arc<Entry>>,
    failures: Mutex<HashMap<Params, Failure>>,
    counters: Arc<CacheCounters>,
    /// Called with each load's duration (for metrics histograms).
    on_load: Mutex<Option<LoadHook>>,
    /// Changes whenever a loaded model may differ from what served before
    /// (a refresh reloaded it, or it left memory): answers remembered
    /// under an earlier generation are not reused.
    generation: Arc<AtomicU64>,
}

impl ModelCache {
    /// `param_order` is the endpoint's path parameters; the template must use exactly those.
    pub fn new(
        template: PathTemplate,
        param_order: &[String],
        store: Arc<dyn ArtifactStore>,
        loader: Arc<dyn Loader>,
        config: CacheConfig,
    ) -> Result<Self, SetupError> {
        template.check_params(param_order)?;
        let patterns = config
            .patterns
            .iter()
            .map(|(name, source)| {
                if !param_order.contains(name) {
                    return Err(SetupError::UnknownParam(name.clone()));
                }
                let regex = Regex::new(source)
                    .map_err(|e| SetupError::Pattern { name: name.clone(), message: e.to_string() })?;
                Ok((name.clone(), regex))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let counters = Arc::new(CacheCounters::default());
        let evictions = Arc::clone(&counters);
        let generation = Arc::new(AtomicU64::new(0));
        let evicted = Arc::clone(&generation);
        let models = Cache::builder()
            .max_capacity(config.max_size.max(1))
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .eviction_listener(move |_key, _value, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    evictions.evictions.fetch_add(1, Ordering::Relaxed);
                }
                if cause != RemovalCause::Replaced {
                    // Its next load may find a different artifact.
                    evicted.fetch_add(1, Ordering::Release);
                }
                // Dropping the entry here releases the model once no running batch holds it.
            })
            .build();
        Ok(ModelCache {
            template,
            param_order: param_order.to_vec(),
            store,
            loader,
            config,
            patterns,
            models,
            failures: Mutex::new(HashMap::new()),
            counters,
            on_load: Mutex::new(None),
            generation,
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    pub fn counters(&self) -> &Arc<CacheCounters> {
        &self.counters
    }

    /// Registers a callback that observes each load's duration.
    pub fn on_load(&self, f: impl Fn(Duration) + Send + Sync + 'static) {
        *self.on_load.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// Checks parameter values before anything is touched (a 422 otherwise).
    pub fn check(&self, params: &Params) -> Result<String, CacheError> {
        for (name, pattern) in &self.patterns {
            let value = params.get(name).unwrap_or_default();
            if !pattern.is_match(value) {
                return Err(CacheError::InvalidParam(InvalidParam {
                    name: name.clone(),
                    value: value.to_string(),
                    reason: format!("does not match /{}/", pattern.as_str()),
                }));
            }
        }
        self.template.render(params).map_err(CacheError::InvalidParam)
    }

    /// The model for `params`: from memory, or loaded once however many
    /// requests ask at the same time.
    pub async fn get(&self, params: &Params) -> Result<LoadedModel, CacheError> {
        if let Some(entry) = self.models.get(params).await {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(&entry.model));
        }
        let key = self.check(params)?;
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        if let Some(wait) = self.backing_off(params) {
            return Err(wait);
        }
        let entry = self
            .models
            .try_get_with(params.clone(), async { self.load(params, &key).await.map(Arc::new) })
            .await
            .map_err(|e| (*e).clone())?;
        // Apply the eviction this insert may cause now, so the evicted model
        // is released promptly rather than at some later maintenance.
        self.sync().await;
        Ok(Arc::clone(&entry.model))
    }

    /// The error to answer with while a failed key waits for its retry.
    fn backing_off(&self, params: &Params) -> Option<CacheError> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let failure = failures.get(params)?;
        let now = Instant::now();
        (now < failure.retry_at).then(|| CacheError::Unavailable {
            params: describe(params),
            message: failure.message.clone(),
            retry_after: failure.retry_at - now,
        })
    }

    async fn load(&self, params: &Params, key: &str) -> Result<Entry, CacheError> {
        let started = Instant::now();
        let result = async {
            let fetched = self.store.fetch(key).await.map_err(|e| match e {
                StoreError::NotFound(_) | StoreError::Outside { .. } => {
                    CacheError::NotFound { params: describe(params) }
                }
                StoreError::Other(message) | StoreError::Credentials(message) => self.unavailable(params, message),
            })?;
            let model =
                self.loader.load(&fetched.path, params).await.map_err(|message| self.unavailable(params, message))?;
            Ok(Entry { model, version: fetched.version })
        }
        .await;
        let elapsed = started.elapsed();
        match &result {
            Ok(_) => {
                self.counters.loads.fetch_add(1, Ordering::Relaxed);
                self.counters.load_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                if let Some(f) = self.on_load.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    f(elapsed);
                }
                self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(params);
                tracing::info!(params = %describe(params), key, seconds = elapsed.as_secs_f64(), "model loaded");
            }
            Err(CacheError::Unavailable { message, .. }) => {
                self.counters.load_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(params = %describe(params), key, error = %message, "model load failed");
            }
            Err(_) => {}
        }
        result
    }

    /// Records a failed load and the backoff before the next try.
    fn unavailable(&self, params: &Params, message: String) -> CacheError {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let attempts = failures.get(params).map_or(0, |f| f.attempts) + 1;
        let backoff =
            self.config.retry_backoff.saturating_mul(1 << (attempts - 1).min(16)).min(Duration::from_secs(30));
        failures
            .insert(params.clone(), Failure { attempts, retry_at: Instant::now() + backoff, message: message.clone() });
        CacheError::Unavailable { params: describe(params), message, retry_after: backoff }
    }

    /// Loads every artifact the template finds (up to `max_size`), for
    /// `prefetch`. Returns how many were loaded.
    pub async fn prefetch(&self) -> Result<usize, CacheError> {
        let prefix = self.template.literal_prefix();
        let keys = self.store.list(&prefix).await.map_err(|e| CacheError::Unavailable {
            params: format!("prefetch of {}", self.store.describe()),
            message: e.to_string(),
            retry_after: Duration::from_secs(1),
        })?;
        let mut loaded = 0;
        for key in keys {
            if loaded as u64 >= self.config.max_size {
                break;
            }
            let Some(params) = self.template.parse_key(&key, &self.param_order) else {
                continue;
            };
            match self.get(&params).await {
                Ok(_) => loaded += 1,
                Err(e) => tracing::warn!(key, error = %e, "prefetch could not load a model"),
            }
        }
        Ok(loaded)
    }

    /// Checks each cached model's artifact and reloads those that changed
    /// (all of them when `force`). A failed reload keeps the old model.
    pub async fn refresh(&self, force: bool) {
        // Read through the iterator, not `get`: a refresh must not count as a
        // use, or it would reorder the least-recently-used list.
        let entries: Vec<(Params, Arc<Entry>)> = self.models.iter().map(|(k, v)| ((*k).clone(), v)).collect();
        for (params, current) in entries {
            let Ok(key) = self.template.render(&params) else {
                continue;
            };
            if !force {
                match self.store.version(&key).await {
                    Ok(version) if version == current.version => continue,
                    Ok(_) => {}
                    Err(e) => {
                        self.counters.refresh_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(params = %describe(&params), error = %e, "refresh could not check the artifact; keeping the loaded model");
                        continue;
                    }
                }
            }
            match self.load(&params, &key).await {
                Ok(entry) => {
                    self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                    self.models.insert(params, Arc::new(entry)).await;
                    // After the insert: a request that sees the new generation
                    // is answered by the new model.
                    self.generation.fetch_add(1, Ordering::Release);
                }
                Err(e) => {
                    self.counters.refresh_failures.fetch_add(1, Ordering::Relaxed);
                    // The failure must not block requests: the old model serves on.
                    self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&params);
                    tracing::warn!(params = %describe(&params), error = %e, "refresh failed; keeping the loaded model");
                }
            }
        }
    }

    /// Runs `refresh` on the configured schedule until the task is dropped.
    pub async fn run_refresh(self: Arc<Self>) {
        let Some(refresh) = self.config.refresh.clone() else {
            return;
        };
        loop {
            tokio::time::sleep(refresh.next_wait()).await;
            self.refresh(refresh.force).await;
        }
    }

    /// The current generation: it changes when a refresh reloads a model or
    /// a model leaves memory (see the prediction cache).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Parameters of the models in memory.
    pub fn keys(&self) -> Vec<Params> {
        let mut keys: Vec<Params> = self.models.iter().map(|(k, _)| (*k).clone()).collect();
        keys.sort_by_key(describe);
        keys
    }

    /// Applies pending evictions now (moka applies them lazily) and drops
    /// what they released; the second pass frees entries the first one retired.
    pub async fn sync(&self) {
        self.models.run_pending_tasks().await;
        self.models.run_pending_tasks().await;
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            load_failures: c.load_failures.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            refreshes: c.refreshes.load(Ordering::Relaxed),
            refresh_failures: c.refresh_failures.load(Ordering::Relaxed),
            load_seconds_total: c.load_micros.load(Ordering::Relaxed) as f64 / 1e6,
            size: self.models.entry_count(),
        }
    }
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelCache({} in {})", self.template.as_str(), self.store.describe())
    }
}

/// `run_id=1, model_id=2`
pub fn describe(params: &Params) -> String {
    let parts: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if parts.is_empty() {
        "this endpoint".into()
    } else {
        parts.join(", ")
    }
}

impl From<CacheError> for RequestError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::InvalidParam(p) => RequestError::InvalidParam(p.to_string()),
            e @ CacheError::NotFound { .. } => RequestError::ModelNotFound(e.to_string()),
            ref e2 @ CacheError::Unavailable { retry_after, .. } => {
                RequestError::ModelUnavailable { message: e2.to_string(), retry_after }
            }
        }
    }
}

#[cfg(test)]
mod tests;
