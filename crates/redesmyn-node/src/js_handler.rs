//! A TypeScript handler as a core [`Handler`]: each batch is handed to the
//! Node thread through a [`JsCallback`]; the handler's promise resolves
//! with its (normalised) output, which comes back to the batcher.

use futures::future::BoxFuture;
use napi::bindgen_prelude::*;
use redesmyn::{Batch, Handler, HandlerError, Predictions};

use crate::error::Context;
use crate::js_callback::JsCallback;
use crate::js_loader::JsModel;
use crate::output::NativeOutput;
use crate::to_js::{batch_to_js, JsBatch, RawValue};

pub struct JsHandler {
    callback: JsCallback<JsBatch, NativeOutput, RawValue>,
    /// Names the handler in errors: `handler '/path'`.
    name: String,
}

impl JsHandler {
    pub fn new(path: &str, function: Function<'_, RawValue, Promise<NativeOutput>>) -> crate::error::Result<Self> {
        let function = function
            .build_threadsafe_function::<JsBatch>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|ctx| batch_to_js(&ctx.env, ctx.value))?;
        Ok(JsHandler { callback: JsCallback::new(function), name: format!("handler '{path}'") })
    }
}

impl Handler for JsHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, std::result::Result<Predictions, HandlerError>> {
        let callback = self.callback.clone();
        let name = self.name.clone();
        Box::pin(async move {
            let model_id = JsModel::id_of(batch.loaded.as_ref())?;
            // The model stays alive (and its id valid) until this batch is answered.
            let _loaded = batch.loaded;
            let batch = JsBatch { frame: batch.frame, params: batch.params, model_id };
            let output =
                callback.await_call(batch).await.context(name).map_err(|e| HandlerError::new(e.to_string()))?;
            output.0
        })
    }
}
