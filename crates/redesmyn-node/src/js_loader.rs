//! A TypeScript model loader as a core [`Loader`]. Models stay in a map on
//! the JavaScript side; Rust holds their ids. When the cache lets go of a
//! model (eviction, replacement) and no running batch holds it, its id is
//! released and JavaScript drops the model.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use redesmyn::cache::{Loader, Model};
use redesmyn::Params;

/// `(path, params) => Promise<{ id } | { error }>`
pub type LoadFn = ThreadsafeFunction<
    FnArgs<(String, std::collections::HashMap<String, String>)>,
    Promise<LoadOutput>,
    FnArgs<(String, std::collections::HashMap<String, String>)>,
    Status,
    false,
    true,
>;
/// `(id) => void`
pub type ReleaseFn = ThreadsafeFunction<f64, (), f64, Status, false, true>;

#[napi_derive::napi(object)]
pub struct LoadOutput {
    pub id: Option<f64>,
    pub error: Option<String>,
}

/// A JavaScript model, by id.
pub struct JsModel {
    pub id: f64,
    release: Arc<ReleaseFn>,
}

impl Drop for JsModel {
    fn drop(&mut self) {
        self.release.call(self.id, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

pub struct JsLoader {
    load: Arc<LoadFn>,
    release: Arc<ReleaseFn>,
}

impl JsLoader {
    pub fn new(load: LoadFn, release: ReleaseFn) -> Self {
        JsLoader { load: Arc::new(load), release: Arc::new(release) }
    }
}

impl Loader for JsLoader {
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, std::result::Result<Model, String>> {
        let load = self.load.clone();
        let release = self.release.clone();
        let path = artifact.to_string_lossy().into_owned();
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Box::pin(async move {
            let promise = load
                .call_async_catch(FnArgs::from((path, params)))
                .await
                .map_err(|e| format!("the loader could not be called: {}", e.reason))?;
            let output = promise.await.map_err(|e| e.reason.clone())?;
            match (output.id, output.error) {
                (_, Some(error)) => Err(error),
                (Some(id), None) => Ok(Arc::new(JsModel { id, release }) as Model),
                (None, None) => Err("the loader returned neither a model nor an error".into()),
            }
        })
    }
}
