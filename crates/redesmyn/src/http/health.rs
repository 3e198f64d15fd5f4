//! `GET /health/live` (the process answers) and `GET /health/ready`
//! (listening, and every prefetch done; not ready again once stopping).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::json_response;
use super::method_not_allowed;

pub fn configure(cfg: &mut web::ServiceConfig, ready: &Arc<AtomicBool>) {
    cfg.service(
        web::resource("/health/live")
            .route(web::get().to(live))
            .route(web::head().to(live))
            .default_service(web::to(method_not_allowed("GET"))),
    );
    let ready = web::Data::from(Arc::clone(ready));
    cfg.service(
        web::resource("/health/ready")
            .app_data(ready)
            .route(web::get().to(readiness))
            .route(web::head().to(readiness))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

async fn live() -> HttpResponse {
    json_response(StatusCode::OK, br#"{"status":"live"}"#.to_vec())
}

async fn readiness(ready: web::Data<AtomicBool>) -> HttpResponse {
    if ready.load(Ordering::Acquire) {
        json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec())
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, br#"{"status":"not ready"}"#.to_vec())
    }
}
