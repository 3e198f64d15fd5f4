//! Pipelines checked at build (unknown models, cycles, mismatches named by
//! step and column), run on batches (mapping, zero copy, concurrency,
//! ensembles, errors naming the step) and served as a model.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polars::prelude::{Column, DataFrame, DataType, IntoSeries, NamedFrom, Series};

use super::*;
use crate::handler::{Batch, HandlerError, Params, Predictions};
use crate::model::BatchSettings;
use crate::schema::{Field, FieldType, Schema};
use crate::testing::{f64_schema, handler_error, scaling, service};

/// Models by name for the steps.
#[derive(Default)]
struct Models(HashMap<String, StepModel>);

impl Models {
    fn with(mut self, name: &str, schema: Schema, outputs: &[(&str, &str)], handler: Arc<dyn Handler>) -> Self {
        let outputs = outputs
            .iter()
            .map(|(n, d)| TensorMetadata { name: (*n).into(), datatype: (*d).into(), shape: vec![-1] })
            .collect();
        let model = StepModel {
            handler,
            schema,
            outputs,
            cache: None,
            params: Vec::new(),
            stream: false,
            max_size: usize::MAX,
        };
        self.0.insert(name.into(), model);
        self
    }
}

impl StepModels for Models {
    fn step_model(&self, name: &str, _: Option<&str>) -> Option<StepModel> {
        self.0.get(name).cloned()
    }
}

fn model_step(name: &str, model: &str, inputs: &[(&str, &str)]) -> StepSpec {
    StepSpec {
        name: name.into(),
        kind: StepKind::Model { model: model.into(), version: None },
        inputs: inputs.iter().map(|(f, s)| ((*f).into(), (*s).into())).collect(),
    }
}

fn ensemble(name: &str, combine: Combine, of: &[&str], weights: Option<Vec<f64>>) -> StepSpec {
    StepSpec {
        name: name.into(),
        kind: StepKind::Ensemble { combine, of: of.iter().map(|s| (*s).into()).collect(), weights },
        inputs: Vec::new(),
    }
}

fn pipeline(steps: Vec<StepSpec>) -> PipelineSpec {
    PipelineSpec { name: "p".into(), steps }
}

/// `y = x + offset`, answering the named column `y`.
fn add(offset: f64) -> Arc<dyn Handler> {
    Arc::new(move |b: Batch| async move {
        let x = b.frame.column("x").map_err(handler_error)?.f64().map_err(handler_error)?.clone();
        Ok::<_, HandlerError>(Predictions::Column((x + offset).with_name("y".into()).into_series()))
    })
}

fn frame(xs: &[f64]) -> DataFrame {
    DataFrame::new(xs.len(), vec![Column::new("x".into(), xs)]).unwrap()
}

async fn run(plan: Plan, frame: DataFrame) -> Result<Predictions, HandlerError> {
    let handler = run::PipelineHandler::new(plan);
    handler.call(Batch { frame, params: Arc::new(Params::default()), loaded: None, trace: None }).await
}

fn values(p: &Predictions) -> Vec<f64> {
    match p {
        Predictions::Column(s) => s.cast(&DataType::Float64).unwrap().f64().unwrap().into_no_null_iter().collect(),
        Predictions::Columns(df) => panic!("one column expected, got {df:?}"),
    }
}

fn refused(spec: &PipelineSpec, models: &Models) -> String {
    plan(spec, None, models).err().expect("the pipeline should be refused").to_string()
}

#[tokio::test]
async fn steps_read_pipeline_inputs_and_earlier_outputs_by_name() {
    let models = Models::default().with("double", f64_schema(&["x"]), &[], scaling(Some(2.0), Duration::ZERO)).with(
        "plus-one",
        f64_schema(&["x"]),
        &[("y", "FP64")],
        add(1.0),
    );
    // `double` answers one unnamed column, read as `double`; `plus-one` maps it onto its field `x`.
    let spec = pipeline(vec![model_step("double", "double", &[]), model_step("inc", "plus-one", &[("x", "double")])]);
    let plan = plan(&spec, None, &models).unwrap();
    assert_eq!(plan.schema(), &f64_schema(&["x"]), "the first step's fields are the pipeline's inputs");
    assert_eq!(plan.outputs()[0].name, "y", "the last step's outputs are the pipeline's");
    assert_eq!(plan.levels(), vec![vec!["double"], vec!["inc"]]);
    assert_eq!(values(&run(plan, frame(&[1.0, 2.5])).await.unwrap()), vec![3.0, 6.0]);
}

