//! The V1 routes in process, over the same models as the V2 tests: records
//! and rows of values as instances, readiness, and the bad bodies a V1
//! client can send, with the server still serving afterwards.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, App};
use serde_json::json;

use super::configure;
use super::v2_tests::{get, json_of, post, state};

#[actix_web::test]
async fn instances_as_records_or_rows_answer_predictions_in_order() {
    let state = state();
    let app = app!(state);
    let body = json!({"instances": [
        [6.8, 2.8, 4.8, 1.4],
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        [6.0, 3.4, 4.5, 1.6],
    ]});
    let (s, h, b) =
        call!(app, post("/v1/models/iris:predict", body.to_string()).insert_header(("x-request-id", "v1-a")));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b), json!({"predictions": [1, 0, 1]}));
    assert_eq!(h.get("x-request-id").unwrap(), "v1-a");
    let (s, _, b) = call!(app, post("/v1/models/iris:predict", r#"{"instances": []}"#));
    assert_eq!((s, json_of(&b)), (StatusCode::OK, json!({"predictions": []})));
}

#[actix_web::test]
async fn model_status_says_ready_and_unknown_models_are_404() {
    let state = state();
    let app = app!(state);
    let (s, _, b) = call!(app, get("/v1/models/iris"));
    assert_eq!((s, json_of(&b)), (StatusCode::OK, json!({"name": "iris", "ready": true})));
    let (s, _, b) = call!(app, get("/v1/models/nope"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(json_of(&b)["error"].as_str().unwrap().contains("nope"));
    let (s, _, _) = call!(app, post("/v1/models/nope:predict", r#"{"instances": [[1]]}"#));
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, h, _) = call!(app, get("/v1/models/iris:predict"));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h.get("allow").unwrap(), "POST");
}

#[actix_web::test]
async fn bad_bodies_get_clear_400s_and_the_model_keeps_serving() {
    let state = state();
    let app = app!(state);
    let cases = [
        ("{", "expected {\"instances\": [...]}"),
        (r#"{"inputs": [[1, 2, 3, 4]]}"#, "no \"instances\" array"),
        (r#"{"instances": {"a": 1}}"#, "expected {\"instances\": [...]}"),
        (r#"{"instances": [[1, 2, 3]]}"#, "instance 0 has 3 values; the model takes 4"),
        (r#"{"instances": [[1, 2, 3, 4], 7]}"#, "instance 1 must be a record object or an array of 4 values"),
        (r#"{"instances": [[1, 2, 3, "x"]]}"#, "record 0, field 'petal_width'"),
        (r#"{"instances": [{"sepal_length": 1}]}"#, "record 0"),
        ("   ", "empty"),
    ];
    for (body, message) in cases {
        let (s, _, b) = call!(app, post("/v1/models/iris:predict", body));
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {}", String::from_utf8_lossy(&b));
        let error = json_of(&b)["error"].as_str().unwrap().to_string();
        assert!(error.contains(message), "{body}: {error}");
    }
    // A model with path parameters cannot be reached without them.
    let (s, _, b) = call!(app, post("/v1/models/double:predict", r#"{"instances": [[1]]}"#));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(json_of(&b)["error"].as_str().unwrap().contains("'factor'"));
    let (s, _, b) = call!(app, post("/v1/models/iris:predict", r#"{"instances": [[6.8, 2.8, 4.8, 1.4]]}"#));
    assert_eq!((s, json_of(&b)), (StatusCode::OK, json!({"predictions": [1]})));
}
