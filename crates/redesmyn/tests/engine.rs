//! The engine from Rust: a thousand requests scheduled without blocking and
//! polled back, each exactly once with its own rows, metadata and
//! plausible timings; a spent ticket refused; a model's state followed
//! through idle, busy, failed and idle again.
use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::*;
use redesmyn::engine::{Engine, EngineError, ModelState, Scheduled};
use redesmyn::{
    Batch, BatchConfig, Endpoint, Field, FieldType, Handler, HandlerError, Numeric, Predictions, RequestError, Schema,
    Server, ServerConfig,
};
use tokio::sync::Semaphore;

fn schema() -> Schema {
    Schema::new(vec![Field::new("x", FieldType::Number(Numeric::F64))]).unwrap()
}

/// `x * 2`; fails a batch holding a negative `x`; waits for a permit of
/// `gate` first when one is given.
fn doubling(gate: Option<Arc<Semaphore>>) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| {
        let gate = gate.clone();
        async move {
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
            if x.into_no_null_iter().any(|v| v < 0.0) {
                return Err(HandlerError::new("negative x"));
            }
            Ok::<_, HandlerError>(Predictions::Column((x * 2.0).into_series()))
        }
    })
}

fn serve(endpoints: Vec<Endpoint>, runtime: &tokio::runtime::Runtime) -> redesmyn::RunningServer {
    let mut server = Server::new(ServerConfig { port: 0, ..Default::default() });
    for e in endpoints {
        server.register(e).unwrap();
    }
    server.start(runtime.handle().clone()).unwrap()
}

#[test]
fn a_thousand_scheduled_requests_come_back_once_each_with_their_own_metadata() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let batch = BatchConfig { max_delay: Duration::from_millis(1), ..Default::default() };
    let running = serve(vec![Endpoint::new("/double", schema(), batch, doubling(None)).unwrap()], &runtime);
    let engine: Engine<(usize, String)> = Engine::new(Arc::clone(running.service()), runtime.handle().clone());

    let started = Instant::now();
    let tickets: Vec<_> = (0..1000)
        .map(|i| {
            let frame = df!("x" => [i as f64, i as f64 + 0.5]).unwrap();
            let request =
                Scheduled::new("double", frame).metadata((i, format!("caller {i}"))).request_id(format!("r{i}"));
            engine.schedule(request).unwrap()
        })
        .collect();
    // Scheduling never waited for the handler.
    assert!(engine.pending() == 1000);
    let mut left: Vec<_> = tickets.iter().collect();
    let mut seen = vec![false; 1000];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !left.is_empty() {
        assert!(Instant::now() < deadline, "{} requests never came back", left.len());
        left.retain(|ticket| match engine.try_poll(ticket) {
            None => true,
            Some(result) => {
                let done = result.unwrap();
                let (i, label) = &done.metadata;
                assert!(!seen[*i], "request {i} came back twice");
                seen[*i] = true;
                assert_eq!(label, &format!("caller {i}"));
                assert_eq!(done.request_id, format!("r{i}"));
                assert_eq!(ticket.request_id(), done.request_id);
                let Some(Predictions::Column(y)) = &done.predictions else { panic!("one column") };
                let y: Vec<f64> = y.f64().unwrap().into_no_null_iter().collect();
                assert_eq!(y, [*i as f64 * 2.0, *i as f64 * 2.0 + 1.0]);
                assert!(done.batch_size >= 2 && done.batch_size <= 64, "batch of {}", done.batch_size);
                assert!(done.queue_wait + done.handler <= done.duration + Duration::from_millis(5));
                assert!(done.duration <= started.elapsed());
                false
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(engine.pending(), 0);
    // A spent ticket is refused.
    assert!(matches!(engine.try_poll(&tickets[0]), Some(Err(EngineError::UnknownTicket(id))) if id == "r0"));
    assert!(matches!(runtime.block_on(engine.wait(&tickets[1])), Err(EngineError::UnknownTicket(_))));
    // An unknown model fails at scheduling, with nothing queued.
    let unknown = engine.schedule(Scheduled::new("nope", df!("x" => [1.0]).unwrap()).metadata((0, String::new())));
    assert!(matches!(unknown, Err(RequestError::ModelNotFound(_))));
    runtime.block_on(running.stop());
}

#[test]
fn a_model_state_goes_idle_busy_failed_idle() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let running = serve(
        vec![Endpoint::new("/gated", schema(), BatchConfig::default(), doubling(Some(Arc::clone(&gate)))).unwrap()],
        &runtime,
    );
    let engine: Engine = Engine::new(Arc::clone(running.service()), runtime.handle().clone());
    assert_eq!(engine.state("gated", None).unwrap(), ModelState::Idle);

    let ticket = engine.schedule(Scheduled::new("gated", df!("x" => [1.0]).unwrap())).unwrap();
    assert_eq!(engine.state("gated", None).unwrap(), ModelState::Busy);
    assert!(engine.try_poll(&ticket).is_none(), "not answered while the handler waits");
    gate.add_permits(1);
    let done = runtime.block_on(engine.wait(&ticket)).unwrap();
    assert!(done.handler <= done.duration);
    assert_eq!(engine.state("gated", None).unwrap(), ModelState::Idle);

    let failing = engine.schedule(Scheduled::new("gated", df!("x" => [-1.0]).unwrap())).unwrap();
    gate.add_permits(1);
    let error = runtime.block_on(engine.wait(&failing)).unwrap_err();
    assert_eq!(error.to_string(), "negative x");
    assert_eq!(engine.state("gated", None).unwrap(), ModelState::Failed("negative x".into()));

    let next = engine.schedule(Scheduled::new("gated", df!("x" => [2.0]).unwrap())).unwrap();
    gate.add_permits(1);
    runtime.block_on(engine.wait(&next)).unwrap();
    assert_eq!(engine.state("gated", None).unwrap(), ModelState::Idle);
    runtime.block_on(running.stop());
}
