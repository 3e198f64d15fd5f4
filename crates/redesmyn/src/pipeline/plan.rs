//! Checking a pipeline and planning its runs: every step's model found,
//! every input resolved to a pipeline input or a step's output of a
//! fitting type, the steps ordered by their dependencies (levels of steps
//! that may run at once), a cycle refused.
//!
//! An input name without a step (`score`) reads the last step listed
//! before the reader that answers it, else the pipeline input of that name;
//! `step.output` and `step` (its first output) may name any step, so only
//! they can form a cycle.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::DataType;

use super::combine::Combine;
use super::{PipelineError, PipelineSpec, StepKind, StepModels};
use crate::cache::ModelCache;
use crate::handler::Handler;
use crate::schema::{FieldType, Schema, TensorMetadata};
use crate::v2::datatype::Datatype;

/// A checked pipeline, ready to run.
pub struct Plan {
    pub(super) name: String,
    schema: Schema,
    outputs: Vec<TensorMetadata>,
    pub(super) steps: Vec<Planned>,
    /// Steps (indices into `steps`) that may run at once, in dependency order.
    pub(super) levels: Vec<Vec<usize>>,
    /// The step whose answer is the pipeline's (the last one listed).
    pub(super) answer: usize,
}

impl Plan {
    /// The pipeline's inputs: what its requests carry.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The answering step's outputs, where they are known before it answers.
    pub fn outputs(&self) -> &[TensorMetadata] {
        &self.outputs
    }

    /// The steps' names in the order they may run, a level per inner list.
    pub fn levels(&self) -> Vec<Vec<&str>> {
        self.levels.iter().map(|l| l.iter().map(|&i| self.steps[i].name.as_str()).collect()).collect()
    }
}

/// One step as planned.
pub(super) struct Planned {
    pub name: String,
    pub run: Run,
    /// One per field of a model step, one per combined source of an ensemble.
    pub inputs: Vec<Input>,
    /// The name of its single-column answer: its first declared output, else the step's name.
    pub column: String,
}

pub(super) enum Run {
    /// `max_size`: the rows the handler takes at once (larger batches go in slices).
    Model {
        handler: Arc<dyn Handler>,
        cache: Option<Arc<ModelCache>>,
        max_size: usize,
    },
    Ensemble {
        combine: Combine,
        weights: Option<Vec<f64>>,
    },
}

/// Where one input of a step comes from, and what the step reads it as.
pub(super) struct Input {
    pub field: String,
    /// The type the step's field has (a model step), to cast to where it differs.
    pub dtype: Option<DataType>,
    pub source: Source,
    /// The source as written, for errors and ensemble output names.
    pub written: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    Pipeline(String),
    /// A step's output: the named one, or its first.
    Step {
        step: usize,
        output: Option<String>,
    },
}

/// What a step answers, as far as is known before it runs.
#[derive(Clone)]
struct Known {
    /// Declared (or derived) output names and kinds; `None` when the step's
    /// model declares none and may answer any columns.
    outputs: Option<Vec<(String, Option<Kind>)>>,
    tensors: Vec<TensorMetadata>,
}

/// What must agree between a source and the field reading it: numbers of
/// any width cast to one another, anything else must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Number,
    Str,
    Tensor,
}

impl Kind {
    fn of_field(ty: FieldType) -> Kind {
        match ty {
            FieldType::Bool => Kind::Bool,
            FieldType::Number(_) => Kind::Number,
            FieldType::Str => Kind::Str,
            FieldType::List(_) | FieldType::Array(..) => Kind::Tensor,
        }
    }

