//! The HTTP server: actix-web on its own threads, one route per endpoint,
//! health routes, JSON errors for everything that is not a prediction.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use tokio::runtime::Handle;

use crate::batch::{Answer, Queues};
use crate::decode::decode;
use crate::encode::response_body;
use crate::endpoint::Endpoint;
use crate::error::RequestError;
use crate::handler::Params;
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: None,
            body_limit: 8 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
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
    schema: Schema,
    param_names: Vec<String>,
    queues: Queues,
}

struct AppState {
    body_limit: usize,
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
        let routes: Vec<(String, Arc<Route>)> = self
            .endpoints
            .into_iter()
            .map(|e| {
                let route = Route {
                    param_names: e.param_names().to_vec(),
                    schema: e.schema,
                    queues: Queues::new(e.handler, e.batch, runtime.clone()),
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
        let thread = std::thread::Builder::new()
            .name("redesmyn-http".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let factory = move || {
                        let mut app = App::new()
                            .route("/health/live", web::route().to(live))
                            .route("/health/ready", web::route().to({
                                let state = app_state.clone();
                                move |req: HttpRequest| ready(req, state.clone())
                            }));
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
        state.ready.store(true, Ordering::Release);
        let port = addrs.first().map_or(0, SocketAddr::port);
        tracing::info!(port, workers, "listening");
        Ok(RunningServer { port, handle, thread: Some(thread), routes: routes.into_iter().map(|(_, r)| r).collect(), state })
    }
}

/// A server that is listening.
pub struct RunningServer {
    port: u16,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    routes: Vec<Arc<Route>>,
    state: Arc<AppState>,
}

impl RunningServer {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Graceful stop: no new connections; every accepted request is answered;
    /// batchers drain and end; the HTTP threads are joined.
    pub async fn stop(mut self) {
        self.state.ready.store(false, Ordering::Release);
        self.handle.stop(true).await;
        for route in &self.routes {
            route.queues.shutdown().await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
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
    let err = RequestError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_string(),
        allowed,
    };
    let mut response = error_response(&err, None);
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

async fn predict(req: HttpRequest, body: web::Payload, route: Arc<Route>, state: Arc<AppState>) -> HttpResponse {
    if req.method() != Method::POST {
        return method_not_allowed(&req, "POST");
    }
    let id = request_id(&req);
    match answer(&req, body, &route, &state).await {
        Ok(Some(answer)) => {
            let mut response = json_response(StatusCode::OK, response_body(&id, &answer.predictions));
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&id) {
                headers.insert(header::HeaderName::from_static("x-request-id"), v);
            }
            let timing = format!(
                "queue;dur={:.3}, handler;dur={:.3}",
                answer.queued.as_secs_f64() * 1e3,
                answer.handled.as_secs_f64() * 1e3
            );
            if let Ok(v) = HeaderValue::from_str(&timing) {
                headers.insert(header::HeaderName::from_static("server-timing"), v);
            }
            headers.insert(header::HeaderName::from_static("x-batch-size"), HeaderValue::from(answer.batch_rows));
            response
        }
        // An empty array of records: nothing to predict.
        Ok(None) => {
            let body = response_body(&id, &crate::handler::Predictions::Column(Default::default()));
            let mut response = json_response(StatusCode::OK, body);
            if let Ok(v) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(header::HeaderName::from_static("x-request-id"), v);
            }
            response
        }
        Err(err) => error_response(&err, Some(&id)),
    }
}

async fn answer(
    req: &HttpRequest,
    body: web::Payload,
    route: &Route,
    state: &AppState,
) -> Result<Option<Answer>, RequestError> {
    check_content_type(req)?;
    let body = read_body(req, body, state.body_limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::EmptyBody);
    }
    let frame = decode(&route.schema, &body)?;
    if frame.height() == 0 {
        return Ok(None);
    }
    let params = Params::new(
        route
            .param_names
            .iter()
            .map(|name| (name.clone(), req.match_info().get(name).unwrap_or_default().to_string()))
            .collect(),
    );
    let reply = route.queues.submit(params, frame)?;
    match reply.await {
        Ok(result) => result.map(Some),
        Err(_) => Err(RequestError::Handler("the batch ended without an answer".into())),
    }
}

/// JSON is assumed when no content type is sent; any other type is refused.
fn check_content_type(req: &HttpRequest) -> Result<(), RequestError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else { return Ok(()) };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(RequestError::UnsupportedMediaType(text.to_string()))
    }
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, RequestError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
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
