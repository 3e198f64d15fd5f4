//! Keys, bounds, expiry and reassembly of the prediction cache.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

fn params(run: &str) -> Params {
    Params::new(vec![("run".into(), run.into())])
}

fn key_of(column: Column) -> Key {
    let frame = DataFrame::new(column.len(), vec![column]).unwrap();
    row_keys(&Params::default(), 0, &frame).unwrap().remove(0)
}

#[test]
fn keys_tell_types_values_nulls_and_float_bits_apart() {
    let f64_one = key_of(Column::new("x".into(), [1.0f64]));
    assert_eq!(f64_one, key_of(Column::new("x".into(), [1.0f64])), "the same value, the same key");
    assert_ne!(f64_one, key_of(Column::new("x".into(), [2.0f64])));
    assert_ne!(f64_one, key_of(Column::new("x".into(), [1i64])), "an integer 1 is not a float 1.0");
    assert_ne!(f64_one, key_of(Column::new("x".into(), [1.0f32])));
    assert_ne!(key_of(Column::new("x".into(), [0.0f64])), key_of(Column::new("x".into(), [-0.0f64])));
    let nan = key_of(Column::new("x".into(), [f64::NAN]));
    assert_eq!(nan, key_of(Column::new("x".into(), [f64::NAN])), "NaN keys by its bits, so it hits");
    let null = key_of(Column::new("x".into(), [None::<f64>]));
    assert_ne!(nan, null);
    assert_ne!(null, key_of(Column::new("x".into(), [0.0f64])));
    assert_ne!(key_of(Column::new("s".into(), ["ab"])), key_of(Column::new("s".into(), ["a"])));
    assert_ne!(key_of(Column::new("b".into(), [true])), key_of(Column::new("b".into(), [false])));
}

#[test]
fn keys_separate_columns_parameters_and_generations() {
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    let two = |a: &str, b: &str| {
        let frame = DataFrame::new(1, vec![Column::new("a".into(), [a]), Column::new("b".into(), [b])]).unwrap();
        row_keys(&Params::default(), 0, &frame).unwrap().remove(0)
    };
    assert_ne!(two("ab", "c"), two("a", "bc"));
    let frame = DataFrame::new(1, vec![Column::new("x".into(), [1.0f64])]).unwrap();
    let key = |p: &Params, generation| row_keys(p, generation, &frame).unwrap().remove(0);
    assert_ne!(key(&params("1"), 0), key(&params("2"), 0));
    assert_ne!(key(&params("1"), 0), key(&params("1"), 1));
    assert_eq!(key(&params("1"), 3), key(&params("1"), 3));
}

#[test]
fn list_values_are_keyed_by_their_items() {
    let list = |items: &[f64]| {
        let inner = Series::new("".into(), items);
        key_of(Column::new("v".into(), [inner]))
    };
    assert_eq!(list(&[1.0, 2.0]), list(&[1.0, 2.0]));
    assert_ne!(list(&[1.0, 2.0]), list(&[1.0]));
    assert_ne!(list(&[1.0, 2.0]), list(&[2.0, 1.0]));
}

/// A cache in front of a handler that doubles `x` and records the rows it saw.
struct Fixture {
    cache: PredictionCache,
    seen: Mutex<Vec<Vec<f64>>>,
    calls: AtomicUsize,
}

impl Fixture {
    fn new(config: PredictionCacheConfig) -> Self {
        Fixture {
            cache: PredictionCache::new(config, PredictionCacheMetrics::default()),
            seen: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        }
    }

    async fn predict(&self, generation: u64, xs: &[f64]) -> Answer {
        let frame = DataFrame::new(xs.len(), vec![Column::new("x".into(), xs)]).unwrap();
        let run = |frame: DataFrame| async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let x = frame.column("x").unwrap().f64().unwrap().clone();
            self.seen.lock().unwrap().push(x.into_no_null_iter().collect());
            let doubled = (x * 2.0).into_series().with_name("y".into());
            Ok(Some(Answer {
                predictions: Predictions::Column(doubled),
                batch_rows: frame.height(),
                queued: Duration::ZERO,
                handled: Duration::ZERO,
                cached_rows: 0,
                batch: None,
            }))
        };
        self.cache.serve(&Params::default(), generation, frame, run).await.unwrap().unwrap()
    }
}

