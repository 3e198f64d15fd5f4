//! Answers from JavaScript by ticket.
//!
//! Awaiting a JavaScript promise from Rust makes napi create two functions
//! per call (the promise's `then` and `catch` callbacks, each with its own
//! function template and a finalizer). V8 treats objects behind finalizers
//! as live through every young-generation collection, so under steady
//! traffic they pile up until a full collection: that was most of a lone
//! request's p99 (docs/performance.md). Instead a call carries a ticket
//! number, and JavaScript answers it through the one exported function
//! [`answer_batch`]: nothing is created per call but the batch itself.
//!
//! A [`Ticket`] that is dropped before JavaScript has its number (the call
//! was refused, or dropped unrun at shutdown) withdraws, and the waiting
//! side learns at once. Once handed over, the answer is JavaScript's to give
//! (or the call's error callback's, if the call itself throws).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use futures::channel::oneshot;
use napi::bindgen_prelude::*;
use napi::Env;
use napi_derive::napi;

use crate::output::NativeOutput;

/// What a ticket is answered with: the handler's output as read on the
/// Node thread, or why it could not be read or called.
pub type Answer = Result<NativeOutput>;

static WAITING: LazyLock<Mutex<HashMap<u64, oneshot::Sender<Answer>>>> = LazyLock::new(Default::default);
static NEXT: AtomicU64 = AtomicU64::new(1);

fn waiting() -> MutexGuard<'static, HashMap<u64, oneshot::Sender<Answer>>> {
    // A panic while holding the lock cannot leave the map half-changed.
    WAITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One call's claim on its answer.
pub struct Ticket(u64);

impl Ticket {
    /// A new ticket, and where its answer arrives.
    pub fn new() -> (Ticket, oneshot::Receiver<Answer>) {
        let (sender, receiver) = oneshot::channel();
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        waiting().insert(number, sender);
        (Ticket(number), receiver)
    }

    pub fn number(&self) -> u64 {
        self.0
    }

    /// The number JavaScript answers with; from here on the ticket stays
    /// open until [`answer`] is called with it.
    pub fn hand_over(self) -> f64 {
        let number = self.0;
        std::mem::forget(self);
        // Tickets count up from 1 and stay far below 2^53: exact as a JavaScript number.
        number as f64
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        waiting().remove(&self.0);
    }
}

/// Answers the ticket `number`, if it is still open (a second answer, or one
/// for a request that went away, is dropped).
pub fn answer(number: u64, answer: Answer) {
    let sender = waiting().remove(&number);
    if let Some(sender) = sender {
        let _ = sender.send(answer);
    }
}

/// Answers a batch's ticket with the handler's output (`HandlerOutput`).
/// Never throws: an output that cannot be read answers the ticket with why.
#[napi(ts_args_type = "ticket: number, output: HandlerOutput")]
pub fn answer_batch(env: Env, ticket: f64, output: Unknown<'_>) {
    // SAFETY: a napi callback: `env` and `output` are live on the Node thread.
    let read = unsafe { NativeOutput::from_napi_value(env.raw(), output.raw()) };
    answer(ticket as u64, read);
}
