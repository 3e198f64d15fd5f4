//! The prediction cache: a model's answers remembered row by row, so a
//! record seen before skips the queue and the handler.
//!
//! Each row of a decoded request is encoded into a key (the model's
//! artifact generation, the path parameters, then every field's value,
//! type-tagged, floats by bit pattern), looked up, and only the rows that
//! missed are queued: in a request of 64 rows with 40 seen before, the
//! handler gets 24. Their answers are stored per row as owned values (never
//! slices that would keep a whole batch's buffers alive), and the client's
//! answer is put back together in its own row order.
//!
//! Bounded by entries and bytes together: every entry weighs the larger of
//! its share of `max_entries` (one) and its share of `max_bytes`, so moka's
//! single weighted capacity keeps both. A time to live expires entries;
//! a reload of the model's artifact changes the generation, so earlier
//! answers are never read again and age out. The cache is per model, so a
//! model's name and version are part of every key by construction.
//!
//! Streaming models are not cached (their answers are event streams).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;
use polars::prelude::*;

use crate::error::RequestError;
use crate::handler::{Params, Predictions};
pub use crate::metrics::PredictionCacheMetrics;
use crate::pending::Answer;

/// How big a model's prediction cache may grow and how long answers live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionCacheConfig {
    /// Rows remembered at most.
    pub max_entries: u64,
    /// Bytes (keys and values, approximately) remembered at most.
    pub max_bytes: u64,
    /// How long an answer is reused; `None` keeps it until evicted or invalidated.
    pub ttl: Option<Duration>,
}

impl PredictionCacheConfig {
    /// Default byte bound when only `max_entries` is given.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
}

impl Default for PredictionCacheConfig {
    fn default() -> Self {
        PredictionCacheConfig { max_entries: 10_000, max_bytes: Self::DEFAULT_MAX_BYTES, ttl: None }
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PredictionCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The shape of the predictions a row's answer belongs to: one column, or
/// several named ones. Shared by every row stored from one answer.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Column(PlSmallStr, DataType),
    Columns(Vec<(PlSmallStr, DataType)>),
}

/// One row's prediction: one owned value per output column.
struct Cached {
    shape: Arc<Shape>,
    values: Box<[AnyValue<'static>]>,
    bytes: u32,
}

/// Bookkeeping per entry beyond its key and values (moka's entry, the Arc,
/// the boxed slice), counted so many tiny entries still weigh something.
const ENTRY_OVERHEAD: usize = 160;

type Key = Box<[u8]>;

/// Inserts after which pending evictions are applied at the latest.
const MAINTENANCE_EVERY: usize = 256;

pub struct PredictionCache {
    entries: moka::sync::Cache<Key, Arc<Cached>>,
    config: PredictionCacheConfig,
    metrics: PredictionCacheMetrics,
    /// Inserts since pending evictions were last applied.
    unmaintained: AtomicUsize,
}

impl PredictionCache {
    pub fn new(config: PredictionCacheConfig, metrics: PredictionCacheMetrics) -> Self {
        let max_entries = config.max_entries.max(1);
        let max_bytes = config.max_bytes.max(1);
        let removed = metrics.clone();
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .weigher(move |_key: &Key, value: &Arc<Cached>| weight(value.bytes, max_entries, max_bytes))
            .eviction_listener(move |_key, value: Arc<Cached>, _cause: RemovalCause| {
                // Every removal is told here (replaced, expired, evicted, or
                // refused admission), so the gauges match what is held.
                removed.entries.dec();
                removed.bytes.dec_by(i64::from(value.bytes));
            });
        if let Some(ttl) = config.ttl {
            builder = builder.time_to_live(ttl);
        }
        PredictionCache { entries: builder.build(), config, metrics, unmaintained: AtomicUsize::new(0) }
    }

    pub fn config(&self) -> &PredictionCacheConfig {
        &self.config
    }

    /// The counters, after applying pending evictions (so `entries` and
    /// `bytes` are within the bounds).
    pub fn stats(&self) -> PredictionCacheStats {
        self.entries.run_pending_tasks();
        PredictionCacheStats {
            hits: self.metrics.hits.get(),
            misses: self.metrics.misses.get(),
            entries: self.metrics.entries.get().max(0) as u64,
            bytes: self.metrics.bytes.get().max(0) as u64,
        }
    }

