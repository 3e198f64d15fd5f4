//! A TypeScript streaming handler as a core [`StreamHandler`]. The
//! generator lives on the JavaScript side, by id: `open` calls the handler
//! with the batch and keeps its iterator; each step is one `pull(id)`;
//! dropping the stream before the generator finished (every client left, a
//! timeout, a stop) calls `pull(id, true)`, which runs the iterator's
//! `return()` so its `finally` blocks run.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use redesmyn::stream::{Steps, StreamHandler};
use redesmyn::{Batch, HandlerError};

use crate::error::Context;
use crate::js_callback::{JsCallback, JsFunction};
use crate::js_loader::JsModel;
use crate::output::NativeStep;
use crate::to_js::{batch_to_js, JsBatch, RawValue};

/// What opening a TypeScript stream resolves with: the iterator's id, or why it failed.
#[napi_derive::napi(object)]
pub struct StreamOpened {
    pub id: Option<f64>,
    pub error: Option<String>,
    pub stack: Option<String>,
}

pub type PullArgs = FnArgs<(f64, bool)>;
/// `(id, close) => Promise<StepOutput>`
pub type PullFn = JsFunction<PullArgs, NativeStep, PullArgs>;

pub struct JsStreamHandler {
    open: JsCallback<JsBatch, StreamOpened, RawValue>,
    pull: JsCallback<PullArgs, NativeStep, PullArgs>,
    /// Names the handler in errors: `handler '/path'`.
    name: String,
}

impl JsStreamHandler {
    pub fn new(
        path: &str,
        open: Function<'_, RawValue, Promise<StreamOpened>>,
        pull: PullFn,
    ) -> crate::error::Result<Self> {
        let open = open
            .build_threadsafe_function::<JsBatch>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|ctx| batch_to_js(&ctx.env, ctx.value))?;
        Ok(JsStreamHandler {
            open: JsCallback::new(open),
            pull: JsCallback::new(pull),
            name: format!("handler '{path}'"),
        })
    }
}

/// An open generator; closed on drop unless it finished.
struct Generator {
    id: f64,
    pull: JsCallback<PullArgs, NativeStep, PullArgs>,
    finished: bool,
    /// The batch's model stays alive (and its id valid) while the generator runs.
    _loaded: Option<redesmyn::cache::LoadedModel>,
}

impl Drop for Generator {
    fn drop(&mut self) {
        if !self.finished {
            self.pull.call_detached(FnArgs::from((self.id, true)), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

impl StreamHandler for JsStreamHandler {
    fn open(&self, batch: Batch) -> Steps {
        let open = self.open.clone();
        let pull = self.pull.clone();
        let name = self.name.clone();
        let open_name = self.name.clone();
        let opened = async move {
            let model_id = JsModel::id_of(batch.loaded.as_ref())?;
            let loaded = batch.loaded;
            let js = JsBatch { frame: batch.frame, params: batch.params, model_id };
            let opened = open.await_call(js).await.context(open_name).map_err(|e| HandlerError::new(e.to_string()))?;
            match (opened.id, opened.error) {
                (_, Some(error)) => {
                    let mut e = HandlerError::new(error);
                    if let Some(stack) = opened.stack {
                        e = e.with_detail(stack);
                    }
                    Err(e)
                }
                (Some(id), None) => Ok(Generator { id, pull, finished: false, _loaded: loaded }),
                (None, None) => Err(HandlerError::new("the handler returned no iterator")),
            }
        };
        let steps = futures::stream::unfold(State::Opening(Box::pin(opened), name), |state| async move {
            let (mut generator, name) = match state {
                State::Opening(opened, name) => match opened.await {
                    Ok(generator) => (generator, name),
                    Err(e) => return Some((Err(e), State::Done)),
                },
                State::Open(generator, name) => (generator, name),
                State::Done => return None,
            };
            let pulled = generator.pull.await_call(FnArgs::from((generator.id, false))).await;
            match pulled.context(name.clone()) {
                Ok(NativeStep(Ok(Some(step)))) => Some((Ok(step), State::Open(generator, name))),
                Ok(NativeStep(Ok(None))) => {
                    generator.finished = true;
                    None
                }
                Ok(NativeStep(Err(e))) => {
                    // The TypeScript side dropped the iterator when it threw.
                    generator.finished = true;
                    Some((Err(e), State::Done))
                }
                Err(e) => Some((Err(HandlerError::new(e.to_string())), State::Done)),
            }
        });
        Box::pin(steps)
    }
}

type Opening =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<Generator, HandlerError>> + Send>>;

enum State {
    Opening(Opening, String),
    Open(Generator, String),
    Done,
}
