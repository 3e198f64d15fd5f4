//! The ONNX runtime against a real model: scikit-learn's LogisticRegression
//! on iris, exported by skl2onnx (bench/peers/train_iris.py, in the venv
//! scripts/v2-clients.mjs makes), run by the onnxruntime that the
//! `onnxruntime-node` npm package ships (bench/setup.mjs installs it), or
//! the one `$ORT_DYLIB_PATH` names.
//! Predictions are compared with scikit-learn's own on the same rows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use polars::prelude::*;
use redesmyn::{Batch, Field, FieldType, Handler, Numeric, Params, Predictions, Schema};
use redesmyn_onnx::{OnnxError, OnnxHandler, OnnxModel, OnnxOptions};

struct Fixture {
    models: PathBuf,
    python: String,
    dylib: PathBuf,
    expected: serde_json::Value,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clients = stdout_of(Command::new("node").arg("scripts/v2-clients.mjs").current_dir(repo()));
        let pythons: serde_json::Value = serde_json::from_str(clients.trim()).expect("v2-clients prints JSON");
        let python = pythons["onnx"].as_str().expect("an onnx venv");
        let models = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-iris");
        stdout_of(Command::new(python).arg("bench/peers/train_iris.py").arg(&models).current_dir(repo()));
        // $ORT_DYLIB_PATH, when set, tries another onnxruntime (a PyPI wheel's, say).
        let dylib = match std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => {
                let library =
                    stdout_of(Command::new("node").args(["bench/setup.mjs", "onnxruntime"]).current_dir(repo()));
                PathBuf::from(library.lines().last().expect("a library path").trim())
            }
        };
        let expected = std::fs::read_to_string(models.join("iris-expected.json")).expect("expected predictions");
        Fixture { models, python: python.to_string(), dylib, expected: serde_json::from_str(&expected).expect("JSON") }
    })
}

fn options() -> OnnxOptions {
    OnnxOptions { dylib: Some(fixture().dylib.clone()), intra_threads: Some(1) }
}

fn load(file: &str) -> Result<OnnxModel, OnnxError> {
    OnnxModel::load(&fixture().models.join(file), &options())
}

const FEATURES: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

fn iris_schema() -> Schema {
    Schema::new(FEATURES.iter().map(|n| Field::new(*n, FieldType::Number(Numeric::F64))).collect()).unwrap()
}

/// The expected rows as a frame of the iris schema.
fn rows() -> DataFrame {
    let rows = fixture().expected["rows"].as_array().unwrap();
    let columns: Vec<Column> = FEATURES
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let values: Vec<f64> = rows.iter().map(|r| r[j].as_f64().unwrap()).collect();
            Column::new((*name).into(), values)
        })
        .collect();
    DataFrame::new(rows.len(), columns).unwrap()
}

fn batch(frame: DataFrame) -> Batch {
    Batch { frame, params: Arc::new(Params::default()), loaded: None, trace: None }
}

