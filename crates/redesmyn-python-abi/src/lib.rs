//! The C ABI between the host (`redesmyn-python`, inside the Node addon) and
//! the bridge library (`redesmyn-python-bridge`, loaded at run time after
//! libpython). Both sides compile this one file, so the layouts cannot
//! drift; [`ABI_VERSION`] guards against a bridge library from another build.
//!
//! Contract:
//! - The bridge exports one symbol, [`ENTRY_SYMBOL`], a function returning a
//!   pointer to a static [`BridgeApi`]. The host checks `abi_version` before
//!   calling anything else.
//! - Strings cross as borrowed [`Str`] (UTF-8, valid for the call only).
//!   Results and errors come back through the host's [`Sink`] callbacks, so
//!   no allocation is ever freed by the other side's allocator.
//! - Batches and predictions cross as Arrow C streams ([`ArrowArrayStream`]).
//!   A stream passed to a function is *moved*: the callee copies the struct
//!   and sets the source's `release` to null, as the Arrow C stream interface
//!   and the PyCapsule interface prescribe.
//! - Python objects (imported functions, models made by loaders) stay in the
//!   bridge behind opaque [`Object`] handles; the host frees each exactly
//!   once with `release`, which takes the GIL.
//! - Every function may be called from any thread; the bridge takes the GIL
//!   itself. Only `start` must run first, once per process.

use std::ffi::{c_char, c_int, c_void};

/// Bumped on any change to the types or functions below.
pub const ABI_VERSION: u32 = 3;

/// The bridge's exported entry point: `extern "C" fn() -> *const BridgeApi`.
pub const ENTRY_SYMBOL: &[u8] = b"redesmyn_python_bridge_api\0";

/// Status codes of the bridge's functions. On anything but `OK` the bridge
/// has called [`Sink::error`] once.
pub mod status {
    pub const OK: i32 = 0;
    /// Any Python exception or bridge failure; the message says which.
    pub const FAILED: i32 = 1;
    /// `resolve`: the module could not be imported.
    pub const IMPORT: i32 = 2;
    /// `resolve`: the module has no such attribute.
    pub const MISSING_ATTRIBUTE: i32 = 3;
    /// `resolve`: the attribute is not callable.
    pub const NOT_CALLABLE: i32 = 4;
    /// `next_step`: the generator is done; nothing was reported.
    pub const FINISHED: i32 = 5;
}

/// Kinds of what a handler returned, reported through `call_handler`'s `kind`.
pub mod prediction_kind {
    /// One column ([`super::Sink::column`] called once).
    pub const COLUMN: u32 = 0;
    /// A frame, one [`super::Sink::column`] call per column.
    pub const COLUMNS: u32 = 1;
    /// `next_step`: a step without chunks (it only ends rows).
    pub const NONE: u32 = 2;
}

/// A borrowed UTF-8 string.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub fn new(text: &str) -> Str {
        Str { ptr: text.as_ptr(), len: text.len() }
    }

    /// # Safety
    /// Unless `ptr` is null or `len` is 0, `ptr..ptr+len` must be one
    /// readable allocation holding valid UTF-8, not written to during `'a`.
    /// A `Str` received across the ABI meets this for the call it came with
    /// (it was made by [`Str::new`] from a `&str` the sender holds until the
    /// call returns), so `'a` must not outlive that call.
    pub unsafe fn as_str<'a>(self) -> &'a str {
        if self.ptr.is_null() || self.len == 0 {
            return "";
        }
        // SAFETY: `ptr` is non-null and, by the caller's obligation above,
        // `ptr..ptr+len` is readable, unchanging UTF-8 for `'a`, which is what
        // `from_raw_parts` (valid, aligned for `u8`, len <= isize::MAX as it
        // came from a `&str`) and `from_utf8_unchecked` require.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

/// One path parameter.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Param {
    pub key: Str,
    pub value: Str,
}

/// An opaque Python object owned by the bridge.
#[repr(C)]
pub struct Object {
    _private: [u8; 0],
}

