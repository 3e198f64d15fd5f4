//! A TypeScript handler as a core [`Handler`]: each batch is handed to the
//! Node thread with a [`Ticket`]; the TypeScript wrapper runs the handler
//! and answers the ticket with its (normalised) output, which comes back to
//! the batcher. No promise is awaited from Rust (see `js_reply`).

use futures::future::BoxFuture;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use redesmyn::{Batch, Handler, HandlerError, Predictions};

use crate::error::{BindingError, Context};
use crate::js_loader::JsModel;
use crate::js_reply::{self, Ticket};
use crate::to_js::{batch_to_js, JsBatch, RawValue};

/// `(batch, ticket) => void`: answers through `answerBatch(ticket, output)`.
pub type HandlerArgs = FnArgs<(RawValue, f64)>;

/// Whatever the wrapper returns (nothing): read and dropped.
pub struct Ignored;

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_: napi::sys::napi_env, _: napi::sys::napi_value) -> Result<Self> {
        Ok(Ignored)
    }
}

impl TypeName for Ignored {
    fn type_name() -> &'static str {
        "void"
    }

    fn value_type() -> ValueType {
        ValueType::Undefined
    }
}

impl ValidateNapiValue for Ignored {}

/// Weak: a registered handler alone does not keep Node alive.
type HandlerFn = ThreadsafeFunction<(JsBatch, Ticket), Ignored, HandlerArgs, Status, false, true>;

pub struct JsHandler {
    function: std::sync::Arc<HandlerFn>,
    /// Names the handler in errors: `handler '/path'`.
    name: String,
}

impl JsHandler {
    pub fn new(path: &str, function: Function<'_, HandlerArgs, Ignored>) -> crate::error::Result<Self> {
        let function = function
            .build_threadsafe_function::<(JsBatch, Ticket)>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|ctx| {
                let (batch, ticket) = ctx.value;
                // Handed over first: if the batch cannot be converted, the
                // call's callback answers the ticket with why.
                let ticket = ticket.hand_over();
                Ok(FnArgs::from((batch_to_js(&ctx.env, batch)?, ticket)))
            })?;
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
            let _loaded = batch.loaded;
            let batch = JsBatch { frame: batch.frame, params: batch.params, model_id };
            let (ticket, answer) = Ticket::new();
            let number = ticket.number();
            let status = function.call_with_return_value(
                (batch, ticket),
                ThreadsafeFunctionCallMode::NonBlocking,
                move |called: Result<Ignored>, _| {
                    // The call threw, or the batch could not be converted.
                    if let Err(error) = called {
                        js_reply::answer(number, Err(error));
                    }
                    Ok(())
                },
            );
            let answered = match status {
                Status::Ok => answer.await.map_err(|_| BindingError::failed("was not called: the server is stopping")),
                status => Err(BindingError::failed(format!("could not be called: {status}"))),
            };
            let output = answered
                .and_then(|read| read.map_err(|e| BindingError::failed(e.reason.clone())))
                .context(name)
                .map_err(|e| HandlerError::new(e.to_string()))?;
            output.0
        })
    }
}
