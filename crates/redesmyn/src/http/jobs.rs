//! The jobs front door: `POST <endpoint path>/jobs` (records) and
//! `POST /v2/models/{m}[/versions/{v}]/jobs` (a V2 infer body) accept a
//! job (`202 {"id","state":"queued"}` and `Location: /jobs/{id}`);
//! `GET /jobs/{id}` tells its state, result and telemetry; `DELETE
//! /jobs/{id}` cancels it while it is queued (409 after).
//!
//! Present only when the server has a `jobs` option. A job's id is its
//! only key: whoever has it reads the result, unless the option sets a
//! token, which every route here then requires as `Authorization: Bearer`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{error_response, json_body, json_response, status_of_kind};
use super::{body, method_not_allowed, request_id, Route};
use crate::error::RequestError;
use crate::jobs::{view, Format, JobError, Jobs, Submission};
use crate::service::InferenceService;

struct JobsData {
    jobs: Arc<Jobs>,
    body_limit: usize,
}

struct RouteJobs {
    key: crate::model::ModelKey,
    service: Arc<InferenceService>,
}

struct V2Jobs {
    service: Arc<InferenceService>,
}

pub fn configure(
    cfg: &mut web::ServiceConfig,
    jobs: &Arc<Jobs>,
    routes: &[Route],
    service: &Arc<InferenceService>,
    body_limit: usize,
) {
    let data = web::Data::new(JobsData { jobs: Arc::clone(jobs), body_limit });
    let streams = |r: &Route| service.resolve(&r.key.name, r.key.version.as_deref()).map_or(true, |m| m.streams());
    for route in routes.iter().filter(|r| !streams(r)) {
        let path = format!("{}/jobs", route.path.trim_end_matches('/'));
        cfg.service(
            web::resource(path)
                .app_data(data.clone())
                .app_data(web::Data::new(RouteJobs { key: route.key.clone(), service: Arc::clone(service) }))
                .route(web::post().to(submit_records))
                .default_service(web::to(method_not_allowed("POST"))),
        );
    }
    let v2 = web::Data::new(V2Jobs { service: Arc::clone(service) });
    for path in ["/v2/models/{model}/jobs", "/v2/models/{model}/versions/{version}/jobs"] {
        cfg.service(
            web::resource(path)
                .app_data(data.clone())
                .app_data(v2.clone())
                .route(web::post().to(submit_v2))
                .default_service(web::to(method_not_allowed("POST"))),
        );
    }
    cfg.service(
        web::resource("/jobs/{id}")
            .app_data(data)
            .route(web::get().to(get))
            .route(web::delete().to(cancel))
            .default_service(web::to(method_not_allowed("GET, DELETE"))),
    );
}

/// The status of a job error (request errors keep their usual one) and
/// its JSON body; the in-process API reports the same.
pub fn status_of(err: &JobError) -> (StatusCode, Vec<u8>) {
    let status = match err {
        JobError::Request(e) => return (status_of_kind(e.kind()), json_body(e)),
        JobError::MalformedId(_) => StatusCode::BAD_REQUEST,
        JobError::NotFound(_) => StatusCode::NOT_FOUND,
        JobError::NotCancellable(..) => StatusCode::CONFLICT,
        JobError::Store(_) | JobError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = serde_json::to_vec(&serde_json::json!({ "error": err.to_string(), "details": [] })).unwrap_or_default();
    (status, body)
}

fn respond_error(err: &JobError, id: Option<&str>) -> HttpResponse {
    if let JobError::Request(e) = err {
        return error_response(e, id);
    }
    let (status, body) = status_of(err);
    json_response(status, body)
}

/// A 401 unless the request carries the configured bearer token.
fn denied(req: &HttpRequest, jobs: &Jobs) -> Option<HttpResponse> {
    let Some(token) = &jobs.config().token else { return None };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let matches = given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|g| constant_eq(g, token));
    if matches {
        return None;
    }
    let body = br#"{"error":"jobs need Authorization: Bearer <token>","details":[]}"#.to_vec();
    let mut response = json_response(StatusCode::UNAUTHORIZED, body);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    Some(response)
}

