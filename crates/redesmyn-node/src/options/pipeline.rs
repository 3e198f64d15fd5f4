//! A pipeline as TypeScript describes it: `{ kind: 'pipeline', steps }`,
//! each step a model of the server by name (with the inputs it maps) or an
//! ensemble of earlier outputs; converted to the core's `PipelineSpec`.

use std::collections::HashMap;

use napi_derive::napi;
use redesmyn::pipeline::{Combine, PipelineSpec, StepKind, StepSpec};

use crate::error::{BindingError, Result};

/// A pipeline's steps; the core checks and runs them (crates/redesmyn/src/pipeline).
#[napi(object, object_to_js = false)]
pub struct PipelineRuntimeSpec {
    #[napi(ts_type = "'pipeline'")]
    pub kind: String,
    pub steps: Vec<PipelineStepSpec>,
}

/// One step: `model` (a registered model's name, and `version`), or
/// `combine` (`mean`, `vote`, `weighted_sum`, `concat`) over `of`.
#[napi(object, object_to_js = false)]
pub struct PipelineStepSpec {
    pub name: String,
    pub model: Option<String>,
    pub version: Option<String>,
    /// The step's field → the column it reads (`score`, `classify.label`, `classify`).
    pub inputs: Option<HashMap<String, String>>,
    pub combine: Option<String>,
    pub of: Option<Vec<String>>,
    pub weights: Option<Vec<f64>>,
}

impl PipelineRuntimeSpec {
    /// The core's spec, for the pipeline named `name`.
    pub fn to_spec(&self, name: String) -> Result<PipelineSpec> {
        let steps = self.steps.iter().map(|s| s.to_spec(&name)).collect::<Result<_>>()?;
        Ok(PipelineSpec { name, steps })
    }
}

impl PipelineStepSpec {
    fn to_spec(&self, pipeline: &str) -> Result<StepSpec> {
        let invalid = |m: String| BindingError::invalid(format!("pipeline '{pipeline}': step '{}': {m}", self.name));
        let kind = match (&self.model, &self.combine) {
            (Some(model), None) => StepKind::Model { model: model.clone(), version: self.version.clone() },
            (None, Some(combine)) => StepKind::Ensemble {
                combine: Combine::parse(combine).ok_or_else(|| {
                    invalid(format!("unknown combine '{combine}': expected mean, vote, weighted_sum or concat"))
                })?,
                of: self.of.clone().unwrap_or_default(),
                weights: self.weights.clone(),
            },
            _ => return Err(invalid("a step names a model or combines outputs ('combine' and 'of'), not both".into())),
        };
        let mut inputs: Vec<(String, String)> = self.inputs.clone().unwrap_or_default().into_iter().collect();
        inputs.sort();
        Ok(StepSpec { name: self.name.clone(), kind, inputs })
    }
}
