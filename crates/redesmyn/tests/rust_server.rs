//! A model served from Rust alone, as a Rust user of the crate would: a
//! closure handler behind `Server`, over real HTTP on loopback, with
//! batching, V2 REST bodies, deadlines and a graceful stop. No Node, no Python.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use polars::prelude::*;
use redesmyn::{
    Batch, BatchConfig, Endpoint, Field, FieldType, Handler, HandlerError, Numeric, Predictions, RunningServer, Schema,
    Server, ServerConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("a", FieldType::Number(Numeric::F64)),
        Field::new("b", FieldType::Number(Numeric::F64)),
    ])
    .unwrap()
}

/// `a + b` after `delay`, counting its calls.
fn sums(calls: Arc<AtomicUsize>, delay: Duration) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            let column = |name: &str| -> Result<Float64Chunked, HandlerError> {
                let c = batch.frame.column(name).map_err(|e| HandlerError::new(e.to_string()))?;
                c.f64().cloned().map_err(|e| HandlerError::new(e.to_string()))
            };
            Ok(Predictions::Column((column("a")? + column("b")?).into_series()))
        }
    })
}

async fn start(endpoints: Vec<Endpoint>) -> RunningServer {
    let mut server = Server::new(ServerConfig { port: 0, grpc_port: Some(0), workers: Some(1), ..Default::default() });
    for e in endpoints {
        server.register(e).unwrap();
    }
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || server.start(runtime)).await.unwrap().unwrap()
}

/// One HTTP/1.1 POST over a plain socket: the status, the headers' text and the JSON body.
async fn post(port: u16, path: &str, body: &str) -> (u16, String, Value) {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_model_answers_native_and_v2_requests_in_shared_batches() {
    let calls = Arc::new(AtomicUsize::new(0));
    let batch = BatchConfig { max_delay: Duration::from_millis(30), ..Default::default() };
    let running =
        start(vec![Endpoint::new("/sums", schema(), batch, sums(Arc::clone(&calls), Duration::ZERO)).unwrap()]).await;
    let port = running.port();
    assert!(running.grpc_port().is_some_and(|p| p > 0), "gRPC is bound too");
    let answers = futures::future::join_all((0..8).map(|i| async move {
        let body = json!([{"a": i as f64, "b": 0.5}]).to_string();
        post(port, "/sums", &body).await
    }))
    .await;
    for (i, (status, head, body)) in answers.into_iter().enumerate() {
        assert_eq!(status, 200);
        assert_eq!(body["predictions"], json!([i as f64 + 0.5]));
        assert!(head.contains("x-batch-size: 8"), "the 8 requests shared one batch: {head}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let v2 = json!({"id": "r-1", "inputs": [
        {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
        {"name": "b", "shape": [2], "datatype": "FP64", "data": [10.0, 20.0]}
    ]});
    let (status, _, body) = post(port, "/v2/models/sums/infer", &v2.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "r-1");
    assert_eq!(body["outputs"][0]["data"], json!([11.0, 22.0]));
    let (status, _, body) = post(port, "/sums", r#"[{"a": "x", "b": 1}]"#).await;
    assert_eq!(status, 422);
    assert_eq!(body["details"][0]["field"], "a");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_model_past_its_deadline_answers_504_and_a_stop_answers_what_was_accepted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = BatchConfig { timeout: Some(Duration::from_millis(50)), ..Default::default() };
    let late = Endpoint::new("/late", schema(), slow, sums(Arc::clone(&calls), Duration::from_millis(300))).unwrap();
    let steady =
        Endpoint::new("/steady", schema(), BatchConfig::default(), sums(calls, Duration::from_millis(200))).unwrap();
    let running = Arc::new(start(vec![late, steady]).await);
    let port = running.port();
    let (status, _, body) = post(port, "/late", r#"[{"a": 1, "b": 1}]"#).await;
    assert_eq!(status, 504, "{body}");
    // A request in flight when the stop begins is still answered.
    let in_flight = tokio::spawn(async move { post(port, "/steady", r#"[{"a": 1, "b": 2}]"#).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.stop().await;
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body["predictions"].clone()), (200, json!([3])));
}
