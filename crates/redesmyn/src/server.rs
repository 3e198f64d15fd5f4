//! The HTTP server: actix-web on its own threads, one route per endpoint,
//! health routes, JSON errors for everything that is not a prediction.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use tokio::runtime::Handle;

use crate::batch::{Answer, Liveness, Queues};
use crate::cache::ModelCache;
use crate::decode::decode;
use crate::emf::{Emf, EmfConfig};
use crate::encode::response_body;
use crate::endpoint::Endpoint;
use crate::error::RequestError;
use crate::handler::Params;
use crate::metrics::{EndpointMetrics, Metrics};
use crate::schema::Schema;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 binds an ephemeral port; [`RunningServer::port`] tells which.
    pub port: u16,
    /// HTTP worker threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long `stop` waits for open connections before closing them.
    pub shutdown_timeout: Duration,
    /// Record metrics: Prometheus at `/metrics`, and EMF when configured.
    pub metrics: bool,
    /// AWS Embedded Metric Format output (needs `metrics`).
    pub emf: Option<EmfConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: None,
            body_limit: 8 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            metrics: true,
            emf: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("an endpoint is already registered at '{0}'")]
    DuplicatePath(String),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("the HTTP server thread failed to start: {0}")]
    Start(String),
}

/// Endpoints collected before the server starts.
pub struct Server {
    config: ServerConfig,
    endpoints: Vec<Endpoint>,
}

/// What a route needs at request time.
struct Route {
    path: String,
    schema: Schema,
    param_names: Vec<String>,
    queues: Queues,
    cache: Option<Arc<ModelCache>>,
    metrics: Option<EndpointMetrics>,
    timeout: Option<Duration>,
}

