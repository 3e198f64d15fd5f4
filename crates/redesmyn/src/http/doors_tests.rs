//! The doors beside predict and V2 in process (`actix_web::test`): engine
//! state, Server-Sent Events, the V2 generate extension, jobs and
//! management, as clients see them (statuses, bodies, headers).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{test, App};
use polars::prelude::*;
use serde_json::{json, Value};

use super::{configure, HttpState, Route};
use crate::batch::BatchConfig;
use crate::handler::{Batch, Predictions, Step, StreamHandler};
use crate::jobs::{Jobs, JobsConfig};
use crate::management::{Management, ManagementConfig};
use crate::metrics::Metrics;
use crate::model::Endpoint;
use crate::schema::{Field, FieldType, Schema};
use crate::service::InferenceService;
use crate::testing;

/// Yields each word of a row's `prompt` as its own step, ending the row after its last.
fn words() -> Arc<dyn StreamHandler> {
    Arc::new(|batch: Batch| {
        let rows = testing::prompt_words(&batch.frame);
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        futures::stream::iter((0..longest).map(move |step| {
            let values: Vec<Option<String>> = rows.iter().map(|r| r.get(step).cloned()).collect();
            let ended: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].len() == step + 1).collect();
            Ok(Step::chunks(Predictions::Column(Series::new("w".into(), values))).ending(ended))
        }))
    })
}

/// What a door test serves: `/double/{factor}` (unary) and `/words`
/// (streaming, model `words`), with the jobs and management doors when asked.
struct Fixture {
    state: Arc<HttpState>,
    service: Arc<InferenceService>,
    _dir: tempfile::TempDir,
}

fn fixture(with_jobs: bool, with_management: bool) -> Fixture {
    let schema = Schema::new(vec![Field::new("prompt", FieldType::Str)]).unwrap();
    let stream = Endpoint::new("/words", schema, BatchConfig::default(), words()).unwrap();
    let metrics = Arc::new(Metrics::new(Vec::new(), None));
    let (service, paths) =
        testing::service(vec![testing::endpoint("/double/{factor}"), stream], Some(Arc::clone(&metrics)));
    let routes: Vec<Route> = paths.into_iter().map(|(path, key)| Route { path, key }).collect();
    let dir = tempfile::tempdir().unwrap();
    let jobs = with_jobs.then(|| {
        let config = JobsConfig { token: Some("job-token".into()), ..JobsConfig::new(dir.path()) };
        Jobs::start(config, Arc::clone(&service), &tokio::runtime::Handle::current()).unwrap()
    });
    let management = with_management.then(|| {
        let config = ManagementConfig { token: "admin".into(), host: None, port: None, root: None };
        Arc::new(Management::new(config, Arc::clone(&service), None, Duration::from_secs(5)))
    });
    let state = Arc::new(HttpState {
        routes,
        metrics: Some(metrics),
        body_limit: 1 << 20,
        ready: Arc::new(AtomicBool::new(true)),
        service: Arc::clone(&service),
        jobs,
        routing_header: super::HeaderName::from_static(super::ROUTING_HEADER),
        repository_extension: management.is_some(),
        management,
    });
    Fixture { state, service, _dir: dir }
}

macro_rules! app {
    ($state:expr) => {{
        let state = Arc::clone(&$state);
        test::init_service(App::new().configure(move |cfg| configure(cfg, &state))).await
    }};
}

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = test::call_service(&$app, $req.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, test::read_body(res).await)
    }};
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn post(uri: &str, body: impl Into<Vec<u8>>) -> test::TestRequest {
    test::TestRequest::post().uri(uri).set_payload(body.into())
}

/// The `data:` frames of an SSE body, as JSON.
fn frames(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(|f| serde_json::from_str(f).unwrap())
        .collect()
}

