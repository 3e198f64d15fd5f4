//! The HTTP front door in process (`actix_web::test::init_service`): the
//! statuses, bodies and headers clients see, without a socket or the addon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{test, App};
use serde_json::Value;

use super::{configure, HttpState, Route};
use crate::metrics::Metrics;
use crate::service::InferenceService;
use crate::testing;

/// One endpoint `/double/{factor}` over a service, as `Server::start` wires it.
fn state(body_limit: usize) -> (Arc<HttpState>, Arc<InferenceService>) {
    let metrics = Arc::new(Metrics::new(Vec::new(), None));
    let (service, _) = testing::service(vec![testing::endpoint("/double/{factor}")], Some(Arc::clone(&metrics)));
    let key = service.resolve("double", None).unwrap().key().clone();
    let routes = vec![Route { path: "/double/{factor}".into(), key }];
    let ready = Arc::new(AtomicBool::new(false));
    let state = HttpState {
        routes,
        metrics: Some(metrics),
        body_limit,
        ready,
        service: Arc::clone(&service),
        jobs: None,
        routing_header: routing(),
        management: None,
        repository_extension: false,
    };
    (Arc::new(state), service)
}

macro_rules! app {
    ($state:expr) => {{
        let state = Arc::clone(&$state);
        test::init_service(App::new().configure(move |cfg| configure(cfg, &state))).await
    }};
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[actix_web::test]
async fn predictions_come_back_with_the_request_id_and_timings() {
    let (state, _service) = state(1024);
    let app = app!(state);
    let req = test::TestRequest::post()
        .uri("/double/3")
        .insert_header(("x-request-id", "abc"))
        .set_payload(r#"[{"x":1},{"x":2.5}]"#)
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("x-request-id").unwrap(), "abc");
    assert!(res.headers().get("server-timing").unwrap().to_str().unwrap().starts_with("queue;dur="));
    assert_eq!(res.headers().get("x-batch-size").unwrap(), "2");
    let body = json(&test::read_body(res).await);
    assert_eq!(body, serde_json::json!({"id": "abc", "predictions": [3, 7.5]}));
}

#[actix_web::test]
async fn unknown_paths_get_a_json_404() {
    let (state, _service) = state(1024);
    let app = app!(state);
    let res = test::call_service(&app, test::TestRequest::get().uri("/nowhere").to_request()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), "application/json");
    assert_eq!(json(&test::read_body(res).await)["error"], "no route for GET /nowhere");
}

#[actix_web::test]
async fn wrong_methods_get_a_json_405_with_allow() {
    let (state, _service) = state(1024);
    let app = app!(state);
    let res = test::call_service(&app, test::TestRequest::get().uri("/double/2").to_request()).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers().get(header::ALLOW).unwrap(), "POST");
    assert_eq!(json(&test::read_body(res).await)["error"], "method GET is not allowed on /double/2; use POST");
    let res = test::call_service(&app, test::TestRequest::post().uri("/health/live").to_request()).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers().get(header::ALLOW).unwrap(), "GET");
}

#[actix_web::test]
async fn bodies_over_the_limit_get_413() {
    let (state, _service) = state(16);
    let app = app!(state);
    let req = test::TestRequest::post().uri("/double/2").set_payload(r#"[{"x":1},{"x":2},{"x":3}]"#).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(&test::read_body(res).await)["error"], "the body is larger than the limit of 16 bytes");
}

#[actix_web::test]
async fn other_content_types_get_415() {
    let (state, _service) = state(1024);
    let app = app!(state);
    let req = test::TestRequest::post()
        .uri("/double/2")
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .set_payload(r#"[{"x":1}]"#)
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req = test::TestRequest::post()
        .uri("/double/2")
        .insert_header((header::CONTENT_TYPE, "application/vnd.api+json"))
        .set_payload(r#"[{"x":1}]"#)
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn records_that_miss_the_schema_get_422_with_details() {
    let (state, _service) = state(1024);
    let app = app!(state);
    let req = test::TestRequest::post().uri("/double/2").set_payload(r#"[{"x":1},{"x":"no"}]"#).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(&test::read_body(res).await);
    assert_eq!(
        body["details"],
        serde_json::json!([{"record": 1, "field": "x", "message": "expected f64, found the string \"no\""}])
    );
    let req = test::TestRequest::post().uri("/double/2").set_payload("[{").to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_stopping_service_answers_503_with_retry_after() {
    let (state, service) = state(1024);
    let app = app!(state);
    service.shutdown().await;
    let res =
        test::call_service(&app, test::TestRequest::post().uri("/double/2").set_payload(r#"{"x":1}"#).to_request())
            .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "1");
    assert_eq!(json(&test::read_body(res).await)["error"], "the server is shutting down");
}

#[actix_web::test]
async fn health_tells_live_always_and_ready_once_ready() {
    let (state, _service) = state(1024);
    let app = app!(state);
    let res = test::call_service(&app, test::TestRequest::get().uri("/health/live").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(&test::read_body(res).await), serde_json::json!({"status": "live"}));
    let res = test::call_service(&app, test::TestRequest::get().uri("/health/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    state.ready.store(true, Ordering::Release);
    let res = test::call_service(&app, test::TestRequest::get().uri("/health/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(&test::read_body(res).await), serde_json::json!({"status": "ready"}));
}

#[actix_web::test]
async fn metrics_count_answers_by_endpoint_and_status() {
    let (state, _service) = state(1024);
    let app = app!(state);
    for body in [r#"{"x":1}"#, r#"{"x":"bad"}"#] {
        test::call_service(&app, test::TestRequest::post().uri("/double/2").set_payload(body).to_request()).await;
    }
    let res = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(text.contains(r#"redesmyn_requests_total{endpoint="/double/{factor}",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"redesmyn_requests_total{endpoint="/double/{factor}",status="422"} 1"#), "{text}");
    let req = test::TestRequest::get()
        .uri("/metrics")
        .insert_header((header::ACCEPT, "application/openmetrics-text"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert!(res
        .headers()
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(String::from_utf8(test::read_body(res).await.to_vec()).unwrap().ends_with("# EOF\n"));
}

#[actix_web::test]
async fn metrics_off_means_404() {
    let (state, _service) = state(1024);
    let state = Arc::new(HttpState {
        routes: Vec::new(),
        metrics: None,
        body_limit: state.body_limit,
        ready: Arc::clone(&state.ready),
        service: Arc::clone(&state.service),
        jobs: None,
        routing_header: routing(),
        management: None,
        repository_extension: false,
    });
    let app = app!(state);
    let res = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

fn routing() -> actix_web::http::header::HeaderName {
    actix_web::http::header::HeaderName::from_static(crate::http::ROUTING_HEADER)
}
