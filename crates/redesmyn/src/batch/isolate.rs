//! Poison isolation: when a batch of several requests fails (the handler
//! raised, panicked, answered the wrong number of rows, or its worker
//! crashed), the requests that did not cause it should not fail with it.
//! The batch's requests are bisected (`crate::bisect`): a request that
//! fails alone is the guilty one and gets the handler's message (it is
//! counted in `redesmyn_poison_requests_total` and logged). Each retry
//! drops the requests whose client left or whose deadline passed
//! (`pending::prepare`), so retries stay within every request's own
//! deadline. Streaming batches are not retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::Answer;
use crate::bisect::{Part, Trial};
use crate::cache::ModelCache;
use crate::error::RequestError;
use crate::handler::{Batch, Handler, Params, Predictions};
use crate::metrics::EndpointMetrics;
use crate::pending::{prepare, Job, Responder};
use crate::telemetry::SpanContext;

/// What the retries of a failed batch share: the handler, its cache and
/// metrics, and the key's parameters.
pub(super) struct Retry<'a> {
    pub handler: &'a dyn Handler,
    pub cache: Option<&'a ModelCache>,
    pub metrics: Option<&'a EndpointMetrics>,
    pub params: Arc<Params>,
}

impl Trial for Retry<'_> {
    type Item = Job;

    /// One handler call on `jobs` (what is still worth running of them).
    async fn run(&mut self, jobs: Vec<Job>) -> Part<Job> {
        if let Some(m) = self.metrics {
            m.isolation_calls.inc();
        }
        let Some((jobs, loaded, frame)) = prepare(self.cache, &self.params, jobs).await else {
            return Part::Done;
        };
        let total: usize = jobs.iter().map(Job::rows).sum();
        let started = Instant::now();
        match call(self.handler, Batch { frame, params: Arc::clone(&self.params), loaded, trace: None }, total).await {
            Ok(predictions) => {
                answer_all(jobs, &predictions, total, started, started.elapsed(), None);
                Part::Done
            }
            Err(message) => Part::Failed(jobs, message),
        }
    }

    /// A request that fails alone: it gets the handler's message.
    fn guilty(&mut self, jobs: Vec<Job>, message: &str) {
        if let Some(m) = self.metrics {
            m.poison.inc_by(jobs.len() as u64);
        }
        tracing::warn!(error = %message, rows = jobs.iter().map(Job::rows).sum::<usize>(), "a request failed alone: isolated from its batch");
        fail_all(jobs, message);
    }

    fn fail(&mut self, jobs: Vec<Job>, message: &str) {
        fail_all(jobs, message);
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