#[tokio::test]
async fn a_column_reaches_a_step_over_the_same_buffer() {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let probe: Arc<dyn Handler> = Arc::new(move |b: Batch| {
        let x = b.frame.column("x").unwrap().f64().unwrap().clone();
        *record.lock().unwrap() = Some(x.cont_slice().unwrap().as_ptr() as usize);
        async move { Ok::<_, HandlerError>(Predictions::Column(x.into_series())) }
    });
    let models = Models::default().with("probe", f64_schema(&["x"]), &[], probe);
    let plan = plan(&pipeline(vec![model_step("probe", "probe", &[])]), None, &models).unwrap();
    let input = frame(&vec![0.5; 1_000_000]);
    let address = input.column("x").unwrap().f64().unwrap().cont_slice().unwrap().as_ptr() as usize;
    run(plan, input).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(address));
}

#[tokio::test]
async fn a_step_with_a_smaller_max_size_gets_the_batch_in_slices() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sizes);
    let counting: Arc<dyn Handler> = Arc::new(move |b: Batch| {
        seen.lock().unwrap().push(b.frame.height());
        let x = b.frame.column("x").unwrap().f64().unwrap().clone();
        async move { Ok::<_, HandlerError>(Predictions::Column((x + 1.0).into_series())) }
    });
    let mut models = Models::default().with("small", f64_schema(&["x"]), &[], counting);
    models.0.get_mut("small").unwrap().max_size = 2;
    let plan = plan(&pipeline(vec![model_step("small", "small", &[])]), None, &models).unwrap();
    let answer = run(plan, frame(&[1.0, 2.0, 3.0, 4.0, 5.0])).await.unwrap();
    assert_eq!(values(&answer), vec![2.0, 3.0, 4.0, 5.0, 6.0], "the slices' answers, joined in order");
    assert_eq!(*sizes.lock().unwrap(), vec![2, 2, 1]);
}

#[tokio::test]
async fn independent_steps_run_at_once() {
    // Each step waits for the other: run one after the other, they never finish.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let waiting = |factor: f64| -> Arc<dyn Handler> {
        let barrier = Arc::clone(&barrier);
        Arc::new(move |b: Batch| {
            let barrier = Arc::clone(&barrier);
            async move {
                barrier.wait().await;
                let x = b.frame.column("x").map_err(handler_error)?.f64().map_err(handler_error)?.clone();
                Ok::<_, HandlerError>(Predictions::Column((x * factor).into_series()))
            }
        })
    };
    let models = Models::default().with("two", f64_schema(&["x"]), &[], waiting(2.0)).with(
        "three",
        f64_schema(&["x"]),
        &[],
        waiting(3.0),
    );
    let spec = pipeline(vec![
        model_step("a", "two", &[]),
        model_step("b", "three", &[]),
        ensemble("sum", Combine::WeightedSum, &["a", "b"], Some(vec![1.0, 1.0])),
    ]);
    let plan = plan(&spec, None, &models).unwrap();
    assert_eq!(plan.levels(), vec![vec!["a", "b"], vec!["sum"]]);
    let answer = tokio::time::timeout(Duration::from_secs(10), run(plan, frame(&[1.0, 2.0]))).await;
    assert_eq!(values(&answer.expect("both steps ran at once").unwrap()), vec![5.0, 10.0]);
}

