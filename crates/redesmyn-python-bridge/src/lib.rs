//! redesmyn's Python bridge: the only code that speaks to CPython. Built
//! against the stable ABI (abi3, 3.10+) and linked to no libpython, it is
//! loaded by the host (`redesmyn-python`) after the host has loaded the
//! chosen environment's libpython with global symbols, so one build serves
//! every CPython from 3.10 on.
//!
//! The host sees only [`redesmyn_python_abi::BridgeApi`]: this file fills
//! that table; every entry catches panics (they must not unwind into the
//! host) and reports failures through the host's sink.

mod arrow;
mod call;
mod interpreter;
mod sink;

use std::panic::{catch_unwind, AssertUnwindSafe};

use redesmyn_python_abi::{status, ArrowArrayStream, BridgeApi, Object, Param, Sink, Str, ABI_VERSION};

use crate::sink::Reporter;

static API: BridgeApi = BridgeApi {
    abi_version: ABI_VERSION,
    start,
    add_paths,
    resolve,
    call_handler,
    call_loader,
    release,
    open_stream,
    next_step,
    close_stream,
};

/// The entry point the host looks up (`redesmyn_python_abi::ENTRY_SYMBOL`).
#[no_mangle]
pub extern "C" fn redesmyn_python_bridge_api() -> *const BridgeApi {
    &API
}

/// Runs `body`, turning a panic into a failure the host can report.
/// `sink` is the one the host passed to the current entry point.
fn guarded(sink: *const Sink, body: impl FnOnce(&Reporter) -> i32) -> i32 {
    // SAFETY: every caller passes the sink its entry point received, which
    // the ABI contract makes valid for the whole call; the reporter is
    // dropped before this function, hence the call, returns.
    let reporter = unsafe { Reporter::new(sink) };
    match catch_unwind(AssertUnwindSafe(|| body(&reporter))) {
        Ok(code) => code,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            reporter.error(&format!("the Python bridge failed: {text}"), "");
            status::FAILED
        }
    }
}

/// # Safety
/// Unless `ptr` is null or `n` is 0, `ptr..ptr+n` must be an aligned,
/// readable array of `Str`s, each meeting [`Str::as_str`]'s obligation, for
/// the call (what the ABI contract promises for `paths`).
unsafe fn strings(ptr: *const Str, n: usize) -> Vec<String> {
    if ptr.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: `ptr` is non-null and `ptr..ptr+n` a readable array of `Str`
    // for the call (this function's obligation), and so is each string; the
    // strings are copied into owned `String`s before returning.
    unsafe { std::slice::from_raw_parts(ptr, n) }
        .iter()
        // SAFETY: each `Str` is valid UTF-8 for the call (this function's
        // obligation) and is copied at once.
        .map(|s| unsafe { s.as_str() }.to_owned())
        .collect()
}

/// # Safety
/// Unless `ptr` is null or `n` is 0, `ptr..ptr+n` must be an aligned,
/// readable array of `Param`s whose keys and values meet [`Str::as_str`]'s
/// obligation, for the call (what the ABI contract promises for `params`).
unsafe fn params(ptr: *const Param, n: usize) -> Vec<(String, String)> {
    if ptr.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: `ptr` is non-null and `ptr..ptr+n` a readable array of `Param`
    // for the call (this function's obligation).
    unsafe { std::slice::from_raw_parts(ptr, n) }
        .iter()
        // SAFETY: keys and values are valid UTF-8 for the call (this
        // function's obligation) and are copied at once.
        .map(|p| unsafe { (p.key.as_str().to_owned(), p.value.as_str().to_owned()) })
        .collect()
}

/// [`BridgeApi::start`].
///
/// # Safety
/// The host keeps the ABI contract: `program` and the `n_paths` strings at
/// `paths` are valid UTF-8 for the call, `sink` is valid for the call, and
/// this is the process's first call into the bridge.
unsafe extern "C" fn start(program: Str, paths: *const Str, n_paths: usize, sink: *const Sink) -> i32 {
    // SAFETY: `program` is valid UTF-8 for the call (ABI contract) and is
    // copied at once.
    let program = unsafe { program.as_str() }.to_owned();
    // SAFETY: `paths..paths+n_paths` are valid `Str`s for the call (ABI
    // contract), which is what `strings` asks.
    let paths = unsafe { strings(paths, n_paths) };
    guarded(sink, |r| interpreter::start(&program, &paths, r))
}