    /// Forgets every answer (the gauges follow as moka reports the removals).
    pub fn clear(&self) {
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
    }

    /// Answers `frame` from the cache where it can and with `run` for the
    /// rest: `run` gets only the rows that missed, in order, and the answer
    /// holds every row in `frame`'s order. `generation` changes whenever the
    /// model's artifact is reloaded. A frame whose fields cannot be keyed
    /// (a type the encoder does not know) goes to `run` whole. If the cached
    /// answers do not fit the fresh ones (the handler changed its output's
    /// type), the whole frame is run again uncached.
    ///
    /// A fully cached request reports `batch_rows` 0 and zero queue and
    /// handler time; `cached_rows` says how many rows came from the cache.
    pub async fn serve<F, Fut>(
        &self,
        params: &Params,
        generation: u64,
        frame: DataFrame,
        run: F,
    ) -> Result<Option<Answer>, RequestError>
    where
        F: Fn(DataFrame) -> Fut,
        Fut: Future<Output = Result<Option<Answer>, RequestError>>,
    {
        let Some(keys) = row_keys(params, generation, &frame) else {
            return run(frame).await;
        };
        let found: Vec<Option<Arc<Cached>>> = keys.iter().map(|k| self.entries.get(k)).collect();
        let misses: Vec<IdxSize> =
            found.iter().enumerate().filter(|(_, f)| f.is_none()).map(|(i, _)| i as IdxSize).collect();
        let hits = keys.len() - misses.len();
        self.metrics.hits.inc_by(hits as u64);
        self.metrics.misses.inc_by(misses.len() as u64);
        if misses.is_empty() {
            match assemble(&found, None, &[]) {
                Ok(predictions) => return Ok(Some(cached_answer(predictions, hits))),
                Err(_) => return self.uncached(frame, &run).await,
            }
        }
        let to_run = if hits == 0 { frame.clone() } else { take_rows(&frame, &misses)? };
        let Some(mut answer) = run(to_run).await? else {
            return Ok(None);
        };
        self.store(&keys, &misses, &answer.predictions);
        if hits > 0 {
            match assemble(&found, Some(&answer.predictions), &misses) {
                Ok(predictions) => {
                    answer.predictions = predictions;
                    answer.cached_rows = hits;
                }
                Err(_) => return self.uncached(frame, &run).await,
            }
        }
        Ok(Some(answer))
    }

    /// Runs the whole frame, remembering nothing (cached answers that no
    /// longer fit are left to expire).
    async fn uncached<F, Fut>(&self, frame: DataFrame, run: &F) -> Result<Option<Answer>, RequestError>
    where
        F: Fn(DataFrame) -> Fut,
        Fut: Future<Output = Result<Option<Answer>, RequestError>>,
    {
        tracing::warn!("cached predictions do not fit the handler's answer; running the request uncached");
        run(frame).await
    }

