//! Streaming batches: rows to their own clients, early ends, failures,
//! flow control and cancellation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use polars::prelude::*;
use tokio::runtime::Handle;

use super::*;
use crate::batch::{BatchConfig, Queues};
use crate::handler::{Batch, HandlerError, Params, Predictions};

fn words(prompts: &[&str]) -> DataFrame {
    DataFrame::new(prompts.len(), vec![Column::new("prompt".into(), prompts)]).unwrap()
}

/// Yields the words of each row's prompt, one per step, ending each row
/// after its last word; records batch sizes, and sets `closed` when the
/// stream is dropped (finished or cancelled).
fn splitter(sizes: Arc<Mutex<Vec<usize>>>, closed: Arc<AtomicBool>, pulls: Arc<AtomicUsize>) -> Arc<dyn StreamHandler> {
    Arc::new(move |batch: Batch| {
        sizes.lock().unwrap().push(batch.frame.height());
        let rows = crate::testing::prompt_words(&batch.frame);
        let guard = Closed(Arc::clone(&closed));
        let pulls = Arc::clone(&pulls);
        futures::stream::unfold((0usize, guard), move |(step, guard)| {
            let rows = rows.clone();
            let pulls = Arc::clone(&pulls);
            async move {
                pulls.fetch_add(1, Ordering::SeqCst);
                let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
                if step >= longest {
                    return None;
                }
                let values: Vec<Option<String>> = rows.iter().map(|r| r.get(step).cloned()).collect();
                let ended: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].len() == step + 1).collect();
                let chunks = Predictions::Column(Series::new("w".into(), values));
                Some((Ok(Step::chunks(chunks).ending(ended)), (step + 1, guard)))
            }
        })
    })
}

