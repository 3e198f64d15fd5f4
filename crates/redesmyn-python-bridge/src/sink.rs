//! The host's callbacks, behind a safe face.

use redesmyn_python_abi::{ArrowArrayStream, Sink, Str};

pub struct Reporter {
    sink: *const Sink,
}

impl Reporter {
    /// # Safety
    /// `sink` must be non-null and point to a `Sink` that stays valid, with
    /// callbacks that accept its `ctx`, for the reporter's whole life (the
    /// ABI contract gives a sink for the length of one call, so a reporter
    /// must not outlive the call it was made in).
    pub unsafe fn new(sink: *const Sink) -> Self {
        Reporter { sink }
    }

    pub fn error(&self, message: &str, detail: &str) {
        // SAFETY: `self.sink` points to a live `Sink` for the reporter's life
        // (obligation of `new`); its `error` callback takes its own `ctx` and
        // two `Str`s borrowed from `message` and `detail`, which outlive the
        // call, as the ABI requires (strings are valid for the call only).
        unsafe { ((*self.sink).error)((*self.sink).ctx, Str::new(message), Str::new(detail)) }
    }

    pub fn info(&self, key: &str, value: &str) {
        // SAFETY: as in `error`: a live sink (obligation of `new`), its own
        // `ctx`, and `Str`s borrowed from `key` and `value` for the call.
        unsafe { ((*self.sink).info)((*self.sink).ctx, Str::new(key), Str::new(value)) }
    }

    /// Hands a column to the host, which moves the stream out.
    ///
    /// # Safety
    /// `stream` must be a valid, aligned pointer to an initialised Arrow C
    /// stream that nothing else uses during the call; the host moves it out
    /// (leaving it released), so the caller gives up the stream.
    pub unsafe fn column(&self, name: &str, stream: *mut ArrowArrayStream) {
        // SAFETY: a live sink (obligation of `new`) with its own `ctx`; `name`
        // is borrowed for the call; `stream` meets what the host's `column`
        // needs to move it out (this function's obligation).
        unsafe { ((*self.sink).column)((*self.sink).ctx, Str::new(name), stream) }
    }

    /// Reports the rows a step ends.
    pub fn rows(&self, rows: &[u64]) {
        // SAFETY: a live sink (obligation of `new`) with its own `ctx`;
        // `rows` is borrowed for the call, as the ABI asks.
        unsafe { ((*self.sink).rows)((*self.sink).ctx, rows.as_ptr(), rows.len()) }
    }
}