    /// Remembers the fresh answer of each missed row.
    fn store(&self, keys: &[Key], misses: &[IdxSize], predictions: &Predictions) {
        let shape = Arc::new(shape_of(predictions));
        for (position, &row) in misses.iter().enumerate() {
            let Some(values) = owned_row(predictions, position) else {
                continue;
            };
            let key = keys[row as usize].clone();
            let bytes = key.len() + ENTRY_OVERHEAD + values.iter().map(value_bytes).sum::<usize>();
            if bytes as u64 > self.config.max_bytes {
                continue;
            }
            let bytes = bytes.min(u32::MAX as usize) as u32;
            self.metrics.entries.inc();
            self.metrics.bytes.inc_by(i64::from(bytes));
            self.entries.insert(key, Arc::new(Cached { shape: Arc::clone(&shape), values, bytes }));
        }
        // moka applies evictions in batches of its own; run them at least
        // every MAINTENANCE_EVERY inserts, so the bounds are never overshot
        // by more than that, without paying for maintenance on every request.
        let inserted = misses.len();
        if self.unmaintained.fetch_add(inserted, Ordering::Relaxed) + inserted >= MAINTENANCE_EVERY {
            self.unmaintained.store(0, Ordering::Relaxed);
            self.entries.run_pending_tasks();
        }
    }
}

/// An entry's weight: one entry's share of the capacity, or its bytes'
/// share, whichever is larger (see the module comment).
fn weight(bytes: u32, max_entries: u64, max_bytes: u64) -> u32 {
    let by_bytes = (u64::from(bytes) * max_entries).div_ceil(max_bytes);
    by_bytes.clamp(1, u64::from(u32::MAX)) as u32
}

fn cached_answer(predictions: Predictions, cached_rows: usize) -> Answer {
    Answer { predictions, batch_rows: 0, queued: Duration::ZERO, handled: Duration::ZERO, cached_rows, batch: None }
}

fn take_rows(frame: &DataFrame, rows: &[IdxSize]) -> Result<DataFrame, RequestError> {
    let index = IdxCa::from_vec(PlSmallStr::EMPTY, rows.to_vec());
    frame.take(&index).map_err(|e| RequestError::Handler(format!("could not select the uncached rows: {e}")))
}

fn shape_of(predictions: &Predictions) -> Shape {
    match predictions {
        Predictions::Column(s) => Shape::Column(s.name().clone(), s.dtype().clone()),
        Predictions::Columns(df) => {
            Shape::Columns(df.columns().iter().map(|c| (c.name().clone(), c.dtype().clone())).collect())
        }
    }
}

/// Row `row` of `predictions` as owned values, one per output column.
fn owned_row(predictions: &Predictions, row: usize) -> Option<Box<[AnyValue<'static>]>> {
    let own = |s: &Series| s.get(row).ok().map(deep_copy);
    match predictions {
        Predictions::Column(s) => Some(Box::new([own(s)?])),
        Predictions::Columns(df) => {
            df.columns().iter().map(|c| own(c.as_materialized_series())).collect::<Option<Vec<_>>>().map(Into::into)
        }
    }
}

/// A value that owns its memory: a list or array value read from a batch is
/// a view into the whole batch's buffer, so it is gathered into a new one.
fn deep_copy(value: AnyValue<'_>) -> AnyValue<'static> {
    let fresh = |s: &Series| {
        let all: Vec<IdxSize> = (0..s.len() as IdxSize).collect();
        s.take_slice(&all).unwrap_or_else(|_| s.clone())
    };
    match value {
        AnyValue::List(s) => AnyValue::List(fresh(&s)),
        AnyValue::Array(s, width) => AnyValue::Array(fresh(&s), width),
        other => other.into_static(),
    }
}

/// Approximate heap and inline size of a value.
fn value_bytes(value: &AnyValue<'static>) -> usize {
    let inline = std::mem::size_of::<AnyValue<'static>>();
    inline
        + match value {
            AnyValue::StringOwned(s) => s.len(),
            AnyValue::BinaryOwned(b) => b.len(),
            AnyValue::List(s) | AnyValue::Array(s, _) => s.estimated_size() + ENTRY_OVERHEAD,
            AnyValue::StructOwned(fields) => fields.0.iter().map(value_bytes).sum(),
            _ => 0,
        }
}

/// The client's answer in its row order: row `i` comes from `found[i]`, or,
/// for the rows in `misses` (ascending), from `fresh` in that order. Built
/// as one gather over the fresh rows followed by the cached ones, so the
/// result is a single chunk per column. Outputs must have the same names;
/// their types may differ (a handler that answered integers for one batch
/// and floats for another) and meet in their common supertype.
fn assemble(
    found: &[Option<Arc<Cached>>],
    fresh: Option<&Predictions>,
    misses: &[IdxSize],
) -> PolarsResult<Predictions> {
    let cached: Vec<&Cached> = found.iter().flatten().map(Arc::as_ref).collect();
    let Some(first) = cached.first() else {
        return fresh.cloned().ok_or_else(|| polars_err!(ComputeError: "nothing to answer with"));
    };
    let fresh_shape = fresh.map(shape_of);
    let shape = cached
        .iter()
        .map(|c| &*c.shape)
        .chain(fresh_shape.as_ref())
        .skip(1)
        .try_fold(Shape::clone(&first.shape), |unified, next| unify(&unified, next))?;
    let mut order = Vec::with_capacity(found.len());
    let (mut next_fresh, mut next_cached) = (0 as IdxSize, misses.len() as IdxSize);
    for f in found {
        if f.is_some() {
            order.push(next_cached);
            next_cached += 1;
        } else {
            order.push(next_fresh);
            next_fresh += 1;
        }
    }
    let order = IdxCa::from_vec(PlSmallStr::EMPTY, order);
    // The cached values of output `index` as one series (converted to the unified type).
    let column = |index: usize, name: &PlSmallStr, dtype: &DataType| -> PolarsResult<Series> {
        let values: Vec<AnyValue<'static>> = cached.iter().map(|c| c.values[index].clone()).collect();
        Series::from_any_values_and_dtype(name.clone(), &values, dtype, false)
    };
    let cast = |s: &Series, dtype: &DataType| if s.dtype() == dtype { Ok(s.clone()) } else { s.cast(dtype) };
    if fresh.is_none() {
        // Every row from the cache, already in order: no gather needed.
        return match &shape {
            Shape::Column(name, dtype) => Ok(Predictions::Column(column(0, name, dtype)?)),
            Shape::Columns(columns) => {
                let columns = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, dtype))| column(i, name, dtype).map(Column::from))
                    .collect::<PolarsResult<Vec<_>>>()?;
                Ok(Predictions::Columns(DataFrame::new(cached.len(), columns)?))
            }
        };
    }
    match (&shape, fresh) {
        (Shape::Column(name, dtype), fresh) => {
            let mut all = match fresh {
                Some(Predictions::Column(s)) => cast(s, dtype)?,
                _ => Series::new_empty(name.clone(), dtype),
            };
            all.append(&column(0, name, dtype)?)?;
            Ok(Predictions::Column(all.take(&order)?))
        }
        (Shape::Columns(columns), fresh) => {
            let from_cache = columns
                .iter()
                .enumerate()
                .map(|(i, (name, dtype))| column(i, name, dtype).map(Column::from))
                .collect::<PolarsResult<Vec<_>>>()?;
            let mut all = match fresh {
                Some(Predictions::Columns(df)) => {
                    let cast_all = df
                        .columns()
                        .iter()
                        .zip(columns)
                        .map(|(c, (_, dtype))| cast(c.as_materialized_series(), dtype).map(Column::from))
                        .collect::<PolarsResult<Vec<_>>>()?;
                    DataFrame::new(df.height(), cast_all)?
                }
                _ => DataFrame::new(cached.len(), from_cache.clone())?.clear(),
            };
            all.vstack_mut(&DataFrame::new(cached.len(), from_cache)?)?;
            Ok(Predictions::Columns(all.take(&order)?))
        }
    }
}

