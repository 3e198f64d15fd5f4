//! Assembling a model: its spec (path, schema, batching, tensors, caches)
//! and a runtime made by a [`RuntimeFactory`] (one per runtime crate:
//! Node, Python, ONNX; a pipeline later), with the rules about what
//! combines with what. A binding converts its options to a [`ModelSpec`]
//! and a factory and calls [`build`]; every rule lives and is tested here.

use std::sync::Arc;
use std::time::Duration;

use super::endpoint::{parse_path, Endpoint, PathError};
use crate::batch::BatchConfig;
use crate::cache::{ArtifactStore, CacheConfig, Loader, ModelCache, PathTemplate};
use crate::handler::Runtime;
use crate::metrics::PoolStats;
use crate::prediction_cache::PredictionCacheConfig;
use crate::schema::{Schema, TensorMetadata};

/// Batches of one streaming model that may run at once by default: each
/// lasts as long as its streams.
pub const STREAM_CONCURRENCY: usize = 64;

/// A model as its options describe it, before its runtime exists.
pub struct ModelSpec {
    /// The endpoint path (`{param}` segments select cached variants).
    pub path: String,
    /// The model's name (default: derived from the path).
    pub name: Option<String>,
    pub version: Option<String>,
    pub schema: Schema,
    pub batch: BatchSettings,
    /// Declared output tensors; when empty, the runtime's own (if it knows them).
    pub outputs: Vec<TensorMetadata>,
    /// Declared input tensors for V2 metadata.
    pub inputs: Vec<TensorMetadata>,
    /// The artifact cache: variants by parameter values, loaded by the runtime's loader.
    pub cache: Option<CacheSpec>,
    /// Answers remembered per row.
    pub prediction_cache: Option<PredictionCacheConfig>,
}

/// Batching as configured: what is unset takes the runtime's default (a
/// worker pool's size for `max_concurrent`, [`STREAM_CONCURRENCY`] for a
/// stream) or the core's ([`BatchConfig::default`]).
#[derive(Debug, Clone, Default)]
pub struct BatchSettings {
    pub max_size: Option<usize>,
    pub max_delay: Option<Duration>,
    pub max_concurrent: Option<usize>,
    pub max_queue: Option<usize>,
    pub timeout: Option<Duration>,
    pub spread: Option<bool>,
    /// Poison isolation (default on): see [`BatchConfig::isolate`].
    pub isolate: Option<bool>,
}

/// Where an artifact cache finds its variants, and how it keeps them.
pub struct CacheSpec {
    /// The artifact path under the store, e.g. `iris/{run}/{model}/model.joblib`.
    pub path_template: String,
    pub store: Arc<dyn ArtifactStore>,
    pub config: CacheConfig,
}

/// What a runtime factory makes for one model.
pub struct RuntimeParts {
    pub runtime: Runtime,
    /// Loads artifact-cache variants; a spec with a cache needs one.
    pub loader: Option<Arc<dyn Loader>>,
    /// Outputs the runtime knows before answering (an ONNX graph's).
    pub outputs: Vec<TensorMetadata>,
    /// Handlers that can run at once (a worker pool's size): the default
    /// batch concurrency.
    pub parallelism: Option<usize>,
    /// What the runtime holds besides the model (a worker pool): reported
    /// in `/metrics` and shut down after the server stops.
    pub resources: Option<Arc<dyn RuntimeResources>>,
}

impl RuntimeParts {
    /// A runtime with nothing else: no loader, outputs or resources.
    pub fn runtime(runtime: impl Into<Runtime>) -> Self {
        RuntimeParts { runtime: runtime.into(), loader: None, outputs: Vec::new(), parallelism: None, resources: None }
    }

    pub fn with_loader(mut self, loader: Option<Arc<dyn Loader>>) -> Self {
        self.loader = loader;
        self
    }
}

/// What a runtime keeps running besides its handler.
pub trait RuntimeResources: Send + Sync + 'static {
    /// Counters for `/metrics`, read at each scrape.
    fn stats(&self) -> Option<Arc<dyn PoolStats>> {
        None
    }

    /// Stops what runs (worker processes); called once every request is answered.
    fn shutdown(&self);
}

