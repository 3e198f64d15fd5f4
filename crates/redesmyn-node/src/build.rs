//! An endpoint's model built from what JavaScript passed: the spec
//! converted, the runtime made by its factory (TypeScript handlers here,
//! Python and ONNX in their crates), assembled by the core's model builder,
//! which holds the rules of what combines.

use redesmyn::model::{self, model_name_for, Built};
use redesmyn::pipeline::{self, StepModels};

use crate::error::{BindingError, Result};
use crate::options::{EndpointSpec, RuntimeSpec};

/// Builds an endpoint's model: the spec converted, the runtime made by its
/// factory, assembled by the core's model builder (which holds the rules).
/// A pipeline's steps are the server's models, found in `models`; its
/// inputs are its fields, or when it has none its first step's.
pub fn build(spec: &EndpointSpec, runtime: RuntimeSpec<'_>, models: &dyn StepModels) -> Result<Built> {
    if let RuntimeSpec::Pipeline(steps) = &runtime {
        let name = spec.name.clone().unwrap_or_else(|| model_name_for(&spec.path));
        let inputs = (!spec.fields.is_empty()).then(|| spec.schema()).transpose()?;
        let to_model = |schema| spec.to_model_spec_with(schema).map_err(|e| e.to_string());
        return pipeline::build(&steps.to_spec(name)?, inputs.as_ref(), models, to_model)
            .map_err(|e| BindingError::invalid(e.to_string()));
    }
    let model = spec.to_model_spec()?;
    let built = match runtime {
        RuntimeSpec::Js(js) => model::build_with(model, js.into_parts(&spec.path)?),
        RuntimeSpec::JsStream(js) => model::build_with(model, js.into_parts(&spec.path)?),
        RuntimeSpec::Python(py) => model::build(model, &py.factory()),
        RuntimeSpec::Onnx(onnx) => model::build(model, &onnx.factory()),
        RuntimeSpec::Pipeline(_) => unreachable!("a pipeline is built above"),
    };
    built.map_err(|e| BindingError::invalid(e.to_string()))
}