/// The shape both `a` and `b` fit: the same output names, each of the
/// types' supertype. Different names or kinds do not unify.
fn unify(a: &Shape, b: &Shape) -> PolarsResult<Shape> {
    match (a, b) {
        (Shape::Column(name, l), Shape::Column(other, r)) if name == other => {
            Ok(Shape::Column(name.clone(), supertype(l, r)?))
        }
        (Shape::Columns(l), Shape::Columns(r))
            if l.len() == r.len() && l.iter().zip(r).all(|((a, _), (b, _))| a == b) =>
        {
            let columns = l.iter().zip(r).map(|((name, l), (_, r))| Ok((name.clone(), supertype(l, r)?)));
            Ok(Shape::Columns(columns.collect::<PolarsResult<_>>()?))
        }
        _ => polars_bail!(SchemaMismatch: "cached and fresh predictions have different outputs"),
    }
}

fn supertype(l: &DataType, r: &DataType) -> PolarsResult<DataType> {
    if l == r {
        Ok(l.clone())
    } else {
        polars_core::utils::try_get_supertype(l, r)
    }
}

// Type tags of the key encoding. A null is its own tag, so a null and any
// value differ; every value carries its type's tag, so `1` as an integer
// and `1.0` as a float differ.
const NULL: u8 = 0;
const BOOL: u8 = 1;
const I8: u8 = 2;
const I16: u8 = 3;
const I32: u8 = 4;
const I64: u8 = 5;
const U8: u8 = 6;
const U16: u8 = 7;
const U32: u8 = 8;
const U64: u8 = 9;
const F32: u8 = 10;
const F64: u8 = 11;
const STR: u8 = 12;
const LIST: u8 = 13;
const ARRAY: u8 = 14;

