//! The gRPC door's lifecycle: its port bound before anything serves (so a
//! taken port fails the start), tonic serving on the tokio runtime, and a
//! graceful stop that lets requests in flight finish.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::backend::ServiceBackend;
use crate::service::InferenceService;

/// The gRPC port could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("could not listen for gRPC on {addr}: {source}")]
pub struct BindError {
    pub addr: String,
    #[source]
    pub source: std::io::Error,
}

/// Binds `host:port` (non-blocking, for tokio).
pub fn bind(host: &str, port: u16) -> Result<std::net::TcpListener, BindError> {
    let addr = format!("{host}:{port}");
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let listener = std::net::TcpListener::bind(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    bind().map_err(|source| BindError { addr: addr.clone(), source })
}

/// The gRPC door while it serves: its port, the signal that stops it, its task.
pub struct GrpcDoor {
    pub port: u16,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl GrpcDoor {
    /// Serves the inference service on `listener` from `runtime`.
    pub fn start(
        listener: std::net::TcpListener,
        service: Arc<InferenceService>,
        ready: Arc<AtomicBool>,
        routing_header: &str,
        runtime: &Handle,
    ) -> Self {
        let port = listener.local_addr().map_or(0, |a| a.port());
        let backend = Arc::new(ServiceBackend::new(service, ready).with_routing_header(routing_header));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!(error = %e, "gRPC listener failed"),
            };
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = super::server::serve(backend, listener, shutdown).await {
                tracing::error!(error = %e, "gRPC server failed");
            }
        });
        tracing::info!(port, "gRPC listening");
        GrpcDoor { port, stop: Mutex::new(Some(stop)), task: Mutex::new(Some(task)) }
    }

    /// Stops accepting, lets requests in flight finish (within `timeout`).
    pub async fn stop(&self, timeout: Duration) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!("gRPC connections still open after the stop timeout; closing them");
                abort.abort();
            }
        }
    }
}
