//! napi-rs binding of redesmyn: converts between JavaScript and the core's
//! types and forwards. Behaviour lives in the `redesmyn` crate.

mod from_js;
mod js_handler;
mod js_loader;
mod options;
mod server;
mod to_js;

/// Every Rust allocation of the addon (requests, columns, batches) goes
/// through mimalloc: under load glibc's malloc and free took about an eighth
/// of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One tokio runtime for the whole addon: napi's async functions and the
/// core's batchers share it.
#[napi_derive::module_init]
fn init() {
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