/// One key per row of `frame`: `generation`, the parameters, then each
/// column's value. `None` when a column's type cannot be encoded.
pub fn row_keys(params: &Params, generation: u64, frame: &DataFrame) -> Option<Vec<Key>> {
    let mut prefix = generation.to_le_bytes().to_vec();
    for (name, value) in params.iter() {
        put_bytes(&mut prefix, name.as_bytes());
        put_bytes(&mut prefix, value.as_bytes());
    }
    let mut rows: Vec<Vec<u8>> = (0..frame.height())
        .map(|_| {
            let mut row = Vec::with_capacity(prefix.len() + 12 * frame.width());
            row.extend_from_slice(&prefix);
            row
        })
        .collect();
    for column in frame.columns() {
        encode(column.as_materialized_series(), &mut PerRow(&mut rows))?;
    }
    Some(rows.into_iter().map(Vec::into_boxed_slice).collect())
}

/// Where the encoding of value `i` goes: row `i`'s key, or (for the items of
/// one list value) a single buffer.
trait Sink {
    fn at(&mut self, i: usize) -> &mut Vec<u8>;
}

struct PerRow<'a>(&'a mut [Vec<u8>]);

impl Sink for PerRow<'_> {
    fn at(&mut self, i: usize) -> &mut Vec<u8> {
        &mut self.0[i]
    }
}

impl Sink for Vec<u8> {
    fn at(&mut self, _: usize) -> &mut Vec<u8> {
        self
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends the encoding of each value of `s` to `sink.at(i)`.
fn encode(s: &Series, sink: &mut impl Sink) -> Option<()> {
    macro_rules! values {
        ($ca:expr, $tag:expr, $bytes:expr) => {
            for (i, v) in $ca.iter().enumerate() {
                let out = sink.at(i);
                match v {
                    None => out.push(NULL),
                    Some(v) => {
                        out.push($tag);
                        out.extend_from_slice(&$bytes(v));
                    }
                }
            }
        };
    }
    match s.dtype() {
        DataType::Boolean => values!(s.bool().ok()?, BOOL, |v: bool| [u8::from(v)]),
        DataType::Int8 => values!(s.i8().ok()?, I8, i8::to_le_bytes),
        DataType::Int16 => values!(s.i16().ok()?, I16, i16::to_le_bytes),
        DataType::Int32 => values!(s.i32().ok()?, I32, i32::to_le_bytes),
        DataType::Int64 => values!(s.i64().ok()?, I64, i64::to_le_bytes),
        DataType::UInt8 => values!(s.u8().ok()?, U8, u8::to_le_bytes),
        DataType::UInt16 => values!(s.u16().ok()?, U16, u16::to_le_bytes),
        DataType::UInt32 => values!(s.u32().ok()?, U32, u32::to_le_bytes),
        DataType::UInt64 => values!(s.u64().ok()?, U64, u64::to_le_bytes),
        DataType::Float32 => values!(s.f32().ok()?, F32, |v: f32| v.to_bits().to_le_bytes()),
        DataType::Float64 => values!(s.f64().ok()?, F64, |v: f64| v.to_bits().to_le_bytes()),
        DataType::String => {
            for (i, v) in s.str().ok()?.iter().enumerate() {
                let out = sink.at(i);
                match v {
                    None => out.push(NULL),
                    Some(v) => {
                        out.push(STR);
                        put_bytes(out, v.as_bytes());
                    }
                }
            }
        }
        DataType::List(_) | DataType::Array(..) => {
            for i in 0..s.len() {
                let out = sink.at(i);
                match s.get(i).ok()? {
                    AnyValue::Null => out.push(NULL),
                    AnyValue::List(items) | AnyValue::Array(items, _) => {
                        out.push(if matches!(s.dtype(), DataType::List(_)) { LIST } else { ARRAY });
                        out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                        encode(&items, out)?;
                    }
                    _ => return None,
                }
            }
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
