//! Running a planned pipeline on one batch: level by level, the steps of a
//! level at once; each model step gets a frame of the columns it reads
//! (the batch's and earlier answers' buffers, renamed, cast only where a
//! numeric type differs) and the pipeline's parameters; an ensemble
//! combines its sources. A step's failure fails the batch with the step's
//! name; the batcher's poison isolation then finds the guilty requests.

use std::sync::Arc;

use futures::future::{join_all, BoxFuture};
use polars::prelude::*;

use super::plan::{Input, Plan, Planned, Run, Source};
use crate::handler::{float_buffers, Batch, Handler, HandlerError, Params, Predictions};

/// The pipeline's runtime: a handler that runs its steps.
pub(super) struct PipelineHandler {
    plan: Arc<Plan>,
}

impl PipelineHandler {
    pub fn new(plan: Plan) -> Self {
        PipelineHandler { plan: Arc::new(plan) }
    }
}

impl Handler for PipelineHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>> {
        let plan = Arc::clone(&self.plan);
        Box::pin(async move { plan.run(batch).await })
    }
}

/// The answers of a batch's slices as one, in order.
fn join(parts: Vec<Predictions>) -> Result<Predictions, String> {
    let mut parts = parts.into_iter();
    let Some(mut joined) = parts.next() else {
        return Err("no slice answered".into());
    };
    for part in parts {
        match (&mut joined, part) {
            (Predictions::Column(all), Predictions::Column(s)) => {
                all.append(&s).map_err(|e| format!("its slices' answers do not join: {e}"))?;
            }
            (Predictions::Columns(all), Predictions::Columns(df)) => {
                all.vstack_mut(&df).map_err(|e| format!("its slices' answers do not join: {e}"))?;
            }
            _ => return Err("its slices answered in different shapes".into()),
        }
    }
    Ok(joined)
}

/// A step's answer: what the pipeline answers, if it is the last, and its
/// columns by name, for the steps that read them.
struct Answered {
    predictions: Predictions,
    columns: Vec<Column>,
}

impl Answered {
    fn new(predictions: Predictions, column: &str) -> Self {
        let columns = match &predictions {
            Predictions::Column(s) => vec![s.clone().with_name(column.into()).into_column()],
            Predictions::Columns(df) => df.columns().to_vec(),
        };
        Answered { predictions, columns }
    }
}

fn failed(step: &str, message: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(format!("step '{step}' failed: {message}"))
}

impl Plan {
    async fn run(&self, batch: Batch) -> Result<Predictions, HandlerError> {
        let rows = batch.frame.height();
        if tracing::enabled!(tracing::Level::TRACE) {
            let buffers = float_buffers(batch.frame.columns().iter().filter_map(|c| c.as_series()));
            tracing::trace!(pipeline = %self.name, buffers, rows, "batch to pipeline");
        }
        let mut answered: Vec<Option<Answered>> = (0..self.steps.len()).map(|_| None).collect();
        for level in &self.levels {
            let mut calls = Vec::with_capacity(level.len());
            for &i in level {
                let step = &self.steps[i];
                let sources = self.gather(step, &batch.frame, &answered)?;
                match &step.run {
                    Run::Ensemble { combine, weights } => {
                        let sources = step.inputs.iter().map(|i| i.written.clone()).zip(sources).collect();
                        let combined = combine
                            .apply(&step.column, sources, weights.as_deref())
                            .map_err(|e| failed(&step.name, e))?;
                        answered[i] = Some(Answered::new(combined, &step.column));
                    }
                    Run::Model { handler, cache, max_size } => {
                        let frame = DataFrame::new(rows, sources).map_err(|e| failed(&step.name, e))?;
                        let (handler, cache, max_size) = (Arc::clone(handler), cache.clone(), *max_size);
                        let params = Arc::clone(&batch.params);
                        // Each step's handler runs under the pipeline's batch span.
                        let trace = batch.trace.clone();
                        calls.push(async move {
                            let loaded = match &cache {
                                Some(cache) => Some(
                                    cache
                                        .get(&Params::default())
                                        .await
                                        .map_err(|e| HandlerError::new(e.to_string()))?,
                                ),
                                None => None,
                            };
                            if rows <= max_size {
                                return handler.call(Batch { frame, params, loaded, trace }).await;
                            }
                            // The step's model takes fewer rows at once: the batch in slices, answers joined.
                            let mut parts = Vec::with_capacity(rows.div_ceil(max_size));
                            for offset in (0..rows).step_by(max_size) {
                                let slice = frame.slice(offset as i64, max_size);
                                let batch = Batch {
                                    frame: slice,
                                    params: Arc::clone(&params),
                                    loaded: loaded.clone(),
                                    trace: trace.clone(),
                                };
                                parts.push(handler.call(batch).await?);
                            }
                            join(parts).map_err(HandlerError::new)
                        });
                    }
                }
            }
            let models: Vec<usize> =
                level.iter().copied().filter(|&i| matches!(self.steps[i].run, Run::Model { .. })).collect();
            for (i, answer) in models.into_iter().zip(join_all(calls).await) {
                let step = &self.steps[i];
                let predictions =
                    answer.map_err(|e| HandlerError { detail: e.detail, ..failed(&step.name, e.message) })?;
                if predictions.len() != rows {
                    return Err(failed(
                        &step.name,
                        format!("it answered {} rows for a batch of {rows}", predictions.len()),
                    ));
                }
                answered[i] = Some(Answered::new(predictions, &step.column));
            }
        }
        answered[self.answer]
            .take()
            .map(|a| a.predictions)
            .ok_or_else(|| HandlerError::new(format!("pipeline '{}': its last step did not run", self.name)))
    }

    /// The columns `step` reads, named as its fields, in its fields' types.
    fn gather(
        &self,
        step: &Planned,
        frame: &DataFrame,
        answered: &[Option<Answered>],
    ) -> Result<Vec<Column>, HandlerError> {
        step.inputs.iter().map(|input| self.column(step, input, frame, answered)).collect()
    }

    fn column(
        &self,
        step: &Planned,
        input: &Input,
        frame: &DataFrame,
        answered: &[Option<Answered>],
    ) -> Result<Column, HandlerError> {
        let missing =
            |what: String| failed(&step.name, format!("input '{}' reads '{}', {what}", input.field, input.written));
        let column = match &input.source {
            Source::Pipeline(name) => {
                frame.column(name).map_err(|_| missing("which the batch does not carry".into()))?.clone()
            }
            Source::Step { step: from, output } => {
                let source = &self.steps[*from];
                let columns = &answered[*from].as_ref().ok_or_else(|| missing("which has not run".into()))?.columns;
                match output {
                    None => columns.first().cloned(),
                    Some(name) => columns.iter().find(|c| c.name().as_str() == name).cloned(),
                }
                .ok_or_else(|| missing(format!("which step '{}' did not answer", source.name)))?
            }
        };
        let column = match &input.dtype {
            Some(dtype) if column.dtype() != dtype => {
                column.cast(dtype).map_err(|e| missing(format!("which does not convert to {dtype}: {e}")))?
            }
            _ => column,
        };
        Ok(column.with_name(input.field.as_str().into()))
    }
}