#[tokio::test]
async fn ensembles_take_the_mean_the_vote_a_weighted_sum_or_all_side_by_side() {
    let label = |labels: &'static [i64]| -> Arc<dyn Handler> {
        Arc::new(
            move |_: Batch| async move { Ok::<_, HandlerError>(Predictions::Column(Series::new("l".into(), labels))) },
        )
    };
    let models = Models::default()
        .with("a", f64_schema(&["x"]), &[], label(&[0, 1, 2]))
        .with("b", f64_schema(&["x"]), &[], label(&[0, 2, 1]))
        .with("c", f64_schema(&["x"]), &[], label(&[1, 2, 0]));
    let with = |last: StepSpec| {
        pipeline(vec![model_step("a", "a", &[]), model_step("b", "b", &[]), model_step("c", "c", &[]), last])
    };
    let answer = |last: StepSpec| {
        let plan = plan(&with(last), None, &models).unwrap();
        run(plan, frame(&[0.0, 0.0, 0.0]))
    };
    let vote = answer(ensemble("vote", Combine::Vote, &["a", "b", "c"], None)).await.unwrap();
    // Labels as floats (XGBoost's) vote with integer labels by value.
    let floats: Arc<dyn Handler> = Arc::new(|_: Batch| async {
        Ok::<_, HandlerError>(Predictions::Column(Series::new("f".into(), [0.0f64, 2.0, 0.0])))
    });
    let models = Models(models.0.clone()).with("d", f64_schema(&["x"]), &[], floats);
    let mixed = pipeline(vec![
        model_step("a", "a", &[]),
        model_step("d", "d", &[]),
        model_step("c", "c", &[]),
        ensemble("v", Combine::Vote, &["a", "d", "c"], None),
    ]);
    assert_eq!(
        values(&run(plan(&mixed, None, &models).unwrap(), frame(&[0.0; 3])).await.unwrap()),
        vec![0.0, 2.0, 0.0]
    );
    // Row 2 is a three-way tie: the first source's value wins.
    assert_eq!(values(&vote), vec![0.0, 2.0, 2.0]);
    let Predictions::Column(voted) = &vote else { unreachable!() };
    assert_eq!(voted.dtype(), &DataType::Int64, "a vote answers in its sources' type");
    let mean = answer(ensemble("mean", Combine::Mean, &["a", "b", "c"], None)).await.unwrap();
    let expected = [1.0 / 3.0, 5.0 / 3.0, 1.0];
    assert!(values(&mean).iter().zip(expected).all(|(m, e)| (m - e).abs() < 1e-12), "{mean:?}");
    let weighted =
        answer(ensemble("w", Combine::WeightedSum, &["a", "b", "c"], Some(vec![1.0, 10.0, 100.0]))).await.unwrap();
    assert_eq!(values(&weighted), vec![100.0, 221.0, 12.0]);
    let Predictions::Columns(side) = answer(ensemble("all", Combine::Concat, &["a", "c"], None)).await.unwrap() else {
        panic!("concat answers several columns")
    };
    assert_eq!(side.get_column_names().iter().map(|n| n.as_str()).collect::<Vec<_>>(), vec!["a", "c"]);
}

#[test]
fn unknown_models_cycles_and_mismatches_are_refused_naming_step_and_column() {
    let texts = Schema::new(vec![Field::new("x", FieldType::Str)]).unwrap();
    let models = Models::default()
        .with("double", f64_schema(&["x"]), &[], scaling(Some(2.0), Duration::ZERO))
        .with("plus-one", f64_schema(&["x"]), &[("y", "FP64")], add(1.0))
        .with("texts", texts, &[], scaling(None, Duration::ZERO))
        .with("two", f64_schema(&["x", "z"]), &[], scaling(None, Duration::ZERO));
    assert_eq!(
        refused(&pipeline(vec![model_step("a", "double", &[]), model_step("b", "nope", &[])]), &models),
        "pipeline 'p': step 'b': no model named 'nope'"
    );
    let cycle = pipeline(vec![
        model_step("a", "double", &[("x", "c")]),
        model_step("b", "double", &[("x", "a")]),
        model_step("c", "double", &[("x", "b")]),
    ]);
    assert_eq!(
        refused(
            &PipelineSpec { steps: [vec![model_step("in", "double", &[])], cycle.steps].concat(), ..cycle },
            &models
        ),
        "pipeline 'p': steps form a cycle: a -> b -> c -> a"
    );
    assert_eq!(
        refused(&pipeline(vec![model_step("a", "double", &[]), model_step("b", "two", &[])]), &models),
        "pipeline 'p': step 'b': input 'z' reads 'z', which is neither a pipeline input nor an output of a step listed before it"
    );
    assert_eq!(
        refused(
            &pipeline(vec![model_step("a", "plus-one", &[]), model_step("b", "double", &[("x", "a.score")])]),
            &models
        ),
        "pipeline 'p': step 'b': input 'x' reads 'a.score', which step 'a' does not answer (it answers 'y')"
    );
    assert_eq!(
        refused(&pipeline(vec![model_step("a", "double", &[]), model_step("b", "texts", &[])]), &models),
        "pipeline 'p': step 'b': input 'x' is str but 'x' is a number"
    );
    assert_eq!(
        refused(&pipeline(vec![model_step("a", "double", &[("w", "x")])]), &models),
        "pipeline 'p': step 'a': maps input 'w', which model 'double' does not take"
    );
    assert_eq!(
        refused(
            &pipeline(vec![model_step("a", "double", &[]), ensemble("v", Combine::WeightedSum, &["a"], None)]),
            &models
        ),
        "pipeline 'p': step 'v': a weighted sum needs one weight per output it combines (1)"
    );
}

