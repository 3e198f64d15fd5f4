//! Answers from JavaScript by ticket.
//!
//! Awaiting a JavaScript promise from Rust makes napi create two functions
//! per call (the promise's `then` and `catch` callbacks, each with its own
//! function template and a finalizer). V8 treats objects behind finalizers
//! as live through every young-generation collection, so under steady
//! traffic they pile up until a full collection: that was most of a lone
//! request's p99 (docs/performance.md). Instead a call carries a ticket
//! number, and JavaScript answers it through the one exported function
//! [`answer`]: nothing is created per call but its arguments.
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
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env};
use napi_derive::napi;

use crate::error::BindingError;

/// Reads a ticket's answer on the Node thread (a JavaScript value, or why
/// there is none) and sends it to the waiting side.
type Reader = Box<dyn FnOnce(Result<(sys::napi_env, sys::napi_value)>) + Send>;

static WAITING: LazyLock<Mutex<HashMap<u64, Reader>>> = LazyLock::new(Default::default);
static NEXT: AtomicU64 = AtomicU64::new(1);

fn waiting() -> MutexGuard<'static, HashMap<u64, Reader>> {
    // A panic while holding the lock cannot leave the map half-changed.
    WAITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One call's claim on its answer.
pub struct Ticket(u64);

impl Ticket {
    /// A new ticket, and where its answer arrives, read as a `T`.
    pub fn new<T: FromNapiValue + Send + 'static>() -> (Ticket, oneshot::Receiver<Result<T>>) {
        let (sender, receiver) = oneshot::channel();
        let reader: Reader = Box::new(move |value| {
            // SAFETY: readers run on the Node thread, inside `answer`'s napi call, with its live env and value.
            let read = value.and_then(|(env, value)| unsafe { T::from_napi_value(env, value) });
            let _ = sender.send(read);
        });
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        waiting().insert(number, reader);
        (Ticket(number), receiver)
    }

    pub fn number(&self) -> u64 {
        self.0
    }

    /// The number JavaScript answers with; from here on the ticket stays
    /// open until it is answered.
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

/// Answers the ticket `number` with an error, if it is still open (the call
/// threw, or its arguments could not be converted).
pub fn fail(number: u64, error: Error) {
    let reader = waiting().remove(&number);
    if let Some(reader) = reader {
        reader(Err(error));
    }
}

/// Answers a ticket with what the call produced: a handler's output, a
/// stream's opening or its steps. Never throws: a value that cannot be read
/// answers the ticket with why; a second answer, or one for a request that
/// went away, is dropped.
#[napi(ts_args_type = "ticket: number, value: HandlerOutput | StreamOpenedOutput | StepOutput[]")]
pub fn answer(env: Env, ticket: f64, value: Unknown<'_>) {
    let reader = waiting().remove(&(ticket as u64));
    if let Some(reader) = reader {
        reader(Ok((env.raw(), value.raw())));
    }
}

/// Whatever a ticketed function returns (nothing): read and dropped.
pub struct Ignored;

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_: sys::napi_env, _: sys::napi_value) -> Result<Self> {
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

/// A JavaScript function called with a value and a ticket, which it answers
/// through [`answer`]. Weak: a registered function alone does not keep Node
/// alive.
pub type TicketFn<T, A> = ThreadsafeFunction<(T, Ticket), Ignored, A, Status, false, true>;

/// Builds a [`TicketFn`] from a JavaScript function: `args` turns the value
/// and the ticket's number into its arguments, on the Node thread.
pub fn ticket_fn<T, A>(
    function: Function<'_, A, Ignored>,
    args: impl Fn(&Env, T, f64) -> Result<A> + Send + 'static,
) -> Result<TicketFn<T, A>>
where
    T: Send + 'static,
    A: JsValuesTupleIntoVec + 'static,
{
    function.build_threadsafe_function::<(T, Ticket)>().weak::<true>().callee_handled::<false>().build_callback(
        move |ctx| {
            let (value, ticket) = ctx.value;
            // Handed over first: if the arguments cannot be made, the
            // call's callback answers the ticket with why.
            let number = ticket.hand_over();
            args(&ctx.env, value, number)
        },
    )
}

/// Calls `function` with `value` and a new ticket, and waits for the answer,
/// read as an `R` on the Node thread.
pub async fn call<T, A, R>(function: &TicketFn<T, A>, value: T) -> crate::error::Result<R>
where
    T: Send + 'static,
    A: JsValuesTupleIntoVec + 'static,
    R: FromNapiValue + Send + 'static,
{
    let (ticket, answer) = Ticket::new::<R>();
    let number = ticket.number();
    let status = function.call_with_return_value(
        (value, ticket),
        ThreadsafeFunctionCallMode::NonBlocking,
        move |called: Result<Ignored>, _| {
            // The call threw, or its arguments could not be made.
            if let Err(error) = called {
                fail(number, error);
            }
            Ok(())
        },
    );
    match status {
        Status::Ok => match answer.await {
            Ok(read) => read.map_err(|e| BindingError::failed(e.reason.clone())),
            Err(_) => Err(BindingError::failed("was not called: the server is stopping")),
        },
        status => Err(BindingError::failed(format!("could not be called: {status}"))),
    }
}

/// Calls `function` with `value` and a ticket whose answer nobody waits for
/// (a notice, such as closing a generator from a `Drop`).
pub fn notify<T, A>(function: &TicketFn<T, A>, value: T)
where
    T: Send + 'static,
    A: JsValuesTupleIntoVec + 'static,
{
    let (ticket, _) = Ticket::new::<Ignored>();
    let number = ticket.number();
    function.call_with_return_value((value, ticket), ThreadsafeFunctionCallMode::NonBlocking, move |called, _| {
        if let Err(error) = called {
            fail(number, error);
        }
        Ok(())
    });
}
