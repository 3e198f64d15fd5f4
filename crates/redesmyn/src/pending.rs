//! A request waiting for its batch: its rows, deadline and client, and
//! where its answer goes (one reply, or a stream of events). Unary batching
//! (`batch.rs`) and streaming batches (`stream.rs`) share these, and
//! [`prepare`], which drops what is no longer worth running before a batch
//! starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::cache::{LoadedModel, ModelCache};
use crate::error::RequestError;
use crate::handler::{Params, Predictions};
use crate::telemetry::SpanContext;

/// A request's answer, with where its time went.
#[derive(Debug, Clone)]
pub struct Answer {
    pub predictions: Predictions,
    pub batch_rows: usize,
    pub queued: Duration,
    pub handled: Duration,
    /// Rows answered from the prediction cache (the prediction cache's).
    pub cached_rows: usize,
    /// The span of the batch that answered, when the request was traced.
    pub batch: Option<SpanContext>,
}

impl Answer {
    /// Where the request's time went, `total` after it arrived, in the
    /// `Server-Timing` form (`queue;dur=…, handler;dur=…, total;dur=…`,
    /// milliseconds): the HTTP header and every door's log line.
    pub fn timing(&self, total: Duration) -> String {
        format!("queue;dur={}, handler;dur={}, total;dur={}", Millis(self.queued), Millis(self.handled), Millis(total))
    }
}

/// A duration in milliseconds with three decimals, formatted with integer
/// arithmetic (fixed-precision float formatting is slow).
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

pub type Reply = Result<Answer, RequestError>;

/// Tells whether a request's client has gone away (closed its connection)
/// while the request waited, so its rows need not be computed.
pub trait Liveness: Send + Sync {
    fn gone(&self) -> bool;
}

/// Where a request's answer goes: one reply, or a stream of events.
pub enum Responder {
    Once(oneshot::Sender<Reply>),
    Stream(mpsc::Sender<Event>),
}

impl Responder {
    /// The client stopped waiting (dropped its receiver).
    fn is_closed(&self) -> bool {
        match self {
            Responder::Once(reply) => reply.is_closed(),
            Responder::Stream(sender) => sender.is_closed(),
        }
    }

    /// Answers with an error. A stream's channel is empty before its batch
    /// runs, so the event always fits.
    pub(crate) fn fail(self, error: RequestError) {
        match self {
            Responder::Once(reply) => {
                let _ = reply.send(Err(error));
            }
            Responder::Stream(sender) => {
                let _ = sender.try_send(Event::Failed(error));
            }
        }
    }
}

/// A parsed request waiting for its batch.
pub struct Job {
    pub frame: DataFrame,
    pub enqueued: Instant,
    pub deadline: Option<Instant>,
    pub reply: Responder,
    pub client: Option<Arc<dyn Liveness>>,
    /// The request's span, when it is traced: its batch links it.
    pub trace: Option<SpanContext>,
}

impl Job {
    pub(crate) fn rows(&self) -> usize {
        self.frame.height()
    }
}

/// What a streaming request's client receives, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// One step's output for this request: chunks of some of its rows (row
    /// index within the request, one-row predictions), then the rows that
    /// ended with this step.
    Step { chunks: Vec<(usize, Predictions)>, ended: Vec<usize> },
    /// The request failed; nothing follows. Chunks sent before it stand.
    Failed(RequestError),
}

/// The requests of a batch still worth running, with their model and
/// concatenated rows; every other request is answered here.
pub(crate) async fn prepare(
    cache: Option<&ModelCache>,
    params: &Params,
    jobs: Vec<Job>,
) -> Option<(Vec<Job>, Option<LoadedModel>, DataFrame)> {
    let started = Instant::now();
    // Requests whose client went away or whose deadline passed never reach the handler.
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter_map(|job| {
            if job.reply.is_closed() {
                return None;
            }
            if job.client.as_ref().is_some_and(|c| c.gone()) {
                job.reply.fail(RequestError::ClientGone);
                return None;
            }
            if let Some(deadline) = job.deadline {
                if deadline <= started {
                    let waited = deadline.saturating_duration_since(job.enqueued);
                    job.reply.fail(RequestError::DeadlineExceeded(waited));
                    return None;
                }
            }
            Some(job)
        })
        .collect();
    if jobs.is_empty() {
        return None;
    }
    let model = match cache {
        Some(cache) => match cache.get(params).await {
            Ok(model) => Some(model),
            Err(e) => {
                let error = RequestError::from(e);
                for job in jobs {
                    job.reply.fail(error.clone());
                }
                return None;
            }
        },
        None => None,
    };
    match concat(&jobs) {
        Ok(frame) => Some((jobs, model, frame)),
        Err(e) => {
            let message = format!("could not assemble the batch: {e}");
            for job in jobs {
                job.reply.fail(RequestError::Handler(message.clone()));
            }
            None
        }
    }
}

/// One contiguous frame of all the jobs' rows (a single chunk per column, so
/// handlers can view it as flat buffers).
fn concat(jobs: &[Job]) -> PolarsResult<DataFrame> {
    if let [only] = jobs {
        let mut frame = only.frame.clone();
        frame.rechunk_mut();
        return Ok(frame);
    }
    let mut frame = jobs[0].frame.clone();
    for job in &jobs[1..] {
        frame.vstack_mut(&job.frame)?;
    }
    frame.rechunk_mut();
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_have_three_decimals() {
        assert_eq!(Millis(Duration::from_micros(12_345)).to_string(), "12.345");
        assert_eq!(Millis(Duration::from_micros(7)).to_string(), "0.007");
    }
}