/// [`BridgeApi::add_paths`].
///
/// # Safety
/// The host keeps the ABI contract: the `n_paths` strings at `paths` are
/// valid UTF-8 for the call and `sink` is valid for the call.
unsafe extern "C" fn add_paths(paths: *const Str, n_paths: usize, sink: *const Sink) -> i32 {
    // SAFETY: `paths..paths+n_paths` are valid `Str`s for the call (ABI
    // contract), which is what `strings` asks.
    let paths = unsafe { strings(paths, n_paths) };
    guarded(sink, |r| interpreter::add_paths(&paths, r))
}

/// [`BridgeApi::resolve`].
///
/// # Safety
/// The host keeps the ABI contract: `module` and `attribute` are valid UTF-8
/// for the call, `out` is a writable, aligned slot and `sink` is valid for
/// the call.
unsafe extern "C" fn resolve(module: Str, attribute: Str, out: *mut *mut Object, sink: *const Sink) -> i32 {
    // SAFETY: both strings are valid UTF-8 for the call (ABI contract) and
    // are copied at once.
    let (module, attribute) = unsafe { (module.as_str().to_owned(), attribute.as_str().to_owned()) };
    guarded(sink, |r| match call::resolve(&module, &attribute, r) {
        Ok(handle) => {
            // SAFETY: `out` is a writable, aligned slot for the call (ABI
            // contract); it holds a plain pointer, so nothing is dropped.
            unsafe { *out = handle };
            status::OK
        }
        Err(code) => code,
    })
}

/// [`BridgeApi::call_handler`].
///
/// # Safety
/// The host keeps the ABI contract: `function` (and `model` unless null) are
/// live handles from `resolve` / `call_loader`, not released during the
/// call; `batch` points to an initialised Arrow C stream that is moved to
/// the bridge; the `n_params` entries at `params` and `traceparent` are
/// valid for the call; `kind` is a writable `u32`; `sink` is valid for the call.
unsafe extern "C" fn call_handler(
    function: *const Object,
    model: *const Object,
    batch: *mut ArrowArrayStream,
    params: *const Param,
    n_params: usize,
    traceparent: Str,
    kind: *mut u32,
    sink: *const Sink,
) -> i32 {
    // Take the batch first: it is ours whatever happens next.
    // SAFETY: `batch` points to an initialised stream that the ABI contract
    // moves to the bridge; `take` leaves the host's copy released, as the
    // Arrow C stream interface prescribes for a move.
    let batch = unsafe { ArrowArrayStream::take(batch) };
    // SAFETY: `params..params+n_params` are valid `Param`s for the call (ABI
    // contract), which is what `params` asks.
    let params = unsafe { self::params(params, n_params) };
    // SAFETY: a `Str` made by the host from a `&str` it holds for the call (ABI contract).
    let traceparent = unsafe { traceparent.as_str() }.to_string();
    guarded(sink, |r| {
        // SAFETY: handles come from `resolve` / `call_loader` and are alive
        // until the host releases them, which it does not do during a call.
        let function = unsafe { call::handle(function) };
        let model = (!model.is_null()).then(|| {
            // SAFETY: non-null, so a live handle from `call_loader`, not
            // released during the call (as for `function` above).
            unsafe { call::handle(model) }
        });
        match call::handler(function, model, batch, &params, &traceparent, r) {
            Ok(k) => {
                // SAFETY: `kind` is a writable, aligned `u32` for the call
                // (ABI contract).
                unsafe { *kind = k };
                status::OK
            }
            Err(()) => status::FAILED,
        }
    })
}

