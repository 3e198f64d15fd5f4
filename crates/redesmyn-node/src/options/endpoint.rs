//! An endpoint as TypeScript describes it: path, record fields, batching
//! and cache; converted to the core's model spec.

use std::time::Duration;

use napi_derive::napi;
use redesmyn::model::{BatchSettings, ModelSpec};
use redesmyn::schema::{Field, FieldType, Numeric, Schema, TensorMetadata};

use super::cache::CacheSpec;
use super::prediction_cache::PredictionCacheSpec;
use crate::error::{BindingError, Result};

fn invalid(message: String) -> BindingError {
    BindingError::Invalid(message)
}

#[napi(object)]
pub struct FieldSpec {
    pub name: String,
    /// `bool`, `str`, a numeric type (`i8` … `f64`), `list` or `array`.
    #[napi(js_name = "type")]
    pub kind: String,
    /// Item type of a `list` or `array`.
    pub item: Option<String>,
    /// Width of an `array`.
    pub size: Option<u32>,
    pub nullable: Option<bool>,
}

#[napi(object)]
pub struct BatchSpec {
    pub max_size: Option<u32>,
    pub max_delay_ms: Option<f64>,
    pub max_concurrent: Option<u32>,
    pub max_queue: Option<u32>,
    pub timeout_ms: Option<f64>,
    /// Split the queue evenly over free batch slots (default: on with Python workers).
    pub spread: Option<bool>,
    /// When a batch fails, run it again in parts so that only the requests
    /// that cause the failure fail (default on).
    pub isolate_poison: Option<bool>,
}

/// An output tensor the model declares (V2 metadata and output names).
#[napi(object)]
pub struct TensorSpec {
    pub name: String,
    /// A V2 datatype: `FP32`, `INT64`, `BYTES`, `BOOL`, …
    pub datatype: String,
    /// `-1` for a variable dimension, e.g. `[-1]`.
    pub shape: Vec<i64>,
}

#[napi(object)]
pub struct EndpointSpec {
    pub path: String,
    /// The V2 model name (default: derived from the path).
    pub name: Option<String>,
    /// The V2 model version.
    pub version: Option<String>,
    pub outputs: Option<Vec<TensorSpec>>,
    /// Declared input tensors for V2 metadata (default: the fields).
    pub inputs: Option<Vec<TensorSpec>>,
    pub fields: Vec<FieldSpec>,
    pub batch: Option<BatchSpec>,
    pub cache: Option<CacheSpec>,
    /// Answers remembered per row (off when absent).
    pub prediction_cache: Option<PredictionCacheSpec>,
}

fn numeric(name: &str, field: &str) -> Result<Numeric> {
    Numeric::parse(name).ok_or_else(|| invalid(format!("field '{field}': unknown numeric type '{name}'")))
}

impl FieldSpec {
    fn to_field(&self) -> Result<Field> {
        let item = || -> Result<Numeric> {
            let item = self
                .item
                .as_deref()
                .ok_or_else(|| invalid(format!("field '{}': a {} needs an item type", self.name, self.kind)))?;
            numeric(item, &self.name)
        };
        let ty = match self.kind.as_str() {
            "bool" => FieldType::Bool,
            "str" => FieldType::Str,
            "list" => FieldType::List(item()?),
            "array" => {
                let size = self.size.ok_or_else(|| invalid(format!("field '{}': an array needs a size", self.name)))?;
                FieldType::Array(item()?, size as usize)
            }
            other => FieldType::Number(numeric(other, &self.name)?),
        };
        Ok(Field { name: self.name.clone(), ty, nullable: self.nullable.unwrap_or(false) })
    }
}

impl EndpointSpec {
    pub fn schema(&self) -> Result<Schema> {
        let fields = self.fields.iter().map(FieldSpec::to_field).collect::<Result<Vec<_>>>()?;
        Schema::new(fields).map_err(|e| invalid(format!("endpoint '{}': {e}", self.path)))
    }
}

impl EndpointSpec {
    /// The declared outputs, checked: known datatypes, unique names.
    pub fn outputs(&self) -> Result<Vec<TensorMetadata>> {
        self.tensors(self.outputs.as_deref(), "output")
    }

    /// The declared inputs, checked as the outputs are.
    pub fn inputs(&self) -> Result<Vec<TensorMetadata>> {
        self.tensors(self.inputs.as_deref(), "input")
    }

    fn tensors(&self, declared: Option<&[TensorSpec]>, what: &str) -> Result<Vec<TensorMetadata>> {
        let mut outputs: Vec<TensorMetadata> = Vec::new();
        for o in declared.into_iter().flatten() {
            if redesmyn::v2::Datatype::parse(&o.datatype).is_none() {
                return Err(invalid(format!(
                    "endpoint '{}': {what} '{}' has unknown datatype '{}'",
                    self.path, o.name, o.datatype
                )));
            }
            if outputs.iter().any(|d| d.name == o.name) {
                return Err(invalid(format!("endpoint '{}': {what} '{}' is declared twice", self.path, o.name)));
            }
            outputs.push(TensorMetadata { name: o.name.clone(), datatype: o.datatype.clone(), shape: o.shape.clone() });
        }
        Ok(outputs)
    }

    /// The core's model spec (the runtime comes from a factory).
    pub fn to_model_spec(&self) -> Result<ModelSpec> {
        self.to_model_spec_with(self.schema()?)
    }

    /// The core's model spec over `schema` (a pipeline's, which its steps give).
    pub fn to_model_spec_with(&self, schema: Schema) -> Result<ModelSpec> {
        Ok(ModelSpec {
            path: self.path.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            schema,
            batch: self.batch.as_ref().map(BatchSpec::settings).unwrap_or_default(),
            outputs: self.outputs()?,
            inputs: self.inputs()?,
            cache: self.cache.as_ref().map(|c| c.to_spec(&self.path)).transpose()?,
            prediction_cache: self.prediction_cache.as_ref().map(|p| p.config(&self.path)).transpose()?,
        })
    }
}

impl BatchSpec {
    fn settings(&self) -> BatchSettings {
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1e3);
        BatchSettings {
            max_size: self.max_size.map(|v| v as usize),
            max_delay: self.max_delay_ms.map(ms),
            max_concurrent: self.max_concurrent.map(|v| v as usize),
            max_queue: self.max_queue.map(|v| v as usize),
            timeout: self.timeout_ms.map(ms),
            spread: self.spread,
            isolate: self.isolate_poison,
        }
    }
}
