//! Engine state: `GET /models` lists every model with its state (`idle`,
//! `busy`, `loading`), and `GET /v2/models/{m}[/versions/{v}]/stats`
//! answers in Triton's statistics shape:
//! `{"model_stats":[{name, version, inference_count, execution_count,
//! inference_stats: {success, fail, queue, compute_infer: {count, ns}}}]}`.
//! Statistics are recorded with the metrics: with `metrics: false` they
//! stay at zero.

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{json_response, v2_error_response};
use super::{method_not_allowed, ByName};
use crate::stats::ModelStats;

pub fn configure(cfg: &mut web::ServiceConfig, data: web::Data<ByName>) {
    for (path, handler) in
        [("/v2/models/{model}/stats", 0), ("/v2/models/{model}/versions/{version}/stats", 0), ("/models", 1)]
    {
        let resource = web::resource(path).app_data(data.clone());
        let resource = match handler {
            0 => resource.route(web::get().to(stats)),
            _ => resource.route(web::get().to(models)),
        };
        cfg.service(resource.default_service(web::to(method_not_allowed("GET"))));
    }
}

async fn stats(req: HttpRequest, state: web::Data<ByName>) -> HttpResponse {
    let name = req.match_info().get("model").unwrap_or_default();
    let (model, _) = match state.service.resolve_v2(name, req.match_info().get("version")) {
        Ok(found) => found,
        Err(e) => return v2_error_response(&e, None),
    };
    let key = model.key();
    let empty = ModelStats::default();
    let snapshot = model.stats().map_or(&empty, |s| s).snapshot(&key.name, key.version.as_deref().unwrap_or(""));
    let body = serde_json::json!({ "model_stats": [snapshot] });
    json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
}

async fn models(state: web::Data<ByName>) -> HttpResponse {
    let ready = state.ready.load(Ordering::Acquire);
    let list: Vec<_> = state
        .service
        .models()
        .map(|m| {
            serde_json::json!({
                "name": m.key().name,
                "version": m.key().version,
                "endpoint": m.label(),
                "state": m.state(ready),
            })
        })
        .collect();
    json_response(StatusCode::OK, serde_json::to_vec(&serde_json::json!({ "models": list })).unwrap_or_default())
}