#[tokio::test]
async fn a_failing_step_fails_its_batch_naming_the_step() {
    let failing: Arc<dyn Handler> = Arc::new(|_: Batch| async {
        Err::<Predictions, _>(HandlerError::new("calibration table missing").with_detail("trace"))
    });
    let models = Models::default().with("double", f64_schema(&["x"]), &[], scaling(Some(2.0), Duration::ZERO)).with(
        "failing",
        f64_schema(&["x"]),
        &[],
        failing,
    );
    let spec =
        pipeline(vec![model_step("scale", "double", &[]), model_step("calibrate", "failing", &[("x", "scale")])]);
    let error = run(plan(&spec, None, &models).unwrap(), frame(&[1.0])).await.unwrap_err();
    assert_eq!(error.message, "step 'calibrate' failed: calibration table missing");
    assert_eq!(error.detail.as_deref(), Some("trace"), "the traceback stays for the log");
}

#[tokio::test]
async fn a_pipeline_is_served_as_a_model_and_a_poisoned_request_fails_alone() {
    // Fails any batch that holds a negative x: poison isolation finds the request.
    let picky: Arc<dyn Handler> = Arc::new(|b: Batch| async move {
        let x = b.frame.column("x").map_err(handler_error)?.f64().map_err(handler_error)?.clone();
        if x.into_no_null_iter().any(|v| v < 0.0) {
            return Err(HandlerError::new("negative input"));
        }
        Ok::<_, HandlerError>(Predictions::Column(x.into_series()))
    });
    let models = Models::default().with("double", f64_schema(&["x"]), &[], scaling(Some(2.0), Duration::ZERO)).with(
        "picky",
        f64_schema(&["x"]),
        &[],
        picky,
    );
    let spec = pipeline(vec![model_step("scale", "double", &[]), model_step("check", "picky", &[("x", "scale")])]);
    let built = build(&spec, None, &models, |schema| {
        Ok(ModelSpec {
            path: "/pipelines/p".into(),
            name: Some("p".into()),
            version: None,
            schema,
            batch: BatchSettings { max_delay: Some(Duration::from_millis(50)), ..Default::default() },
            outputs: Vec::new(),
            inputs: Vec::new(),
            cache: None,
            prediction_cache: None,
        })
    })
    .unwrap();
    let (service, _) = service(vec![built.endpoint, crate::testing::endpoint("/double")], None);
    let model = service.resolve("p", None).unwrap();
    let ask = |body: &'static str| {
        let model = Arc::clone(&model);
        async move { model.predict_records(&Params::default(), body.as_bytes()).await }
    };
    let (good, bad, other) = tokio::join!(ask(r#"[{"x": 1}]"#), ask(r#"[{"x": -1}]"#), ask(r#"[{"x": 3}]"#));
    let answer = |p: crate::service::Prediction| values(&p.answer.unwrap().predictions);
    assert_eq!(answer(good.unwrap()), vec![2.0]);
    assert_eq!(answer(other.unwrap()), vec![6.0]);
    assert_eq!(bad.err().unwrap().to_string(), "step 'check' failed: negative input");
    // A model a serving pipeline runs is not removed; once the pipeline is gone, it may be.
    let refused = service.remove("double", None, Duration::ZERO).await.unwrap_err();
    assert_eq!(refused.to_string(), "model 'double' is a step of pipeline 'p': remove the pipeline first");
    assert!(service.resolve("double", None).is_ok(), "a refused removal leaves the model serving");
    service.remove("p", None, Duration::ZERO).await.unwrap();
    service.remove("double", None, Duration::ZERO).await.unwrap();
}

#[test]
fn a_pipeline_names_the_models_it_uses() {
    let spec = pipeline(vec![
        model_step("a", "iris", &[]),
        model_step("b", "onnx", &[]),
        model_step("c", "iris", &[]),
        ensemble("v", Combine::Vote, &["a", "b"], None),
    ]);
    let names: Vec<String> = uses(&spec).into_iter().map(|k| k.name).collect();
    assert_eq!(names, vec!["iris", "onnx"]);
    assert_eq!(Combine::parse("weighted_sum"), Some(Combine::WeightedSum));
    assert_eq!(Combine::parse("median"), None);
}
