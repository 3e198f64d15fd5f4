//! The V2 generate extension over REST, for streaming models:
//! `POST /v2/models/{m}[/versions/{v}]/generate_stream` answers Server-Sent
//! Events as each chunk is made, `.../generate` one answer once the stream
//! ends. Both body shapes in use are read, and answered in kind:
//!
//! - V2 tensors, `{"inputs": [...], "parameters": {...}}` (MLServer): each
//!   event is a whole InferenceResponse whose outputs hold one chunk;
//!   `generate` answers one InferenceResponse holding every chunk in order.
//! - `{"text_input": "...", "parameters": {...}}` (Triton, the OIP generate
//!   spec): `text_input` fills the model's string input (other inputs come
//!   from `parameters` by name); each event is
//!   `{"model_name", "model_version", "text_output": <chunk>}`, and
//!   `generate` answers the row's string chunks joined.
//!
//! The requests ride the model's queues and batches like any other. Errors
//! before the first chunk are `{"error": "..."}` with the status the
//! generate specification gives (422 input that does not validate, 424 a
//! failed generation, 429 an overloaded model, 404 an unknown model); after
//! it, a final `data: {"error": "..."}` event.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use polars::prelude::*;

use super::error::{generate_error_response, json_response};
use super::{body, liveness, method_not_allowed, request_id, sse, trace, ByName};
use crate::codec::predictions::write_row;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::handler::Predictions;
use crate::metrics::Protocol;
use crate::schema::FieldType;
use crate::service::Target;
use crate::service::{InferenceRequest, ServedModel};
use crate::stream::{ChunkStream, Event};
use crate::v2::binary::parse_rest;
use crate::v2::output::{encode_rest, outputs_from_predictions, select_outputs, ResponseMeta};
use crate::v2::wire::RequestOutput;
use crate::v2::{frame, infer};

pub fn configure(cfg: &mut web::ServiceConfig, data: web::Data<ByName>) {
    let routes: [(&str, bool); 4] = [
        ("/v2/models/{model}/generate", false),
        ("/v2/models/{model}/versions/{version}/generate", false),
        ("/v2/models/{model}/generate_stream", true),
        ("/v2/models/{model}/versions/{version}/generate_stream", true),
    ];
    for (path, streaming) in routes {
        let resource = web::resource(path).app_data(data.clone());
        let resource = if streaming {
            resource.route(web::post().to(generate_stream))
        } else {
            resource.route(web::post().to(generate))
        };
        cfg.service(resource.default_service(web::to(method_not_allowed("POST"))));
    }
}

/// The body shape a request came in, which its answer keeps.
#[derive(Clone)]
enum Shape {
    Tensors { id: Option<String>, outputs: Option<Vec<RequestOutput>> },
    Text,
}

/// What an answer names: the model and version.
#[derive(Clone)]
struct Names {
    model: String,
    version: Option<String>,
}

async fn generate_stream(req: HttpRequest, payload: web::Payload, state: web::Data<ByName>) -> HttpResponse {
    respond(req, payload, state, true).await
}

async fn generate(req: HttpRequest, payload: web::Payload, state: web::Data<ByName>) -> HttpResponse {
    respond(req, payload, state, false).await
}

