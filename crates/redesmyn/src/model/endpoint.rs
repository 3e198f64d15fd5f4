//! An endpoint: a POST path with `{param}` segments, the schema of its
//! records, its batching and its handler.

use std::sync::Arc;

use crate::batch::BatchConfig;
use crate::cache::ModelCache;
use crate::handler::Handler;
use crate::schema::Schema;

/// Paths the server answers itself.
pub const RESERVED_PATHS: &[&str] = &["/health/live", "/health/ready", "/metrics"];

pub struct Endpoint {
    pub path: String,
    pub schema: Schema,
    pub batch: BatchConfig,
    pub handler: Arc<dyn Handler>,
    /// The model variants its path parameters select, if any.
    pub cache: Option<Arc<ModelCache>>,
    param_names: Vec<String>,
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
        handler: Arc<dyn Handler>,
    ) -> Result<Self, PathError> {
        let path = path.into();
        let param_names = parse_path(&path)?;
        Ok(Endpoint { path, schema, batch, handler, cache: None, param_names })
    }

    pub fn with_cache(mut self, cache: Arc<ModelCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Names of the path parameters, in path order.
    pub fn param_names(&self) -> &[String] {
        &self.param_names
    }
}

/// Checks a path template and returns its parameter names.
pub fn parse_path(path: &str) -> Result<Vec<String>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute(path.into()));
    }
    if RESERVED_PATHS.contains(&path.trim_end_matches('/')) {
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
    }
}
