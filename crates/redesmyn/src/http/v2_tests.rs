//! The V2 REST routes in process: what tritonclient- and kserve-style
//! clients see (statuses, bodies, headers), including every bad body the
//! protocol allows, and the server still serving afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, App};
use polars::prelude::*;
use serde_json::{json, Value};

use super::{configure, HttpState, Route};
use crate::batch::BatchConfig;
use crate::handler::{Batch, Handler, HandlerError, Predictions};
use crate::metrics::Metrics;
use crate::model::Endpoint;
use crate::testing;
use crate::v2::wire::TensorMetadata;

fn err(e: impl ToString) -> HandlerError {
    HandlerError::new(e.to_string())
}

/// `/double/{factor}` (model `double`) and `/iris` (model `iris`, version
/// `1`, output `predict`: 1 when petal_length > 2.5).
pub(super) fn state() -> Arc<HttpState> {
    let iris: Arc<dyn Handler> = Arc::new(|batch: Batch| async move {
        let petal = batch.frame.column("petal_length").map_err(err)?.f64().map_err(err)?.clone();
        let petal: Vec<Option<f64>> = petal.iter().collect();
        let classes: Vec<i64> = petal.into_iter().map(|v| i64::from(v.unwrap_or(0.0) > 2.5)).collect();
        Ok::<_, HandlerError>(Predictions::Column(Series::new("class".into(), classes)))
    });
    let f64s = testing::f64_schema;
    let endpoints = vec![
        testing::endpoint("/double/{factor}").with_inputs(vec![TensorMetadata {
            name: "x".into(),
            datatype: "FP64".into(),
            shape: vec![-1, 1],
        }]),
        Endpoint::new(
            "/iris",
            f64s(&["sepal_length", "sepal_width", "petal_length", "petal_width"]),
            BatchConfig::default(),
            iris,
        )
        .unwrap()
        .with_model_name("iris")
        .with_version("1")
        .with_outputs(vec![TensorMetadata {
            name: "predict".into(),
            datatype: "INT64".into(),
            shape: vec![-1],
        }]),
    ];
    let metrics = Arc::new(Metrics::new(Vec::new(), None));
    let (service, paths) = testing::service(endpoints, Some(Arc::clone(&metrics)));
    let routes = paths.into_iter().map(|(path, key)| Route { path, key }).collect();
    let ready = Arc::new(AtomicBool::new(true));
    Arc::new(HttpState {
        routes,
        metrics: Some(metrics),
        body_limit: 1 << 20,
        ready,
        service,
        jobs: None,
        routing_header: routing(),
        management: None,
        repository_extension: false,
    })
}

pub(super) fn get(uri: &str) -> test::TestRequest {
    test::TestRequest::get().uri(uri)
}

pub(super) fn post(uri: &str, body: impl Into<Vec<u8>>) -> test::TestRequest {
    test::TestRequest::post().uri(uri).set_payload(body.into())
}

pub(super) fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

const IRIS: &str = r#"{"id":"kserve-1","inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32",
    "data":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6]]}]}"#;

