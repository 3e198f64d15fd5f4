//! A pipeline is a model whose runtime runs other models' handlers, one
//! after the other, on the batch's columns, in one process.
//!
//! It batches once, at its own entry (it is served like any model: its own
//! queue, routes on every door, metrics, V2 metadata, poison isolation).
//! Each batch's DataFrame then goes to each step's handler directly, not
//! through the step model's queue: the step gets the columns it names,
//! renamed to its own field names, as the same Polars buffers (cast only
//! where a numeric type differs). Steps that do not depend on each other run
//! concurrently; an ensemble step combines earlier steps' outputs.
//!
//! What it is given ([`PipelineSpec`]) is checked when it is built
//! ([`plan`]): every step's model exists, every input a step reads is a
//! pipeline input or an earlier step's output of a fitting type, and the
//! steps form no cycle. Errors name the step and the column.
//!
//! Its inputs are declared, or by default the first step's fields; its
//! outputs are its last step's.

mod combine;
mod plan;
mod run;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use combine::Combine;
pub use plan::{plan, Plan};

use crate::cache::ModelCache;
use crate::handler::{Handler, Runtime};
use crate::model::{build_with, BuildError, Built, ModelKey, ModelRegistry, ModelSpec, RuntimeParts};
use crate::schema::{Schema, TensorMetadata};

/// A pipeline as its options describe it.
#[derive(Debug, Clone, Default)]
pub struct PipelineSpec {
    /// The pipeline's name (errors say `pipeline '<name>'`).
    pub name: String,
    /// In any order; dependencies decide the order they run in. The last
    /// one listed answers for the pipeline.
    pub steps: Vec<StepSpec>,
}

/// One step: a model of the server, or an ensemble of earlier outputs.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Unique in the pipeline; errors and other steps' sources name it.
    pub name: String,
    pub kind: StepKind,
    /// Where the step's inputs come from, `(field, source)`: a field not
    /// listed reads the column of its own name. A source is a pipeline
    /// input or step output name (`score`), a step's named output
    /// (`classify.label`) or a step's first output (`classify`).
    pub inputs: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    /// A model of the server, by name and optional version.
    Model { model: String, version: Option<String> },
    /// Combines the first output of each source (sources as in
    /// [`StepSpec::inputs`]), row by row.
    Ensemble { combine: Combine, of: Vec<String>, weights: Option<Vec<f64>> },
}

/// What a step needs of the model it runs: its handler and what it reads
/// and answers. Taken from the server's models when the pipeline is built.
#[derive(Clone)]
pub struct StepModel {
    pub handler: Arc<dyn Handler>,
    pub schema: Schema,
    /// Declared outputs; when empty, the step answers one column named after the step.
    pub outputs: Vec<TensorMetadata>,
    /// Its artifact cache, when it has one (a model without path parameters: one artifact).
    pub cache: Option<Arc<ModelCache>>,
    /// Its path parameters: a step's model must have none.
    pub params: Vec<String>,
    /// Its handler streams: a step's model must not.
    pub stream: bool,
    /// Rows its handler takes at once (the model's `maxSize`): a larger
    /// batch reaches it in slices of this size.
    pub max_size: usize,
}

/// Finds a step's model by name and version.
pub trait StepModels {
    fn step_model(&self, name: &str, version: Option<&str>) -> Option<StepModel>;
}

/// The models of a server being configured: the version named, else the
/// unversioned model, else the one of that name registered last.
impl StepModels for ModelRegistry {
    fn step_model(&self, name: &str, version: Option<&str>) -> Option<StepModel> {
        let model = self
            .get(name, version)
            .or_else(|| version.is_none().then(|| self.iter().filter(|m| m.name == name).last()).flatten())?;
        let step = StepModel::of(&model.runtime, &model.schema, &model.outputs, model.cache.clone(), &model.params);
        Some(StepModel { max_size: model.batch.max_size, ..step })
    }
}

impl StepModel {
    /// A step over a model's parts; a streaming runtime has no handler to
    /// call, so the step gets one that says so (and [`plan`] refuses it first).
    pub fn of(
        runtime: &Runtime,
        schema: &Schema,
        outputs: &[TensorMetadata],
        cache: Option<Arc<ModelCache>>,
        params: &[String],
    ) -> StepModel {
        let (handler, stream): (Arc<dyn Handler>, bool) = match runtime {
            Runtime::Unary(handler) => (Arc::clone(handler), false),
            Runtime::Stream(_) => (
                Arc::new(|_: crate::handler::Batch| async {
                    Err::<crate::handler::Predictions, _>(crate::handler::HandlerError::new(
                        "a streaming model cannot be a step",
                    ))
                }),
                true,
            ),
        };
        let (schema, outputs, params) = (schema.clone(), outputs.to_vec(), params.to_vec());
        StepModel { handler, schema, outputs, cache, params, stream, max_size: usize::MAX }
    }
}

/// A pipeline that could not be built: the message names the pipeline, the
/// step and the column.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("pipeline '{pipeline}': {message}")]
pub struct PipelineError {
    pub pipeline: String,
    pub message: String,
}

/// Builds the pipeline as a model: `inputs` (else the first step's
/// fields) is its schema, given to `model` to make the rest of its spec;
/// its outputs, when the spec declares none, are the last step's; its
/// runtime runs the steps.
pub fn build(
    pipeline: &PipelineSpec,
    inputs: Option<&Schema>,
    models: &dyn StepModels,
    model: impl FnOnce(Schema) -> Result<ModelSpec, String>,
) -> Result<Built, BuildError> {
    let plan = plan(pipeline, inputs, models).map_err(|e| BuildError::Runtime(e.to_string()))?;
    let mut spec = model(plan.schema().clone()).map_err(BuildError::Runtime)?;
    if spec.outputs.is_empty() {
        spec.outputs = plan.outputs().to_vec();
    }
    let handler: Arc<dyn Handler> = Arc::new(run::PipelineHandler::new(plan));
    let mut built = build_with(spec, RuntimeParts::runtime(handler))?;
    built.endpoint.model.uses = uses(pipeline);
    Ok(built)
}

/// The models a pipeline's steps run, as their steps name them: while the
/// pipeline serves, they cannot be removed (the service refuses; a step
/// holds its model's handler, and a removed model's runtime is stopped).
pub fn uses(pipeline: &PipelineSpec) -> Vec<ModelKey> {
    let mut keys: Vec<ModelKey> = Vec::new();
    for step in &pipeline.steps {
        if let StepKind::Model { model, version } = &step.kind {
            let key = ModelKey { name: model.clone(), version: version.clone() };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}
