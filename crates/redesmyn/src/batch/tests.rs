//! Batching: who shares a batch, bounds, failures, deadlines, shutdown.
use super::*;
use crate::handler::{HandlerError, Predictions};
use std::sync::atomic::{AtomicUsize, Ordering};

fn frame(values: &[f64]) -> DataFrame {
    DataFrame::new(values.len(), vec![Column::new("x".into(), values)]).unwrap()
}

fn doubling(seen: Arc<Mutex<Vec<usize>>>) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(batch.frame.height());
            let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
            Ok::<_, HandlerError>(Predictions::Column((x * 2.0).into_series()))
        }
    })
}

fn value(reply: Reply) -> Vec<f64> {
    match reply.unwrap().predictions {
        Predictions::Column(s) => s.f64().unwrap().into_no_null_iter().collect(),
        _ => unreachable!(),
    }
}

impl Queues {
    fn submit_plain(&self, params: Params, frame: DataFrame) -> Result<oneshot::Receiver<Reply>, RequestError> {
        self.submit(params, frame, None, None)
    }
}

struct Gone;
impl Liveness for Gone {
    fn gone(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn requests_of_clients_that_left_are_dropped() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let queues = Queues::new(doubling(Arc::clone(&seen)), BatchConfig::default(), Handle::current());
    let gone = queues.submit(Params::default(), frame(&[1.0]), Some(Arc::new(Gone)), None).unwrap();
    let kept = queues.submit_plain(Params::default(), frame(&[2.0, 3.0])).unwrap();
    assert!(matches!(gone.await.unwrap(), Err(RequestError::ClientGone)));
    kept.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![2]);
}