/// [`BridgeApi::call_loader`].
///
/// # Safety
/// The host keeps the ABI contract: `function` is a live handle from
/// `resolve`, not released during the call; `path` and the `n_params`
/// entries at `params` are valid for the call; `out` is a writable slot;
/// `sink` is valid for the call.
unsafe extern "C" fn call_loader(
    function: *const Object,
    path: Str,
    params: *const Param,
    n_params: usize,
    out: *mut *mut Object,
    sink: *const Sink,
) -> i32 {
    // SAFETY: `path` is valid UTF-8 for the call (ABI contract) and is copied
    // at once.
    let path = unsafe { path.as_str() }.to_owned();
    // SAFETY: `params..params+n_params` are valid `Param`s for the call (ABI
    // contract), which is what `params` asks.
    let params = unsafe { self::params(params, n_params) };
    guarded(sink, |r| {
        // SAFETY: `function` is a live handle from `resolve`, not released
        // during the call (ABI contract).
        let function = unsafe { call::handle(function) };
        match call::loader(function, &path, &params, r) {
            Ok(model) => {
                // SAFETY: `out` is a writable, aligned slot for the call (ABI
                // contract); it holds a plain pointer, so nothing is dropped.
                unsafe { *out = model };
                status::OK
            }
            Err(()) => status::FAILED,
        }
    })
}

/// [`BridgeApi::release`].
///
/// # Safety
/// The host keeps the ABI contract: `object` is null or a handle from
/// `resolve` / `call_loader`, released exactly once and not during a call
/// that uses it.
unsafe extern "C" fn release(object: *mut Object) {
    // SAFETY: the ABI contract gives `call::release` what it asks: a handle
    // of this bridge (or null), released once, in use by no call.
    let _ = catch_unwind(|| unsafe { call::release(object) });
}

/// [`BridgeApi::open_stream`].
///
/// # Safety
/// As for [`call_handler`], with `out` a writable, aligned slot instead of `kind`.
unsafe extern "C" fn open_stream(
    function: *const Object,
    model: *const Object,
    batch: *mut ArrowArrayStream,
    params: *const Param,
    n_params: usize,
    out: *mut *mut Object,
    sink: *const Sink,
) -> i32 {
    // SAFETY: as in `call_handler`: the batch is moved to the bridge.
    let batch = unsafe { ArrowArrayStream::take(batch) };
    // SAFETY: as in `call_handler`.
    let params = unsafe { self::params(params, n_params) };
    guarded(sink, |r| {
        // SAFETY: as in `call_handler`: live handles, not released during the call.
        let function = unsafe { call::handle(function) };
        let model = (!model.is_null()).then(|| {
            // SAFETY: as for `function`.
            unsafe { call::handle(model) }
        });
        match call::open_stream(function, model, batch, &params, r) {
            Ok(stream) => {
                // SAFETY: `out` is a writable, aligned slot for the call (ABI
                // contract); it holds a plain pointer, so nothing is dropped.
                unsafe { *out = stream };
                status::OK
            }
            Err(()) => status::FAILED,
        }
    })
}

/// [`BridgeApi::next_step`].
///
/// # Safety
/// The host keeps the ABI contract: `stream` is a live handle from
/// `open_stream`, not released during the call and used by no other call
/// meanwhile; `kind` is a writable `u32`; `sink` is valid for the call.
unsafe extern "C" fn next_step(stream: *const Object, kind: *mut u32, sink: *const Sink) -> i32 {
    guarded(sink, |r| {
        // SAFETY: a live handle from `open_stream` (ABI contract).
        let stream = unsafe { call::handle(stream) };
        match call::next_step(stream, r) {
            Ok(Some(k)) => {
                // SAFETY: `kind` is a writable, aligned `u32` for the call (ABI contract).
                unsafe { *kind = k };
                status::OK
            }
            Ok(None) => status::FINISHED,
            Err(()) => status::FAILED,
        }
    })
}

/// [`BridgeApi::close_stream`].
///
/// # Safety
/// As for [`next_step`].
unsafe extern "C" fn close_stream(stream: *const Object, sink: *const Sink) -> i32 {
    guarded(sink, |r| {
        // SAFETY: a live handle from `open_stream` (ABI contract).
        let stream = unsafe { call::handle(stream) };
        match call::close_stream(stream, r) {
            Ok(()) => status::OK,
            Err(()) => status::FAILED,
        }
    })
}
