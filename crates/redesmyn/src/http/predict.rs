//! `POST <endpoint path>`: records JSON in, predictions JSON out, through
//! the inference service. One resource per endpoint; other methods get a
//! JSON 405.
//!
//! content type → path parameters → body (size limit) → service (decode,
//! queue, deadline) → `{"id":..,"predictions":[..]}` with request id,
//! Server-Timing and batch size; every error through `http::error`.
//!
//! Every request finds its model through the service (the registry's
//! current index), so a removed model stops answering and traffic weights
//! apply: a path bound to an unversioned name serves the version the
//! weights pick, sticky by the routing-key header when sent. Models without
//! a path of their own (added while serving) answer at
//! `POST /predictions/{name}[/versions/{version}]`, after every fixed path.
//! Answers carry the version that served them in `x-model-version`.
//!
//! A streaming model's path answers Server-Sent Events instead (`sse.rs`):
//! `data: {"row": i, "prediction": <chunk>}` per chunk and
//! `data: {"row": i, "done": true}` as each of the request's rows ends.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{error_response, json_response};
use super::{body, liveness, method_not_allowed, request_id, sse, timing, trace};
use crate::codec::events;
use crate::codec::predictions::response_body;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::handler::Predictions;
use crate::metrics::Protocol;
use crate::model::ModelKey;
use crate::service::{Call, InferenceRequest, InferenceService, ServedModel, Target};
use crate::stream::Event;
use crate::telemetry::SpanContext;

/// The header naming the version that answered.
pub const MODEL_VERSION: HeaderName = HeaderName::from_static("x-model-version");

/// An endpoint path bound to the model it serves (by name and version:
/// the model itself is looked up per request).
pub struct Route {
    pub path: String,
    pub key: ModelKey,
}

/// What a predict resource reads at request time.
struct RouteData {
    /// The path template, or `None` for the by-name resources.
    path: Option<String>,
    key: Option<ModelKey>,
    service: Arc<InferenceService>,
    body_limit: usize,
    routing_header: HeaderName,
}

pub fn configure(
    cfg: &mut web::ServiceConfig,
    routes: &[Route],
    service: &Arc<InferenceService>,
    body_limit: usize,
    routing_header: &HeaderName,
) {
    let data = |path: Option<String>, key: Option<ModelKey>| RouteData {
        path,
        key,
        service: Arc::clone(service),
        body_limit,
        routing_header: routing_header.clone(),
    };
    for route in routes {
        cfg.service(
            web::resource(route.path.as_str())
                .app_data(web::Data::new(data(Some(route.path.clone()), Some(route.key.clone()))))
                .route(web::post().to(predict))
                .default_service(web::to(method_not_allowed("POST"))),
        );
    }
}

/// `POST /predictions/{model}[/versions/{version}]` by name; configured
/// after every other resource, so it takes only what none of them does.
pub fn configure_by_name(
    cfg: &mut web::ServiceConfig,
    service: &Arc<InferenceService>,
    body_limit: usize,
    routing_header: &HeaderName,
) {
    let by_name = web::Data::new(RouteData {
        path: None,
        key: None,
        service: Arc::clone(service),
        body_limit,
        routing_header: routing_header.clone(),
    });
    for path in ["/predictions/{model}", "/predictions/{model}/versions/{version}"] {
        cfg.service(
            web::resource(path)
                .app_data(by_name.clone())
                .route(web::post().to(predict))
                .default_service(web::to(super::not_found)),
        );
    }
}

/// Opens the request's scope on the model it reaches: the route's
/// (traffic applies to an unversioned name), or the one its path names.
fn open(req: &HttpRequest, route: &RouteData) -> Result<Call, RequestError> {
    let routing_key = req.headers().get(&route.routing_header).and_then(|v| v.to_str().ok());
    let (name, version) = match &route.key {
        Some(key) => (key.name.as_str(), key.version.as_deref()),
        None => (req.match_info().get("model").unwrap_or_default(), req.match_info().get("version")),
    };
    let target = Target::named(name).version(version).routing_key(routing_key);
    let call = route.service.open(Protocol::Native, request_id::of(req), target).map_err(|e| {
        // A by-name path naming no model is an unknown path, as before models could come later.
        if route.key.is_none() && route.service.group(name).is_none() {
            RequestError::NotFound { method: req.method().to_string(), path: req.path().to_string() }
        } else {
            e
        }
    })?;
    Ok(trace::open(call.at(route.path.clone().unwrap_or_else(|| req.path().to_string())), req))
}

