//! The HTTP front door (actix-web): routes assembled in `configure`
//! functions, one resource per path with method guards and a JSON 405
//! default, and the one map from error kinds to HTTP in [`error`].
//!
//! The app is built apart from serving: [`configure`] takes everything a
//! request needs ([`HttpState`]), so `actix_web::test::init_service` runs
//! the same app in process (see `tests.rs`), and `server.rs` only binds it.
//! `v2.rs` is the Open Inference Protocol's REST shape over the same models,
//! `v1.rs` the older `instances` → `predictions` shape. Streaming models
//! answer Server-Sent Events (`sse.rs`) on their own path and on V2
//! `generate_stream` (`generate.rs`).

mod body;
pub mod error;
mod exposition;
mod generate;
mod health;
pub mod jobs;
mod liveness;
pub mod management;
mod predict;
mod request_id;
mod serve;
pub mod sse;
mod state;
mod timing;
mod trace;
pub mod v1;
pub mod v2;
/// In-process test helpers shared by the route tests: the app over a
/// state, and one call returning status, headers and body.
#[cfg(test)]
macro_rules! app {
    ($state:expr) => {{
        let state = Arc::clone(&$state);
        test::init_service(App::new().configure(move |cfg| configure(cfg, &state))).await
    }};
}

#[cfg(test)]
macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = test::call_service(&$app, $req.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, test::read_body(res).await.to_vec())
    }};
}

#[cfg(test)]
mod doors_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v1_tests;
#[cfg(test)]
mod v2_tests;

use std::future::{ready, Ready};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest, HttpResponse};

pub use liveness::remember_socket;
pub use predict::{Route, MODEL_VERSION};
pub use serve::{serve, serve_app, Listening, ServeError};

use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::service::InferenceService;

/// Everything the app reads at request time.
pub struct HttpState {
    /// Endpoint paths and the models they serve.
    pub routes: Vec<Route>,
    pub metrics: Option<Arc<Metrics>>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Listening and every prefetch done.
    pub ready: Arc<AtomicBool>,
    /// Every model by name and version, for the V2 routes.
    pub service: Arc<InferenceService>,
    /// The job queue, when the server has one.
    pub jobs: Option<Arc<crate::jobs::Jobs>>,
    /// The header whose value keeps a client on one version of a model
    /// with traffic weights (default `x-routing-key`).
    pub routing_header: HeaderName,
    /// The management API, when it shares this port.
    pub management: Option<Arc<crate::management::Management>>,
    /// The management API is on (here or on its own port): `GET /v2` lists
    /// the model repository extension.
    pub repository_extension: bool,
}

/// The default routing-key header.
pub const ROUTING_HEADER: &str = "x-routing-key";

/// What the front doors that address models by name (V2, V1) read at
/// request time.
pub struct ByName {
    pub service: Arc<InferenceService>,
    /// Listening and every prefetch done.
    pub ready: Arc<AtomicBool>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// The routing-key header (see [`HttpState::routing_header`]).
    pub routing_header: HeaderName,
    /// `GET /v2` lists the model repository extension.
    pub repository_extension: bool,
}

/// The whole app: health, metrics, one resource per endpoint, and JSON 404s.
pub fn configure(cfg: &mut web::ServiceConfig, state: &HttpState) {
    health::configure(cfg, &state.ready);
    exposition::configure(cfg, state.metrics.as_ref());
    if let Some(queue) = &state.jobs {
        jobs::configure(cfg, queue, &state.routes, &state.service, state.body_limit);
    }
    predict::configure(cfg, &state.routes, &state.service, state.body_limit, &state.routing_header);
    let by_name = web::Data::new(ByName {
        service: Arc::clone(&state.service),
        ready: Arc::clone(&state.ready),
        body_limit: state.body_limit,
        routing_header: state.routing_header.clone(),
        repository_extension: state.repository_extension,
    });
    if let Some(m) = &state.management {
        // Before `state`: its authenticated `GET /models` replaces the public one.
        management::configure(cfg, m, state.body_limit, &state.routing_header);
    }
    v2::configure(cfg, web::Data::clone(&by_name));
    state::configure(cfg, web::Data::clone(&by_name));
    generate::configure(cfg, web::Data::clone(&by_name));
    v1::configure(cfg, by_name);
    // After every fixed path: the by-name resources match what none of them does.
    predict::configure_by_name(cfg, &state.service, state.body_limit, &state.routing_header);
    cfg.default_service(web::to(not_found));
}

pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = RequestError::NotFound { method: req.method().to_string(), path: req.path().to_string() };
    error::error_response(&err, None)
}

/// A resource's default service: a JSON 405 naming the method to use.
fn method_not_allowed(allowed: &'static str) -> impl Fn(HttpRequest) -> Ready<HttpResponse> + Clone + 'static {
    move |req: HttpRequest| {
        let err =
            RequestError::MethodNotAllowed { method: req.method().to_string(), path: req.path().to_string(), allowed };
        ready(error::error_response(&err, None))
    }
}
