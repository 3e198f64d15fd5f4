//! napi-rs binding of redesmyn: converts between JavaScript and the core's
//! types and forwards. Behaviour lives in the `redesmyn` crate.

mod build;
mod caches;
mod client;
mod error;
mod failure;
mod jobs;
mod js_callback;
mod js_deployer;
mod js_handler;
mod js_loader;
mod js_reply;
mod js_stream;
mod mirror;
mod models;
mod options;
mod output;
mod score_run;
mod server;
mod shared;
mod stream_handle;
mod to_js;

/// Where bugs are reported; a panic message names it.
const ISSUES_URL: &str = "https://github.com/redesmyn/redesmyn/issues";

/// Every Rust allocation of the addon (requests, columns, batches) goes
/// through mimalloc: under load glibc's malloc and free took about an eighth
/// of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One tokio runtime for the whole addon: napi's async functions and the
/// core's batchers share it.
#[napi_derive::module_init]
fn init() {
    report_panics_as_bugs();
    // Two workers, or one where the process may use a single core (taskset,
    // a one-CPU container): more threads than cores only add switches.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.min(2))
        .thread_name("redesmyn-rt")
        .enable_all()
        .build()
        .expect("the tokio runtime could not be built");
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
}

/// A panic in the addon is a bug, never a user error: say so and where to
/// report it, then let the default hook print the message and location.
/// Handler panics are still caught by the batcher and answered with a 500.
fn report_panics_as_bugs() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!(
            "redesmyn: internal error (a bug in redesmyn {}, not in your code). \
             Please report it with the message below at {ISSUES_URL}",
            env!("CARGO_PKG_VERSION")
        );
        default(info);
    }));
}
