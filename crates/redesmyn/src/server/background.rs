//! What runs beside the doors: each artifact cache's refresh, the EMF
//! flush, and the prefetches the server waits for before it reports ready.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::cache::ModelCache;
use crate::emf::Emf;
use crate::service::InferenceService;

/// Starts the refreshes and the EMF flush (returned, to abort at stop) and
/// the prefetches; `ready` turns on once every prefetch is done.
pub(super) fn start(
    service: &InferenceService,
    emf: Option<&Arc<Emf>>,
    ready: &Arc<AtomicBool>,
    runtime: &Handle,
) -> Vec<JoinHandle<()>> {
    let caches: Vec<Arc<ModelCache>> = service.caches().collect();
    let mut background: Vec<JoinHandle<()>> =
        caches.iter().map(|c| runtime.spawn(Arc::clone(c).run_refresh())).collect();
    if let Some(emf) = emf {
        background.push(runtime.spawn(Arc::clone(emf).run()));
    }
    let prefetches: Vec<Arc<ModelCache>> = caches.into_iter().filter(|c| c.config().prefetch).collect();
    if prefetches.is_empty() {
        ready.store(true, Ordering::Release);
    } else {
        let became_ready = Arc::clone(ready);
        runtime.spawn(async move {
            for cache in prefetches {
                match cache.prefetch().await {
                    Ok(n) => tracing::info!(models = n, "prefetch done"),
                    Err(e) => tracing::warn!(error = %e, "prefetch failed"),
                }
            }
            became_ready.store(true, Ordering::Release);
        });
    }
    background
}
