//! A TypeScript handler as a core [`Handler`]: each batch is handed to the
//! Node thread through a threadsafe function; the handler's promise resolves
//! with its (normalised) output, which comes back to the batcher.

use std::sync::Arc;

use futures::future::BoxFuture;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use redesmyn::{Batch, Handler, HandlerError, Predictions};

use crate::from_js::NativeOutput;
use crate::js_loader::JsModel;
use crate::to_js::{batch_to_js, JsBatch, RawValue};

/// Weak: a registered handler alone does not keep Node alive; a serving
/// server does (the TypeScript layer holds a handle while serving).
pub type HandlerFn = ThreadsafeFunction<JsBatch, Promise<NativeOutput>, RawValue, Status, false, true>;

pub struct JsHandler {
    function: Arc<HandlerFn>,
}

impl JsHandler {
    pub fn new(function: Function<'_, RawValue, Promise<NativeOutput>>) -> Result<Self> {
        let function = function
            .build_threadsafe_function::<JsBatch>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|ctx| batch_to_js(&ctx.env, ctx.value))?;
        Ok(JsHandler { function: Arc::new(function) })
    }
}

impl Handler for JsHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, std::result::Result<Predictions, HandlerError>> {
        let function = self.function.clone();
        Box::pin(async move {
            let model_id = match &batch.model {
                Some(model) => Some(
                    model
                        .downcast_ref::<JsModel>()
                        .ok_or_else(|| {
                            HandlerError::new("a TypeScript handler needs a model made by a TypeScript loader")
                        })?
                        .id,
                ),
                None => None,
            };
            // The model stays alive (and its id valid) until this batch is answered.
            let _model = batch.model;
            let batch = JsBatch { frame: batch.frame, params: batch.params, model_id };
            let promise = function
                .call_async_catch(batch)
                .await
                .map_err(|e| HandlerError::new(format!("the handler could not be called: {}", e.reason)))?;
            let output = promise.await.map_err(|e| HandlerError::new(e.reason.clone()))?;
            output.0
        })
    }
}