fn values(answer: &Answer) -> Vec<f64> {
    match &answer.predictions {
        Predictions::Column(s) => s.f64().unwrap().into_no_null_iter().collect(),
        Predictions::Columns(_) => unreachable!(),
    }
}

#[tokio::test]
async fn only_missed_rows_reach_the_handler_and_answers_keep_their_order() {
    let f = Fixture::new(PredictionCacheConfig::default());
    let first = f.predict(0, &[1.0, 2.0]).await;
    assert_eq!(values(&first), [2.0, 4.0]);
    let mixed = f.predict(0, &[3.0, 1.0, 4.0, 2.0, 5.0]).await;
    assert_eq!(values(&mixed), [6.0, 2.0, 8.0, 4.0, 10.0]);
    assert_eq!(mixed.cached_rows, 2);
    assert_eq!(mixed.batch_rows, 3);
    assert_eq!(*f.seen.lock().unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0, 5.0]]);
    let all = f.predict(0, &[5.0, 1.0]).await;
    assert_eq!(values(&all), [10.0, 2.0]);
    assert_eq!((all.cached_rows, all.batch_rows), (2, 0));
    assert_eq!(f.calls.load(Ordering::Relaxed), 2, "a fully cached request runs nothing");
    if let Predictions::Column(s) = &all.predictions {
        assert_eq!(s.name().as_str(), "y", "the output keeps its name");
    }
    let stats = f.cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (4, 5, 5));
}

#[tokio::test]
async fn a_new_generation_misses() {
    let f = Fixture::new(PredictionCacheConfig::default());
    f.predict(0, &[1.0]).await;
    f.predict(0, &[1.0]).await;
    assert_eq!(f.calls.load(Ordering::Relaxed), 1);
    f.predict(1, &[1.0]).await;
    assert_eq!(f.calls.load(Ordering::Relaxed), 2, "answers of an earlier artifact are not reused");
}

#[tokio::test]
async fn entries_stay_within_max_entries() {
    let f = Fixture::new(PredictionCacheConfig { max_entries: 100, ..Default::default() });
    for chunk in (0..5000).collect::<Vec<_>>().chunks(50) {
        let xs: Vec<f64> = chunk.iter().map(|&i| f64::from(i)).collect();
        f.predict(0, &xs).await;
        // Between maintenances the gauge may run ahead by the inserts not yet applied.
        assert!(f.cache.metrics.entries.get() <= 100 + MAINTENANCE_EVERY as i64);
        assert!(f.cache.stats().entries <= 100);
    }
    let stats = f.cache.stats();
    assert!(stats.entries <= 100 && stats.entries > 0, "{stats:?}");
    assert_eq!(stats.entries as usize, f.cache.entries.iter().count());
}

#[tokio::test]
async fn bytes_stay_within_max_bytes() {
    let config = PredictionCacheConfig { max_entries: 100_000, max_bytes: 20_000, ttl: None };
    let f = Fixture::new(config);
    for i in 0..2000 {
        f.predict(0, &[f64::from(i)]).await;
        assert!(f.cache.stats().bytes <= 20_000);
    }
    let stats = f.cache.stats();
    assert!(stats.entries > 0, "{stats:?}");
    // Each entry weighs at least its overhead, so far fewer than 2000 fit.
    assert!(stats.entries < 20_000 / ENTRY_OVERHEAD as u64, "{stats:?}");
}

