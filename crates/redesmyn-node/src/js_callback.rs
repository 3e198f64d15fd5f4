//! A JavaScript function called from any thread, awaited as a future.
//!
//! Handlers and loaders are JavaScript functions returning promises. Every
//! call takes the same three steps: queue the call on the Node thread, wait
//! for the promise, wait for its value. [`JsCallback::await_call`] does them
//! once, with errors that say which step failed; `.context(...)` names the
//! callback (`handler '/path'`).

use std::sync::Arc;

use napi::bindgen_prelude::{FromNapiValue, JsValuesTupleIntoVec, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;

use crate::error::{BindingError, Result};

/// Weak: a registered callback alone does not keep Node alive; a serving
/// server does (the TypeScript layer holds a handle while serving).
pub type JsFunction<T, R, A> = ThreadsafeFunction<T, Promise<R>, A, Status, false, true>;

/// A shared threadsafe JavaScript function `(args) => Promise<R>`.
pub struct JsCallback<T: 'static, R: FromNapiValue + 'static, A: JsValuesTupleIntoVec + 'static> {
    function: Arc<JsFunction<T, R, A>>,
}

impl<T: 'static, R: FromNapiValue + 'static, A: JsValuesTupleIntoVec + 'static> Clone for JsCallback<T, R, A> {
    fn clone(&self) -> Self {
        JsCallback { function: Arc::clone(&self.function) }
    }
}

impl<T, R, A> JsCallback<T, R, A>
where
    T: Send + 'static,
    R: FromNapiValue + Send + 'static,
    A: JsValuesTupleIntoVec + 'static,
{
    pub fn new(function: JsFunction<T, R, A>) -> Self {
        JsCallback { function: Arc::new(function) }
    }

    /// Calls the function on the Node thread and waits for its promise.
    pub async fn await_call(&self, value: T) -> Result<R> {
        let promise = self
            .function
            .call_async_catch(value)
            .await
            .map_err(|e| BindingError::failed(format!("could not be called: {}", e.reason)))?;
        promise.await.map_err(|e| BindingError::failed(e.reason.clone()))
    }
}