struct AppState {
    body_limit: usize,
    /// Listening and every prefetch done.
    ready: AtomicBool,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Server { config, endpoints: Vec::new() }
    }

    pub fn register(&mut self, endpoint: Endpoint) -> Result<(), ServerError> {
        let normalized = |p: &str| p.trim_end_matches('/').to_string();
        if self.endpoints.iter().any(|e| normalized(&e.path) == normalized(&endpoint.path)) {
            return Err(ServerError::DuplicatePath(endpoint.path));
        }
        self.endpoints.push(endpoint);
        Ok(())
    }

    /// Binds and starts serving. Batchers run on `runtime`; HTTP runs on
    /// actix's own worker threads, with signal handling left to the host.
    pub fn start(self, runtime: Handle) -> Result<RunningServer, ServerError> {
        let config = self.config;
        let emf = config.emf.clone().filter(|_| config.metrics).map(|c| Arc::new(Emf::new(c)));
        let metrics = config.metrics.then(|| {
            let caches = self.endpoints.iter().filter_map(|e| Some((e.path.clone(), e.cache.clone()?))).collect();
            Arc::new(Metrics::new(caches, emf.clone()))
        });
        let routes: Vec<(String, Arc<Route>)> = self
            .endpoints
            .into_iter()
            .map(|e| {
                let endpoint_metrics = metrics.as_ref().map(|m| m.endpoint(&e.path));
                let route = Route {
                    path: e.path.clone(),
                    param_names: e.param_names().to_vec(),
                    schema: e.schema,
                    timeout: e.batch.timeout,
                    queues: Queues::with_parts(
                        e.handler,
                        e.cache.clone(),
                        endpoint_metrics.clone(),
                        e.batch,
                        runtime.clone(),
                    ),
                    cache: e.cache,
                    metrics: endpoint_metrics,
                };
                (e.path, Arc::new(route))
            })
            .collect();
        let state = Arc::new(AppState { body_limit: config.body_limit, ready: AtomicBool::new(false) });
        let workers = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let addr = format!("{}:{}", config.host, config.port);

        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let app_routes = routes.clone();
        let app_state = state.clone();
        let app_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("redesmyn-http".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let factory = move || {
                        let exposition = app_metrics.clone();
                        let mut app = App::new()
                            .route("/health/live", web::route().to(live))
                            .route(
                                "/metrics",
                                web::route().to(move |req: HttpRequest| {
                                    let exposition = exposition.clone();
                                    async move { metrics_page(req, exposition.as_deref()) }
                                }),
                            )
                            .route(
                                "/health/ready",
                                web::route().to({
                                    let state = app_state.clone();
                                    move |req: HttpRequest| ready(req, state.clone())
                                }),
                            );
                        for (path, route) in &app_routes {
                            let route = route.clone();
                            let state = app_state.clone();
                            app = app.route(
                                path,
                                web::route().to(move |req: HttpRequest, body: web::Payload| {
                                    predict(req, body, route.clone(), state.clone())
                                }),
                            );
                        }
                        app.default_service(web::to(not_found))
                    };
                    let bound = HttpServer::new(factory)
                        .on_connect(remember_socket)
                        .workers(workers)
                        .disable_signals()
                        .shutdown_timeout(config.shutdown_timeout.as_secs())
                        .bind(&addr);
                    let server = match bound {
                        Ok(server) => server,
                        Err(source) => {
                            let _ = started_tx.send(Err(ServerError::Bind { addr, source }));
                            return;
                        }
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
        let (addrs, handle) = match started_rx.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(ServerError::Start("the server thread ended before listening".into())),
        };
        let port = addrs.first().map_or(0, SocketAddr::port);
        tracing::info!(port, workers, "listening");
        let caches: Vec<Arc<ModelCache>> = routes.iter().filter_map(|(_, r)| r.cache.clone()).collect();
        // Background refreshes and EMF flushes, and readiness once every prefetch is done.
        let mut background: Vec<tokio::task::JoinHandle<()>> =
            caches.iter().map(|c| runtime.spawn(c.clone().run_refresh())).collect();
        if let Some(emf) = &emf {
            background.push(runtime.spawn(emf.clone().run()));
        }
        let prefetches: Vec<Arc<ModelCache>> = caches.into_iter().filter(|c| c.config().prefetch).collect();
        let ready_state = state.clone();
        if prefetches.is_empty() {
            state.ready.store(true, Ordering::Release);
        } else {
            runtime.spawn(async move {
                for cache in prefetches {
                    match cache.prefetch().await {
                        Ok(n) => tracing::info!(models = n, "prefetch done"),
                        Err(e) => tracing::warn!(error = %e, "prefetch failed"),
                    }
                }
                ready_state.ready.store(true, Ordering::Release);
            });
        }
        Ok(RunningServer { port, handle, thread: Mutex::new(Some(thread)), routes, state, background, emf })
    }
}

/// An in-process prediction and where its time went.
pub struct Prediction {
    pub id: String,
    /// `None` for an empty array of records.
    pub answer: Option<Answer>,
    pub total: Duration,
}

/// A server that is listening.
pub struct RunningServer {
    port: u16,
    handle: ServerHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
    routes: Vec<(String, Arc<Route>)>,
    state: Arc<AppState>,
    background: Vec<tokio::task::JoinHandle<()>>,
    emf: Option<Arc<Emf>>,
}

impl RunningServer {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Predicts in-process, through the same parsing, queue, batching and
    /// handler as HTTP requests to the endpoint at `path`. `body` is JSON
    /// records, as in a request.
    pub async fn predict(&self, path: &str, params: Params, body: &[u8]) -> Result<Prediction, RequestError> {
        let arrived = Instant::now();
        let route = self
            .routes
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| RequestError::NotFound { method: "predict".into(), path: path.into() })?;
        let missing: Vec<&str> =
            route.param_names.iter().filter(|n| params.get(n).is_none()).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(RequestError::InvalidParam(format!("missing path parameters: {}", missing.join(", "))));
        }
        let ordered = Params::new(
            route.param_names.iter().map(|n| (n.clone(), params.get(n).unwrap_or_default().to_string())).collect(),
        );
        let id = uuid::Uuid::new_v4().to_string();
        let _in_flight = InFlight::start(route.metrics.as_ref());
        let result = route.predict(ordered, body, arrived, None).await;
        if let Some(m) = &route.metrics {
            m.answered(result.as_ref().map_or_else(RequestError::status, |_| 200), arrived.elapsed());
        }
        Ok(match result? {
            Some(answer) => Prediction { id, answer: Some(answer), total: arrived.elapsed() },
            None => Prediction { id, answer: None, total: arrived.elapsed() },
        })
    }

    /// Graceful stop: no new connections; every accepted request is answered;
    /// batchers drain and end; the HTTP threads are joined.
    pub async fn stop(&self) {
        self.state.ready.store(false, Ordering::Release);
        for task in &self.background {
            task.abort();
        }
        self.handle.stop(true).await;
        for (_, route) in &self.routes {
            route.queues.shutdown().await;
        }
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(emf) = &self.emf {
            emf.flush();
        }
    }
}

