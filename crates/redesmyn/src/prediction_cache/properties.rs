//! Properties of the prediction cache under any interleaving: concurrent
//! requests over a small domain of values (so rows repeat, including NaN
//! and -0.0), several path parameters and artifact generations, a tiny
//! capacity (so entries are evicted while read) and a handler that fails
//! some rows. Whatever proptest draws, every answer is the handler's answer
//! for exactly its own rows, of its own parameters and generation, in its
//! own order, and a failure comes only from a row that fails.
use proptest::prelude::*;

use super::*;

/// Values a row may hold: repeats are the point. 7.0 makes the handler fail.
const DOMAIN: [f64; 8] = [0.0, -0.0, 1.0, 2.5, f64::NAN, 1e300, -3.0, 7.0];
const FAILS: f64 = 7.0;

#[derive(Debug, Clone)]
struct Drawn {
    values: Vec<f64>,
    run: u8,
    generation: u64,
}

fn drawn() -> impl Strategy<Value = Drawn> {
    (prop::collection::vec(prop::sample::select(&DOMAIN[..]), 1..6), 0u8..3, 0u64..3)
        .prop_map(|(values, run, generation)| Drawn { values, run, generation })
}

/// What the handler answers for one row: its value, its parameter and its
/// generation all show in the answer, so a row served from the wrong key
/// cannot go unnoticed.
fn expected(x: f64, run: u8, generation: u64) -> f64 {
    x * 2.0 + f64::from(run) * 100.0 + generation as f64 * 10_000.0
}

fn params(run: u8) -> Params {
    Params::new(vec![("run".into(), run.to_string())])
}

async fn predict(cache: &PredictionCache, d: &Drawn) -> Result<Option<Answer>, RequestError> {
    let frame = DataFrame::new(d.values.len(), vec![Column::new("x".into(), &d.values)]).unwrap();
    let (run, generation) = (d.run, d.generation);
    let handler = move |frame: DataFrame| async move {
        tokio::task::yield_now().await;
        let x = frame.column("x").unwrap().f64().unwrap().clone();
        if x.into_no_null_iter().any(|v| v == FAILS) {
            return Err(RequestError::Handler("a row failed".into()));
        }
        let y: Vec<f64> = x.into_no_null_iter().map(|v| expected(v, run, generation)).collect();
        Ok(Some(Answer {
            predictions: Predictions::Column(Series::new("y".into(), y)),
            batch_rows: frame.height(),
            queued: Duration::ZERO,
            handled: Duration::ZERO,
            cached_rows: 0,
            batch: None,
        }))
    };
    cache.serve(&params(run), generation, frame, handler).await
}

fn check(i: usize, d: &Drawn, outcome: Result<Option<Answer>, RequestError>) -> Result<(), String> {
    let fails = d.values.contains(&FAILS);
    match outcome {
        Err(RequestError::Handler(_)) if fails => Ok(()),
        Err(e) => Err(format!("request {i} {d:?} failed: {e}")),
        Ok(_) if fails => Err(format!("request {i} {d:?} holds a failing row but was answered")),
        Ok(None) => Err(format!("request {i} got no answer")),
        Ok(Some(answer)) => {
            let Predictions::Column(s) = &answer.predictions else { return Err(format!("request {i}: columns")) };
            let got: Vec<u64> = s.f64().unwrap().into_no_null_iter().map(f64::to_bits).collect();
            let want: Vec<u64> = d.values.iter().map(|&v| expected(v, d.run, d.generation).to_bits()).collect();
            if got != want {
                return Err(format!("request {i} {d:?}: got {:?}", s));
            }
            let rows = d.values.len();
            let accounted =
                if answer.batch_rows == 0 { answer.cached_rows } else { answer.cached_rows + answer.batch_rows };
            if accounted != rows || s.name().as_str() != "y" {
                return Err(format!(
                    "request {i}: {} cached + {} run for {rows} rows",
                    answer.cached_rows, answer.batch_rows
                ));
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_is_its_own_rows_of_its_own_key(
        max_entries in 1u64..16,
        rounds in prop::collection::vec(prop::collection::vec(drawn(), 1..6), 1..8),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cache = PredictionCache::new(
            PredictionCacheConfig { max_entries, ..Default::default() },
            PredictionCacheMetrics::default(),
        );
        // Each round's requests run concurrently; rounds follow each other,
        // so later rounds read what earlier ones stored (or what is left).
        let outcome: Result<(), String> = runtime.block_on(async {
            for round in &rounds {
                let outcomes = futures::future::join_all(round.iter().map(|d| predict(&cache, d))).await;
                for (i, (d, outcome)) in round.iter().zip(outcomes).enumerate() {
                    check(i, d, outcome)?;
                }
            }
            Ok(())
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        cache.entries.run_pending_tasks();
        prop_assert!(cache.stats().entries <= max_entries);
    }
}