async fn respond(req: HttpRequest, payload: web::Payload, state: web::Data<ByName>, streaming: bool) -> HttpResponse {
    let id = request_id::of(&req);
    let name = req.match_info().get("model").unwrap_or_default();
    let target = Target::named(name).version(req.match_info().get("version"));
    let mut call = match state.service.open(Protocol::V2Rest, id.as_str(), target) {
        Ok(call) => trace::open(call, &req),
        Err(e) => return generate_error_response(&e, Some(&id)),
    };
    let from_version = call.take_version_param();
    let model = Arc::clone(call.model());
    let key = model.key();
    let names = Names { model: key.name.clone(), version: key.version.clone() };
    let declared: Vec<String> = model.declared_outputs().iter().map(|o| o.name.clone()).collect();
    let opened = open(&req, payload, &state, &model, from_version, call.arrived()).await;
    let traceparent = call.traceparent();
    let mut call = call.into_stream();
    let mut response = match opened {
        Err(e) => {
            call.finish(Outcome::from_error(&e));
            generate_error_response(&e, Some(&id))
        }
        Ok((events, shape)) if streaming => {
            let Some(events) = events else {
                call.finish(Outcome::Ok);
                return sse::respond_empty();
            };
            let encoder = move |event: &Event, out: &mut Vec<u8>| encode_event(event, &shape, &names, &declared, out);
            let error_id = id.clone();
            sse::respond(events, encoder, call, move |e| generate_error_response(e, Some(&error_id))).await
        }
        Ok((events, shape)) => {
            let gathered = match events {
                Some(events) => gather(events).await,
                None => Ok(Vec::new()),
            };
            call.finish(Outcome::from(&gathered));
            match gathered.and_then(|chunks| answer_once(&chunks, &shape, &names, &declared)) {
                Ok(body) => json_response(StatusCode::OK, body),
                Err(e) => generate_error_response(&e, Some(&id)),
            }
        }
    };
    request_id::tag(&mut response, &id);
    trace::tag_with(&mut response, traceparent);
    response
}

/// Reads and decodes the body in whichever shape it came, and queues it.
async fn open(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ByName,
    model: &ServedModel,
    from_version: Option<(String, String)>,
    arrived: Instant,
) -> Result<(Option<ChunkStream>, Shape), RequestError> {
    let body = body::read(req, payload, state.body_limit).await?;
    if body.is_empty() {
        return Err(RequestError::EmptyBody);
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| RequestError::MalformedJson(e.to_string()))?;
    let client = liveness::of(req);
    if value.get("inputs").is_some() {
        let parsed = parse_rest(&body, None, model.schema())?;
        let params = infer::params(model, &parsed.parameters, from_version)?;
        let request = InferenceRequest { params, arrived, client, trace: None };
        let events =
            model.stream(request, |schema| frame::to_frame(schema, parsed.inputs).map_err(RequestError::from))?;
        return Ok((events, Shape::Tensors { id: parsed.id, outputs: parsed.outputs }));
    }
    let Some(text) = value.get("text_input") else {
        return Err(RequestError::MalformedJson("a generate body needs \"text_input\" or \"inputs\"".into()));
    };
    let parameters = match value.get("parameters") {
        Some(serde_json::Value::Object(p)) => p.clone(),
        None | Some(serde_json::Value::Null) => Default::default(),
        Some(_) => return Err(RequestError::MalformedJson("\"parameters\" must be an object".into())),
    };
    let params = infer::params(model, &parameters, from_version)?;
    let record = text_record(model, text, &parameters)?;
    let request = InferenceRequest { params, arrived, client, trace: None };
    let events = model.stream(request, |schema| decode_request(schema, &record))?;
    Ok((events, Shape::Text))
}