#[tokio::test]
async fn concurrent_requests_share_a_batch_and_get_their_own_rows() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = BatchConfig { max_delay: Duration::from_millis(20), ..Default::default() };
    let queues = Queues::new(doubling(Arc::clone(&seen)), config, Handle::current());
    let receivers: Vec<_> = (0..10)
        .map(|i| queues.submit_plain(Params::default(), frame(&[i as f64, 100.0 + i as f64])).unwrap())
        .collect();
    for (i, rx) in receivers.into_iter().enumerate() {
        assert_eq!(value(rx.await.unwrap()), vec![2.0 * i as f64, 200.0 + 2.0 * i as f64]);
    }
    assert_eq!(*seen.lock().unwrap(), vec![20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_submitters_all_get_answers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = BatchConfig { max_size: 8, ..Default::default() };
    let queues = Arc::new(Queues::new(doubling(Arc::clone(&seen)), config, Handle::current()));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let queues = Arc::clone(&queues);
            tokio::spawn(async move {
                for i in 0..250 {
                    let x = (t * 1000 + i) as f64;
                    let reply = queues.submit_plain(Params::default(), frame(&[x])).unwrap().await.unwrap();
                    assert_eq!(value(reply), vec![2.0 * x]);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(seen.lock().unwrap().iter().sum::<usize>(), 2000);
}

/// Lone requests run at once without the batcher; together with the
/// batches the batcher forms they never exceed `max_concurrent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_started_at_once_or_by_the_batcher_respect_max_concurrent() {
    for max_concurrent in [1, 2] {
        let active = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (a, m) = (Arc::clone(&active), Arc::clone(&most));
        let handler: Arc<dyn Handler> = Arc::new(move |batch: Batch| {
            let (active, most) = (Arc::clone(&a), Arc::clone(&m));
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(Predictions::Column(
                    batch.frame.column("x").unwrap().as_materialized_series().clone(),
                ))
            }
        });
        let config = BatchConfig { max_size: 4, max_concurrent, ..Default::default() };
        let queues = Arc::new(Queues::new(handler, config, Handle::current()));
        // A lone request first: answered with no batcher round trip.
        assert_eq!(value(queues.submit_plain(Params::default(), frame(&[5.0])).unwrap().await.unwrap()), vec![5.0]);
        let tasks: Vec<_> = (0..6)
            .map(|t| {
                let queues = Arc::clone(&queues);
                tokio::spawn(async move {
                    for i in 0..40 {
                        let x = (t * 100 + i) as f64;
                        let reply = queues.submit_plain(Params::default(), frame(&[x])).unwrap().await.unwrap();
                        assert_eq!(value(reply), vec![x]);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= max_concurrent, "{} batches ran at once", most.load(Ordering::SeqCst));
        queues.shutdown().await;
        assert_eq!(active.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn spreading_splits_the_queue_over_the_free_slots() {
    for (spread, expected) in [(false, vec![10]), (true, vec![5, 5])] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config =
            BatchConfig { max_delay: Duration::from_millis(20), max_concurrent: 2, spread, ..Default::default() };
        let queues = Queues::new(doubling(Arc::clone(&seen)), config, Handle::current());
        // Queued before the batcher runs (this test's runtime has one thread).
        let receivers: Vec<_> =
            (0..10).map(|i| queues.submit_plain(Params::default(), frame(&[i as f64])).unwrap()).collect();
        for (i, rx) in receivers.into_iter().enumerate() {
            assert_eq!(value(rx.await.unwrap()), vec![2.0 * i as f64]);
        }
        assert_eq!(*seen.lock().unwrap(), expected, "spread: {spread}");
        queues.shutdown().await;
    }
}

/// A handler that costs `cost` per call, whatever its rows (a random
/// forest's shape), recording each batch's size.
fn fixed_cost(seen: Arc<Mutex<Vec<usize>>>, cost: Duration) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(batch.frame.height());
            tokio::time::sleep(cost).await;
            let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
            Ok::<_, HandlerError>(Predictions::Column((x * 2.0).into_series()))
        }
    })
}

#[tokio::test]
async fn clients_that_come_back_together_share_the_next_batch_too() {
    // Eight clients in a closed loop (each sends again as soon as it is
    // answered). Without the refill, the first to come back finds the
    // handler free and runs alone, and the other seven wait a whole call
    // behind it: batches alternate 1, 7, 1, 7. With it, all eight share
    // every batch between the first and the last.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let queues = Arc::new(Queues::new(
        fixed_cost(Arc::clone(&seen), Duration::from_millis(20)),
        BatchConfig::default(),
        Handle::current(),
    ));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let queues = Arc::clone(&queues);
            tokio::spawn(async move {
                for round in 0..4 {
                    let x = (c * 10 + round) as f64;
                    let rx = queues.submit_plain(Params::default(), frame(&[x])).unwrap();
                    assert_eq!(value(rx.await.unwrap()), vec![2.0 * x]);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let batches = seen.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 32);
    // The first request finds the handler idle and runs alone, so its client
    // is one round ahead and the last batch lacks it.
    assert!(batches.len() <= 6 && batches[1..batches.len() - 1].iter().all(|&n| n == 8), "batches: {batches:?}");
    queues.shutdown().await;
}

#[tokio::test]
async fn retries_after_a_failed_batch_are_not_held_together() {
    // A batch holding a bad row fails for every request in it; clients that
    // retry at once must not be batched together again by the refill.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let picky: Arc<dyn Handler> = Arc::new(move |batch: Batch| {
        let recorded = Arc::clone(&recorded);
        async move {
            recorded.lock().unwrap().push(batch.frame.height());
            let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
            if x.into_no_null_iter().any(|v| v == 999.0) {
                return Err(HandlerError::new("cannot score 999"));
            }
            Ok(Predictions::Column((x * 2.0).into_series()))
        }
    });
    // Eager (the default): the first request runs alone, the other two share a batch.
    let queues = Arc::new(Queues::new(picky, BatchConfig::default(), Handle::current()));
    let clients: Vec<_> = [1.0, 999.0, 2.0]
        .into_iter()
        .map(|x| {
            let queues = Arc::clone(&queues);
            tokio::spawn(async move {
                let first = queues.submit_plain(Params::default(), frame(&[x])).unwrap().await.unwrap();
                if first.is_ok() {
                    return true;
                }
                let again = queues.submit_plain(Params::default(), frame(&[x])).unwrap().await.unwrap();
                again.is_ok()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.push(client.await.unwrap());
    }
    assert_eq!(outcomes, vec![true, false, true], "batches: {:?}", seen.lock().unwrap());
    queues.shutdown().await;
}

#[tokio::test]
async fn batch_closes_at_max_size_and_large_requests_run_alone() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = BatchConfig { max_size: 4, max_delay: Duration::from_millis(50), ..Default::default() };
    let queues = Queues::new(doubling(Arc::clone(&seen)), config, Handle::current());
    let a = queues.submit_plain(Params::default(), frame(&[1.0, 2.0, 3.0])).unwrap();
    let b = queues.submit_plain(Params::default(), frame(&[1.0, 2.0])).unwrap();
    let c = queues.submit_plain(Params::default(), frame(&[1.0; 9])).unwrap();
    for rx in [a, b, c] {
        rx.await.unwrap().unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec![3, 2, 9]);
}

#[tokio::test]
async fn different_params_never_share_a_batch() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let queues = Queues::new(doubling(Arc::clone(&seen)), BatchConfig::default(), Handle::current());
    let p = |v: &str| Params::new(vec![("model".into(), v.into())]);
    let a = queues.submit_plain(p("1"), frame(&[1.0])).unwrap();
    let b = queues.submit_plain(p("2"), frame(&[1.0])).unwrap();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![1, 1]);
}

#[tokio::test]
async fn handler_errors_and_wrong_lengths_fail_the_batch_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let handler: Arc<dyn Handler> = Arc::new(move |batch: Batch| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Err(HandlerError::new("boom")),
                1 => Ok(Predictions::Column(Series::new("p".into(), [1.0]))),
                2 => panic!("kaput"),
                _ => Ok(Predictions::Column(batch.frame.column("x").unwrap().as_materialized_series().clone())),
            }
        }
    });
    let config = BatchConfig { max_delay: Duration::ZERO, ..Default::default() };
    let queues = Queues::new(handler, config, Handle::current());
    let err = |r: Reply| r.unwrap_err().to_string();
    assert_eq!(err(queues.submit_plain(Params::default(), frame(&[1.0])).unwrap().await.unwrap()), "boom");
    assert!(err(queues.submit_plain(Params::default(), frame(&[1.0, 2.0])).unwrap().await.unwrap())
        .contains("returned 1 predictions for a batch of 2 rows"));
    assert!(err(queues.submit_plain(Params::default(), frame(&[1.0])).unwrap().await.unwrap()).contains("kaput"));
    assert_eq!(value(queues.submit_plain(Params::default(), frame(&[7.0])).unwrap().await.unwrap()), vec![7.0]);
}

