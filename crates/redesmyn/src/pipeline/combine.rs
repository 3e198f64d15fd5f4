//! Ensemble steps: several steps' outputs combined row by row into one
//! answer. A combination that needs code of its own (stacking, a
//! calibrated blend) is a model step that reads those outputs as inputs.

use polars::prelude::*;

use crate::handler::Predictions;

/// How an ensemble combines its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// The mean of numeric outputs (FP64).
    Mean,
    /// The value most sources answer for the row; a tie goes to the
    /// source listed first among the tied values.
    Vote,
    /// `Σ weight × output` (FP64), one weight per source.
    WeightedSum,
    /// Every source side by side: an object per row, keyed by source.
    Concat,
}

impl Combine {
    pub fn parse(name: &str) -> Option<Combine> {
        Some(match name {
            "mean" => Combine::Mean,
            "vote" => Combine::Vote,
            "weighted_sum" | "weightedSum" => Combine::WeightedSum,
            "concat" => Combine::Concat,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Combine::Mean => "mean",
            Combine::Vote => "vote",
            Combine::WeightedSum => "weighted_sum",
            Combine::Concat => "concat",
        }
    }

    /// Combines numbers only.
    pub(super) fn numeric(self) -> bool {
        matches!(self, Combine::Mean | Combine::WeightedSum)
    }

    /// Combines `sources` (named as written, each one value per row) into
    /// the column `name`.
    pub(super) fn apply(
        self,
        name: &str,
        sources: Vec<(String, Column)>,
        weights: Option<&[f64]>,
    ) -> Result<Predictions, String> {
        let error = |e: PolarsError| format!("{}: {e}", self.name());
        match self {
            Combine::Mean | Combine::WeightedSum => {
                let n = sources.len() as f64;
                let mut sum: Option<Float64Chunked> = None;
                for (i, (written, column)) in sources.iter().enumerate() {
                    let values = column
                        .cast(&DataType::Float64)
                        .map_err(|e| format!("'{written}' is not numeric: {e}"))?
                        .f64()
                        .map_err(error)?
                        .clone();
                    let weight = weights.map_or(1.0, |w| w[i]);
                    let term = values * weight;
                    sum = Some(match sum {
                        Some(acc) => &acc + &term,
                        None => term,
                    });
                }
                let mut sum = sum.ok_or("nothing to combine")?;
                if self == Combine::Mean {
                    sum = sum / n;
                }
                Ok(Predictions::Column(sum.with_name(name.into()).into_series()))
            }
            Combine::Vote => vote(name, &sources).map(Predictions::Column),
            Combine::Concat => {
                let height = sources.first().map_or(0, |(_, c)| c.len());
                let columns = sources.into_iter().map(|(written, c)| c.with_name(written.into())).collect();
                DataFrame::new(height, columns).map(Predictions::Columns).map_err(error)
            }
        }
    }
}

/// The most common value per row (nulls abstain), in the first source's type.
fn vote(name: &str, sources: &[(String, Column)]) -> Result<Series, String> {
    let dtype = sources[0].1.dtype().clone();
    // Numbers vote by value: an integer label 1 and a float label 1.0 agree.
    let numeric = sources.iter().all(|(_, c)| c.dtype().is_primitive_numeric());
    let text: Vec<StringChunked> = sources
        .iter()
        .map(|(written, c)| {
            let c = if numeric {
                c.cast(&DataType::Float64).map_err(|e| format!("vote: '{written}': {e}"))?
            } else {
                c.clone()
            };
            let s = c.cast(&DataType::String).map_err(|e| format!("vote: '{written}': {e}"))?;
            s.str().cloned().map_err(|e| format!("vote: '{written}': {e}"))
        })
        .collect::<Result<_, String>>()?;
    let rows = text.first().map_or(0, |t| t.len());
    let mut counts: Vec<(&str, usize)> = Vec::with_capacity(text.len());
    let winners: StringChunked = (0..rows)
        .map(|row| {
            counts.clear();
            for values in &text {
                if let Some(v) = values.get(row) {
                    match counts.iter_mut().find(|(seen, _)| *seen == v) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((v, 1)),
                    }
                }
            }
            // The first value to reach the highest count: ties go to the earliest source.
            let best = counts.iter().map(|(_, n)| *n).max();
            best.and_then(|best| counts.iter().find(|(_, n)| *n == best)).map(|(v, _)| v.to_string())
        })
        .collect();
    let winners = winners.with_name(name.into()).into_series();
    let winners = if numeric { winners.cast(&DataType::Float64).map_err(|e| format!("vote: {e}"))? } else { winners };
    winners.cast(&dtype).map_err(|e| format!("vote: {e}"))
}
