//! The REST JSON shapes of the protocol. Requests borrow from the body:
//! each input's `data` stays raw JSON text until its datatype is known, and
//! is then read once straight into a typed buffer (see [`super::tensor`]).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::tensor::Values;

/// Request, input, output and response `parameters`.
pub type Parameters = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Deserialize)]
pub struct InferenceRequest<'a> {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(borrow)]
    pub inputs: Vec<RequestInput<'a>>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

#[derive(Debug, Deserialize)]
pub struct RequestInput<'a> {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    /// Flat or nested row-major values; absent for binary inputs.
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// One output the client asks for; `parameters.binary_data` asks for it in
/// binary form.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

#[derive(Debug, Serialize)]
pub struct InferenceResponse<'a> {
    pub model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a Parameters>,
    pub outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ResponseOutput<'a> {
    pub name: &'a str,
    pub datatype: &'static str,
    pub shape: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a Values>,
}

/// `GET /v2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

pub use crate::schema::TensorMetadata;

/// `GET /v2/models/{m}[/versions/{v}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// The error body every V2 server answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
