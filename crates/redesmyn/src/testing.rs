//! Fixtures the core's tests share: `f64` schemas, the `x * factor`
//! handler, models and a started service. Each test file keeps only what is
//! its own (a failing handler, an iris model); the common shape lives here.

use std::sync::Arc;
use std::time::Duration;

use polars::prelude::*;
use tokio::runtime::Handle;

use crate::batch::BatchConfig;
use crate::handler::{Batch, Handler, HandlerError, Predictions};
use crate::metrics::Metrics;
use crate::model::{Endpoint, Model, ModelKey, ModelRegistry};
use crate::schema::{Field, FieldType, Numeric, Schema};
use crate::service::InferenceService;

/// A schema of `f64` fields.
pub fn f64_schema(names: &[&str]) -> Schema {
    Schema::new(names.iter().map(|n| Field::new(*n, FieldType::Number(Numeric::F64))).collect()).unwrap()
}

pub fn handler_error(e: impl ToString) -> HandlerError {
    HandlerError::new(e.to_string())
}

/// `x * factor` after `delay`: `factor` is the fixed one given, else the
/// request's `factor` path parameter, else 1.
pub fn scaling(factor: Option<f64>, delay: Duration) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let factor = factor.or_else(|| batch.params.get("factor").and_then(|f| f.parse().ok())).unwrap_or(1.0);
        let x = batch.frame.column("x").map_err(handler_error)?.f64().map_err(handler_error)?.clone();
        Ok::<_, HandlerError>(Predictions::Column((x * factor).into_series()))
    })
}

/// A model named `name` over `x: f64`, answering with `handler`.
pub fn model(name: &str, version: Option<&str>, handler: Arc<dyn Handler>) -> Model {
    Model {
        name: name.into(),
        version: version.map(Into::into),
        schema: f64_schema(&["x"]),
        batch: BatchConfig::default(),
        runtime: handler.into(),
        cache: None,
        prediction_cache: None,
        params: Vec::new(),
        outputs: Vec::new(),
        inputs: Vec::new(),
        uses: Vec::new(),
    }
}

/// `path` over `x: f64`, doubling (`x * 2`) unless the path has a `{factor}`.
pub fn endpoint(path: &str) -> Endpoint {
    let factor = (!path.contains("{factor}")).then_some(2.0);
    Endpoint::new(path, f64_schema(&["x"]), BatchConfig::default(), scaling(factor, Duration::ZERO)).unwrap()
}

/// The endpoints' models served, each labelled by its path (as
/// `Server::start` labels them); the paths and model keys, in order.
pub fn service(
    endpoints: Vec<Endpoint>,
    metrics: Option<Arc<Metrics>>,
) -> (Arc<InferenceService>, Vec<(String, ModelKey)>) {
    let paths: Vec<(String, ModelKey)> = endpoints.iter().map(|e| (e.path.clone(), e.model.key())).collect();
    let mut registry = ModelRegistry::new();
    for e in endpoints {
        registry.insert(e.model).unwrap();
    }
    let labels = paths.clone();
    let label = move |k: &ModelKey| labels.iter().find(|(_, key)| key == k).map_or(k.name.clone(), |(p, _)| p.clone());
    (Arc::new(InferenceService::start(registry, label, metrics, &Handle::current())), paths)
}

/// The words of each row's `prompt` (the streaming tests' model yields them one per step).
pub fn prompt_words(frame: &DataFrame) -> Vec<Vec<String>> {
    frame
        .column("prompt")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|p| p.unwrap_or("").split_whitespace().map(str::to_string).collect())
        .collect()
}
