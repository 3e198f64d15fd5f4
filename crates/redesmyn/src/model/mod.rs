//! The model registry: models by name and version, each with its schema,
//! batching, handler (the runtime that predicts) and optional artifact cache.
//!
//! A [`Model`] is what the service serves; an [`Endpoint`] is a custom REST
//! path bound to one. Every model has a name, so protocols that address
//! models by name and version (V2 REST and gRPC) find the same entry an
//! endpoint path reaches. Parameters (the `{param}` segments of an endpoint
//! path) select a variant of a model: they key its queues and its cache.
//! The versions of one name share traffic weights ([`Traffic`]); the live
//! set of served models is the service's (`service.rs`), which models join
//! and leave while serving.

mod builder;
mod endpoint;
mod traffic;

use std::sync::Arc;

pub use builder::{
    build, build_with, BatchSettings, BuildError, Built, CacheSpec, ModelSpec, RuntimeFactory, RuntimeParts,
    RuntimeResources, STREAM_CONCURRENCY,
};
pub use endpoint::{model_name_for, parse_path, Endpoint, PathError, RESERVED_PATHS};
pub use traffic::{key_point, Traffic, TrafficError};

use crate::batch::BatchConfig;
use crate::cache::ModelCache;
use crate::handler::Runtime;
use crate::prediction_cache::PredictionCacheConfig;
use crate::schema::Schema;
use crate::schema::TensorMetadata;

/// One model: what it accepts, how its requests are batched, what predicts.
pub struct Model {
    /// Unique among a server's models (with `version`); see [`model_name_for`].
    pub name: String,
    /// `None` for the one unversioned model of a name.
    pub version: Option<String>,
    pub schema: Schema,
    pub batch: BatchConfig,
    /// What predicts: a handler, or a streaming handler.
    pub runtime: Runtime,
    /// The model variants its parameters select, if any.
    pub cache: Option<Arc<ModelCache>>,
    /// Names of the parameters that select a variant, in order.
    pub params: Vec<String>,
    /// Declared output tensors (V2 metadata and output names); empty when
    /// undeclared, as a handler's outputs are only known once it answers.
    pub outputs: Vec<TensorMetadata>,
    /// Declared input tensors for V2 metadata (a model repository's
    /// `inputs`, e.g. one `[-1, 4]` tensor read as four fields); empty when
    /// undeclared, and metadata lists the schema's fields.
    pub inputs: Vec<TensorMetadata>,
    /// Answers remembered per row (off when `None`); see [`crate::prediction_cache`].
    pub prediction_cache: Option<PredictionCacheConfig>,
    /// The models a pipeline runs as its steps (empty for any other model):
    /// they cannot be removed while it serves.
    pub uses: Vec<ModelKey>,
}

/// How the registry addresses a model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelKey {
    pub name: String,
    pub version: Option<String>,
}

impl Model {
    pub fn key(&self) -> ModelKey {
        ModelKey { name: self.name.clone(), version: self.version.clone() }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("a model named '{name}'{} is already registered", .version.as_deref().map(|v| format!(" (version {v})")).unwrap_or_default())]
    Duplicate { name: String, version: Option<String> },
}

/// The models of a server, in registration order.
#[derive(Default)]
pub struct ModelRegistry {
    models: Vec<Model>,
}

impl ModelRegistry {
    pub fn new() -> Self {
        ModelRegistry::default()
    }

    pub fn insert(&mut self, model: Model) -> Result<ModelKey, RegistryError> {
        if self.get(&model.name, model.version.as_deref()).is_some() {
            return Err(RegistryError::Duplicate { name: model.name, version: model.version });
        }
        let key = model.key();
        self.models.push(model);
        Ok(key)
    }

    /// `base`, or `base-2`, `base-3`, … : the first name no model has yet.
    /// Endpoint paths whose derived names collide still register, as before
    /// models had names.
    pub fn free_name(&self, base: &str) -> String {
        let taken = |name: &str| self.models.iter().any(|m| m.name == name);
        if !taken(base) {
            return base.to_string();
        }
        (2..).map(|n| format!("{base}-{n}")).find(|name| !taken(name)).unwrap_or_else(|| base.to_string())
    }

    pub fn get(&self, name: &str, version: Option<&str>) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name && m.version.as_deref() == version)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.models.iter()
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

impl IntoIterator for ModelRegistry {
    type Item = Model;
    type IntoIter = std::vec::IntoIter<Model>;

    fn into_iter(self) -> Self::IntoIter {
        self.models.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{Batch, Handler, HandlerError, Predictions};

    fn model(name: &str, version: Option<&str>) -> Model {
        let handler: Arc<dyn Handler> =
            Arc::new(|b: Batch| async move { Ok::<_, HandlerError>(Predictions::Columns(b.frame)) });
        Model {
            name: name.into(),
            version: version.map(Into::into),
            schema: Schema::new(vec![crate::schema::Field::new("a", crate::schema::FieldType::Bool)]).unwrap(),
            batch: BatchConfig::default(),
            runtime: handler.into(),
            cache: None,
            params: Vec::new(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            prediction_cache: None,
            uses: Vec::new(),
        }
    }

    #[test]
    fn models_are_found_by_name_and_version_and_never_registered_twice() {
        let mut registry = ModelRegistry::new();
        registry.insert(model("iris", None)).unwrap();
        registry.insert(model("iris", Some("2"))).unwrap();
        assert!(registry.get("iris", Some("2")).is_some());
        assert!(registry.get("iris", Some("3")).is_none());
        assert_eq!(
            registry.insert(model("iris", None)),
            Err(RegistryError::Duplicate { name: "iris".into(), version: None })
        );
        assert_eq!(registry.free_name("iris"), "iris-2");
        assert_eq!(registry.free_name("sum"), "sum");
    }
}
