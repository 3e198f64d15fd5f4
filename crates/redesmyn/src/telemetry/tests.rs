//! The trace tree of concurrent requests that share batches, read back
//! from what the exporter received.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Handle;

use super::*;
use crate::batch::BatchConfig;
use crate::codec::records::decode_request;
use crate::error::Outcome;
use crate::handler::{Batch, Handler, HandlerError, Params, Predictions};
use crate::metrics::Protocol;
use crate::model::{Endpoint, ModelRegistry};
use crate::service::{InferenceRequest, InferenceService, Target};

/// Keeps what it is sent.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn settings() -> Resolved {
    let spec = TelemetrySpec { enabled: Some(true), sampler: Some("always_on".into()), ..Default::default() };
    spec.resolve_with(|_| None).unwrap().unwrap()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_link_every_request_they_serve_and_the_handler_sees_the_batch_span() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen_by_handler = Arc::clone(&seen);
    let handler: Arc<dyn Handler> = Arc::new(move |batch: Batch| {
        seen_by_handler.lock().unwrap().push(batch.traceparent());
        async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, HandlerError>(Predictions::Column(
                batch.frame.column("x").unwrap().as_materialized_series().clone(),
            ))
        }
    });
    let batch = BatchConfig { max_delay: Duration::from_millis(20), ..Default::default() };
    let endpoint = Endpoint::new("/traced", crate::testing::f64_schema(&["x"]), batch, handler).unwrap();
    let mut registry = ModelRegistry::new();
    registry.insert(endpoint.model).unwrap();
    let service = Arc::new(InferenceService::start(registry, |k| k.name.clone(), None, &Handle::current()));

    let kept = Kept::default();
    let telemetry = Telemetry::with_exporter(kept.clone(), &settings(), &Handle::current());
    telemetry.install();
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let caller = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let carried = TraceHeaders { traceparent: format!("00-{trace_id}-{caller}-01"), tracestate: None };

    let requests = (0..6).map(|i| {
        let service = Arc::clone(&service);
        let carried = carried.clone();
        async move {
            let call = service
                .open(Protocol::V2Rest, format!("r{i}"), Target::named("traced"))
                .unwrap()
                .traced(Incoming::Carried(Some(&carried)));
            let traceparent = call.traceparent().unwrap();
            let model = Arc::clone(call.model());
            let request = InferenceRequest {
                params: Params::default(),
                arrived: Instant::now(),
                client: None,
                trace: call.trace(),
            };
            let answer = model.predict(request, |s| decode_request(s, br#"[{"x":1},{"x":2}]"#)).await.unwrap();
            call.finish(Outcome::Ok, 200u16, answer.as_ref());
            traceparent
        }
    });
    let traceparents = futures::future::join_all(requests).await;
    telemetry.flush().await;
    telemetry.stop().await;

    let spans: Vec<SpanData> =
        kept.0.lock().unwrap().iter().filter(|s| s.span_context.trace_id() == trace_id).cloned().collect();
    let requests: Vec<&SpanData> = spans.iter().filter(|s| s.span_kind == SpanKind::Server).collect();
    assert_eq!(requests.len(), 6, "one server span per request");
    for (request, traceparent) in requests.iter().zip(&traceparents) {
        assert_eq!(request.parent_span_id, caller, "the caller's span is the parent");
        assert_eq!(attribute(request, "redesmyn.model").as_deref(), Some("traced"));
        assert_eq!(attribute(request, "http.response.status_code").as_deref(), Some("200"));
        assert_eq!(attribute(request, "redesmyn.rows").as_deref(), Some("2"));
        let _ = traceparent;
    }
    // Each answer's traceparent names its own server span.
    for traceparent in &traceparents {
        assert!(requests.iter().any(|r| traceparent.contains(&r.span_context.span_id().to_string())), "{traceparent}");
    }
    let batches: Vec<&SpanData> = spans.iter().filter(|s| s.name == "batch").collect();
    assert!(!batches.is_empty() && batches.len() < 6, "requests shared batches: {} batches", batches.len());
    for request in &requests {
        let id = attribute(request, "redesmyn.batch.span_id").expect("the request records its batch");
        let batch =
            batches.iter().find(|b| b.span_context.span_id().to_string() == id).expect("the batch was exported");
        let served = batch.parent_span_id == request.span_context.span_id()
            || batch.links.iter().any(|l| l.span_context.span_id() == request.span_context.span_id());
        assert!(served, "the batch is the request's child or links it");
        let queue = spans.iter().find(|s| s.name == "queue" && s.parent_span_id == request.span_context.span_id());
        assert!(queue.is_some(), "the request's queue wait is its child");
    }
    let served: usize = batches.iter().map(|b| b.links.len() + 1).sum();
    assert_eq!(served, 6, "every request is served by exactly one batch");
    for batch in &batches {
        assert!(
            requests.iter().any(|r| r.span_context.span_id() == batch.parent_span_id),
            "a batch is the child of the first request it serves"
        );
        let handler = spans.iter().find(|s| s.name == "handler" && s.parent_span_id == batch.span_context.span_id());
        assert!(handler.is_some(), "the handler call is the batch's child");
        let expected = format!("00-{trace_id}-{}-01", batch.span_context.span_id());
        assert!(seen.lock().unwrap().contains(&Some(expected)), "the handler got the batch span as its traceparent");
    }
    assert_eq!(telemetry.counts().dropped.get(), 0);
}

#[tokio::test]
async fn a_full_queue_drops_spans_and_counts_them() {
    #[derive(Debug)]
    struct Slow;
    impl SpanExporter for Slow {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }
    let settings = Resolved { max_queue: 4, export_batch: 1, ..settings() };
    let telemetry = Telemetry::with_exporter(Slow, &settings, &Handle::current());
    // Not installed: this test's spans only, made straight from its tracer.
    for _ in 0..20 {
        let mut span = telemetry.tracer.start("x");
        span.end();
    }
    assert!(telemetry.counts().dropped.get() >= 15, "dropped {}", telemetry.counts().dropped.get());
}
