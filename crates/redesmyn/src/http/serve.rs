//! Serving the app: actix-web on its own thread and system, signal handling
//! left to the host; returns once the socket is bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};

use super::HttpState;
use crate::config::ServerConfig;
use crate::server::ServerError;

/// Where the front door listens, its handle, and its thread.
pub type Started = (Vec<SocketAddr>, ServerHandle, JoinHandle<()>);

/// Runs the HTTP front door on its own thread and actix system; returns once listening.
pub fn serve(config: &ServerConfig, workers: usize, state: Arc<HttpState>) -> Result<Started, ServerError> {
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
) -> Result<Started, ServerError> {
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
                    Err(source) => return drop(started_tx.send(Err(ServerError::Bind { addr, source }))),
                };
                let addrs = server.addrs();
                let server = server.run();
                let _ = started_tx.send(Ok((addrs, server.handle())));
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "HTTP server ended with an error");
                }
            })
        })
        .map_err(|e| ServerError::Start(e.to_string()))?;
    match started_rx.recv() {
        Ok(Ok((addrs, handle))) => Ok((addrs, handle, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(ServerError::Start("the server thread ended before listening".into())),
    }
}