/// Compares without stopping at the first difference.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn accepted(id: &str, request_id: &str) -> HttpResponse {
    let body = serde_json::to_vec(&serde_json::json!({ "id": id, "state": "queued" })).unwrap_or_default();
    let mut response = json_response(StatusCode::ACCEPTED, body);
    if let Ok(v) = header::HeaderValue::from_str(&format!("/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    request_id::tag(&mut response, request_id);
    response
}

async fn submit_records(
    req: HttpRequest,
    payload: web::Payload,
    data: web::Data<JobsData>,
    route: web::Data<RouteJobs>,
) -> HttpResponse {
    if let Some(denied) = denied(&req, &data.jobs) {
        return denied;
    }
    let request_id = request_id::of(&req);
    let submitted = async {
        body::check_content_type(&req)?;
        let body = body::read(&req, payload, data.body_limit).await?;
        let model = route.service.resolve(&route.key.name, route.key.version.as_deref())?;
        let params =
            model.param_names().iter().map(|n| (n.clone(), req.match_info().get(n).unwrap_or_default().into()));
        let submission = Submission {
            model: &model,
            format: Format::Records,
            version: None,
            params: params.collect(),
            body: body.to_vec(),
            request_id: request_id.clone(),
        };
        data.jobs.submit(submission).await
    };
    match submitted.await {
        Ok(id) => accepted(&id, &request_id),
        Err(e) => respond_error(&e, Some(&request_id)),
    }
}

async fn submit_v2(
    req: HttpRequest,
    payload: web::Payload,
    data: web::Data<JobsData>,
    v2: web::Data<V2Jobs>,
) -> HttpResponse {
    if let Some(denied) = denied(&req, &data.jobs) {
        return denied;
    }
    let request_id = request_id::of(&req);
    let submitted = async {
        let name = req.match_info().get("model").unwrap_or_default();
        let version = req.match_info().get("version").filter(|v| !v.is_empty());
        let (model, _) = v2.service.resolve_v2(name, version)?;
        if req.headers().contains_key(crate::v2::binary::HEADER_LENGTH) {
            return Err(JobError::Request(RequestError::UnsupportedMediaType(
                "binary tensors (jobs take a JSON V2 body)".into(),
            )));
        }
        let body = body::read(&req, payload, data.body_limit).await?;
        if body.is_empty() {
            return Err(RequestError::EmptyBody.into());
        }
        let submission = Submission {
            model: &model,
            format: Format::V2,
            version: version.map(str::to_string),
            params: Vec::new(),
            body: body.to_vec(),
            request_id: request_id.clone(),
        };
        data.jobs.submit(submission).await
    };
    match submitted.await {
        Ok(id) => accepted(&id, &request_id),
        Err(e) => respond_error(&e, Some(&request_id)),
    }
}

async fn get(req: HttpRequest, data: web::Data<JobsData>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data.jobs) {
        return denied;
    }
    let id = req.match_info().get("id").unwrap_or_default();
    match data.jobs.get(id).await {
        Ok(row) => json_response(StatusCode::OK, serde_json::to_vec(&view(&row)).unwrap_or_default()),
        Err(e) => respond_error(&e, None),
    }
}

async fn cancel(req: HttpRequest, data: web::Data<JobsData>) -> HttpResponse {
    if let Some(denied) = denied(&req, &data.jobs) {
        return denied;
    }
    let id = req.match_info().get("id").unwrap_or_default();
    match data.jobs.cancel(id).await {
        Ok(()) => {
            let body = serde_json::to_vec(&serde_json::json!({ "id": id, "state": "cancelled" })).unwrap_or_default();
            json_response(StatusCode::OK, body)
        }
        Err(e) => respond_error(&e, None),
    }
}
