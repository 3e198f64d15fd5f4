//! A TypeScript model loader as a core [`Loader`]. Models stay in a map on
//! the JavaScript side; Rust holds their ids. When the cache lets go of a
//! loaded model (eviction, replacement) and no running batch holds it, its
//! id is released and JavaScript drops the model.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use redesmyn::cache::{LoadedModel, Loader};
use redesmyn::{HandlerError, Params};

use crate::error::Context;
use crate::js_callback::{JsCallback, JsFunction};

type LoadArgs = FnArgs<(String, HashMap<String, String>)>;

/// `(path, params) => Promise<LoadOutput>`
pub type LoadFn = JsFunction<LoadArgs, LoadOutput, LoadArgs>;
/// `(id) => void`
pub type ReleaseFn = ThreadsafeFunction<f64, (), f64, Status, false, true>;

/// What a TypeScript loader resolves with: the new model's id, or why it failed.
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

impl JsModel {
    /// The JavaScript id of a batch's model, if it has one: a TypeScript
    /// handler can only run with a model a TypeScript loader made.
    pub fn id_of(loaded: Option<&LoadedModel>) -> std::result::Result<Option<f64>, HandlerError> {
        loaded
            .map(|model| {
                model
                    .downcast_ref::<JsModel>()
                    .map(|m| m.id)
                    .ok_or_else(|| HandlerError::new("a TypeScript handler needs a model made by a TypeScript loader"))
            })
            .transpose()
    }
}

impl Drop for JsModel {
    fn drop(&mut self) {
        self.release.call(self.id, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

pub struct JsLoader {
    load: JsCallback<LoadArgs, LoadOutput, LoadArgs>,
    release: Arc<ReleaseFn>,
    /// Names the loader in errors: `loader '/path'`.
    name: String,
}

impl JsLoader {
    pub fn new(path: &str, load: LoadFn, release: ReleaseFn) -> Self {
        JsLoader { load: JsCallback::new(load), release: Arc::new(release), name: format!("loader '{path}'") }
    }
}

impl Loader for JsLoader {
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, std::result::Result<LoadedModel, String>> {
        let load = self.load.clone();
        let release = Arc::clone(&self.release);
        let name = self.name.clone();
        let path = artifact.to_string_lossy().into_owned();
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Box::pin(async move {
            let output =
                load.await_call(FnArgs::from((path, params))).await.context(name).map_err(|e| e.to_string())?;
            match (output.id, output.error) {
                (_, Some(error)) => Err(error),
                (Some(id), None) => Ok(Arc::new(JsModel { id, release }) as LoadedModel),
                (None, None) => Err("the loader returned neither a model nor an error".into()),
            }
        })
    }
}