#[tokio::test]
async fn expired_and_abandoned_requests_never_reach_the_handler() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = BatchConfig {
        max_delay: Duration::from_millis(30),
        timeout: Some(Duration::from_millis(10)),
        ..Default::default()
    };
    let queues = Queues::new(doubling(Arc::clone(&seen)), config, Handle::current());
    let expired = queues.submit_plain(Params::default(), frame(&[1.0])).unwrap();
    assert!(matches!(expired.await.unwrap(), Err(RequestError::DeadlineExceeded(_))));
    let config = BatchConfig { max_delay: Duration::from_millis(30), ..Default::default() };
    let queues = Queues::new(doubling(Arc::clone(&seen)), config, Handle::current());
    drop(queues.submit_plain(Params::default(), frame(&[1.0])).unwrap());
    let kept = queues.submit_plain(Params::default(), frame(&[2.0, 3.0])).unwrap();
    kept.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![2]);
}

#[tokio::test]
async fn full_queue_is_refused_and_shutdown_answers_everything() {
    let handler: Arc<dyn Handler> = Arc::new(|batch: Batch| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok::<_, HandlerError>(Predictions::Column(batch.frame.column("x").unwrap().as_materialized_series().clone()))
    });
    let config = BatchConfig { max_size: 1, max_queue: 2, max_delay: Duration::ZERO, ..Default::default() };
    let queues = Queues::new(handler, config, Handle::current());
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        match queues.submit_plain(Params::default(), frame(&[1.0])) {
            Ok(rx) => accepted.push(rx),
            Err(RequestError::QueueFull { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0);
    queues.shutdown().await;
    for rx in accepted {
        rx.await.unwrap().unwrap();
    }
    assert!(matches!(queues.submit_plain(Params::default(), frame(&[1.0])), Err(RequestError::ShuttingDown)));
}

/// `x * 2`, failing any batch with a 666 in it ("six six six"); counts calls.
fn poisoned_by_666(calls: Arc<AtomicUsize>) -> Arc<dyn Handler> {
    Arc::new(move |batch: Batch| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let x = batch.frame.column("x").unwrap().f64().unwrap().clone();
            if x.iter().any(|v| v == Some(666.0)) {
                return Err(HandlerError::new("six six six"));
            }
            Ok::<_, HandlerError>(Predictions::Column((x * 2.0).into_series()))
        }
    })
}

/// Submits one request per value, together, and awaits every reply.
async fn together(queues: &Queues, values: &[f64]) -> Vec<Reply> {
    let receivers: Vec<_> =
        values.iter().map(|v| queues.submit_plain(Params::default(), frame(&[*v])).unwrap()).collect();
    let mut replies = Vec::new();
    for rx in receivers {
        replies.push(rx.await.unwrap());
    }
    replies
}

#[tokio::test]
async fn a_poisoned_request_fails_alone_and_the_rest_of_its_batch_is_answered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = BatchConfig { max_delay: Duration::from_millis(30), ..Default::default() };
    let queues = Queues::new(poisoned_by_666(Arc::clone(&calls)), config, Handle::current());
    let values = [1.0, 2.0, 3.0, 666.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 666.0, 12.0];
    let replies = together(&queues, &values).await;
    for (v, reply) in values.iter().zip(replies) {
        if *v == 666.0 {
            assert_eq!(reply.unwrap_err().to_string(), "six six six");
        } else {
            assert_eq!(value(reply), vec![2.0 * v], "{v}");
        }
    }
    // One batch, then at most the budget of extra calls for 12 requests.
    let made = calls.load(Ordering::SeqCst);
    assert!(made > 1 && made <= 1 + crate::bisect::budget(12), "{made} calls");
}

#[tokio::test]
async fn a_model_that_fails_everything_fails_its_batch_after_four_more_calls() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let broken: Arc<dyn Handler> = Arc::new(move |_: Batch| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<Predictions, _>(HandlerError::new("the model is broken")) }
    });
    let config = BatchConfig { max_delay: Duration::from_millis(30), ..Default::default() };
    let queues = Queues::new(broken, config, Handle::current());
    for reply in together(&queues, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).await {
        assert_eq!(reply.unwrap_err().to_string(), "the model is broken");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5, "the batch, each half, and one request of each half");
}

#[tokio::test]
async fn without_isolation_a_failing_batch_fails_every_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = BatchConfig { max_delay: Duration::from_millis(30), isolate: false, ..Default::default() };
    let queues = Queues::new(poisoned_by_666(Arc::clone(&calls)), config, Handle::current());
    for reply in together(&queues, &[1.0, 666.0, 3.0, 4.0]).await {
        assert_eq!(reply.unwrap_err().to_string(), "six six six");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
