//! The Python runtime factory: a handler `'module:function'` (a generator
//! function when it streams), an optional loader for artifact-cache
//! variants, in-process or in a pool of worker processes. The core's model
//! builder (`redesmyn::model::build`) calls it at registration, so a wrong
//! reference fails then.

use std::sync::Arc;

use redesmyn::cache::Loader;
use redesmyn::handler::Handler;
use redesmyn::metrics::PoolStats;
use redesmyn::model::{ModelSpec, RuntimeFactory, RuntimeParts, RuntimeResources};
use redesmyn::stream::StreamHandler;
use redesmyn::Runtime;

use crate::workers::{WorkerLoader, WorkerOptions, WorkerPool};
use crate::{PyHandler, PyLoader, PyStreamHandler, Target};

/// How a model predicts in Python.
#[derive(Debug, Clone, Default)]
pub struct PythonRuntime {
    /// `'module:function'`.
    pub handler: String,
    /// `'module:function'` that loads an artifact, with a model cache.
    pub loader: Option<String>,
    /// The handler is a generator (or async generator) function.
    pub stream: bool,
    /// Worker processes instead of in-process: their options, less the
    /// models each keeps (the model cache's size).
    pub workers: Option<WorkerOptions>,
}

impl RuntimeFactory for PythonRuntime {
    fn make(&self, spec: &ModelSpec) -> Result<RuntimeParts, String> {
        let handler = Target::parse(&self.handler).map_err(|e| e.to_string())?;
        let loader = self.loader.as_deref().map(Target::parse).transpose().map_err(|e| e.to_string())?;
        match &self.workers {
            Some(workers) if workers.count > 0 => {
                let endpoint = |e: &dyn std::fmt::Display| format!("endpoint '{}': {e}", spec.path);
                if self.stream {
                    return Err(endpoint(&"a streaming Python handler runs in-process only (no workers)"));
                }
                // Each worker keeps as many models as the endpoint's cache.
                let models = spec.cache.as_ref().map_or(1, |c| c.config.max_size as usize);
                let options = WorkerOptions { models: models.max(1), ..workers.clone() };
                let pool = WorkerPool::start(&handler, loader.as_ref(), &options).map_err(|e| endpoint(&e))?;
                let runtime: Arc<dyn Handler> = Arc::new(pool.handler());
                let loader = loader.map(|_| Arc::new(WorkerLoader) as Arc<dyn Loader>);
                Ok(RuntimeParts {
                    parallelism: Some(options.count),
                    resources: Some(Arc::new(Pool(pool))),
                    ..RuntimeParts::runtime(runtime).with_loader(loader)
                })
            }
            _ => {
                let runtime: Runtime = if self.stream {
                    let handler: Arc<dyn StreamHandler> =
                        Arc::new(PyStreamHandler::new(handler).map_err(|e| e.to_string())?);
                    handler.into()
                } else {
                    let handler: Arc<dyn Handler> = Arc::new(PyHandler::new(handler).map_err(|e| e.to_string())?);
                    handler.into()
                };
                let loader = match loader {
                    Some(loader) => {
                        Some(Arc::new(PyLoader::new(loader).map_err(|e| e.to_string())?) as Arc<dyn Loader>)
                    }
                    None => None,
                };
                Ok(RuntimeParts::runtime(runtime).with_loader(loader))
            }
        }
    }
}

/// A worker pool as the server keeps it: counted in `/metrics`, shut down after the stop.
struct Pool(Arc<WorkerPool>);

impl RuntimeResources for Pool {
    fn stats(&self) -> Option<Arc<dyn PoolStats>> {
        Some(self.0.stats())
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}