/// Makes a model's runtime: loads its model, starts its workers. Runs at
/// registration, so a wrong reference fails then rather than at the first
/// request. An error is reported as written: name the endpoint
/// (`spec.path`) where the message would not say which it is.
pub trait RuntimeFactory {
    fn make(&self, spec: &ModelSpec) -> Result<RuntimeParts, String>;
}

/// A model that could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// Options that do not combine; the message names the endpoint.
    #[error("endpoint '{path}': {message}")]
    Invalid { path: String, message: String },
    /// The runtime could not be made: its factory's message, as it wrote it.
    #[error("{0}")]
    Runtime(String),
    #[error(transparent)]
    Path(#[from] PathError),
}

/// A model ready to register, with what outlives registration.
pub struct Built {
    pub endpoint: Endpoint,
    pub cache: Option<Arc<ModelCache>>,
    pub resources: Option<Arc<dyn RuntimeResources>>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Built({})", self.endpoint.path)
    }
}

/// Makes the runtime for `spec` and assembles the model, checking what
/// combines: a cache needs a loader, a streaming model has no prediction
/// cache.
pub fn build(spec: ModelSpec, factory: &dyn RuntimeFactory) -> Result<Built, BuildError> {
    parse_path(&spec.path)?;
    let parts = factory.make(&spec).map_err(BuildError::Runtime)?;
    build_with(spec, parts)
}

/// As [`build`], with a runtime already made (a binding's own runtime,
/// whose callbacks it cannot hand to a factory).
pub fn build_with(spec: ModelSpec, parts: RuntimeParts) -> Result<Built, BuildError> {
    let invalid = |message: String| BuildError::Invalid { path: spec.path.clone(), message };
    let params = parse_path(&spec.path)?;
    let stream = parts.runtime.is_stream();
    if stream && spec.prediction_cache.is_some() {
        return Err(invalid("a streaming endpoint cannot have a predictionCache".into()));
    }
    let cache = match (spec.cache, parts.loader) {
        (Some(cache), Some(loader)) => {
            let template = PathTemplate::parse(&cache.path_template).map_err(|e| invalid(e.to_string()))?;
            let cache = ModelCache::new(template, &params, cache.store, loader, cache.config)
                .map_err(|e| invalid(e.to_string()))?;
            Some(Arc::new(cache))
        }
        (Some(_), None) => return Err(invalid("a cache needs a loader".into())),
        (None, _) => None,
    };
    let batch = batch_config(&spec.batch, stream, parts.parallelism);
    let outputs = if spec.outputs.is_empty() { parts.outputs } else { spec.outputs };
    let mut endpoint =
        Endpoint::new(spec.path, spec.schema, batch, parts.runtime)?.with_outputs(outputs).with_inputs(spec.inputs);
    if let Some(name) = spec.name {
        endpoint = endpoint.with_model_name(name);
    }
    if let Some(version) = spec.version {
        endpoint = endpoint.with_version(version);
    }
    if let Some(config) = spec.prediction_cache {
        endpoint = endpoint.with_prediction_cache(config);
    }
    if let Some(cache) = &cache {
        endpoint = endpoint.with_cache(Arc::clone(cache));
    }
    Ok(Built { endpoint, cache, resources: parts.resources })
}