/// The Arrow C stream interface's struct, as the Arrow specification lays it
/// out (`struct ArrowArrayStream`). Schemas and arrays stay opaque here.
#[repr(C)]
pub struct ArrowArrayStream {
    pub get_schema: Option<unsafe extern "C" fn(*mut ArrowArrayStream, *mut c_void) -> c_int>,
    pub get_next: Option<unsafe extern "C" fn(*mut ArrowArrayStream, *mut c_void) -> c_int>,
    pub get_last_error: Option<unsafe extern "C" fn(*mut ArrowArrayStream) -> *const c_char>,
    pub release: Option<unsafe extern "C" fn(*mut ArrowArrayStream)>,
    pub private_data: *mut c_void,
}

impl ArrowArrayStream {
    /// A released (empty) stream, ready to be moved into.
    pub const fn empty() -> Self {
        ArrowArrayStream {
            get_schema: None,
            get_next: None,
            get_last_error: None,
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }

    /// Moves the stream at `source` out, leaving `source` released.
    ///
    /// # Safety
    /// `source` must be non-null, aligned, valid for reads and writes, and
    /// point to an initialised `ArrowArrayStream` (live or released) that no
    /// one else uses during the call. The caller gives up the stream: after
    /// the call, `*source` is released and only the returned value owns it.
    pub unsafe fn take(source: *mut ArrowArrayStream) -> ArrowArrayStream {
        // SAFETY: `source` is valid for reads and initialised (caller's
        // obligation). The bitwise copy becomes the stream's only owner
        // because the next statement marks the source released, as the Arrow
        // C stream interface prescribes for a move.
        let stream = unsafe { std::ptr::read(source) };
        // SAFETY: `source` is valid for writes (caller's obligation); a null
        // `release` marks it released, so neither its `Drop` nor its producer
        // releases the stream now owned by `stream`.
        unsafe { (*source).release = None };
        stream
    }
}

impl Drop for ArrowArrayStream {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: by the Arrow C stream interface a non-null `release`
            // means the stream is live, and a value of this type owns its
            // stream (moves go through `take`, which nulls the source's
            // `release`), so it is released here exactly once; the callback
            // gets a pointer to this very struct, valid for the call.
            unsafe { release(self) };
        }
    }
}

// SAFETY: the Arrow C stream interface does not tie a stream to the thread
// that made it; it only asks consumers to serialise calls to one stream
// ("the stream source is not assumed to be thread-safe"). This type is not
// `Sync`, and using or releasing a stream needs it by value or `&mut`, so
// one thread at a time uses it wherever it is sent.
unsafe impl Send for ArrowArrayStream {}

/// Where the bridge reports results. `ctx` is the host's, passed back as is.
#[repr(C)]
pub struct Sink {
    pub ctx: *mut c_void,
    /// The failure: `message` for the client (`ValueError: text`), `detail`
    /// (a traceback, possibly empty) for the log.
    pub error: unsafe extern "C" fn(ctx: *mut c_void, message: Str, detail: Str),
    /// One output column, its stream to be moved out by the host.
    pub column: unsafe extern "C" fn(ctx: *mut c_void, name: Str, stream: *mut ArrowArrayStream),
    /// A fact for the log, such as the interpreter's version.
    pub info: unsafe extern "C" fn(ctx: *mut c_void, key: Str, value: Str),
    /// `next_step`: the batch rows that end after this step (`n` of them,
    /// valid for the call).
    pub rows: unsafe extern "C" fn(ctx: *mut c_void, rows: *const u64, n: usize),
}

