//! The Open Inference Protocol (V2) over REST, on the server's HTTP port:
//! `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
//! `GET /v2/models/{m}[/versions/{v}]` (metadata), `.../ready`, and
//! `POST .../infer` with JSON or binary tensors (the binary tensor
//! extension, which tritonclient uses by default).
//!
//! Models are the registry's, by name and version (see
//! [`InferenceService::resolve_v2`]); an infer request goes through the
//! same service, queues and batches as the endpoint's own path. An
//! unversioned infer on a model with traffic weights reaches the version
//! they pick (sticky by the routing-key header), named in the body's
//! `model_version` and the `x-model-version` header. Errors are
//! `{"error": "..."}` with the V2 statuses of [`super::error::v2_status_of_kind`].

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{json_response, v2_error_response};
use super::{body, liveness, method_not_allowed, request_id, timing, trace, ByName};
use crate::error::{Outcome, RequestError};
use crate::metrics::Protocol;
use crate::service::{Call, Target};
use crate::v2::binary::{parse_rest, HEADER_LENGTH};
use crate::v2::infer;
use crate::v2::output::{encode_rest, ResponseMeta};

const INFERENCE_HEADER: HeaderName = HeaderName::from_static("inference-header-content-length");

pub fn configure(cfg: &mut web::ServiceConfig, data: web::Data<ByName>) {
    macro_rules! get {
        ($path:expr, $handler:expr) => {
            web::resource($path)
                .app_data(data.clone())
                .route(web::get().to($handler))
                .route(web::head().to($handler))
                .default_service(web::to(method_not_allowed("GET")))
        };
    }
    cfg.service(get!("/v2", server_metadata))
        .service(get!("/v2/health/live", live))
        .service(get!("/v2/health/ready", ready))
        .service(get!("/v2/models/{model}", model_metadata))
        .service(get!("/v2/models/{model}/versions/{version}", model_metadata))
        .service(get!("/v2/models/{model}/ready", model_ready))
        .service(get!("/v2/models/{model}/versions/{version}/ready", model_ready));
    for path in ["/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"] {
        cfg.service(
            web::resource(path)
                .app_data(data.clone())
                .route(web::post().to(infer))
                .default_service(web::to(method_not_allowed("POST"))),
        );
    }
}

fn json<T: serde::Serialize>(value: &T) -> HttpResponse {
    json_response(StatusCode::OK, serde_json::to_vec(value).unwrap_or_default())
}

/// The model a path names, and a parameter value its version stands for.
fn model_of(req: &HttpRequest, state: &ByName) -> Result<crate::service::Resolved, RequestError> {
    state.service.route_target(target(req, state))
}

/// The model a path names, with the routing key its client sent.
fn target<'a>(req: &'a HttpRequest, state: &ByName) -> Target<'a> {
    let name = req.match_info().get("model").unwrap_or_default();
    let routing_key = req.headers().get(&state.routing_header).and_then(|v| v.to_str().ok());
    Target::named(name).version(req.match_info().get("version")).routing_key(routing_key)
}

/// Opens the scope of an inference request.
fn open(req: &HttpRequest, state: &ByName, id: &str) -> Result<Call, RequestError> {
    Ok(trace::open(state.service.open(Protocol::V2Rest, id, target(req, state))?, req))
}

async fn server_metadata(state: web::Data<ByName>) -> HttpResponse {
    let mut metadata = infer::server_metadata();
    if state.repository_extension {
        metadata.extensions.push("model_repository".into());
    }
    json(&metadata)
}

async fn live() -> HttpResponse {
    json_response(StatusCode::OK, br#"{"live":true}"#.to_vec())
}

/// 200 `{"ready":true}` (the kserve client reads the body) or 503.
async fn ready(state: web::Data<ByName>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        json_response(StatusCode::OK, br#"{"ready":true}"#.to_vec())
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, br#"{"ready":false}"#.to_vec())
    }
}

async fn model_metadata(req: HttpRequest, state: web::Data<ByName>) -> HttpResponse {
    match model_of(&req, &state) {
        Ok((model, _)) => {
            // The model's state rides in `parameters`, as V2 allows.
            let mut body = serde_json::to_value(infer::model_metadata(&model)).unwrap_or_default();
            if let Some(obj) = body.as_object_mut() {
                let state = model.state(state.ready.load(Ordering::Acquire));
                obj.insert("parameters".into(), serde_json::json!({ "state": state }));
            }
            json(&body)
        }
        Err(e) => v2_error_response(&e, None),
    }
}

async fn model_ready(req: HttpRequest, state: web::Data<ByName>) -> HttpResponse {
    match model_of(&req, &state) {
        Ok(_) => ready(state).await,
        Err(e) => v2_error_response(&e, None),
    }
}

async fn infer(req: HttpRequest, payload: web::Payload, state: web::Data<ByName>) -> HttpResponse {
    let id = request_id::of(&req);
    let mut call = match open(&req, &state, &id) {
        Ok(call) => call,
        Err(e) => return v2_error_response(&e, Some(&id)),
    };
    let from_version = call.take_version_param();
    let result = answer(&req, payload, &state, call.model(), from_version, call.arrived(), call.trace()).await;
    let outcome = Outcome::from(&result);
    let (response, answer) = match result {
        Ok((rest_body, answer)) => {
            let mut response = HttpResponse::Ok();
            match rest_body.header_length {
                Some(n) => {
                    response.insert_header((header::CONTENT_TYPE, "application/octet-stream"));
                    response.insert_header((INFERENCE_HEADER, HeaderValue::from(n)));
                }
                None => {
                    response.insert_header((header::CONTENT_TYPE, "application/json"));
                }
            }
            if let Some(version) = call.model().key().version.as_deref() {
                response.insert_header((super::MODEL_VERSION, version));
            }
            let mut response = response.body(rest_body.body);
            request_id::tag(&mut response, &id);
            if let Some(answer) = &answer {
                timing::tag(&mut response, answer, call.arrived().elapsed());
            }
            (response, answer)
        }
        Err(err) => (v2_error_response(&err, Some(&id)), None),
    };
    let mut response = response;
    trace::tag(&mut response, &call);
    call.finish(outcome, response.status().as_u16(), answer.as_ref());
    response
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ByName,
    model: &crate::service::ServedModel,
    from_version: Option<(String, String)>,
    arrived: Instant,
    trace: Option<crate::telemetry::SpanContext>,
) -> Result<(crate::v2::RestBody, Option<crate::batch::Answer>), RequestError> {
    // The body's form is told by Inference-Header-Content-Length, not the
    // content type: tritonclient sends none and `curl -d` a form type.
    let header_length = req.headers().get(HEADER_LENGTH).map(|v| v.to_str().unwrap_or("?"));
    let body = body::read(req, payload, state.body_limit).await?;
    if body.is_empty() {
        return Err(RequestError::EmptyBody);
    }
    let parsed = parse_rest(&body, header_length, model.schema())?;
    let params = infer::params(model, &parsed.parameters, from_version)?;
    let request = infer::Request {
        parameters: parsed.parameters,
        inputs: parsed.inputs,
        outputs: parsed.outputs,
        binary_output: parsed.binary_output,
        arrived,
        client: liveness::of(req),
        deadline: None,
        trace,
    };
    let inferred = infer::infer(model, params, request).await?;
    let key = model.key();
    let meta = ResponseMeta {
        model_name: &key.name,
        model_version: key.version.as_deref(),
        id: parsed.id.as_deref(),
        parameters: None,
    };
    Ok((encode_rest(meta, &inferred.outputs), inferred.answer))
}