    fn of_tensor(tensor: &TensorMetadata) -> Option<Kind> {
        let scalar = tensor.shape.len() <= 1 || tensor.shape[1..].iter().all(|&d| d == 1);
        Some(match Datatype::parse(&tensor.datatype)? {
            _ if !scalar => Kind::Tensor,
            Datatype::Bool => Kind::Bool,
            Datatype::Bytes => Kind::Str,
            _ => Kind::Number,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Number => "a number",
            Kind::Str => "str",
            Kind::Tensor => "a list or array",
        }
    }
}

/// Checks `spec` against the server's models and plans its runs. `inputs`
/// is the pipeline's declared schema; without it, the first step's.
pub fn plan(spec: &PipelineSpec, inputs: Option<&Schema>, models: &dyn StepModels) -> Result<Plan, PipelineError> {
    let fail = |message: String| PipelineError { pipeline: spec.name.clone(), message };
    if spec.steps.is_empty() {
        return Err(fail("a pipeline needs at least one step".into()));
    }
    let index: HashMap<&str, usize> = spec.steps.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    for (i, step) in spec.steps.iter().enumerate() {
        if step.name.is_empty() || step.name.contains('.') {
            return Err(fail(format!("step {}: a step needs a name without '.'", i + 1)));
        }
        if index[step.name.as_str()] != i {
            return Err(fail(format!("step '{}' is listed twice", step.name)));
        }
    }
    // The steps' models, and what each answers.
    let mut found = Vec::with_capacity(spec.steps.len());
    for step in &spec.steps {
        found.push(match &step.kind {
            StepKind::Model { model, version } => {
                let Some(m) = models.step_model(model, version.as_deref()) else {
                    let version = version.as_deref().map(|v| format!(" (version {v})")).unwrap_or_default();
                    return Err(fail(format!("step '{}': no model named '{model}'{version}", step.name)));
                };
                if !m.params.is_empty() {
                    return Err(fail(format!(
                        "step '{}': model '{model}' selects variants by path parameters ({}); a step's model has none",
                        step.name,
                        m.params.join(", ")
                    )));
                }
                if m.stream {
                    return Err(fail(format!(
                        "step '{}': model '{model}' streams; a step's model answers once",
                        step.name
                    )));
                }
                Some(m)
            }
            StepKind::Ensemble { .. } => None,
        });
    }
    let schema = match (inputs, &found[0]) {
        (Some(schema), _) => schema.clone(),
        (None, Some(first)) => first.schema.clone(),
        (None, None) => {
            return Err(fail(format!(
                "step '{}' is an ensemble: declare the pipeline's inputs, or begin with a model's step",
                spec.steps[0].name
            )))
        }
    };
    let mut known: Vec<Known> = Vec::with_capacity(spec.steps.len());
    for (step, model) in spec.steps.iter().zip(&found) {
        known.push(match model {
            Some(m) if !m.outputs.is_empty() => Known {
                outputs: Some(m.outputs.iter().map(|t| (t.name.clone(), Kind::of_tensor(t))).collect()),
                tensors: m.outputs.clone(),
            },
            Some(_) => Known { outputs: None, tensors: Vec::new() },
            // Filled in below, once the ensemble's sources are resolved.
            None => Known { outputs: Some(vec![(step.name.clone(), None)]), tensors: Vec::new() },
        });
    }

    let resolver = Resolver { index: &index, schema: &schema };
    let mut steps = Vec::with_capacity(spec.steps.len());
    for (at, (step, model)) in spec.steps.iter().zip(&found).enumerate() {
        let mut inputs = Vec::new();
        let run = match (&step.kind, model) {
            (StepKind::Model { model: name, .. }, Some(m)) => {
                for (field, _) in &step.inputs {
                    if !m.schema.fields().iter().any(|f| &f.name == field) {
                        return Err(fail(format!(
                            "step '{}': maps input '{field}', which model '{name}' does not take",
                            step.name
                        )));
                    }
                }
                for field in m.schema.fields() {
                    let written = step.inputs.iter().find(|(f, _)| f == &field.name).map_or(&field.name, |(_, s)| s);
                    let (source, kind) = resolver.resolve(at, written, &known).map_err(|m| {
                        fail(format!("step '{}': input '{}' reads '{written}', {m}", step.name, field.name))
                    })?;
                    let want = Kind::of_field(field.ty);
                    if let Some(kind) = kind.filter(|&k| k != want) {
                        return Err(fail(format!(
                            "step '{}': input '{}' is {} but '{written}' is {}",
                            step.name,
                            field.name,
                            field.ty,
                            kind.name()
                        )));
                    }
                    inputs.push(Input {
                        field: field.name.clone(),
                        dtype: Some(field.ty.dtype()),
                        source,
                        written: written.clone(),
                    });
                }
                Run::Model { handler: Arc::clone(&m.handler), cache: m.cache.clone(), max_size: m.max_size.max(1) }
            }
            (StepKind::Ensemble { combine, of, weights }, _) => {
                if of.is_empty() {
                    return Err(fail(format!(
                        "step '{}': an ensemble needs the outputs it combines ('of')",
                        step.name
                    )));
                }
                match (combine, weights) {
                    (Combine::WeightedSum, Some(w)) if w.len() == of.len() => {}
                    (Combine::WeightedSum, _) => {
                        return Err(fail(format!(
                            "step '{}': a weighted sum needs one weight per output it combines ({})",
                            step.name,
                            of.len()
                        )))
                    }
                    (_, Some(_)) => {
                        return Err(fail(format!("step '{}': only a weighted sum takes weights", step.name)))
                    }
                    _ => {}
                }
                let mut kinds = Vec::new();
                for written in of {
                    let (source, kind) = resolver
                        .resolve(at, written, &known)
                        .map_err(|m| fail(format!("step '{}': combines '{written}', {m}", step.name)))?;
                    if combine.numeric() && matches!(kind, Some(k) if k != Kind::Number) {
                        return Err(fail(format!(
                            "step '{}': a {} needs numbers but '{written}' is {}",
                            step.name,
                            combine.name(),
                            kind.map_or("unknown", Kind::name)
                        )));
                    }
                    kinds.push((written.clone(), kind));
                    inputs.push(Input { field: written.clone(), dtype: None, source, written: written.clone() });
                }
                known[at] = ensemble_outputs(&step.name, *combine, &kinds);
                Run::Ensemble { combine: *combine, weights: weights.clone() }
            }
            (StepKind::Model { .. }, None) => unreachable!("every model step's model was found above"),
        };
        let column = known[at].tensors.first().map_or_else(|| step.name.clone(), |t| t.name.clone());
        steps.push(Planned { name: step.name.clone(), run, inputs, column });
    }
    let levels = levels(&steps).map_err(|cycle| fail(format!("steps form a cycle: {cycle}")))?;
    let answer = steps.len() - 1;
    Ok(Plan { name: spec.name.clone(), schema, outputs: known[answer].tensors.clone(), steps, levels, answer })
}

/// What an ensemble answers: one number (mean, weighted sum), one value of
/// its sources' kind (vote), or each source as a column named as written (concat).
fn ensemble_outputs(name: &str, combine: Combine, sources: &[(String, Option<Kind>)]) -> Known {
    let tensor =
        |name: &str, datatype: &str| TensorMetadata { name: name.into(), datatype: datatype.into(), shape: vec![-1] };
    match combine {
        Combine::Mean | Combine::WeightedSum => {
            Known { outputs: Some(vec![(name.into(), Some(Kind::Number))]), tensors: vec![tensor(name, "FP64")] }
        }
        Combine::Vote => Known { outputs: Some(vec![(name.into(), sources[0].1)]), tensors: Vec::new() },
        Combine::Concat => Known { outputs: Some(sources.to_vec()), tensors: Vec::new() },
    }
}

struct Resolver<'a> {
    index: &'a HashMap<&'a str, usize>,
    schema: &'a Schema,
}