/// The bridge's functions. See the module documentation for ownership.
#[repr(C)]
pub struct BridgeApi {
    pub abi_version: u32,
    /// Starts the interpreter (limited API: program name, then
    /// `Py_InitializeEx(0)`, so no signal handlers), puts `paths` first on
    /// `sys.path`, imports polars, and releases the GIL. `program` is the
    /// environment's Python executable: it decides `sys.prefix`, hence the
    /// virtual environment and its site-packages. Reports `prefix`,
    /// `version` and `executable` through [`Sink::info`].
    pub start: unsafe extern "C" fn(program: Str, paths: *const Str, n_paths: usize, sink: *const Sink) -> i32,
    /// Puts `paths` (absolute) first on `sys.path`, skipping those present.
    pub add_paths: unsafe extern "C" fn(paths: *const Str, n_paths: usize, sink: *const Sink) -> i32,
    /// Imports `module` and looks up the dotted `attribute`; on success
    /// writes a callable handle to `out`.
    pub resolve: unsafe extern "C" fn(module: Str, attribute: Str, out: *mut *mut Object, sink: *const Sink) -> i32,
    /// Calls a handler with the batch (`polars.DataFrame(stream)`), the model
    /// first if `model` is not null, and `params=` if the function takes it.
    /// `batch` is moved. Writes [`prediction_kind`] to `kind` and the columns
    /// to [`Sink::column`]. A non-empty `traceparent` (the batch span's, W3C)
    /// is the OpenTelemetry context of the call when `opentelemetry-api` is
    /// installed.
    pub call_handler: unsafe extern "C" fn(
        function: *const Object,
        model: *const Object,
        batch: *mut ArrowArrayStream,
        params: *const Param,
        n_params: usize,
        traceparent: Str,
        kind: *mut u32,
        sink: *const Sink,
    ) -> i32,
    /// Calls a loader `(path)` or `(path, params=)`; writes the model's handle to `out`.
    pub call_loader: unsafe extern "C" fn(
        function: *const Object,
        path: Str,
        params: *const Param,
        n_params: usize,
        out: *mut *mut Object,
        sink: *const Sink,
    ) -> i32,
    /// Drops a handle (taking the GIL). Each handle is released exactly once.
    pub release: unsafe extern "C" fn(object: *mut Object),
    /// Calls a streaming handler as `call_handler` calls a handler; what it
    /// returns (a generator, an iterable or an async generator) becomes the
    /// stream handle written to `out`. `batch` is moved.
    pub open_stream: unsafe extern "C" fn(
        function: *const Object,
        model: *const Object,
        batch: *mut ArrowArrayStream,
        params: *const Param,
        n_params: usize,
        out: *mut *mut Object,
        sink: *const Sink,
    ) -> i32,
    /// Takes the next step of a stream handle: `OK` with the step's chunks
    /// as for `call_handler` ([`prediction_kind::NONE`] when it has none)
    /// and its ended rows through [`Sink::rows`]; [`status::FINISHED`] when
    /// the generator is done. Calls on one handle must not overlap.
    pub next_step: unsafe extern "C" fn(stream: *const Object, kind: *mut u32, sink: *const Sink) -> i32,
    /// Closes a stream handle's generator early (`close()` / `aclose()`, so
    /// its `finally` blocks run). Not overlapping other calls on the handle;
    /// the handle is still released with `release`.
    pub close_stream: unsafe extern "C" fn(stream: *const Object, sink: *const Sink) -> i32,
}

/// The type of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const BridgeApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_layout_is_five_pointers_as_in_the_arrow_spec() {
        assert_eq!(std::mem::size_of::<ArrowArrayStream>(), 5 * std::mem::size_of::<usize>());
    }

    #[test]
    fn take_leaves_the_source_released() {
        use std::sync::atomic::{AtomicU32, Ordering};
        static RELEASED: AtomicU32 = AtomicU32::new(0);
        /// # Safety
        /// `s` must point to a live stream, as the Arrow C stream interface
        /// guarantees a `release` callback.
        unsafe extern "C" fn release(s: *mut ArrowArrayStream) {
            RELEASED.fetch_add(1, Ordering::SeqCst);
            // SAFETY: `s` points to a live stream (this function's
            // obligation); marking it released is what `release` must do.
            unsafe { (*s).release = None };
        }
        let mut source = ArrowArrayStream { release: Some(release), ..ArrowArrayStream::empty() };
        // SAFETY: `source` is a local, initialised stream used by no one else.
        let moved = unsafe { ArrowArrayStream::take(&mut source) };
        drop(source);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0, "the source is released already");
        drop(moved);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 1, "the moved stream releases once");
    }
}
