//! The host's callbacks, behind a safe face.

use redesmyn_python_abi::{ArrowArrayStream, Sink, Str};

pub struct Reporter {
    sink: *const Sink,
}

impl Reporter {
    /// # Safety
    /// `sink` must be valid for the reporter's life.
    pub unsafe fn new(sink: *const Sink) -> Self {
        Reporter { sink }
    }

    pub fn error(&self, message: &str, detail: &str) {
        // SAFETY: the sink is valid (see `new`); strings are borrowed for the call.
        unsafe { ((*self.sink).error)((*self.sink).ctx, Str::new(message), Str::new(detail)) }
    }

    pub fn info(&self, key: &str, value: &str) {
        unsafe { ((*self.sink).info)((*self.sink).ctx, Str::new(key), Str::new(value)) }
    }

    /// Hands a column to the host, which moves the stream out.
    ///
    /// # Safety
    /// `stream` must point to a live Arrow C stream.
    pub unsafe fn column(&self, name: &str, stream: *mut ArrowArrayStream) {
        unsafe { ((*self.sink).column)((*self.sink).ctx, Str::new(name), stream) }
    }
}
