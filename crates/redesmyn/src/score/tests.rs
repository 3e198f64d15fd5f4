use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use polars::prelude::{DataFrame, IntoColumn, IntoSeries, NamedFrom, Series};
use polars_io::prelude::{ParquetReader, ParquetWriter, SerReader};
use tokio::runtime::Handle;

use super::*;
use crate::batch::BatchConfig;
use crate::handler::{Batch, Handler, HandlerError};
use crate::model::{Endpoint, ModelRegistry};
use crate::service::InferenceService;
use crate::testing::f64_schema;

/// `x * 2`, failing every call whose first `x` is 666 (and, once, 777).
fn service() -> InferenceService {
    let once = Arc::new(AtomicUsize::new(0));
    let handler: Arc<dyn Handler> = Arc::new(move |batch: Batch| {
        let once = Arc::clone(&once);
        async move {
            let x = batch.frame.column("x").map_err(|e| HandlerError::new(e.to_string()))?.f64().unwrap().clone();
            match x.get(0) {
                Some(666.0) => return Err(HandlerError::new("six six six")),
                Some(777.0) if once.fetch_add(1, Ordering::SeqCst) == 0 => return Err(HandlerError::new("flaky")),
                _ => {}
            }
            Ok::<_, HandlerError>(Predictions::Column((x * 2.0).into_series()))
        }
    });
    let endpoint = Endpoint::new("/double", f64_schema(&["x"]), BatchConfig::default(), handler).unwrap();
    let mut registry = ModelRegistry::new();
    registry.insert(endpoint.model).unwrap();
    InferenceService::start(registry, |k| k.name.clone(), None, &Handle::current())
}

#[tokio::test]
async fn a_csv_scores_in_order_and_bad_rows_go_to_the_rejects_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut text = String::from("id,x\n");
    for i in 0..1000 {
        match i {
            10 => text.push_str("a10,abc\n"),
            20 => text.push_str("a20,\n"),
            _ => text.push_str(&format!("a{i},{i}\n")),
        }
    }
    std::fs::write(&input, text).unwrap();
    let service = service();
    let model = service.resolve("double", None).unwrap();
    let mut options = ScoreOptions::new(&input, dir.path().join("out.parquet"));
    options.batch_size = 64;
    let mut reports = 0;
    let summary = score(&model, options, |_| reports += 1).await.unwrap();
    assert!(reports >= 1);
    assert_eq!((summary.progress.scored, summary.progress.rejected), (998, 2));
    let out = ParquetReader::new(std::fs::File::open(dir.path().join("out.parquet")).unwrap()).finish().unwrap();
    assert_eq!(out.get_column_names(), vec!["id", "x", "prediction"]);
    assert_eq!(out.height(), 998);
    let pred = out.column("prediction").unwrap().f64().unwrap();
    assert_eq!(pred.get(10), Some(22.0));
    let rejects = std::fs::read_to_string(summary.rejects.unwrap()).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "row,reason");
    assert!(lines[1].starts_with("11,") && lines[1].contains("abc"), "{rejects}");
    assert!(lines[2].starts_with("21,") && lines[2].contains("missing value"), "{rejects}");
}

#[tokio::test]
async fn a_failing_request_is_bisected_and_only_its_guilty_row_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let xs: Vec<f64> = (0..30)
        .map(|i| match i {
            10 => 666.0,
            20 => 777.0,
            i => f64::from(i),
        })
        .collect();
    let ids: Vec<u32> = (0..30).collect();
    let mut frame = DataFrame::new_infer_height(vec![
        Series::new("id".into(), ids).into_column(),
        Series::new("x".into(), xs).into_column(),
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&input).unwrap()).finish(&mut frame).unwrap();
    let service = service();
    let model = service.resolve("double", None).unwrap();
    let mut options = ScoreOptions::new(&input, dir.path().join("out.ndjson"));
    options.batch_size = 10;
    options.columns = Some(vec!["id".into()]);
    let summary = score(&model, options, |_| {}).await.unwrap();
    // 666 fails every call it is in: its row alone is rejected. 777 fails
    // only its first call: its request's rows all score when run again.
    assert_eq!((summary.progress.scored, summary.progress.rejected, summary.progress.retried), (29, 1, 2));
    let out = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    assert_eq!(out.lines().count(), 29);
    let ids: Vec<u32> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, (0..30).filter(|&i| i != 10).collect::<Vec<_>>(), "the scored rows keep their order");
    assert!(out.lines().next().unwrap().contains(r#""id":0"#), "{out}");
    assert!(!out.contains(r#""x""#), "{out}");
    let rejects = std::fs::read_to_string(summary.rejects.unwrap()).unwrap();
    assert_eq!(
        rejects.lines().collect::<Vec<_>>(),
        ["row,reason", "11,\"the handler failed on this row: six six six\""]
    );
}

#[tokio::test]
async fn a_run_that_fails_leaves_no_file_under_the_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,y\n1,2\n").unwrap();
    let service = service();
    let model = service.resolve("double", None).unwrap();
    let err = score(&model, ScoreOptions::new(&input, dir.path().join("out.csv")), |_| {}).await.unwrap_err();
    assert!(matches!(err, ScoreError::MissingColumn(ref c) if c == "x"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("in.csv")]);
}

/// Scores a `score_input` fuzz seed's file (its first four bytes pick the
/// schema and the format, the rest is the file) as `name`; the run's error
/// and whether an output appeared.
async fn score_fuzz_seed(seed: &[u8], name: &str) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, &seed[4..]).unwrap();
    let service = service();
    let model = service.resolve("double", None).unwrap();
    let err = score(&model, ScoreOptions::new(&input, dir.path().join("out.csv")), |_| {}).await.unwrap_err();
    (err.to_string(), dir.path().join("out.csv").exists())
}

/// Found by the `score_input` fuzz target: polars-parquet panics on this
/// corrupt footer. The run fails naming the file; nothing panics out.
#[tokio::test]
async fn a_parquet_file_with_a_corrupt_footer_fails_the_run_naming_it() {
    let seed = include_bytes!("../../fuzz/seeds/score_input/regression-malformed-parquet-footer");
    let (message, output) = score_fuzz_seed(seed, "corrupt.parquet").await;
    assert!(message.contains("corrupt.parquet") && message.contains("malformed"), "{message}");
    assert!(!output);
}

/// Found by the `score_input` fuzz target: a footer declaring billions of
/// row groups made polars-parquet reserve 136 GB and abort the process.
/// The footer is checked first: the run fails naming the file.
#[tokio::test]
async fn a_parquet_footer_declaring_more_than_it_holds_is_refused_before_reading() {
    let seed = include_bytes!("../../fuzz/seeds/score_input/regression-parquet-footer-huge-list");
    let (message, _) = score_fuzz_seed(seed, "huge.parquet").await;
    assert!(message.contains("huge.parquet") && message.contains("not a readable Parquet file"), "{message}");
}
