//! Poison isolation: when a batch of several requests fails (the handler
//! raised, panicked, answered the wrong number of rows, or its worker
//! crashed), the requests that did not cause it should not fail with it.
//! The batch's requests run again in halves, recursively: a half that
//! succeeds is answered, a half that fails is split again, and a request
//! that fails alone is the guilty one and gets the handler's message (it is
//! counted in `redesmyn_poison_requests_total` and logged).
//!
//! Bounded two ways, so that a model that fails whatever it is given (not a
//! row's fault) fails its batch quickly with the reason: the extra handler
//! calls are capped at [`budget`] for the batch (six per doubling of its
//! requests: enough to find two or three guilty requests), and when both halves
//! of the first split and one request of each fail as the whole did, the
//! batch fails at once (five calls in all). Each retry drops the requests
//! whose client left or whose deadline passed (`pending::prepare`), so
//! retries stay within every request's own deadline. Streaming batches are
//! not retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::Answer;
use crate::cache::ModelCache;
use crate::error::RequestError;
use crate::handler::{Batch, Handler, Params, Predictions};
use crate::metrics::EndpointMetrics;
use crate::pending::{prepare, Job, Responder};
use crate::telemetry::SpanContext;

/// Extra handler calls a failed batch of `requests` may make.
pub fn budget(requests: usize) -> usize {
    let doublings = usize::BITS - requests.max(1).leading_zeros();
    6 * doublings as usize
}

/// What the retries share: the handler, its cache and metrics, the key's
/// parameters, and the calls left.
pub(super) struct Retry<'a> {
    pub handler: &'a dyn Handler,
    pub cache: Option<&'a ModelCache>,
    pub metrics: Option<&'a EndpointMetrics>,
    pub params: Arc<Params>,
    pub left: usize,
    /// The whole batch's message, to tell a model that fails everything.
    pub first: String,
}

/// How a part of a failed batch went when run again.
enum Part {
    /// Answered (or dropped: its clients left, its deadline passed).
    Done,
    /// The part failed, with the message; its requests are not answered yet.
    Failed(Vec<Job>, String),
}

/// Answers `jobs` after their batch failed with `retry.first`: in halves,
/// down to the requests that fail alone.
///
/// When both halves fail as the whole did, either the model fails whatever
/// it is given or each half holds a guilty request: one request of each
/// half is run alone to tell. Both failing the same way too means the model
/// (every request fails with the reason, after five calls in all); else the
/// halves are halved again.
pub(super) async fn isolate(retry: &mut Retry<'_>, jobs: Vec<Job>) {
    let (left, right) = halves(jobs);
    let Part::Failed(left, left_message) = once(retry, left).await else {
        return split(retry, right).await;
    };
    let Part::Failed(right, right_message) = once(retry, right).await else {
        return halve(retry, left, left_message).await;
    };
    if left_message != retry.first || right_message != retry.first {
        halve(retry, left, left_message).await;
        return halve(retry, right, right_message).await;
    }
    let (mut left, mut right) = (left, right);
    let a = left.remove(0);
    match once(retry, vec![a]).await {
        Part::Done => {}
        Part::Failed(a, message) => match once(retry, vec![right.remove(0)]).await {
            Part::Failed(b, other) if message == retry.first && other == retry.first => {
                let first = retry.first.clone();
                for part in [a, b, left, right] {
                    fail_all(part, &first);
                }
                return;
            }
            Part::Failed(b, other) => {
                guilty(retry.metrics, a, &message);
                guilty(retry.metrics, b, &other);
            }
            Part::Done => guilty(retry.metrics, a, &message),
        },
    }
    split(retry, left).await;
    split(retry, right).await;
}

fn halves(mut jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let right = jobs.split_off(jobs.len() / 2);
    (jobs, right)
}

/// Runs `jobs` again: a request that fails alone is guilty, a failure of
/// several is halved again.
fn split<'r, 'a: 'r>(retry: &'r mut Retry<'a>, jobs: Vec<Job>) -> BoxFuture<'r, ()> {
    async move {
        match once(retry, jobs).await {
            Part::Done => {}
            Part::Failed(jobs, message) if jobs.len() == 1 => guilty(retry.metrics, jobs, &message),
            Part::Failed(jobs, message) => halve(retry, jobs, message).await,
        }
    }
    .boxed()
}