struct Closed(Arc<AtomicBool>);
impl Drop for Closed {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Every chunk of a request's stream as text, and how it ended.
async fn collect(mut stream: ChunkStream) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Event::Step { chunks, .. } => {
                for (_, value) in chunks {
                    let Predictions::Column(s) = value else { panic!("one column") };
                    out.push(s.str().unwrap().get(0).unwrap().to_string());
                }
            }
            Event::Failed(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

fn queues(handler: Arc<dyn StreamHandler>, config: BatchConfig) -> Queues {
    Queues::new(handler, config, Handle::current())
}

#[tokio::test]
async fn batched_prompts_each_get_their_own_words_and_end_at_their_own_time() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let closed = Arc::new(AtomicBool::new(false));
    let handler = splitter(Arc::clone(&sizes), Arc::clone(&closed), Arc::default());
    let config = BatchConfig { max_delay: Duration::from_millis(30), max_size: 8, ..Default::default() };
    let queues = queues(handler, config);
    let prompts: Vec<String> =
        (0..8).map(|i| (0..=i).map(|w| format!("p{i}w{w}")).collect::<Vec<_>>().join(" ")).collect();
    let streams: Vec<_> = prompts
        .iter()
        .map(|p| queues.submit_stream(Params::default(), words(&[p]), None, Instant::now()).unwrap())
        .collect();
    let results = futures::future::join_all(streams.into_iter().map(collect)).await;
    for (i, (got, error)) in results.into_iter().enumerate() {
        assert_eq!(error, None);
        assert_eq!(got.join(" "), prompts[i]);
    }
    assert_eq!(*sizes.lock().unwrap(), vec![8]);
    assert!(closed.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_request_of_several_rows_gets_each_rows_chunks_and_ends() {
    let handler = splitter(Arc::default(), Arc::default(), Arc::default());
    let queues = queues(handler, BatchConfig::default());
    let mut stream = queues.submit_stream(Params::default(), words(&["a b", "c"]), None, Instant::now()).unwrap();
    let mut seen = Vec::new();
    while let Some(event) = stream.next().await {
        let Event::Step { chunks, ended } = event else { panic!("failed") };
        for (row, _) in chunks {
            seen.push(format!("chunk {row}"));
        }
        for row in ended {
            seen.push(format!("end {row}"));
        }
    }
    assert_eq!(seen, ["chunk 0", "chunk 1", "end 1", "chunk 0", "end 0"]);
}

#[tokio::test]
async fn a_client_that_leaves_ends_its_row_and_the_last_one_closes_the_generator() {
    let closed = Arc::new(AtomicBool::new(false));
    let handler: Arc<dyn StreamHandler> = {
        let closed = Arc::clone(&closed);
        Arc::new(move |batch: Batch| {
            let rows = batch.frame.height();
            let guard = Closed(Arc::clone(&closed));
            futures::stream::unfold(guard, move |guard| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let chunks = Predictions::Column(Series::new("x".into(), vec![1i64; rows]));
                Some((Ok(Step::chunks(chunks)), guard))
            })
        })
    };
    let config = BatchConfig { max_delay: Duration::from_millis(20), ..Default::default() };
    let queues = queues(handler, config);
    let mut a = queues.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap();
    let mut b = queues.submit_stream(Params::default(), words(&["b"]), None, Instant::now()).unwrap();
    assert!(matches!(a.next().await, Some(Event::Step { .. })));
    drop(a);
    for _ in 0..20 {
        assert!(matches!(b.next().await, Some(Event::Step { .. })));
    }
    assert!(!closed.load(Ordering::SeqCst), "b is still reading");
    drop(b);
    tokio::time::timeout(Duration::from_secs(5), async {
        while !closed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the generator is closed once every client left");
}

#[tokio::test]
async fn a_failure_after_two_steps_follows_the_chunks_and_the_queue_keeps_serving() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler: Arc<dyn StreamHandler> = {
        let calls = Arc::clone(&calls);
        Arc::new(move |_batch: Batch| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            futures::stream::iter(0..3).map(move |i| {
                if i == 2 && call == 0 {
                    Err(HandlerError::new("boom"))
                } else {
                    Ok(Step::chunks(Predictions::Column(Series::new("x".into(), [format!("c{i}")]))))
                }
            })
        })
    };
    let queues = queues(handler, BatchConfig::default());
    let (got, error) =
        collect(queues.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap()).await;
    assert_eq!(got, ["c0", "c1"]);
    assert_eq!(error.as_deref(), Some("boom"));
    let (got, error) =
        collect(queues.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap()).await;
    assert_eq!((got.len(), error), (3, None));
}

#[tokio::test]
async fn a_client_that_does_not_read_pauses_the_generator() {
    let pulls = Arc::new(AtomicUsize::new(0));
    let handler: Arc<dyn StreamHandler> = {
        let pulls = Arc::clone(&pulls);
        Arc::new(move |_batch: Batch| {
            let pulls = Arc::clone(&pulls);
            futures::stream::repeat(()).map(move |_| {
                pulls.fetch_add(1, Ordering::SeqCst);
                Ok(Step::chunks(Predictions::Column(Series::new("x".into(), ["chunk"]))))
            })
        })
    };
    let queues = queues(handler, BatchConfig::default());
    let mut stream = queues.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paused_at = pulls.load(Ordering::SeqCst);
    assert!(paused_at <= STREAM_BUFFER + 1, "pulled {paused_at} steps for a client that read none");
    for _ in 0..5 {
        stream.next().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(pulls.load(Ordering::SeqCst) > paused_at, "reading lets the generator go on");
}

#[tokio::test]
async fn the_timeout_bounds_the_gap_between_steps_and_a_stop_ends_open_streams() {
    let handler: Arc<dyn StreamHandler> = Arc::new(|_batch: Batch| {
        futures::stream::iter([Duration::ZERO, Duration::from_millis(300)]).then(|delay| async move {
            tokio::time::sleep(delay).await;
            Ok(Step::chunks(Predictions::Column(Series::new("x".into(), ["c"]))))
        })
    });
    let config = BatchConfig { timeout: Some(Duration::from_millis(100)), ..Default::default() };
    let timed = queues(Arc::clone(&handler), config);
    let (got, error) =
        collect(timed.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap()).await;
    assert_eq!(got, ["c"]);
    assert!(error.unwrap().contains("deadline"));

    let queues = queues(handler, BatchConfig::default());
    let mut stream = queues.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap();
    assert!(matches!(stream.next().await, Some(Event::Step { .. })));
    queues.shutdown().await;
    assert!(matches!(stream.next().await, Some(Event::Failed(RequestError::ShuttingDown))));
}

#[tokio::test]
async fn a_step_of_the_wrong_length_fails_the_batch() {
    let handler: Arc<dyn StreamHandler> = Arc::new(|_batch: Batch| {
        futures::stream::once(async { Ok(Step::chunks(Predictions::Column(Series::new("x".into(), [1i64, 2])))) })
    });
    let queues = queues(handler, BatchConfig::default());
    let (got, error) =
        collect(queues.submit_stream(Params::default(), words(&["a"]), None, Instant::now()).unwrap()).await;
    assert!(got.is_empty());
    assert!(error.unwrap().contains("yielded 2 values for a batch of 1 rows"));
}