impl Resolver<'_> {
    /// Where the step at `at` reads `written` from, and its kind when known;
    /// an error ends "… , <why>" after the caller's "input 'x' reads 'y'".
    fn resolve(&self, at: usize, written: &str, known: &[Known]) -> Result<(Source, Option<Kind>), String> {
        if let Some((step, output)) = written.split_once('.') {
            if let Some(&i) = self.index.get(step) {
                return match &known[i].outputs {
                    Some(outputs) => match outputs.iter().find(|(n, _)| n == output) {
                        Some((_, kind)) => Ok((Source::Step { step: i, output: Some(output.into()) }, *kind)),
                        None => Err(format!(
                            "which step '{step}' does not answer (it answers {})",
                            outputs.iter().map(|(n, _)| format!("'{n}'")).collect::<Vec<_>>().join(", ")
                        )),
                    },
                    None => Ok((Source::Step { step: i, output: Some(output.into()) }, None)),
                };
            }
        }
        if let Some(&i) = self.index.get(written).filter(|&&i| i != at) {
            let kind = known[i].outputs.as_ref().and_then(|o| o.first()).and_then(|(_, k)| *k);
            return Ok((Source::Step { step: i, output: None }, kind));
        }
        for i in (0..at).rev() {
            if let Some((_, kind)) = known[i].outputs.iter().flatten().find(|(n, _)| n == written) {
                return Ok((Source::Step { step: i, output: Some(written.into()) }, *kind));
            }
        }
        if let Some(field) = self.schema.fields().iter().find(|f| f.name == written) {
            return Ok((Source::Pipeline(written.into()), Some(Kind::of_field(field.ty))));
        }
        Err("which is neither a pipeline input nor an output of a step listed before it".into())
    }
}

/// The steps in levels: each level's steps depend only on earlier levels'.
/// A cycle is named by the steps along it (`a -> b -> a`).
fn levels(steps: &[Planned]) -> Result<Vec<Vec<usize>>, String> {
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            let mut d: Vec<usize> = s
                .inputs
                .iter()
                .filter_map(|i| match i.source {
                    Source::Step { step, .. } => Some(step),
                    Source::Pipeline(_) => None,
                })
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let mut level: Vec<Option<usize>> = vec![None; steps.len()];
    let mut levels: Vec<Vec<usize>> = Vec::new();
    let mut placed = 0;
    while placed < steps.len() {
        let ready: Vec<usize> = (0..steps.len())
            .filter(|&i| level[i].is_none() && deps[i].iter().all(|&d| level[d].is_some_and(|l| l < levels.len())))
            .collect();
        if ready.is_empty() {
            return Err(cycle(steps, &deps, &level));
        }
        for &i in &ready {
            level[i] = Some(levels.len());
        }
        placed += ready.len();
        levels.push(ready);
    }
    Ok(levels)
}

/// A cycle among the steps not yet placed, walked from the first of them.
fn cycle(steps: &[Planned], deps: &[Vec<usize>], level: &[Option<usize>]) -> String {
    let Some(start) = (0..steps.len()).find(|&i| level[i].is_none()) else {
        return String::new();
    };
    let mut path = vec![start];
    let mut at = start;
    while let Some(&next) = deps[at].iter().find(|&&d| level[d].is_none()) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            path.drain(..pos);
            path.push(next);
            break;
        }
        path.push(next);
        at = next;
    }
    // Dependencies point backwards (reader -> source); name the flow forwards.
    path.reverse();
    path.iter().map(|&i| steps[i].name.as_str()).collect::<Vec<_>>().join(" -> ")
}
