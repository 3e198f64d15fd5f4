//! A TypeScript streaming handler as a core [`StreamHandler`]. The
//! generator lives on the JavaScript side, by id: `open` calls the handler
//! with the batch and keeps its iterator; `pull(id, false, ticket, max)`
//! answers with the steps the generator has ready, at least one and at most
//! `max` (those it yields without waiting for I/O or timers), so a fast
//! generator costs one hop to Node's thread per [`READ_AHEAD`] steps, not
//! per step. Dropping the stream before the generator finished (every
//! client left, a timeout, a stop) calls `pull(id, true, ...)`, which runs
//! the iterator's `return()` so its `finally` blocks run. Every call is
//! answered by ticket (`js_reply`).

use std::collections::VecDeque;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use redesmyn::stream::{Steps, StreamHandler};
use redesmyn::{Batch, HandlerError};

use crate::error::Context;
use crate::js_loader::JsModel;
use crate::js_reply::{self, Ignored, TicketFn};
use crate::output::NativeStep;
use crate::to_js::{batch_to_js, JsBatch, RawValue};

/// The most steps one pull takes from a generator. The core's per-request
/// buffer holds 16 steps; the generator runs at most this far ahead of it.
pub const READ_AHEAD: u32 = 16;

/// What opening a TypeScript stream resolves with: the iterator's id, or why it failed.
#[napi_derive::napi(object)]
pub struct StreamOpenedOutput {
    pub id: Option<f64>,
    pub error: Option<String>,
    pub stack: Option<String>,
}

/// `(batch, ticket) => void`, answered with a [`StreamOpenedOutput`].
pub type OpenArgs = FnArgs<(RawValue, f64)>;
/// `(id, close, ticket, max) => void`, answered with up to `max` steps.
pub type PullArgs = FnArgs<(f64, bool, f64, u32)>;
type PullFn = Arc<TicketFn<(f64, bool), PullArgs>>;

pub struct JsStreamHandler {
    open: Arc<TicketFn<JsBatch, OpenArgs>>,
    pull: PullFn,
    /// Names the handler in errors: `handler '/path'`.
    name: String,
}

impl JsStreamHandler {
    pub fn new(
        path: &str,
        open: Function<'_, OpenArgs, Ignored>,
        pull: Function<'_, PullArgs, Ignored>,
    ) -> crate::error::Result<Self> {
        let open =
            js_reply::ticket_fn(open, |env, batch, ticket| Ok(FnArgs::from((batch_to_js(env, batch)?, ticket))))?;
        let pull =
            js_reply::ticket_fn(pull, |_, (id, close), ticket| Ok(FnArgs::from((id, close, ticket, READ_AHEAD))))?;
        Ok(JsStreamHandler { open: Arc::new(open), pull: Arc::new(pull), name: format!("handler '{path}'") })
    }
}

/// An open generator; closed on drop unless it finished.
struct Generator {
    id: f64,
    pull: PullFn,
    /// Steps pulled ahead and not yet handed to the core.
    ready: VecDeque<NativeStep>,
    finished: bool,
    /// The batch's model stays alive (and its id valid) while the generator runs.
    _loaded: Option<redesmyn::cache::LoadedModel>,
}

impl Generator {
    /// The next step: one pulled ahead, or the next pull's first.
    async fn next(&mut self) -> crate::error::Result<NativeStep> {
        if self.ready.is_empty() {
            let steps: Vec<NativeStep> = js_reply::call(&self.pull, (self.id, false)).await?;
            self.ready.extend(steps);
        }
        // An empty answer would be a bug on the JavaScript side; end the stream rather than spin.
        Ok(self.ready.pop_front().unwrap_or(NativeStep(Ok(None))))
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if !self.finished {
            js_reply::notify(&self.pull, (self.id, true));
        }
    }
}

impl StreamHandler for JsStreamHandler {
    fn open(&self, batch: Batch) -> Steps {
        let open = Arc::clone(&self.open);
        let pull = Arc::clone(&self.pull);
        let name = self.name.clone();
        let open_name = self.name.clone();
        let opened = async move {
            let model_id = JsModel::id_of(batch.loaded.as_ref())?;
            let loaded = batch.loaded;
            let js = JsBatch { frame: batch.frame, params: batch.params, model_id, traceparent: None };
            let opened: StreamOpenedOutput =
                js_reply::call(&open, js).await.context(open_name).map_err(|e| HandlerError::new(e.to_string()))?;
            match (opened.id, opened.error) {
                (_, Some(error)) => {
                    let mut e = HandlerError::new(error);
                    if let Some(stack) = opened.stack {
                        e = e.with_detail(stack);
                    }
                    Err(e)
                }
                (Some(id), None) => {
                    Ok(Generator { id, pull, ready: VecDeque::new(), finished: false, _loaded: loaded })
                }
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
            let pulled = generator.next().await;
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
