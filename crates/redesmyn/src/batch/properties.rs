//! Properties of the batcher under any interleaving: arrivals at random
//! gaps, over several queues (path parameters), with clients that leave,
//! cancel, run out of deadline, and requests whose rows make the handler
//! raise or panic. Whatever proptest draws, every request is answered
//! exactly once, with its own rows in its own order, and a failure reaches
//! only the requests it may: with isolation on, only the guilty ones.
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;

use super::*;
use crate::handler::{HandlerError, Predictions};

/// How a drawn request behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    /// Its rows make the handler raise naming it.
    Raises,
    /// Its rows make the handler panic naming it.
    Panics,
    /// Its client leaves after `gap` microseconds.
    Leaves(u64),
    /// Its caller drops the receiver at once.
    Cancels,
}

#[derive(Debug, Clone)]
struct Drawn {
    rows: usize,
    queue: u8,
    kind: Kind,
    /// Microseconds to wait before submitting it.
    gap: u64,
}

#[derive(Debug, Clone)]
struct Setting {
    max_size: usize,
    max_delay_us: u64,
    max_concurrent: usize,
    spread: bool,
    isolate: bool,
    timeout_ms: Option<u64>,
    handler_us: u64,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        12 => Just(Kind::Plain),
        1 => Just(Kind::Raises),
        1 => Just(Kind::Panics),
        1 => (0u64..400).prop_map(Kind::Leaves),
        1 => Just(Kind::Cancels),
    ]
}

fn drawn() -> impl Strategy<Value = Drawn> {
    (1usize..4, 0u8..3, kind(), prop_oneof![3 => Just(0u64), 1 => 0u64..300])
        .prop_map(|(rows, queue, kind, gap)| Drawn { rows, queue, kind, gap })
}

fn setting() -> impl Strategy<Value = Setting> {
    (
        1usize..12,
        prop_oneof![Just(0u64), 0u64..2_000],
        1usize..3,
        any::<bool>(),
        any::<bool>(),
        prop_oneof![3 => Just(None), 1 => (1u64..20).prop_map(Some)],
        0u64..400,
    )
        .prop_map(|(max_size, max_delay_us, max_concurrent, spread, isolate, timeout_ms, handler_us)| Setting {
            max_size,
            max_delay_us,
            max_concurrent,
            spread,
            isolate,
            timeout_ms,
            handler_us,
        })
}

/// Row `j` of request `i` is `i * 10 + j + 1`; a raising request's rows are
/// negative, a panicking one's above a million.
fn rows_of(i: usize, d: &Drawn) -> Vec<f64> {
    (0..d.rows)
        .map(|j| {
            let v = (i * 10 + j + 1) as f64;
            match d.kind {
                Kind::Raises => -v,
                Kind::Panics => 1_000_000.0 + v,
                _ => v,
            }
        })
        .collect()
}

/// The request a poisoned row belongs to.
fn owner(v: f64) -> usize {
    let v = if v < 0.0 { -v } else { v - 1_000_000.0 };
    (v as usize - 1) / 10
}

/// `x * 2`, after `cost`; raises or panics naming the first poisoned
/// request in the batch, so each guilty request has its own message.
fn handler(cost: Duration) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| async move {
        if !cost.is_zero() {
            tokio::time::sleep(cost).await;
        }
        let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
        for v in x.into_no_null_iter() {
            if v < 0.0 {
                return Err(HandlerError::new(format!("request {} raised", owner(v))));
            }
            if v > 1_000_000.0 {
                panic!("request {} panicked", owner(v));
            }
        }
        Ok::<_, HandlerError>(Predictions::Column((x * 2.0).into_series()))
    })
}