fn metrics_page(req: HttpRequest, metrics: Option<&Metrics>) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed(&req, "GET");
    }
    let Some(metrics) = metrics else {
        let err = RequestError::NotFound { method: req.method().to_string(), path: req.path().to_string() };
        return error_response(&err, None);
    };
    // OpenMetrics for scrapers that ask for it (Prometheus does), the
    // classic text format otherwise.
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/openmetrics-text") {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8"))
            .body(metrics.encode())
    } else {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
            .body(metrics.encode_classic())
    }
}

async fn live(req: HttpRequest) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed(&req, "GET");
    }
    json_response(StatusCode::OK, br#"{"status":"live"}"#.to_vec())
}

async fn ready(req: HttpRequest, state: Arc<AppState>) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed(&req, "GET");
    }
    if state.ready.load(Ordering::Acquire) {
        json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec())
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, br#"{"status":"not ready"}"#.to_vec())
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = RequestError::NotFound { method: req.method().to_string(), path: req.path().to_string() };
    error_response(&err, None)
}

fn method_not_allowed(req: &HttpRequest, allowed: &'static str) -> HttpResponse {
    let err =
        RequestError::MethodNotAllowed { method: req.method().to_string(), path: req.path().to_string(), allowed };
    let mut response = error_response(&err, None);
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// Counts a request as in flight until it is answered (or dropped).
struct InFlight<'a>(Option<&'a EndpointMetrics>);

impl<'a> InFlight<'a> {
    fn start(metrics: Option<&'a EndpointMetrics>) -> Self {
        if let Some(m) = metrics {
            m.in_flight.inc();
        }
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            m.in_flight.dec();
        }
    }
}

async fn predict(req: HttpRequest, body: web::Payload, route: Arc<Route>, state: Arc<AppState>) -> HttpResponse {
    if req.method() != Method::POST {
        return method_not_allowed(&req, "POST");
    }
    let arrived = Instant::now();
    let _in_flight = InFlight::start(route.metrics.as_ref());
    let id = request_id(&req);
    let response = respond(&req, body, &route, &state, &id, arrived).await;
    let status = response.status().as_u16();
    if let Some(m) = &route.metrics {
        m.answered(status, arrived.elapsed());
    }
    tracing::info!(
        target: "redesmyn::request",
        id = %id,
        endpoint = %route.path,
        status,
        total_ms = arrived.elapsed().as_secs_f64() * 1e3,
        timing = response.headers().get("server-timing").and_then(|v| v.to_str().ok()).unwrap_or(""),
        "request"
    );
    response
}

async fn respond(
    req: &HttpRequest,
    body: web::Payload,
    route: &Route,
    state: &AppState,
    id: &str,
    arrived: Instant,
) -> HttpResponse {
    match answer(req, body, route, state, arrived).await {
        Ok(Some(answer)) => {
            let mut response = json_response(StatusCode::OK, response_body(id, &answer.predictions));
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(id) {
                headers.insert(header::HeaderName::from_static("x-request-id"), v);
            }
            let timing = format!(
                "queue;dur={}, handler;dur={}, total;dur={}",
                Millis(answer.queued),
                Millis(answer.handled),
                Millis(arrived.elapsed())
            );
            if let Ok(v) = HeaderValue::from_str(&timing) {
                headers.insert(header::HeaderName::from_static("server-timing"), v);
            }
            headers.insert(header::HeaderName::from_static("x-batch-size"), HeaderValue::from(answer.batch_rows));
            response
        }
        // An empty array of records: nothing to predict.
        Ok(None) => {
            let body = response_body(id, &crate::handler::Predictions::Column(Default::default()));
            let mut response = json_response(StatusCode::OK, body);
            if let Ok(v) = HeaderValue::from_str(id) {
                response.headers_mut().insert(header::HeaderName::from_static("x-request-id"), v);
            }
            response
        }
        Err(err) => error_response(&err, Some(id)),
    }
}

