//! An endpoint: a custom REST path (POST, `{param}` segments) bound to a
//! model of the registry. Its path names the model unless told otherwise.

use std::sync::Arc;

use super::Model;
use crate::batch::BatchConfig;
use crate::cache::ModelCache;
use crate::handler::Runtime;
use crate::prediction_cache::PredictionCacheConfig;
use crate::schema::Schema;
use crate::schema::TensorMetadata;

/// Paths the server answers itself.
pub const RESERVED_PATHS: &[&str] = &["/health/live", "/health/ready", "/metrics", "/v2"];

pub struct Endpoint {
    pub path: String,
    /// The model the path serves; its parameters are the path's `{param}` segments.
    pub model: Model,
    /// The model was named explicitly ([`Endpoint::with_model_name`]): a
    /// clash is an error rather than a `-2` suffix.
    pub named: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("endpoint path '{0}' must start with '/'")]
    NotAbsolute(String),
    #[error("endpoint path '{path}': segment '{segment}' must be a literal or a whole '{{name}}' parameter")]
    BadSegment { path: String, segment: String },
    #[error("endpoint path '{path}': parameter '{name}' appears twice")]
    DuplicateParam { path: String, name: String },
    #[error("endpoint path '{0}' is reserved by the server")]
    Reserved(String),
}

impl Endpoint {
    pub fn new(
        path: impl Into<String>,
        schema: Schema,
        batch: BatchConfig,
        runtime: impl Into<Runtime>,
    ) -> Result<Self, PathError> {
        let path = path.into();
        let params = parse_path(&path)?;
        let model = Model {
            name: model_name_for(&path),
            version: None,
            schema,
            batch,
            runtime: runtime.into(),
            cache: None,
            params,
            outputs: Vec::new(),
            inputs: Vec::new(),
            prediction_cache: None,
            uses: Vec::new(),
        };
        Ok(Endpoint { path, model, named: false })
    }

    pub fn with_cache(mut self, cache: Arc<ModelCache>) -> Self {
        self.model.cache = Some(cache);
        self
    }

    /// Remembers the model's answers row by row (see [`crate::prediction_cache`]).
    pub fn with_prediction_cache(mut self, config: PredictionCacheConfig) -> Self {
        self.model.prediction_cache = Some(config);
        self
    }

    /// Names the model other than by its path (see [`model_name_for`]).
    pub fn with_model_name(mut self, name: impl Into<String>) -> Self {
        self.model.name = name.into();
        self.named = true;
        self
    }

    /// The model's version, as V2 clients address it (`/versions/{v}`).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.model.version = Some(version.into());
        self
    }

    /// Declares the output tensors: their names replace the default
    /// `output-0`, and V2 metadata lists them.
    pub fn with_outputs(mut self, outputs: Vec<TensorMetadata>) -> Self {
        self.model.outputs = outputs;
        self
    }

    /// Declares the input tensors V2 metadata lists instead of the schema's
    /// fields (what a client sends, when that differs from the fields).
    pub fn with_inputs(mut self, inputs: Vec<TensorMetadata>) -> Self {
        self.model.inputs = inputs;
        self
    }

    /// Names of the path parameters, in path order.
    pub fn param_names(&self) -> &[String] {
        &self.model.params
    }
}

/// The model name an endpoint path gives: its literal segments joined with
/// `-` (`/predictions/iris/{run_id}` is `predictions-iris`, `/sum` is `sum`),
/// or `model` for a path without any. The registry adds `-2`, `-3`, … when
/// two paths give the same name.
pub fn model_name_for(path: &str) -> String {
    let literals: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && !s.starts_with('{')).collect();
    if literals.is_empty() {
        "model".into()
    } else {
        literals.join("-")
    }
}

/// Checks a path template and returns its parameter names.
pub fn parse_path(path: &str) -> Result<Vec<String>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute(path.into()));
    }
    if RESERVED_PATHS.contains(&path.trim_end_matches('/')) || path.starts_with("/v2/") {
        return Err(PathError::Reserved(path.into()));
    }
    let mut names: Vec<String> = Vec::new();
    for segment in path[1..].split('/') {
        let bad = || PathError::BadSegment { path: path.into(), segment: segment.into() };
        if let Some(inner) = segment.strip_prefix('{') {
            let name = inner.strip_suffix('}').ok_or_else(bad)?;
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(bad());
            }
            if names.iter().any(|n| n == name) {
                return Err(PathError::DuplicateParam { path: path.into(), name: name.into() });
            }
            names.push(name.into());
        } else if segment.contains(['{', '}', '*', '?', '#', '%']) {
            return Err(bad());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/predictions/iris/{run_id}/{model_id}").unwrap(), vec!["run_id", "model_id"]);
        assert_eq!(parse_path("/a").unwrap(), Vec::<String>::new());
        assert!(matches!(parse_path("a"), Err(PathError::NotAbsolute(_))));
        assert!(matches!(parse_path("/a/{x}/{x}"), Err(PathError::DuplicateParam { .. })));
        assert!(matches!(parse_path("/a/x{y}"), Err(PathError::BadSegment { .. })));
        assert!(matches!(parse_path("/a/{1x}"), Err(PathError::BadSegment { .. })));
        assert!(matches!(parse_path("/health/ready"), Err(PathError::Reserved(_))));
        assert!(matches!(parse_path("/v2/models/x/infer"), Err(PathError::Reserved(_))));
    }

    #[test]
    fn a_path_names_its_model_by_its_literal_segments() {
        assert_eq!(model_name_for("/predictions/iris/{run_id}/{model_id}"), "predictions-iris");
        assert_eq!(model_name_for("/sum"), "sum");
        assert_eq!(model_name_for("/{id}"), "model");
        assert_eq!(model_name_for("/a/{x}/b/"), "a-b");
    }
}