/// The record a `text_input` body stands for: the text in the model's
/// string input, other inputs from `parameters` by name.
fn text_record(
    model: &ServedModel,
    text: &serde_json::Value,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, RequestError> {
    let fields = model.schema().fields();
    let target = fields.iter().find(|f| matches!(f.ty, FieldType::Str)).ok_or_else(|| {
        RequestError::InvalidParam(format!("model '{}' has no string input for \"text_input\"", model.key().name))
    })?;
    let mut record = serde_json::Map::new();
    for field in fields {
        if field.name == target.name {
            record.insert(field.name.clone(), text.clone());
        } else if let Some(value) = parameters.get(&field.name) {
            record.insert(field.name.clone(), value.clone());
        }
    }
    serde_json::to_vec(&record).map_err(|e| RequestError::MalformedJson(e.to_string()))
}

/// One event's frames in the request's shape.
fn encode_event(event: &Event, shape: &Shape, names: &Names, declared: &[String], out: &mut Vec<u8>) {
    let chunks = match event {
        Event::Failed(e) => return sse::error_frame(out, e),
        Event::Step { chunks, .. } => chunks,
    };
    for (_, chunk) in chunks {
        match shape {
            Shape::Text => {
                let mut json = Vec::with_capacity(96);
                json.extend_from_slice(b"{\"model_name\":");
                json.extend_from_slice(&serde_json::to_vec(&names.model).unwrap_or_default());
                json.extend_from_slice(b",\"model_version\":");
                json.extend_from_slice(
                    &serde_json::to_vec(&names.version.as_deref().unwrap_or("")).unwrap_or_default(),
                );
                json.extend_from_slice(b",\"text_output\":");
                write_row(&mut json, chunk, 0);
                json.push(b'}');
                sse::data(out, &json);
            }
            Shape::Tensors { id, outputs } => match tensors_body(chunk, id.as_deref(), outputs, names, declared) {
                Ok(body) => sse::data(out, &body),
                Err(e) => sse::error_frame(out, &e),
            },
        }
    }
}

/// An InferenceResponse (JSON) whose outputs hold `predictions`.
fn tensors_body(
    predictions: &Predictions,
    id: Option<&str>,
    outputs: &Option<Vec<RequestOutput>>,
    names: &Names,
    declared: &[String],
) -> Result<Vec<u8>, RequestError> {
    let tensors = outputs_from_predictions(predictions, declared)?;
    let selected = select_outputs(tensors, outputs.as_deref(), false)?;
    let meta = ResponseMeta { model_name: &names.model, model_version: names.version.as_deref(), id, parameters: None };
    Ok(encode_rest(meta, &selected).body)
}

/// Every chunk of a stream, in order, or its failure.
async fn gather(mut events: ChunkStream) -> Result<Vec<Predictions>, RequestError> {
    let mut chunks = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Event::Step { chunks: step, .. } => chunks.extend(step.into_iter().map(|(_, c)| c)),
            Event::Failed(e) => return Err(e),
        }
    }
    Ok(chunks)
}

/// `generate`'s one answer: string chunks joined (text), or every chunk as
/// one output (tensors).
fn answer_once(
    chunks: &[Predictions],
    shape: &Shape,
    names: &Names,
    declared: &[String],
) -> Result<Vec<u8>, RequestError> {
    match shape {
        Shape::Text => {
            let mut text = String::new();
            let mut values = Vec::with_capacity(chunks.len());
            let mut all_strings = true;
            for chunk in chunks {
                let mut json = Vec::new();
                write_row(&mut json, chunk, 0);
                let value: serde_json::Value = serde_json::from_slice(&json).unwrap_or(serde_json::Value::Null);
                match &value {
                    serde_json::Value::String(s) => text.push_str(s),
                    _ => all_strings = false,
                }
                values.push(value);
            }
            let output = if all_strings { serde_json::Value::String(text) } else { serde_json::Value::Array(values) };
            let body = serde_json::json!({
                "model_name": names.model,
                "model_version": names.version.as_deref().unwrap_or(""),
                "text_output": output,
            });
            Ok(serde_json::to_vec(&body).unwrap_or_default())
        }
        Shape::Tensors { id, outputs } => {
            let all = concat(chunks)?;
            tensors_body(&all, id.as_deref(), outputs, names, declared)
        }
    }
}

/// The chunks as one column (or frame), in order.
fn concat(chunks: &[Predictions]) -> Result<Predictions, RequestError> {
    let failed = |e: PolarsError| RequestError::Handler(format!("the chunks do not form one output: {e}"));
    let Some(first) = chunks.first() else {
        return Ok(Predictions::Column(Series::new_empty("output-0".into(), &DataType::Null)));
    };
    match first {
        Predictions::Column(s) => {
            let mut all = s.clone();
            for chunk in &chunks[1..] {
                let Predictions::Column(next) = chunk else {
                    return Err(RequestError::Handler("the chunks change shape".into()));
                };
                all.append(next).map_err(failed)?;
            }
            Ok(Predictions::Column(all))
        }
        Predictions::Columns(df) => {
            let mut all = df.clone();
            for chunk in &chunks[1..] {
                let Predictions::Columns(next) = chunk else {
                    return Err(RequestError::Handler("the chunks change shape".into()));
                };
                all.vstack_mut(next).map_err(failed)?;
            }
            Ok(Predictions::Columns(all))
        }
    }
}
