//! A TypeScript handler as a core [`Handler`]: each batch is handed to the
//! Node thread with a ticket; the TypeScript wrapper runs the handler and
//! answers the ticket with its (normalised) output, which comes back to the
//! batcher. No promise is awaited from Rust (see `js_reply`).

use futures::future::BoxFuture;
use napi::bindgen_prelude::*;
use redesmyn::{Batch, Handler, HandlerError, Predictions};

use crate::error::Context;
use crate::js_loader::JsModel;
use crate::js_reply::{self, Ignored, TicketFn};
use crate::output::NativeOutput;
use crate::to_js::{batch_to_js, JsBatch, RawValue};

/// `(batch, ticket) => void`: answers through `answer(ticket, output)`.
pub type HandlerArgs = FnArgs<(RawValue, f64)>;

pub struct JsHandler {
    function: std::sync::Arc<TicketFn<JsBatch, HandlerArgs>>,
    /// Names the handler in errors: `handler '/path'`.
    name: String,
}

impl JsHandler {
    pub fn new(path: &str, function: Function<'_, HandlerArgs, Ignored>) -> crate::error::Result<Self> {
        let function =
            js_reply::ticket_fn(function, |env, batch, ticket| Ok(FnArgs::from((batch_to_js(env, batch)?, ticket))))?;
        Ok(JsHandler { function: std::sync::Arc::new(function), name: format!("handler '{path}'") })
    }
}

impl Handler for JsHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, std::result::Result<Predictions, HandlerError>> {
        let function = std::sync::Arc::clone(&self.function);
        let name = self.name.clone();
        Box::pin(async move {
            let model_id = JsModel::id_of(batch.loaded.as_ref())?;
            // The model stays alive (and its id valid) until this batch is answered.
            let traceparent = batch.traceparent();
            let _loaded = batch.loaded;
            let batch = JsBatch { frame: batch.frame, params: batch.params, model_id, traceparent };
            let output: NativeOutput =
                js_reply::call(&function, batch).await.context(name).map_err(|e| HandlerError::new(e.to_string()))?;
            output.0
        })
    }
}
