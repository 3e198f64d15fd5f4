//! The management front door: models deployed, listed, versioned, split
//! and removed over HTTP, plus a simple prediction route and the V2 model
//! repository extension. Present only when the server has a `management`
//! option; on its own port when it sets one, else on the inference port
//! (where its `GET /models` then replaces the public list).
//!
//! Every route needs `Authorization: Bearer <token>`: 401 without it, 403
//! with another token. The lifecycle is `management/`; this module turns
//! bodies into its calls and its errors into statuses:
//! 400 bad body or path, 404 unknown model, 409 already served,
//! 422 the model failed to load, 501 no model root.
//!
//! - `POST /models` `{name, runtime|framework, path, version?, config?}`
//! - `GET /models`, `GET /models/{name}`
//! - `POST /models/{name}/versions/{version}` `{path, runtime?, config?}`
//! - `DELETE /models/{name}`, `DELETE /models/{name}/versions/{version}`
//! - `PUT /models/{name}/traffic` `{"1": 0.9, "2": 0.1}` (or `{"traffic": {...}}`; `{}` clears)
//! - `POST /predict/{name}` `{"inputs": [records], "version"?}` →
//!   `{"predictions": [...], "model": .., "version": ..}`
//! - `POST /v2/repository/index`, `POST /v2/repository/models/{m}/load`, `.../unload`

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::{error_response, json_response};
use super::{body, method_not_allowed, request_id, MODEL_VERSION};
use crate::codec::predictions::write_predictions;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::management::{check_token, Access, DeployRequest, Management, ManagementError};
use crate::metrics::Protocol;
use crate::service::{InferenceRequest, Target};

struct Data {
    management: Arc<Management>,
    body_limit: usize,
    routing_header: HeaderName,
}

/// Serves the management API alone on `addr` (its own port), on one worker.
pub fn serve_own_port(
    management: &Arc<Management>,
    addr: String,
    body_limit: usize,
    routing_header: &HeaderName,
    shutdown_timeout: u64,
) -> Result<super::Listening, super::ServeError> {
    let (m, header) = (Arc::clone(management), routing_header.clone());
    let configure = move |cfg: &mut web::ServiceConfig| {
        self::configure(cfg, &m, body_limit, &header);
        cfg.default_service(web::to(super::not_found));
    };
    let listening = super::serve_app(addr, 1, shutdown_timeout, "redesmyn-management", configure)?;
    tracing::info!(port = listening.port, "management API listening");
    Ok(listening)
}

pub fn configure(
    cfg: &mut web::ServiceConfig,
    management: &Arc<Management>,
    body_limit: usize,
    routing_header: &HeaderName,
) {
    let data =
        web::Data::new(Data { management: Arc::clone(management), body_limit, routing_header: routing_header.clone() });
    cfg.service(
        web::resource("/models")
            .app_data(data.clone())
            .route(web::get().to(list))
            .route(web::post().to(deploy))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/models/{name}")
            .app_data(data.clone())
            .route(web::get().to(describe))
            .route(web::delete().to(remove))
            .default_service(web::to(method_not_allowed("GET, DELETE"))),
    )
    .service(
        web::resource("/models/{name}/versions/{version}")
            .app_data(data.clone())
            .route(web::post().to(add_version))
            .route(web::delete().to(remove))
            .default_service(web::to(method_not_allowed("POST, DELETE"))),
    )
    .service(
        web::resource("/models/{name}/traffic")
            .app_data(data.clone())
            .route(web::put().to(traffic))
            .default_service(web::to(method_not_allowed("PUT"))),
    )
    .service(
        web::resource("/predict/{name}")
            .app_data(data.clone())
            .route(web::post().to(predict))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/v2/repository/index")
            .app_data(data.clone())
            .route(web::post().to(repository_index))
            .default_service(web::to(method_not_allowed("POST"))),
    );
    for (path, load) in [("/v2/repository/models/{name}/load", true), ("/v2/repository/models/{name}/unload", false)] {
        let resource = web::resource(path).app_data(data.clone());
        let resource = if load {
            resource.route(web::post().to(repository_load))
        } else {
            resource.route(web::post().to(repository_unload))
        };
        cfg.service(resource.default_service(web::to(method_not_allowed("POST"))));
    }
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    json_response(status, serde_json::to_vec(&json!({ "error": message, "details": [] })).unwrap_or_default())
}