#[actix_web::test]
async fn server_health_and_model_metadata() {
    let state = state();
    let app = app!(state);
    let (s, _, b) = call!(app, get("/v2"));
    assert_eq!(s, StatusCode::OK);
    let meta = json_of(&b);
    assert_eq!(meta["name"], "redesmyn");
    assert!(meta["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));
    assert_eq!(json_of(&call!(app, get("/v2/health/live")).2), json!({"live": true}));
    assert_eq!(json_of(&call!(app, get("/v2/health/ready")).2), json!({"ready": true}));
    let (s, _, b) = call!(app, get("/v2/models/iris"));
    assert_eq!(s, StatusCode::OK);
    let meta = json_of(&b);
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["inputs"][2], json!({"name": "petal_length", "datatype": "FP64", "shape": [-1]}));
    assert_eq!(meta["outputs"], json!([{"name": "predict", "datatype": "INT64", "shape": [-1]}]));
    assert_eq!(call!(app, get("/v2/models/iris/versions/1")).0, StatusCode::OK);
    assert_eq!(call!(app, get("/v2/models/iris/ready")).0, StatusCode::OK);
    assert_eq!(call!(app, get("/v2/models/iris/versions/1/ready")).0, StatusCode::OK);
    let (s, _, b) = call!(app, get("/v2/models/iris/versions/9/ready"));
    assert_eq!((s, json_of(&b)), (StatusCode::NOT_FOUND, json!({"error": "model 'iris' has no version '9'"})));
    let (s, _, b) = call!(app, get("/v2/models/nope"));
    assert_eq!((s, json_of(&b)), (StatusCode::NOT_FOUND, json!({"error": "unknown model 'nope'"})));
    state.ready.store(false, Ordering::Release);
    let (s, _, b) = call!(app, get("/v2/health/ready"));
    assert_eq!((s, json_of(&b)), (StatusCode::SERVICE_UNAVAILABLE, json!({"ready": false})));
    assert_eq!(call!(app, get("/v2/models/iris/ready")).0, StatusCode::SERVICE_UNAVAILABLE);
}

#[actix_web::test]
async fn declared_inputs_replace_the_schema_fields_in_metadata() {
    let state = state();
    let app = app!(state);
    let (s, _, b) = call!(app, get("/v2/models/double"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json_of(&b)["inputs"], json!([{"name": "x", "datatype": "FP64", "shape": [-1, 1]}]));
}

#[actix_web::test]
async fn iris_matrix_without_content_type_answers_classes_and_echoes_the_id() {
    let state = state();
    let app = app!(state);
    let (s, h, b) = call!(app, post("/v2/models/iris/infer", IRIS).insert_header(("x-request-id", "r-9")));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h.get("x-request-id").unwrap(), "r-9");
    assert_eq!(h.get("x-batch-size").unwrap(), "2");
    assert_eq!(
        json_of(&b),
        json!({"model_name": "iris", "model_version": "1", "id": "kserve-1",
               "outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 1]}]})
    );
    // Fields by name, flat data, through the versioned path.
    let body = json!({"inputs": [
        {"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]},
        {"name": "sepal_width", "shape": [1], "datatype": "FP64", "data": [3.5]},
        {"name": "petal_length", "shape": [1, 1], "datatype": "FP64", "data": [1.4]},
        {"name": "petal_width", "shape": [1], "datatype": "FP64", "data": [0.2]}]});
    let (s, _, b) = call!(app, post("/v2/models/iris/versions/1/infer", body.to_string()));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["outputs"][0]["data"], json!([0]));
    let (_, _, b) = call!(app, get("/metrics"));
    let text = String::from_utf8(b).unwrap();
    assert!(text.contains(r#"redesmyn_protocol_requests_total{endpoint="/iris",protocol="v2-rest"} 2"#), "{text}");
}

#[actix_web::test]
async fn binary_tensors_in_and_out() {
    let state = state();
    let app = app!(state);
    let header = json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
        "parameters": {"binary_data_size": 32}}], "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = header.clone().into_bytes();
    for v in [6.8f32, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let req = post("/v2/models/iris/infer", body)
        .insert_header(("Inference-Header-Content-Length", header.len().to_string()))
        .insert_header(("content-type", "application/octet-stream"));
    let (s, h, b) = call!(app, req);
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let n: usize = h.get("inference-header-content-length").unwrap().to_str().unwrap().parse().unwrap();
    let head = json_of(&b[..n]);
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 16);
    let mut expected = 1i64.to_le_bytes().to_vec();
    expected.extend_from_slice(&1i64.to_le_bytes());
    assert_eq!(&b[n..], expected.as_slice());
    // The raw single-input body: header length 0, the model's one input.
    let req = post("/v2/models/double/infer", 2.5f64.to_le_bytes().to_vec())
        .insert_header(("Inference-Header-Content-Length", "0"))
        .insert_header(("content-type", "application/octet-stream"));
    let (s, _, b) = call!(app, req);
    // The raw body carries no parameters, so `double`'s `factor` is missing.
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(json_of(&b)["error"].as_str().unwrap().contains("'factor'"));
    let req = post("/v2/models/double/versions/4/infer", 2.5f64.to_le_bytes().to_vec())
        .insert_header(("Inference-Header-Content-Length", "0"));
    let (s, _, b) = call!(app, req);
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["outputs"][0]["data"], json!([10.0]));
}

#[actix_web::test]
async fn parameters_select_the_variant_and_missing_ones_are_named() {
    let state = state();
    let app = app!(state);
    let x = |params: Value| {
        json!({"parameters": params, "inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}]})
            .to_string()
    };
    let (s, _, b) = call!(app, post("/v2/models/double/infer", x(json!({"factor": "3"}))));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        json_of(&b)["outputs"][0],
        json!({"name": "output-0", "datatype": "FP64", "shape": [2], "data": [3.0, 6.0]})
    );
    let (_, _, b) = call!(app, post("/v2/models/double/infer", x(json!({"factor": 5}))));
    assert_eq!(json_of(&b)["outputs"][0]["data"], json!([5.0, 10.0]));
    let (_, _, b) = call!(app, post("/v2/models/double/versions/7/infer", x(json!({}))));
    assert_eq!(json_of(&b)["outputs"][0]["data"], json!([7.0, 14.0]));
    let (s, _, b) = call!(app, post("/v2/models/double/infer", x(json!({}))));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(&b),
        json!({"error": "model 'double' needs the parameters 'factor' in the request's \"parameters\" object"})
    );
}

#[actix_web::test]
async fn every_bad_body_is_a_400_naming_the_fault_and_the_server_keeps_serving() {
    let state = state();
    let app = app!(state);
    let one = |input: Value| json!({"inputs": [input]}).to_string();
    let cases: Vec<(&str, test::TestRequest, &str)> = vec![
        ("malformed JSON", post("/v2/models/iris/infer", "{"), "malformed inference request"),
        ("empty body", post("/v2/models/iris/infer", ""), "empty"),
        (
            "data shorter than the shape",
            post(
                "/v2/models/iris/infer",
                one(json!({"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]})),
            ),
            "input 'input-0'",
        ),
        (
            "data longer than the shape",
            post(
                "/v2/models/iris/infer",
                one(json!({"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5]})),
            ),
            "input 'input-0'",
        ),
        (
            "wrong shape for the model",
            post(
                "/v2/models/iris/infer",
                one(json!({"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]})),
            ),
            "input-0",
        ),
        (
            "unknown datatype",
            post(
                "/v2/models/iris/infer",
                one(json!({"name": "input-0", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]})),
            ),
            "unknown datatype 'FP128'",
        ),
        (
            "FP16",
            post(
                "/v2/models/iris/infer",
                one(json!({"name": "input-0", "shape": [1, 4], "datatype": "FP16", "data": [1, 2, 3, 4]})),
            ),
            "FP16",
        ),
        (
            "duplicate inputs",
            post(
                "/v2/models/double/versions/2/infer",
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]},
                                  {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]})
                .to_string(),
            ),
            "input 'x' appears twice",
        ),
        (
            "binary_data_size past the body",
            post("/v2/models/double/versions/2/infer", {
                let h = one(
                    json!({"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 800}}),
                );
                let mut b = h.clone().into_bytes();
                b.extend_from_slice(&[0; 8]);
                b
            })
            .insert_header((
                "Inference-Header-Content-Length",
                one(json!({"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 800}}))
                    .len()
                    .to_string(),
            )),
            "runs past the end of the body",
        ),
        (
            "header length larger than the body",
            post("/v2/models/iris/infer", IRIS).insert_header(("Inference-Header-Content-Length", "100000")),
            "larger than the body",
        ),
        (
            "absurd header length",
            post("/v2/models/iris/infer", IRIS)
                .insert_header(("Inference-Header-Content-Length", "99999999999999999999999999")),
            "not a byte count",
        ),
        (
            "unknown output",
            post("/v2/models/iris/infer", IRIS.replace(r#""id":"kserve-1","#, r#""outputs":[{"name":"nope"}],"#)),
            "unknown output 'nope'",
        ),
    ];
    for (what, req, needle) in cases {
        let (s, _, b) = call!(app, req);
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {}", String::from_utf8_lossy(&b));
        let message = json_of(&b)["error"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{what}: {message}");
    }
    // Any content type: curl -d sends a form type, tritonclient none.
    let req = post("/v2/models/iris/infer", IRIS).insert_header(("content-type", "application/x-www-form-urlencoded"));
    assert_eq!(call!(app, req).0, StatusCode::OK);
    let (s, h, _) = call!(app, get("/v2/models/iris/infer"));
    assert_eq!((s, h.get("allow").unwrap().to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "POST"));
    assert_eq!(call!(app, post("/v2/models/iris/infer", IRIS)).0, StatusCode::OK);
}

fn routing() -> actix_web::http::header::HeaderName {
    actix_web::http::header::HeaderName::from_static(crate::http::ROUTING_HEADER)
}

#[actix_web::test]
async fn metadata_lists_a_handler_models_outputs_once_it_has_answered() {
    let state = state();
    let app = app!(state);
    // `double` declares no outputs: none are known before its first answer.
    let (_, _, b) = call!(app, get("/v2/models/double"));
    assert_eq!(json_of(&b)["outputs"], json!([]));
    let (s, _, _) = call!(app, post("/double/2", r#"[{"x":1},{"x":2}]"#));
    assert_eq!(s, StatusCode::OK);
    let (_, _, b) = call!(app, get("/v2/models/double"));
    assert_eq!(json_of(&b)["outputs"], json!([{"name": "output-0", "datatype": "FP64", "shape": [-1]}]));
}