#[tokio::test]
async fn answers_expire_after_their_time_to_live() {
    let config = PredictionCacheConfig { ttl: Some(Duration::from_millis(50)), ..Default::default() };
    let f = Fixture::new(config);
    f.predict(0, &[1.0]).await;
    f.predict(0, &[1.0]).await;
    assert_eq!(f.calls.load(Ordering::Relaxed), 1);
    tokio::time::sleep(Duration::from_millis(120)).await;
    f.predict(0, &[1.0]).await;
    assert_eq!(f.calls.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn several_output_columns_are_cached_as_one_row() {
    let cache = PredictionCache::new(PredictionCacheConfig::default(), PredictionCacheMetrics::default());
    let calls = AtomicUsize::new(0);
    let predict = |xs: Vec<i64>| {
        let frame = DataFrame::new(xs.len(), vec![Column::new("x".into(), xs)]).unwrap();
        let run = |frame: DataFrame| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                let x = frame.column("x").unwrap().i64().unwrap().clone();
                let label: Vec<String> = x.into_no_null_iter().map(|v| format!("n{v}")).collect();
                let lists: Vec<Series> =
                    x.into_no_null_iter().map(|v| Series::new("".into(), vec![v as f64; 2])).collect();
                let df = DataFrame::new(
                    x.len(),
                    vec![Column::new("label".into(), label), Column::new("scores".into(), lists)],
                )
                .unwrap();
                Ok(Some(Answer {
                    predictions: Predictions::Columns(df),
                    batch_rows: frame.height(),
                    queued: Duration::ZERO,
                    handled: Duration::ZERO,
                    cached_rows: 0,
                    batch: None,
                }))
            }
        };
        let cache = &cache;
        async move { cache.serve(&Params::default(), 0, frame, run).await.unwrap().unwrap() }
    };
    predict(vec![1, 2]).await;
    let answer = predict(vec![3, 2, 1]).await;
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    let Predictions::Columns(df) = answer.predictions else { panic!("one column") };
    let labels: Vec<&str> = df.column("label").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(labels, ["n3", "n2", "n1"]);
    let scores = df.column("scores").unwrap().as_materialized_series().clone();
    let second = scores.get(1).unwrap();
    let AnyValue::List(items) = second else { panic!("a list") };
    assert_eq!(items.f64().unwrap().into_no_null_iter().collect::<Vec<_>>(), [2.0, 2.0]);
}

#[test]
fn a_cached_list_value_owns_its_memory() {
    let big = Series::new("".into(), (0..10_000).map(f64::from).collect::<Vec<_>>());
    let lists = Series::new("v".into(), [big.slice(0, 2), big.slice(2, 2)]);
    let row = owned_row(&Predictions::Column(lists), 1).unwrap();
    let AnyValue::List(items) = &row[0] else { panic!("a list") };
    assert_eq!(items.len(), 2);
    assert!(items.estimated_size() < 1000, "the value holds its two items, not the batch");
}

#[tokio::test]
async fn integers_and_floats_of_different_batches_meet_in_one_answer() {
    let cache = PredictionCache::new(PredictionCacheConfig::default(), PredictionCacheMetrics::default());
    // The handler answers whole numbers as integers (as a JavaScript handler's
    // output may be read), other values as floats.
    let run = |frame: DataFrame| async move {
        let x: Vec<f64> = frame.column("x").unwrap().f64().unwrap().into_no_null_iter().collect();
        let column = if x.iter().all(|v| v.fract() == 0.0) {
            Series::new("y".into(), x.iter().map(|v| *v as i64).collect::<Vec<_>>())
        } else {
            Series::new("y".into(), x)
        };
        Ok(Some(Answer {
            predictions: Predictions::Column(column),
            batch_rows: frame.height(),
            queued: Duration::ZERO,
            handled: Duration::ZERO,
            cached_rows: 0,
            batch: None,
        }))
    };
    let frame = |xs: &[f64]| DataFrame::new(xs.len(), vec![Column::new("x".into(), xs)]).unwrap();
    cache.serve(&Params::default(), 0, frame(&[2.0]), run).await.unwrap();
    let answer = cache.serve(&Params::default(), 0, frame(&[2.5, 2.0]), run).await.unwrap().unwrap();
    assert_eq!(answer.cached_rows, 1, "the cached integer is used, not recomputed");
    let Predictions::Column(s) = answer.predictions else { panic!("one column") };
    assert_eq!(s.f64().unwrap().into_no_null_iter().collect::<Vec<_>>(), [2.5, 2.0]);
}
