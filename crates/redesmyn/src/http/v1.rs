//! The V1 shape (KServe V1, TensorFlow Serving's REST predict), the
//! `instances` → `predictions` contract many FastAPI and BentoML services
//! copy: `POST /v1/models/{m}:predict` with `{"instances": [...]}` answers
//! `{"predictions": [...]}`, and `GET /v1/models/{m}` says whether the
//! model is ready (`{"name": m, "ready": true}`).
//!
//! An instance is a record object (`{"sepal_length": 5.1, ...}`) or a row
//! of values in schema order (`[5.1, 3.5, 1.4, 0.2]`). Rows are turned into
//! records and read by the records codec, so a V1 request is checked
//! exactly as a native one and rides in the same queue and batches. Models
//! are the registry's, by name (as in V2); a model with path parameters
//! cannot be reached here (V1 has no parameters): the 400 names them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::value::RawValue;

use super::error::{json_response, v2_error_response};
use super::{body, liveness, method_not_allowed, request_id, timing, trace, ByName};
use crate::codec::predictions::write_predictions;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::metrics::Protocol;
use crate::schema::Schema;
use crate::service::{InferenceRequest, ServedModel, Target};
use crate::v2::infer;
use crate::v2::wire::Parameters;

pub fn configure(cfg: &mut web::ServiceConfig, data: web::Data<ByName>) {
    // The model name is every character up to the colon, so `:predict`
    // is never taken for a part of it.
    cfg.service(
        web::resource("/v1/models/{model:[^/:]+}:predict")
            .app_data(data.clone())
            .route(web::post().to(predict))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/v1/models/{model:[^/:]+}")
            .app_data(data)
            .route(web::get().to(status))
            .route(web::head().to(status))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

fn model_of(req: &HttpRequest, state: &ByName) -> Result<Arc<ServedModel>, RequestError> {
    let name = req.match_info().get("model").unwrap_or_default();
    state.service.resolve_v2(name, None).map(|(model, _)| model)
}

/// 200 `{"name", "ready": true}` once the server is ready, 503 before.
async fn status(req: HttpRequest, state: web::Data<ByName>) -> HttpResponse {
    let model = match model_of(&req, &state) {
        Ok(model) => model,
        Err(e) => return v2_error_response(&e, None),
    };
    let ready = state.ready.load(Ordering::Acquire);
    let body = serde_json::json!({ "name": model.key().name, "ready": ready });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

async fn predict(req: HttpRequest, payload: web::Payload, state: web::Data<ByName>) -> HttpResponse {
    let id = request_id::of(&req);
    let name = req.match_info().get("model").unwrap_or_default();
    let call = match state.service.open(Protocol::V1, id.as_str(), Target::named(name)) {
        Ok(call) => trace::open(call, &req),
        Err(e) => return v2_error_response(&e, Some(&id)),
    };
    let result = answer(&req, payload, &state, call.model(), call.arrived(), call.trace()).await;
    let mut response = match &result {
        Ok(answer) => {
            let mut body = br#"{"predictions":"#.to_vec();
            match answer {
                Some(answer) => write_predictions(&mut body, &answer.predictions),
                None => body.extend_from_slice(b"[]"),
            }
            body.push(b'}');
            let mut response = json_response(StatusCode::OK, body);
            if let Some(answer) = answer {
                timing::tag(&mut response, answer, call.arrived().elapsed());
            }
            response
        }
        Err(err) => v2_error_response(err, None),
    };
    request_id::tag(&mut response, &id);
    trace::tag(&mut response, &call);
    call.finish(Outcome::from(&result), response.status().as_u16(), result.as_ref().ok().and_then(Option::as_ref));
    response
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ByName,
    model: &ServedModel,
    arrived: Instant,
    trace: Option<crate::telemetry::SpanContext>,
) -> Result<Option<crate::batch::Answer>, RequestError> {
    let params = infer::params(model, &Parameters::default(), None)?;
    let body = body::read(req, payload, state.body_limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::EmptyBody);
    }
    let records = instances_as_records(model.schema(), &body)?;
    let request = InferenceRequest { params, arrived, client: liveness::of(req), trace };
    model.predict(request, |schema| decode_request(schema, &records)).await
}

/// `{"instances": [...]}` as a JSON array of records: record objects are
/// copied as they are, rows of values in schema order get the field names.
fn instances_as_records(schema: &Schema, body: &[u8]) -> Result<Vec<u8>, RequestError> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        instances: Option<Vec<&'a RawValue>>,
    }
    let parsed: Body<'_> = serde_json::from_slice(body)
        .map_err(|e| RequestError::MalformedJson(format!("expected {{\"instances\": [...]}}: {e}")))?;
    let instances =
        parsed.instances.ok_or_else(|| RequestError::MalformedJson("the body has no \"instances\" array".into()))?;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
    let mut out = Vec::with_capacity(body.len() + 16 * names.len() * instances.len());
    out.push(b'[');
    for (i, instance) in instances.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let text = instance.get().trim_start();
        if text.starts_with('{') {
            out.extend_from_slice(text.as_bytes());
            continue;
        }
        let values: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| {
            RequestError::InvalidParam(format!(
                "instance {i} must be a record object or an array of {} values in the order {}",
                names.len(),
                names.join(", ")
            ))
        })?;
        if values.len() != names.len() {
            return Err(RequestError::InvalidParam(format!(
                "instance {i} has {} values; the model takes {} ({})",
                values.len(),
                names.len(),
                names.join(", ")
            )));
        }
        out.push(b'{');
        for (j, (name, value)) in names.iter().zip(values).enumerate() {
            if j > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, name).map_err(|e| RequestError::Handler(e.to_string()))?;
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}
