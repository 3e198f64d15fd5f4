//! `GET /metrics`: OpenMetrics for scrapers that ask for it (Prometheus
//! does), the classic text format otherwise; 404 when metrics are off.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::error_response;
use super::method_not_allowed;
use crate::error::RequestError;
use crate::metrics::Metrics;

/// What the page reads: the server's metrics, if it records any.
struct Exposition(Option<Arc<Metrics>>);

pub fn configure(cfg: &mut web::ServiceConfig, metrics: Option<&Arc<Metrics>>) {
    cfg.service(
        web::resource("/metrics")
            .app_data(web::Data::new(Exposition(metrics.map(Arc::clone))))
            .route(web::get().to(page))
            .route(web::head().to(page))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

async fn page(req: HttpRequest, exposition: web::Data<Exposition>) -> HttpResponse {
    let Some(metrics) = &exposition.0 else {
        let err = RequestError::NotFound { method: req.method().to_string(), path: req.path().to_string() };
        return error_response(&err, None);
    };
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/openmetrics-text") {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8"))
            .body(metrics.encode())
    } else {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
            .body(metrics.encode_classic())
    }
}
