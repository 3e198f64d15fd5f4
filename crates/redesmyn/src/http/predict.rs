//! `POST <endpoint path>`: records JSON in, predictions JSON out, through
//! the inference service. One resource per endpoint; other methods get a
//! JSON 405.
//!
//! content type → path parameters → body (size limit) → service (decode,
//! queue, deadline) → `{"id":..,"predictions":[..]}` with request id,
//! Server-Timing and batch size; every error through `http::error`.
//!
//! A streaming model's path answers Server-Sent Events instead (`sse.rs`):
//! `data: {"row": i, "prediction": <chunk>}` per chunk and
//! `data: {"row": i, "done": true}` as each of the request's rows ends.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{error_response, json_response};
use super::{body, liveness, method_not_allowed, request_id, sse, timing};
use crate::codec::events;
use crate::codec::predictions::response_body;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::handler::Predictions;
use crate::metrics::Protocol;
use crate::service::{InferenceRequest, ServedModel};
use crate::stream::Event;

/// An endpoint path bound to the model it serves.
pub struct Route {
    pub path: String,
    pub model: Arc<ServedModel>,
}

/// What a predict resource reads at request time.
struct RouteData {
    path: String,
    model: Arc<ServedModel>,
    body_limit: usize,
}

pub fn configure(cfg: &mut web::ServiceConfig, routes: &[Route], body_limit: usize) {
    for route in routes {
        let data = RouteData { path: route.path.clone(), model: Arc::clone(&route.model), body_limit };
        cfg.service(
            web::resource(route.path.as_str())
                .app_data(web::Data::new(data))
                .route(web::post().to(predict))
                .default_service(web::to(method_not_allowed("POST"))),
        );
    }
}

async fn predict(req: HttpRequest, payload: web::Payload, route: web::Data<RouteData>) -> HttpResponse {
    if route.model.streams() {
        return stream(req, payload, route).await;
    }
    let arrived = Instant::now();
    let tracked = route.model.track(arrived);
    let id = request_id::of(&req);
    let result = answer(&req, payload, &route, arrived).await;
    tracked.finish(Outcome::from(&result));
    let response = match result {
        Ok(answer) => {
            let predictions = answer.as_ref().map_or(&*EMPTY, |a| &a.predictions);
            let mut response = json_response(StatusCode::OK, response_body(&id, predictions));
            request_id::tag(&mut response, &id);
            if let Some(answer) = &answer {
                timing::tag(&mut response, answer, arrived.elapsed());
            }
            response
        }
        Err(err) => error_response(&err, Some(&id)),
    };
    tracing::info!(
        target: "redesmyn::request",
        id = %id,
        endpoint = %route.path,
        status = response.status().as_u16(),
        total_ms = arrived.elapsed().as_secs_f64() * 1e3,
        timing = timing::of(&response),
        "request"
    );
    response
}

/// No predictions: the answer to an empty array of records.
static EMPTY: std::sync::LazyLock<Predictions> = std::sync::LazyLock::new(|| Predictions::Column(Default::default()));

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    route: &RouteData,
    arrived: Instant,
) -> Result<Option<crate::batch::Answer>, RequestError> {
    body::check_content_type(req)?;
    let params = route.model.params_from(|name| req.match_info().get(name));
    let body = body::read(req, payload, route.body_limit).await?;
    let request = InferenceRequest { params, arrived, client: liveness::of(req) };
    route.model.predict(request, |schema| decode_request(schema, &body)).await
}

/// A streaming model's answer: its events as SSE, or a JSON error before
/// the first of them.
async fn stream(req: HttpRequest, payload: web::Payload, route: web::Data<RouteData>) -> HttpResponse {
    let arrived = Instant::now();
    let tracked = route.model.track_stream(arrived, Protocol::Native);
    let id = request_id::of(&req);
    let opened = async {
        body::check_content_type(&req)?;
        let params = route.model.params_from(|name| req.match_info().get(name));
        let body = body::read(&req, payload, route.body_limit).await?;
        let request = InferenceRequest { params, arrived, client: liveness::of(&req) };
        route.model.stream(request, |schema| decode_request(schema, &body))
    };
    let mut response = match opened.await {
        Ok(Some(events)) => {
            let error_id = id.clone();
            sse::respond(events, encode_native, tracked, move |e| error_response(e, Some(&error_id))).await
        }
        Ok(None) => {
            tracked.finish(Outcome::Ok);
            sse::respond_empty()
        }
        Err(err) => {
            tracked.finish(Outcome::from_error(&err));
            error_response(&err, Some(&id))
        }
    };
    request_id::tag(&mut response, &id);
    tracing::info!(
        target: "redesmyn::request",
        id = %id,
        endpoint = %route.path,
        status = response.status().as_u16(),
        stream = true,
        "request"
    );
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