struct Flag(Arc<AtomicBool>);
impl Liveness for Flag {
    fn gone(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn frame(values: &[f64]) -> DataFrame {
    DataFrame::new(values.len(), vec![Column::new("x".into(), values)]).unwrap()
}

/// Runs one drawn scenario; `Err` says which request broke which promise.
async fn scenario(setting: &Setting, requests: &[Drawn]) -> Result<(), String> {
    let config = BatchConfig {
        max_size: setting.max_size,
        max_delay: Duration::from_micros(setting.max_delay_us),
        max_concurrent: setting.max_concurrent,
        spread: setting.spread,
        isolate: setting.isolate,
        timeout: setting.timeout_ms.map(Duration::from_millis),
        ..Default::default()
    };
    let queues = Queues::new(handler(Duration::from_micros(setting.handler_us)), config, Handle::current());
    let mut waiting = Vec::new();
    for (i, d) in requests.iter().enumerate() {
        if d.gap > 0 {
            tokio::time::sleep(Duration::from_micros(d.gap)).await;
        }
        let params = Params::new(vec![("q".into(), d.queue.to_string())]);
        let client: Option<Arc<dyn Liveness>> = match d.kind {
            Kind::Leaves(after) => {
                let flag = Arc::new(AtomicBool::new(false));
                let set = Arc::clone(&flag);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(after)).await;
                    set.store(true, Ordering::SeqCst);
                });
                Some(Arc::new(Flag(flag)))
            }
            _ => None,
        };
        let rx = queues
            .submit(params, frame(&rows_of(i, d)), client, None)
            .map_err(|e| format!("request {i} refused: {e}"))?;
        if d.kind == Kind::Cancels {
            drop(rx);
        } else {
            waiting.push((i, rx));
        }
    }
    // Whether any request that fails the handler shares a queue with `i`.
    let poisoned_queue = |q: u8| requests.iter().any(|d| d.queue == q && matches!(d.kind, Kind::Raises | Kind::Panics));
    for (i, rx) in waiting {
        let d = &requests[i];
        let reply = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .map_err(|_| format!("request {i} was never answered"))?
            .map_err(|_| format!("request {i} was dropped without an answer"))?;
        match (reply, d.kind) {
            (Ok(answer), Kind::Plain | Kind::Leaves(_)) => {
                let Predictions::Column(s) = answer.predictions else { return Err(format!("request {i}: columns")) };
                let got: Vec<f64> = s.f64().unwrap().into_no_null_iter().collect();
                let want: Vec<f64> = rows_of(i, d).iter().map(|v| v * 2.0).collect();
                if got != want {
                    return Err(format!("request {i} got {got:?}, not its own rows doubled {want:?}"));
                }
            }
            (Ok(_), kind) => return Err(format!("request {i} ({kind:?}) was answered")),
            (Err(RequestError::DeadlineExceeded(_)), _) if setting.timeout_ms.is_some() => {}
            (Err(RequestError::ClientGone), Kind::Leaves(_)) => {}
            (Err(RequestError::Handler(message)), Kind::Raises) if message == format!("request {i} raised") => {}
            (Err(RequestError::Handler(message)), Kind::Panics)
                if message == format!("the handler panicked: request {i} panicked") => {}
            // Without isolation an innocent request fails with a guilty one
            // of its batch, which is in its own queue.
            (Err(RequestError::Handler(message)), _) if !setting.isolate && poisoned_queue(d.queue) => {
                if !message.starts_with("request ") && !message.starts_with("the handler panicked: request ") {
                    return Err(format!("request {i} failed with a stranger's error: {message}"));
                }
            }
            (Err(e), kind) => return Err(format!("request {i} ({kind:?}) failed: {e}")),
        }
    }
    queues.shutdown().await;
    Ok(())
}

proptest! {
    // Each case runs real tasks with real (short) sleeps.
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_request_is_answered_once_with_its_own_rows(
        setting in setting(),
        // At most two guilty requests a run, so isolation's budget always
        // suffices and every innocent request must be answered.
        requests in prop::collection::vec(drawn(), 1..40)
            .prop_filter("two guilty requests at most", |r| {
                r.iter().filter(|d| matches!(d.kind, Kind::Raises | Kind::Panics)).count() <= 2
            }),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let outcome = runtime.block_on(scenario(&setting, &requests));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