async fn answer(
    req: &HttpRequest,
    body: web::Payload,
    route: &Route,
    state: &AppState,
    arrived: Instant,
) -> Result<Option<Answer>, RequestError> {
    check_content_type(req)?;
    let params = Params::new(
        route
            .param_names
            .iter()
            .map(|name| (name.clone(), req.match_info().get(name).unwrap_or_default().to_string()))
            .collect(),
    );
    let body = read_body(req, body, state.body_limit).await?;
    let client = req.conn_data::<ClientSocket>().map(|s| Arc::new(s.clone()) as Arc<dyn Liveness>);
    route.predict(params, &body, arrived, client).await
}

/// A duplicate of a connection's socket, to ask whether the peer closed it.
/// Owning the duplicate keeps the descriptor from being reused while a
/// request of the connection waits.
#[derive(Clone)]
struct ClientSocket(Arc<std::os::fd::OwnedFd>);

fn remember_socket(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    use std::os::fd::AsFd;
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
            data.insert(ClientSocket(Arc::new(fd)));
        }
    }
}

impl Liveness for ClientSocket {
    /// A zero-byte peek means the peer closed its side; pending bytes (a
    /// pipelined request) or nothing to read mean it is still there.
    fn gone(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut byte = 0u8;
        // SAFETY: a valid, owned descriptor and a one-byte buffer.
        let n =
            unsafe { libc::recv(self.0.as_raw_fd(), (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        if n == 0 {
            return true;
        }
        n < 0
            && matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ECONNRESET | libc::EPIPE | libc::ENOTCONN)
            )
    }
}

impl Route {
    /// Parses a body, queues it and waits for its answer; `None` for an
    /// empty array of records. HTTP requests and in-process predictions
    /// both come through here.
    async fn predict(
        &self,
        params: Params,
        body: &[u8],
        arrived: Instant,
        client: Option<Arc<dyn Liveness>>,
    ) -> Result<Option<Answer>, RequestError> {
        if let Some(cache) = &self.cache {
            // Unsafe parameter values are refused before anything is queued.
            cache.check(&params)?;
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(RequestError::EmptyBody);
        }
        let frame = decode(&self.schema, body)?;
        if frame.height() == 0 {
            return Ok(None);
        }
        let reply = self.queues.submit(params, frame, client)?;
        let reply = match self.timeout {
            // The deadline covers queueing and the handler: past it the client
            // gets 504, and a batch not yet started drops the request.
            Some(timeout) => match tokio::time::timeout_at((arrived + timeout).into(), reply).await {
                Ok(reply) => reply,
                Err(_) => return Err(RequestError::DeadlineExceeded(timeout)),
            },
            None => reply.await,
        };
        match reply {
            Ok(result) => result.map(Some),
            Err(_) => Err(RequestError::Handler("the batch ended without an answer".into())),
        }
    }
}

/// A duration in milliseconds with three decimals, formatted with integer
/// arithmetic (fixed-precision float formatting is slow).
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// JSON is assumed when no content type is sent; any other type is refused.
fn check_content_type(req: &HttpRequest) -> Result<(), RequestError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(RequestError::UnsupportedMediaType(text.to_string()))
    }
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, RequestError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RequestError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| RequestError::MalformedJson(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(RequestError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The client's `x-request-id` when it is a sensible token, else a new UUID.
fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "application/json")).body(body)
}

fn error_response(err: &RequestError, id: Option<&str>) -> HttpResponse {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, err.to_json());
    let headers = response.headers_mut();
    if let Some(secs) = err.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(v) = id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(header::HeaderName::from_static("x-request-id"), v);
    }
    response
}
