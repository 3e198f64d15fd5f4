//! An endpoint's model built from what JavaScript passed: the spec
//! converted, the runtime made by its factory (TypeScript handlers here,
//! Python and ONNX in their crates), assembled by the core's model builder,
//! which holds the rules of what combines.

use redesmyn::model::{self, Built};

use crate::error::{BindingError, Result};
use crate::options::{EndpointSpec, RuntimeSpec};

/// Builds an endpoint's model: the spec converted, the runtime made by its
/// factory, assembled by the core's model builder (which holds the rules).
pub fn build(spec: &EndpointSpec, runtime: RuntimeSpec<'_>) -> Result<Built> {
    let model = spec.to_model_spec()?;
    let built = match runtime {
        RuntimeSpec::Js(js) => model::build_with(model, js.into_parts(&spec.path)?),
        RuntimeSpec::JsStream(js) => model::build_with(model, js.into_parts(&spec.path)?),
        RuntimeSpec::Python(py) => model::build(model, &py.factory()),
        RuntimeSpec::Onnx(onnx) => model::build(model, &onnx.factory()),
    };
    built.map_err(|e| BindingError::invalid(e.to_string()))
}
