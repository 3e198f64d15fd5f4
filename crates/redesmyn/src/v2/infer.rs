//! A V2 inference through the inference service, shared by the REST and
//! gRPC front doors: model parameters from the request's `parameters`
//! object → input tensors into the schema's columns → the model's queue
//! and batches (the same ones native requests ride in) → output tensors,
//! selected as the request asks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::output::{outputs_from_predictions, select_outputs, OutputTensor};
use super::tensor::InputTensor;
use super::wire::{ModelMetadata, Parameters, RequestOutput, ServerMetadata};
use super::{frame, metadata};
use crate::batch::{Answer, Liveness};
use crate::error::RequestError;
use crate::handler::Params;
use crate::service::{InferenceRequest, ServedModel};

/// The extensions `GET /v2` and gRPC `ServerMetadata` announce.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "parameters"];

/// What the server says about itself.
pub fn server_metadata() -> ServerMetadata {
    ServerMetadata {
        name: "redesmyn".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
    }
}

/// A model's metadata: its declared inputs (else its schema's fields), its declared outputs.
pub fn model_metadata(model: &ServedModel) -> ModelMetadata {
    let key = model.key();
    let mut m =
        metadata::model(&key.name, key.version.iter().cloned().collect(), model.schema(), model.outputs().to_vec());
    if !model.inputs().is_empty() {
        m.inputs = model.inputs().to_vec();
    }
    m
}

/// A parsed V2 request, whichever transport brought it.
pub struct Request {
    pub parameters: Parameters,
    pub inputs: Vec<InputTensor>,
    pub outputs: Option<Vec<RequestOutput>>,
    /// Outputs go binary unless an output says otherwise (REST only).
    pub binary_output: bool,
    pub arrived: Instant,
    pub client: Option<Arc<dyn Liveness>>,
    /// The client's own deadline (gRPC `grpc-timeout`).
    pub deadline: Option<Duration>,
    /// The request's span, when it is traced.
    pub trace: Option<crate::telemetry::SpanContext>,
}

/// The answer: the selected outputs (with their binary flag) and the
/// batch's timing, `None` for a request with no rows.
pub struct Inferred {
    pub outputs: Vec<(OutputTensor, bool)>,
    pub answer: Option<Answer>,
}

/// The model's parameter values: `from_version` (a version standing for the
/// model's single parameter) or the request's `parameters` by name. Strings
/// are taken as they are, numbers and booleans as their JSON text; a
/// missing one fails naming every missing name.
pub fn params(
    model: &ServedModel,
    parameters: &Parameters,
    from_version: Option<(String, String)>,
) -> Result<Params, RequestError> {
    let mut values = Vec::with_capacity(model.param_names().len());
    let mut missing = Vec::new();
    for name in model.param_names() {
        let value = match (&from_version, parameters.get(name)) {
            (Some((n, v)), _) if n == name => Some(v.clone()),
            (_, Some(serde_json::Value::String(s))) => Some(s.clone()),
            (_, Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)))) => Some(v.to_string()),
            (_, Some(_)) => {
                return Err(RequestError::InvalidParam(format!("parameter '{name}' must be a string or a number")))
            }
            (_, None) => None,
        };
        match value {
            Some(v) => values.push((name.clone(), v)),
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(RequestError::InvalidParam(format!(
            "model '{}' needs the parameters {} in the request's \"parameters\" object",
            model.key().name,
            super::error::names(missing)
        )));
    }
    Ok(Params::new(values))
}

/// Runs `request` through `model` with parameter values `params`.
pub async fn infer(model: &ServedModel, params: Params, request: Request) -> Result<Inferred, RequestError> {
    let Request { inputs, outputs, binary_output, arrived, client, deadline, trace, .. } = request;
    let inference = InferenceRequest { params, arrived, client, trace };
    let answer = model
        .predict_within(inference, deadline, |schema| frame::to_frame(schema, inputs).map_err(RequestError::from))
        .await?;
    let declared: Vec<String> = model.declared_outputs().iter().map(|o| o.name.clone()).collect();
    let tensors = match &answer {
        Some(answer) => outputs_from_predictions(&answer.predictions, &declared)?,
        None => Vec::new(),
    };
    let outputs = select_outputs(tensors, outputs.as_deref(), binary_output)?;
    Ok(Inferred { outputs, answer })
}
