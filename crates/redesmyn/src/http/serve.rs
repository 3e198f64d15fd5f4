//! Serving the app: actix-web on its own thread and system, signal handling
//! left to the host; returns once the socket is bound, with a [`Listening`]
//! handle that stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};

use super::HttpState;
use crate::config::ServerConfig;

/// Why an HTTP door could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the HTTP server thread failed to start: {0}")]
    Start(String),
}

/// An HTTP door that listens: its port, and what stops it.
pub struct Listening {
    pub port: u16,
    handle: ServerHandle,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Listening {
    /// No new connections; every accepted request answered (within the
    /// shutdown timeout); then the door's thread is joined.
    pub async fn stop(&self) {
        self.stop_accepting().await;
        self.join().await;
    }

    /// No new connections; resolves once every accepted request is answered.
    pub async fn stop_accepting(&self) {
        self.handle.stop(true).await;
    }

    /// Stops at once, without waiting (a start that failed later on).
    pub fn abort(&self) {
        drop(self.handle.stop(false));
    }

    /// Waits for the door's thread to end.
    pub async fn join(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

type Started = (Vec<SocketAddr>, ServerHandle, JoinHandle<()>);

/// Runs the HTTP front door on its own thread and actix system; returns once listening.
pub fn serve(config: &ServerConfig, workers: usize, state: Arc<HttpState>) -> Result<Listening, ServeError> {
    let addr = format!("{}:{}", config.host, config.port);
    serve_app(addr, workers, config.shutdown_timeout.as_secs(), "redesmyn-http", move |cfg| {
        super::configure(cfg, &state)
    })
}

/// Runs an app made by `configure` on its own thread and actix system
/// (the inference front door, or the management API on its own port).
pub fn serve_app(
    addr: String,
    workers: usize,
    shutdown: u64,
    thread_name: &str,
    configure: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
) -> Result<Listening, ServeError> {
    let (addrs, handle, thread) = start(addr, workers, shutdown, thread_name, configure)?;
    let port = addrs.first().map_or(0, SocketAddr::port);
    Ok(Listening { port, handle, thread: std::sync::Mutex::new(Some(thread)) })
}

fn start(
    addr: String,
    workers: usize,
    shutdown: u64,
    thread_name: &str,
    configure: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
) -> Result<Started, ServeError> {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = move || {
                    let configure = configure.clone();
                    App::new().configure(move |cfg| configure(cfg))
                };
                let bound = HttpServer::new(app)
                    .on_connect(super::remember_socket)
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(shutdown)
                    .bind(&addr);
                let server = match bound {
                    Ok(server) => server,
                    Err(source) => return drop(started_tx.send(Err(ServeError::Bind { addr, source }))),
                };
                let addrs = server.addrs();
                let server = server.run();
                let _ = started_tx.send(Ok((addrs, server.handle())));
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "HTTP server ended with an error");
                }
            })
        })
        .map_err(|e| ServeError::Start(e.to_string()))?;
    match started_rx.recv() {
        Ok(Ok((addrs, handle))) => Ok((addrs, handle, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(ServeError::Start("the server thread ended before listening".into())),
    }
}