#[tokio::test]
async fn predictions_match_scikit_learn_on_every_iris_row() {
    let model = Arc::new(load("iris.onnx").expect("the model loads"));
    let handler = OnnxHandler::new(Arc::clone(&model), &iris_schema()).expect("the schema fits");
    let Predictions::Columns(out) = handler.call(batch(rows())).await.expect("a prediction") else {
        panic!("two outputs come back as columns");
    };
    let expected = &fixture().expected;
    let labels: Vec<i64> = out.column("label").unwrap().i64().unwrap().into_no_null_iter().collect();
    let want: Vec<i64> = expected["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(labels.len(), 150);
    assert_eq!(labels, want, "labels differ from scikit-learn's predict");

    let probabilities = out.column("probabilities").unwrap().as_materialized_series().clone();
    assert_eq!(probabilities.dtype(), &DataType::Array(Box::new(DataType::Float32), 3));
    let flat: Vec<f32> = probabilities.array().unwrap().get_inner().f32().unwrap().into_no_null_iter().collect();
    for (row, want) in expected["probabilities"].as_array().unwrap().iter().enumerate() {
        for (k, p) in want.as_array().unwrap().iter().enumerate() {
            let (got, p) = (flat[row * 3 + k] as f64, p.as_f64().unwrap());
            assert!((got - p).abs() < 1e-4, "row {row} class {k}: {got} vs scikit-learn's {p}");
        }
    }
}

#[tokio::test]
async fn batches_are_split_along_the_first_dimension() {
    let model = Arc::new(load("iris.onnx").unwrap());
    let handler = OnnxHandler::new(model, &iris_schema()).unwrap();
    let all = rows();
    let want: Vec<i64> = fixture().expected["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    // Concurrent batches of different sizes all come back whole and in order.
    let parts = [(0, 1), (1, 7), (8, 64), (72, 78)];
    let answers =
        futures::future::join_all(parts.iter().map(|&(offset, len)| handler.call(batch(all.slice(offset, len))))).await;
    for (&(offset, len), answer) in parts.iter().zip(answers) {
        let Predictions::Columns(out) = answer.unwrap() else { panic!("columns") };
        assert_eq!(out.height(), len);
        let labels: Vec<i64> = out.column("label").unwrap().i64().unwrap().into_no_null_iter().collect();
        assert_eq!(labels, want[offset as usize..offset as usize + len]);
    }
}

#[test]
fn metadata_describes_the_graph() {
    let model = load("iris.onnx").unwrap();
    let inputs: Vec<_> =
        model.inputs().iter().map(|i| (i.name.as_str(), i.datatype.as_str(), i.shape.clone())).collect();
    assert_eq!(inputs, vec![("input", "FP32", vec![-1, 4])]);
    let outputs = redesmyn_onnx::metadata(&model);
    let outputs: Vec<_> = outputs.iter().map(|o| (o.name.as_str(), o.datatype.as_str(), o.shape.clone())).collect();
    assert_eq!(outputs, vec![("label", "INT64", vec![-1]), ("probabilities", "FP32", vec![-1, 3])]);
}

#[tokio::test]
async fn an_array_field_named_after_the_input_feeds_it_by_name() {
    let model = Arc::new(load("iris.onnx").unwrap());
    let schema = Schema::new(vec![Field::new("input", FieldType::Array(Numeric::F32, 4))]).unwrap();
    let handler = OnnxHandler::new(model, &schema).unwrap();
    let frame = rows().slice(100, 3);
    let flat: Vec<f32> = (0..3)
        .flat_map(|r| FEATURES.iter().map(move |n| (r, *n)))
        .map(|(r, n)| frame.column(n).unwrap().f64().unwrap().get(r).unwrap() as f32)
        .collect();
    let input = Series::new("input".into(), flat)
        .reshape_array(&[polars::prelude::ReshapeDimension::Infer, polars::prelude::ReshapeDimension::new_dimension(4)])
        .unwrap();
    let Predictions::Columns(out) = handler.call(batch(DataFrame::new(3, vec![input.into()]).unwrap())).await.unwrap()
    else {
        panic!("columns")
    };
    let labels: Vec<i64> = out.column("label").unwrap().i64().unwrap().into_no_null_iter().collect();
    let want: Vec<i64> =
        fixture().expected["labels"].as_array().unwrap()[100..103].iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(labels, want);
}

#[test]
fn a_schema_of_the_wrong_width_is_refused_at_registration() {
    let model = Arc::new(load("iris.onnx").unwrap());
    let schema =
        Schema::new(FEATURES[..3].iter().map(|n| Field::new(*n, FieldType::Number(Numeric::F64))).collect()).unwrap();
    let err = OnnxHandler::new(model, &schema).err().expect("three fields cannot feed four features");
    let message = err.to_string();
    assert!(message.contains("input 'input' takes 4 features per row"), "{message}");
    assert!(message.contains("sepal_length, sepal_width, petal_length"), "{message}");
}

#[test]
fn missing_and_garbage_files_are_clear_errors() {
    let missing = load("no-such-model.onnx").unwrap_err().to_string();
    assert!(missing.contains("no-such-model.onnx") && missing.contains("no such file"), "{missing}");

    let garbage = fixture().models.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf").unwrap();
    let err = load("garbage.onnx").unwrap_err();
    assert!(matches!(err, OnnxError::Model { .. }), "{err}");
    assert!(err.to_string().contains("garbage.onnx"), "{err}");
    // The runtime is still usable afterwards.
    load("iris.onnx").expect("a good model still loads");
}

#[test]
fn a_missing_library_names_what_to_install() {
    let err = redesmyn_onnx::library::locate(Some(Path::new("/nonexistent/libonnxruntime.so.1"))).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("npm install onnxruntime-node"), "{message}");
    assert!(message.contains("/nonexistent/libonnxruntime.so.1"), "{message}");
}

#[test]
fn zipmap_outputs_are_refused_with_the_export_option_to_use() {
    let err = load("iris-zipmap.onnx").unwrap_err();
    assert!(matches!(err, OnnxError::Unsupported { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("output 'output_probability' is a sequence of maps"), "{message}");
    assert!(message.contains("'zipmap': False"), "{message}");
}

#[tokio::test]
async fn the_cache_loader_loads_artifacts_and_the_handler_runs_them() {
    use redesmyn::cache::Loader;
    let loader = redesmyn_onnx::OnnxLoader::new(options());
    let loaded = loader.load(&fixture().models.join("iris.onnx"), &Params::default()).await.expect("loads");
    let handler = OnnxHandler::cached(&iris_schema());
    let frame = rows().slice(50, 2);
    let answer =
        handler.call(Batch { frame, params: Arc::new(Params::default()), loaded: Some(loaded), trace: None }).await;
    let Predictions::Columns(out) = answer.unwrap() else { panic!("columns") };
    let labels: Vec<i64> = out.column("label").unwrap().i64().unwrap().into_no_null_iter().collect();
    let want: Vec<i64> =
        fixture().expected["labels"].as_array().unwrap()[50..52].iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(labels, want);

    let bad = loader.load(&fixture().models.join("nope.onnx"), &Params::default()).await.expect_err("fails");
    assert!(bad.contains("nope.onnx"), "{bad}");
    // Without a loaded model, a cached handler fails the batch, clearly.
    let err = handler.call(batch(rows().slice(0, 1))).await.unwrap_err();
    assert!(err.message.contains("no ONNX model is loaded"), "{err}");
}

#[tokio::test]
async fn inputs_named_after_fields_take_one_tensor_each_cast_to_the_declared_type() {
    let fx = fixture();
    let file = fx.models.join("two_inputs.onnx");
    stdout_of(
        Command::new(&fx.python)
            .arg("crates/redesmyn-onnx/tests/fixtures/two_inputs.py")
            .arg(&file)
            .current_dir(repo()),
    );
    let model = Arc::new(OnnxModel::load(&file, &options()).unwrap());
    let described: Vec<_> =
        model.inputs().iter().map(|i| (i.name.as_str(), i.datatype.as_str(), i.shape.clone())).collect();
    assert_eq!(described, vec![("petal_length", "FP64", vec![-1]), ("petal_width", "FP64", vec![-1])]);
    // An extra field is left out; f32 and i32 columns are cast to the model's FP64.
    let schema = Schema::new(vec![
        Field::new("sepal_length", FieldType::Number(Numeric::F64)),
        Field::new("petal_width", FieldType::Number(Numeric::I32)),
        Field::new("petal_length", FieldType::Number(Numeric::F32)),
    ])
    .unwrap();
    let handler = OnnxHandler::new(model, &schema).unwrap();
    let frame = DataFrame::new(
        2,
        vec![
            Column::new("sepal_length".into(), [9.0f64, 9.0]),
            Column::new("petal_width".into(), [2i32, 3]),
            Column::new("petal_length".into(), [1.5f32, 4.0]),
        ],
    )
    .unwrap();
    let Predictions::Columns(out) = handler.call(batch(frame)).await.unwrap() else { panic!("columns") };
    let area: Vec<f64> = out.column("area").unwrap().f64().unwrap().into_no_null_iter().collect();
    assert_eq!(area, vec![3.0, 12.0]);
    let both = out.column("both").unwrap().as_materialized_series().clone();
    let flat: Vec<f64> = both.array().unwrap().get_inner().f64().unwrap().into_no_null_iter().collect();
    assert_eq!(flat, vec![1.5, 2.0, 4.0, 3.0]);

    // A schema that names only one of the two inputs does not fit.
    let one = Schema::new(vec![Field::new("petal_length", FieldType::Number(Numeric::F64))]).unwrap();
    let model = Arc::new(OnnxModel::load(&file, &options()).unwrap());
    let err = OnnxHandler::new(model, &one).err().expect("a missing input").to_string();
    assert!(err.contains("inputs petal_length, petal_width but the schema has fields petal_length"), "{err}");
}