fn ok(status: StatusCode, value: &Value) -> HttpResponse {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

/// A 401 or 403 unless the request carries the token.
fn denied(req: &HttpRequest, data: &Data) -> Option<HttpResponse> {
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match check_token(given, data.management.token()) {
        Access::Granted => None,
        Access::Missing => {
            let mut response =
                error(StatusCode::UNAUTHORIZED, "the management API needs Authorization: Bearer <token>");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            Some(response)
        }
        Access::Denied => Some(error(StatusCode::FORBIDDEN, "wrong management token")),
    }
}

fn status_of(err: &ManagementError) -> StatusCode {
    match err {
        ManagementError::Invalid(_) | ManagementError::Path(_) => StatusCode::BAD_REQUEST,
        ManagementError::NotFound(_) => StatusCode::NOT_FOUND,
        ManagementError::Conflict(_) => StatusCode::CONFLICT,
        ManagementError::Load(..) => StatusCode::UNPROCESSABLE_ENTITY,
        ManagementError::Unsupported => StatusCode::NOT_IMPLEMENTED,
    }
}

fn respond(result: Result<Value, ManagementError>, status: StatusCode) -> HttpResponse {
    match result {
        Ok(value) => ok(status, &value),
        Err(e) => error(status_of(&e), &e.to_string()),
    }
}

/// The body as JSON of type `T` (an empty body is `T::default()`).
async fn read_json<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    payload: web::Payload,
    data: &Data,
) -> Result<T, HttpResponse> {
    let bytes = body::read(req, payload, data.body_limit).await.map_err(|e| error_response(&e, None))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("malformed body: {e}")))
}

fn name_of(req: &HttpRequest) -> String {
    req.match_info().get("name").unwrap_or_default().to_string()
}

async fn list(req: HttpRequest, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    ok(StatusCode::OK, &data.management.list())
}

async fn describe(req: HttpRequest, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let name = name_of(&req);
    match data.management.view(&name) {
        Some(view) => ok(StatusCode::OK, &view),
        None => error(StatusCode::NOT_FOUND, &format!("unknown model '{name}'")),
    }
}

async fn deploy(req: HttpRequest, payload: web::Payload, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let request: DeployRequest = match read_json(&req, payload, &data).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    respond(data.management.deploy(request).await, StatusCode::CREATED)
}

async fn add_version(req: HttpRequest, payload: web::Payload, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let mut request: DeployRequest = match read_json(&req, payload, &data).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let (name, version) = (name_of(&req), req.match_info().get("version").unwrap_or_default().to_string());
    if request.name.as_ref().is_some_and(|n| *n != name) || request.version.as_ref().is_some_and(|v| *v != version) {
        return error(StatusCode::BAD_REQUEST, "the body's name and version must match the path's (or be left out)");
    }
    request.name = Some(name);
    request.version = Some(version);
    respond(data.management.deploy(request).await, StatusCode::CREATED)
}

async fn remove(req: HttpRequest, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let version = req.match_info().get("version").map(str::to_string);
    respond(data.management.remove(&name_of(&req), version.as_deref()).await, StatusCode::OK)
}

