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
};

/// The entry point the host looks up (`redesmyn_python_abi::ENTRY_SYMBOL`).
#[no_mangle]
pub extern "C" fn redesmyn_python_bridge_api() -> *const BridgeApi {
    &API
}

/// Runs `body`, turning a panic into a failure the host can report.
fn guarded(sink: *const Sink, body: impl FnOnce(&Reporter) -> i32) -> i32 {
    // SAFETY: the host passes a sink valid for the whole call.
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
/// `ptr..ptr+n` must be valid for the call.
unsafe fn strings(ptr: *const Str, n: usize) -> Vec<String> {
    if ptr.is_null() || n == 0 {
        return Vec::new();
    }
    unsafe { std::slice::from_raw_parts(ptr, n) }.iter().map(|s| unsafe { s.as_str() }.to_owned()).collect()
}

/// # Safety
/// `ptr..ptr+n` must be valid for the call.
unsafe fn params(ptr: *const Param, n: usize) -> Vec<(String, String)> {
    if ptr.is_null() || n == 0 {
        return Vec::new();
    }
    unsafe { std::slice::from_raw_parts(ptr, n) }
        .iter()
        .map(|p| unsafe { (p.key.as_str().to_owned(), p.value.as_str().to_owned()) })
        .collect()
}

unsafe extern "C" fn start(program: Str, paths: *const Str, n_paths: usize, sink: *const Sink) -> i32 {
    let program = unsafe { program.as_str() }.to_owned();
    let paths = unsafe { strings(paths, n_paths) };
    guarded(sink, |r| interpreter::start(&program, &paths, r))
}

unsafe extern "C" fn add_paths(paths: *const Str, n_paths: usize, sink: *const Sink) -> i32 {
    let paths = unsafe { strings(paths, n_paths) };
    guarded(sink, |r| interpreter::add_paths(&paths, r))
}

unsafe extern "C" fn resolve(module: Str, attribute: Str, out: *mut *mut Object, sink: *const Sink) -> i32 {
    let (module, attribute) = unsafe { (module.as_str().to_owned(), attribute.as_str().to_owned()) };
    guarded(sink, |r| match call::resolve(&module, &attribute, r) {
        Ok(handle) => {
            // SAFETY: the host passes a writable slot.
            unsafe { *out = handle };
            status::OK
        }
        Err(code) => code,
    })
}

unsafe extern "C" fn call_handler(
    function: *const Object,
    model: *const Object,
    batch: *mut ArrowArrayStream,
    params: *const Param,
    n_params: usize,
    kind: *mut u32,
    sink: *const Sink,
) -> i32 {
    // Take the batch first: it is ours whatever happens next.
    let batch = unsafe { ArrowArrayStream::take(batch) };
    let params = unsafe { self::params(params, n_params) };
    guarded(sink, |r| {
        // SAFETY: handles come from `resolve` / `call_loader` and are alive
        // until the host releases them, which it does not do during a call.
        let function = unsafe { call::handle(function) };
        let model = (!model.is_null()).then(|| unsafe { call::handle(model) });
        match call::handler(function, model, batch, &params, r) {
            Ok(k) => {
                unsafe { *kind = k };
                status::OK
            }
            Err(()) => status::FAILED,
        }
    })
}

unsafe extern "C" fn call_loader(
    function: *const Object,
    path: Str,
    params: *const Param,
    n_params: usize,
    out: *mut *mut Object,
    sink: *const Sink,
) -> i32 {
    let path = unsafe { path.as_str() }.to_owned();
    let params = unsafe { self::params(params, n_params) };
    guarded(sink, |r| {
        let function = unsafe { call::handle(function) };
        match call::loader(function, &path, &params, r) {
            Ok(model) => {
                unsafe { *out = model };
                status::OK
            }
            Err(()) => status::FAILED,
        }
    })
}

unsafe extern "C" fn release(object: *mut Object) {
    let _ = catch_unwind(|| unsafe { call::release(object) });
}