/// Splits `jobs`, known to fail together with `message`, and runs each half.
fn halve<'r, 'a: 'r>(retry: &'r mut Retry<'a>, jobs: Vec<Job>, message: String) -> BoxFuture<'r, ()> {
    async move {
        if jobs.len() == 1 {
            // Known to fail, and alone: nothing left to split.
            return guilty(retry.metrics, jobs, &message);
        }
        let (left, right) = halves(jobs);
        split(retry, left).await;
        split(retry, right).await;
    }
    .boxed()
}

/// One handler call on `jobs` (what is still worth running of them), within
/// the budget: past it, they fail with the batch's message.
async fn once(retry: &mut Retry<'_>, jobs: Vec<Job>) -> Part {
    if jobs.is_empty() {
        return Part::Done;
    }
    if retry.left == 0 {
        fail_all(jobs, &retry.first);
        return Part::Done;
    }
    retry.left -= 1;
    if let Some(m) = retry.metrics {
        m.isolation_calls.inc();
    }
    let Some((jobs, loaded, frame)) = prepare(retry.cache, &retry.params, jobs).await else {
        return Part::Done;
    };
    let total: usize = jobs.iter().map(Job::rows).sum();
    let started = Instant::now();
    match call(retry.handler, Batch { frame, params: Arc::clone(&retry.params), loaded, trace: None }, total).await {
        Ok(predictions) => {
            answer_all(jobs, &predictions, total, started, started.elapsed(), None);
            Part::Done
        }
        Err(message) => Part::Failed(jobs, message),
    }
}

/// Calls the handler once: its predictions when there is one per row, else
/// why not (an error, a panic, a wrong count).
pub(super) async fn call(handler: &dyn Handler, batch: Batch, total: usize) -> Result<Predictions, String> {
    match std::panic::AssertUnwindSafe(handler.call(batch)).catch_unwind().await {
        Ok(Ok(predictions)) if predictions.len() == total => Ok(predictions),
        Ok(Ok(predictions)) => {
            Err(format!("the handler returned {} predictions for a batch of {total} rows", predictions.len()))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e.message, detail = e.detail.as_deref().unwrap_or(""), "handler failed");
            Err(e.message)
        }
        Err(panic) => {
            let what = crate::handler::panic_message(panic.as_ref());
            tracing::error!(panic = %what, "handler panicked");
            Err(format!("the handler panicked: {what}"))
        }
    }
}

/// Answers each request with its rows of `predictions`.
/// `batch` is the batch's span, which each traced request records.
pub(super) fn answer_all(
    jobs: Vec<Job>,
    predictions: &Predictions,
    total: usize,
    started: Instant,
    handled: Duration,
    batch: Option<&SpanContext>,
) {
    let mut offset = 0;
    for job in jobs {
        let rows = job.rows();
        let answer = Answer {
            predictions: predictions.slice(offset, rows),
            batch_rows: total,
            queued: started.saturating_duration_since(job.enqueued),
            handled,
            cached_rows: 0,
            batch: job.trace.as_ref().and(batch.cloned()),
        };
        offset += rows;
        match job.reply {
            Responder::Once(reply) => {
                let _ = reply.send(Ok(answer));
            }
            stream => stream.fail(RequestError::Handler("this model does not stream".into())),
        }
    }
}

pub(super) fn fail_all(jobs: Vec<Job>, message: &str) {
    for job in jobs {
        job.reply.fail(RequestError::Handler(message.to_string()));
    }
}

/// A request that fails alone: it gets the handler's message.
fn guilty(metrics: Option<&EndpointMetrics>, jobs: Vec<Job>, message: &str) {
    if let Some(m) = metrics {
        m.poison.inc_by(jobs.len() as u64);
    }
    tracing::warn!(error = %message, rows = jobs.iter().map(Job::rows).sum::<usize>(), "a request failed alone: isolated from its batch");
    fail_all(jobs, message);
}