/// Names the version that answered.
fn tag_version(response: &mut HttpResponse, model: &ServedModel) {
    if let Some(version) = model.key().version.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(MODEL_VERSION, version);
    }
}

async fn predict(req: HttpRequest, payload: web::Payload, route: web::Data<RouteData>) -> HttpResponse {
    let call = match open(&req, &route) {
        Ok(call) => call,
        Err(e) => return error_response(&e, Some(&request_id::of(&req))),
    };
    let model = Arc::clone(call.model());
    let mut response = if model.streams() {
        stream(req, payload, &route, call).await
    } else {
        unary(req, payload, &route, call).await
    };
    tag_version(&mut response, &model);
    response
}

async fn unary(req: HttpRequest, payload: web::Payload, route: &RouteData, call: Call) -> HttpResponse {
    let result = answer(&req, payload, route, call.model(), call.arrived(), call.trace()).await;
    let mut response = match &result {
        Ok(answer) => {
            let predictions = answer.as_ref().map_or(&*EMPTY, |a| &a.predictions);
            let mut response = json_response(StatusCode::OK, response_body(call.id(), predictions));
            request_id::tag(&mut response, call.id());
            if let Some(answer) = answer {
                timing::tag(&mut response, answer, call.arrived().elapsed());
            }
            response
        }
        Err(err) => error_response(err, Some(call.id())),
    };
    trace::tag(&mut response, &call);
    let answer = result.as_ref().ok().and_then(Option::as_ref);
    call.finish(Outcome::from(&result), response.status().as_u16(), answer);
    response
}

/// No predictions: the answer to an empty array of records.
static EMPTY: std::sync::LazyLock<Predictions> = std::sync::LazyLock::new(|| Predictions::Column(Default::default()));

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    route: &RouteData,
    model: &ServedModel,
    arrived: Instant,
    trace: Option<SpanContext>,
) -> Result<Option<crate::batch::Answer>, RequestError> {
    body::check_content_type(req)?;
    let params = model.params_from(|name| req.match_info().get(name));
    let body = body::read(req, payload, route.body_limit).await?;
    let request = InferenceRequest { params, arrived, client: liveness::of(req), trace };
    model.predict(request, |schema| decode_request(schema, &body)).await
}

/// A streaming model's answer: its events as SSE, or a JSON error before
/// the first of them.
async fn stream(req: HttpRequest, payload: web::Payload, route: &RouteData, call: Call) -> HttpResponse {
    let id = call.id().to_string();
    let opened = async {
        body::check_content_type(&req)?;
        let model = call.model();
        let params = model.params_from(|name| req.match_info().get(name));
        let body = body::read(&req, payload, route.body_limit).await?;
        let client = liveness::of(&req);
        let request = InferenceRequest { params, arrived: call.arrived(), client, trace: call.trace() };
        model.stream(request, |schema| decode_request(schema, &body))
    };
    let opened = opened.await;
    let traceparent = call.traceparent();
    let mut call = call.into_stream();
    let mut response = match opened {
        Ok(Some(events)) => {
            let error_id = id.clone();
            sse::respond(events, encode_native, call, move |e| error_response(e, Some(&error_id))).await
        }
        Ok(None) => {
            call.finish(Outcome::Ok);
            sse::respond_empty()
        }
        Err(err) => {
            call.finish(Outcome::from_error(&err));
            error_response(&err, Some(&id))
        }
    };
    request_id::tag(&mut response, &id);
    trace::tag_with(&mut response, traceparent);
    response
}

/// The native frames: a chunk per row, then the row's end; a failure is
/// the error frame.
fn encode_native(event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::Step { .. } => events::each_object(event, |json| sse::data(out, json)),
        Event::Failed(e) => sse::error_frame(out, e),
    }
}