#[actix_web::test]
async fn state_lists_models_and_counts_requests_in_triton_shape() {
    let f = fixture(false, false);
    let app = app!(f.state);
    let (s, _, b) = call!(app, test::TestRequest::get().uri("/models"));
    assert_eq!(s, StatusCode::OK);
    let models = json_of(&b)["models"].as_array().unwrap().clone();
    assert_eq!(models[0], json!({"name": "double", "version": null, "endpoint": "/double/{factor}", "state": "idle"}));
    assert_eq!(models.len(), 2);
    assert_eq!(call!(app, post("/double/3", r#"[{"x":1},{"x":2}]"#)).0, StatusCode::OK);
    assert_eq!(call!(app, post("/double/3", r#"[{"x":"no"}]"#)).0, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, b) = call!(app, test::TestRequest::get().uri("/v2/models/double/stats"));
    assert_eq!(s, StatusCode::OK);
    let stats = &json_of(&b)["model_stats"][0];
    assert_eq!(stats["name"], "double");
    assert_eq!(stats["inference_count"], 2);
    assert_eq!(stats["inference_stats"]["success"]["count"], 1);
    assert_eq!(stats["inference_stats"]["fail"]["count"], 1);
    let (s, _, b) = call!(app, test::TestRequest::get().uri("/v2/models/nope/stats"));
    assert_eq!((s, json_of(&b)), (StatusCode::NOT_FOUND, json!({"error": "unknown model 'nope'"})));
    assert_eq!(call!(app, post("/models", "")).0, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn a_streaming_path_answers_events_per_row_and_errors_before_them_as_json() {
    let f = fixture(false, false);
    let app = app!(f.state);
    let body = r#"[{"prompt":"a b"},{"prompt":"c"}]"#;
    let (s, h, b) = call!(app, post("/words", body).insert_header(("x-request-id", "s-1")));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), super::sse::CONTENT_TYPE);
    assert_eq!(h.get("x-request-id").unwrap(), "s-1");
    let events = frames(&b);
    assert_eq!(
        events,
        vec![
            json!({"row": 0, "prediction": "a"}),
            json!({"row": 1, "prediction": "c"}),
            json!({"row": 1, "done": true}),
            json!({"row": 0, "prediction": "b"}),
            json!({"row": 0, "done": true}),
        ]
    );
    let (s, h, b) = call!(app, post("/words", r#"[{"prompt":1}]"#));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
    assert_eq!(json_of(&b)["details"][0]["field"], "prompt");
    // A unary request to a streaming model through V2 infer names the way to stream.
    let infer = json!({"inputs": [{"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["a"]}]});
    let (s, _, b) = call!(app, post("/v2/models/words/infer", infer.to_string()));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(json_of(&b)["error"].as_str().unwrap().contains("streams its predictions"));
}

#[actix_web::test]
async fn generate_streams_text_output_and_generate_joins_it() {
    let f = fixture(false, false);
    let app = app!(f.state);
    let (s, h, b) = call!(app, post("/v2/models/words/generate_stream", r#"{"text_input":"hello big world"}"#));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), super::sse::CONTENT_TYPE);
    let texts: Vec<Value> = frames(&b).iter().map(|e| e["text_output"].clone()).collect();
    assert_eq!(texts, vec![json!("hello"), json!("big"), json!("world")]);
    assert_eq!(frames(&b)[0]["model_name"], "words");
    let (s, _, b) = call!(app, post("/v2/models/words/generate", r#"{"text_input":"hello big world"}"#));
    assert_eq!(s, StatusCode::OK);
    // `generate` joins the row's string chunks as they came.
    assert_eq!(json_of(&b)["text_output"], "hellobigworld");
    // The generate specification's codes: 422 for input that does not validate.
    let (s, _, b) = call!(app, post("/v2/models/words/generate", r#"{"parameters":{}}"#));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(&b)["error"], "malformed JSON: a generate body needs \"text_input\" or \"inputs\"");
    let (s, _, _) = call!(app, post("/v2/models/words/generate", "not json"));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, _) = call!(app, post("/v2/models/nope/generate", r#"{"text_input":"x"}"#));
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn jobs_are_accepted_run_and_read_back_with_their_token() {
    let f = fixture(true, false);
    let app = app!(f.state);
    let bearer = ("authorization", "Bearer job-token");
    let (s, _, _) = call!(app, post("/double/3/jobs", r#"[{"x":2}]"#));
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, h, b) = call!(app, post("/double/3/jobs", r#"[{"x":2}]"#).insert_header(bearer));
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let id = json_of(&b)["id"].as_str().unwrap().to_string();
    assert_eq!(h.get(header::LOCATION).unwrap().to_str().unwrap(), format!("/jobs/{id}"));
    let mut job = Value::Null;
    for _ in 0..200 {
        let (_, _, b) = call!(app, test::TestRequest::get().uri(&format!("/jobs/{id}")).insert_header(bearer));
        job = json_of(&b);
        if job["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["predictions"], json!([6]));
    let (s, _, _) = call!(app, test::TestRequest::delete().uri(&format!("/jobs/{id}")).insert_header(bearer));
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) =
        call!(app, test::TestRequest::get().uri("/jobs/00000000-0000-0000-0000-000000000000").insert_header(bearer));
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, b) = call!(app, post("/double/3/jobs", r#"[{"x":"bad"}]"#).insert_header(bearer));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(&b)["details"][0]["field"], "x");
}

#[actix_web::test]
async fn management_needs_its_token_and_predicts_by_name() {
    let f = fixture(false, true);
    let app = app!(f.state);
    assert_eq!(call!(app, test::TestRequest::get().uri("/models/double")).0, StatusCode::UNAUTHORIZED);
    let wrong = ("authorization", "Bearer nope");
    assert_eq!(call!(app, test::TestRequest::get().uri("/models").insert_header(wrong)).0, StatusCode::FORBIDDEN);
    let admin = ("authorization", "Bearer admin");
    let (s, _, b) = call!(app, test::TestRequest::get().uri("/models/words").insert_header(admin));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["name"], "words");
    let (s, _, b) = call!(app, post("/predict/words", r#"{"inputs":[{"prompt":"x"}]}"#).insert_header(admin));
    assert!(s.is_client_error(), "a streaming model has no unary prediction: {s}");
    assert!(json_of(&b)["error"].as_str().unwrap().contains("streams"));
    let (s, _, b) = call!(app, post("/predict/double", r#"{"inputs":[{"x":1}]}"#).insert_header(admin));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json_of(&b)["error"].as_str().unwrap().contains("takes path parameters"));
    let (s, _, _) = call!(app, post("/predict/double", r#"{"nope":1}"#).insert_header(admin));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let traffic = test::TestRequest::put().uri("/models/words/traffic").set_payload(r#"{"1":"x"}"#);
    assert_eq!(call!(app, traffic.insert_header(admin)).0, StatusCode::BAD_REQUEST);
    // No model root: deploying by path is not possible here.
    let deploy = post("/models", r#"{"name":"m","runtime":"sklearn","path":"m"}"#).insert_header(admin);
    let (s, _, b) = call!(app, deploy);
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{}", String::from_utf8_lossy(&b));
    assert_eq!(f.service.models().count(), 2);
}