async fn traffic(req: HttpRequest, payload: web::Payload, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let body: BTreeMap<String, Value> = match read_json(&req, payload, &data).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    // `{"traffic": {...}}` or the weights themselves.
    let weights = match body.get("traffic") {
        Some(Value::Object(inner)) if body.len() == 1 => inner.clone().into_iter().collect(),
        Some(Value::Null) if body.len() == 1 => BTreeMap::new(),
        _ => body,
    };
    let mut parsed = BTreeMap::new();
    for (version, weight) in weights {
        match weight.as_f64() {
            Some(w) => parsed.insert(version, w),
            None => {
                let message = format!("traffic weight of version '{version}' must be a number, got {weight}");
                return error(StatusCode::BAD_REQUEST, &message);
            }
        };
    }
    respond(data.management.set_traffic(&name_of(&req), Some(parsed)).await, StatusCode::OK)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PredictBody {
    inputs: Option<Box<serde_json::value::RawValue>>,
    version: Option<String>,
}

async fn predict(req: HttpRequest, payload: web::Payload, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let id = request_id::of(&req);
    let body: PredictBody = match read_json(&req, payload, &data).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let Some(inputs) = body.inputs else {
        return error(StatusCode::BAD_REQUEST, "'inputs' is missing: a list of records");
    };
    let name = name_of(&req);
    let routing_key = req.headers().get(&data.routing_header).and_then(|v| v.to_str().ok());
    let service = data.management.service();
    let target = Target::named(&name).version(body.version.as_deref()).routing_key(routing_key);
    let call = match service.open(Protocol::Native, id.as_str(), target) {
        Ok(call) => call.at(format!("/predict/{name}")).traced(crate::telemetry::Incoming::Http(req.headers())),
        Err(e) => return error_response(&e, Some(&id)),
    };
    let model = Arc::clone(call.model());
    let result = async {
        if !model.param_names().is_empty() {
            return Err(RequestError::InvalidParam(format!(
                "model '{name}' takes path parameters; call its own path instead"
            )));
        }
        let request =
            InferenceRequest { params: Default::default(), arrived: call.arrived(), client: None, trace: call.trace() };
        model.predict(request, |schema| decode_request(schema, inputs.get().as_bytes())).await
    }
    .await;
    let outcome = Outcome::from(&result);
    let (mut response, answer) = match result {
        Ok(answer) => {
            let mut out = Vec::new();
            match &answer {
                Some(a) => write_predictions(&mut out, &a.predictions),
                None => out.extend_from_slice(b"[]"),
            }
            let key = model.key();
            let mut body = b"{\"predictions\":".to_vec();
            body.extend_from_slice(&out);
            let tail = json!({ "model": key.name, "version": key.version, "id": id });
            let tail = serde_json::to_vec(&tail).unwrap_or_default();
            body.push(b',');
            body.extend_from_slice(&tail[1..]);
            (json_response(StatusCode::OK, body), answer)
        }
        Err(e) => (error_response(&e, Some(&id)), None),
    };
    if let Some(t) = call.traceparent().and_then(|t| header::HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(header::HeaderName::from_static(crate::telemetry::TRACEPARENT), t);
    }
    call.finish(outcome, response.status().as_u16(), answer.as_ref());
    request_id::tag(&mut response, &id);
    if let Some(version) = model.key().version.as_deref().and_then(|v| header::HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(MODEL_VERSION, version);
    }
    response
}

#[derive(serde::Deserialize, Default)]
struct IndexBody {
    #[serde(default)]
    ready: bool,
}

async fn repository_index(req: HttpRequest, payload: web::Payload, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    let body: IndexBody = match read_json(&req, payload, &data).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    ok(StatusCode::OK, &data.management.index(body.ready))
}

async fn repository_load(req: HttpRequest, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    match data.management.load_folder(&name_of(&req)).await {
        Ok(_) => ok(StatusCode::OK, &json!({})),
        Err(e) => error(status_of(&e), &e.to_string()),
    }
}

async fn repository_unload(req: HttpRequest, data: web::Data<Data>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data) {
        return denied;
    }
    match data.management.remove(&name_of(&req), None).await {
        Ok(_) => ok(StatusCode::OK, &json!({})),
        Err(e) => error(status_of(&e), &e.to_string()),
    }
}