/// The batch settings: a streaming model's batches may run
/// [`STREAM_CONCURRENCY`] at once, a worker pool's one per worker, unless
/// told otherwise.
fn batch_config(settings: &BatchSettings, stream: bool, parallelism: Option<usize>) -> BatchConfig {
    let d = BatchConfig::default();
    let concurrent = parallelism.or(stream.then_some(STREAM_CONCURRENCY)).unwrap_or(d.max_concurrent);
    BatchConfig {
        max_size: settings.max_size.map_or(d.max_size, |v| v.max(1)),
        max_delay: settings.max_delay.unwrap_or(d.max_delay),
        max_concurrent: settings.max_concurrent.unwrap_or(concurrent).max(1),
        max_queue: settings.max_queue.map_or(d.max_queue, |v| v.max(1)),
        timeout: settings.timeout.or(d.timeout),
        spread: settings.spread.unwrap_or(d.spread),
        isolate: settings.isolate.unwrap_or(d.isolate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::FsStore;
    use crate::handler::{Batch, Handler, HandlerError, Predictions};
    use crate::stream::StreamHandler;
    use crate::testing::{f64_schema, scaling};

    fn spec(path: &str) -> ModelSpec {
        ModelSpec {
            path: path.into(),
            name: None,
            version: None,
            schema: f64_schema(&["x"]),
            batch: BatchSettings::default(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            cache: None,
            prediction_cache: None,
        }
    }

    /// Makes what its closure says.
    struct Factory(fn() -> Result<RuntimeParts, String>);

    impl RuntimeFactory for Factory {
        fn make(&self, _: &ModelSpec) -> Result<RuntimeParts, String> {
            (self.0)()
        }
    }

    fn unary() -> Result<RuntimeParts, String> {
        Ok(RuntimeParts::runtime(scaling(Some(2.0), Duration::ZERO)))
    }

    fn streaming() -> Result<RuntimeParts, String> {
        let handler: Arc<dyn StreamHandler> = Arc::new(|_: Batch| futures::stream::empty());
        Ok(RuntimeParts::runtime(handler))
    }

    fn pool_of_three() -> Result<RuntimeParts, String> {
        let handler: Arc<dyn Handler> =
            Arc::new(|_: Batch| async { Ok::<_, HandlerError>(Predictions::Column(Default::default())) });
        let outputs = vec![TensorMetadata { name: "label".into(), datatype: "INT64".into(), shape: vec![-1] }];
        Ok(RuntimeParts { parallelism: Some(3), outputs, ..RuntimeParts::runtime(handler) })
    }

    fn error(result: Result<Built, BuildError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_streaming_model_refuses_a_prediction_cache_and_a_cache_needs_a_loader() {
        let with_predictions = ModelSpec { prediction_cache: Some(Default::default()), ..spec("/s") };
        assert_eq!(
            error(build(with_predictions, &Factory(streaming))),
            "endpoint '/s': a streaming endpoint cannot have a predictionCache"
        );
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheSpec {
            path_template: "{run}/model.bin".into(),
            store: Arc::new(FsStore::new(dir.path()).unwrap()),
            config: CacheConfig::default(),
        };
        let cached = ModelSpec { cache: Some(cache), ..spec("/c/{run}") };
        assert_eq!(error(build(cached, &Factory(unary))), "endpoint '/c/{run}': a cache needs a loader");
    }

    #[test]
    fn factory_errors_stand_as_written_and_bad_paths_are_refused() {
        assert_eq!(error(build(spec("/f"), &Factory(|| Err("no such module".into())))), "no such module");
        assert!(matches!(build(spec("no-slash"), &Factory(unary)), Err(BuildError::Path(PathError::NotAbsolute(_)))));
    }

    #[test]
    fn batch_concurrency_follows_the_runtime_unless_set_and_declared_outputs_win() {
        let built = build(spec("/p"), &Factory(pool_of_three)).unwrap();
        assert_eq!(built.endpoint.model.batch.max_concurrent, 3);
        assert_eq!(built.endpoint.model.outputs[0].name, "label");
        let set = ModelSpec { batch: BatchSettings { max_concurrent: Some(1), ..Default::default() }, ..spec("/p") };
        let declared = vec![TensorMetadata { name: "y".into(), datatype: "FP64".into(), shape: vec![-1] }];
        let built = build(ModelSpec { outputs: declared, ..set }, &Factory(pool_of_three)).unwrap();
        assert_eq!(built.endpoint.model.batch.max_concurrent, 1);
        assert_eq!(built.endpoint.model.outputs[0].name, "y");
        let stream = build(spec("/s"), &Factory(streaming)).unwrap();
        assert_eq!(stream.endpoint.model.batch.max_concurrent, STREAM_CONCURRENCY);
        let plain = build(spec("/u"), &Factory(unary)).unwrap();
        assert_eq!(plain.endpoint.model.batch.max_concurrent, BatchConfig::default().max_concurrent);
    }
}
