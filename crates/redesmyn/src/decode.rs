//! Request bodies straight into Polars columns.
//!
//! A `serde` [`DeserializeSeed`] walks the JSON body once and appends each
//! value to the column builder of its field: no `serde_json::Value` is built
//! per record. The first value that does not fit the schema stops the parse
//! and is reported with its record index and field name, so one bad record
//! fails only the request that carried it, before it can reach a batch.

use std::cell::{Cell, RefCell};
use std::fmt;

use polars::prelude::*;
use polars_arrow::array::{Array, FixedSizeListArray, PrimitiveArray};
use polars_arrow::bitmap::MutableBitmap;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::schema::{Field, FieldType, Numeric, Schema};

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (400).
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// Valid JSON that does not match the schema (422).
    #[error("{0}")]
    Invalid(RecordError),
}

/// Where a body stopped matching the schema.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordError {
    /// Index of the record in the body (0 for a single-record body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.record, &self.field) {
            (Some(r), Some(field)) => write!(f, "record {r}, field '{field}': {}", self.message),
            (Some(r), None) => write!(f, "record {r}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Parses a body — an array of records or one record object — into a
/// DataFrame whose columns follow the schema's field order.
pub fn decode(schema: &Schema, body: &[u8]) -> Result<DataFrame, DecodeError> {
    // A rough guess of the row count keeps builders from regrowing.
    let capacity = (body.len() / (schema.len() * 6 + 2)).clamp(1, 4096);
    let mut columns: Vec<Box<dyn ColumnBuilder>> = schema.fields().iter().map(|f| builder_for(f, capacity)).collect();
    let state = State {
        schema,
        record: Cell::new(0),
        rows: Cell::new(0),
        seen: RefCell::new(vec![usize::MAX; schema.len()]),
        error: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = BodySeed { state: &state, columns: &mut columns }.deserialize(&mut de).and_then(|()| de.end());
    if let Err(err) = result {
        return Err(match state.error.into_inner() {
            Some(record_error) => DecodeError::Invalid(record_error),
            None => DecodeError::Malformed(err.to_string()),
        });
    }
    let rows = state.rows.get();
    let columns =
        schema.fields().iter().zip(columns).map(|(field, builder)| builder.finish(field).into_column()).collect();
    DataFrame::new(rows, columns).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Parse state shared by the nested seeds. Errors are stashed here with
/// their location so the caller reports them precisely, rather than as
/// serde_json's "… at line 1 column 80".
struct State<'s> {
    schema: &'s Schema,
    record: Cell<usize>,
    rows: Cell<usize>,
    /// `seen[i] == r` when field `i` was set in record `r` (duplicate check
    /// without clearing between records).
    seen: RefCell<Vec<usize>>,
    error: RefCell<Option<RecordError>>,
}

impl State<'_> {
    fn fail<E: de::Error>(&self, field: Option<&str>, message: String) -> E {
        let record = Some(self.record.get());
        self.error.replace(Some(RecordError { record, field: field.map(str::to_owned), message }));
        E::custom("invalid record")
    }
}

struct BodySeed<'a, 's> {
    state: &'a State<'s>,
    columns: &'a mut [Box<dyn ColumnBuilder>],
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records or a record object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let seed = RecordSeed { state: self.state, columns: &mut *self.columns };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            self.state.record.set(self.state.record.get() + 1);
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        RecordSeed { state: self.state, columns: self.columns }.visit_map(map)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_records("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_records("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_records("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_records("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_records("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_records("null"))
    }
}

impl BodySeed<'_, '_> {
    fn not_records<E: de::Error>(&self, found: &str) -> E {
        self.state.error.replace(Some(RecordError {
            record: None,
            field: None,
            message: format!("the body must be an array of records or a record object, found {found}"),
        }));
        E::custom("invalid body")
    }
}

struct RecordSeed<'a, 's> {
    state: &'a State<'s>,
    columns: &'a mut [Box<dyn ColumnBuilder>],
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        let schema = state.schema;
        let record = state.record.get();
        let mut next_hint = 0;
        while let Some(index) = map.next_key_seed(KeySeed { schema, hint: next_hint })? {
            let Some(index) = index else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let field = &schema.fields()[index];
            {
                let mut seen = state.seen.borrow_mut();
                if seen[index] == record {
                    return Err(state.fail(Some(&field.name), "the field appears twice".into()));
                }
                seen[index] = record;
            }
            next_hint = index + 1;
            map.next_value_seed(ValueSeed { state, field, column: &mut *self.columns[index] })?;
        }
        // Fields the record left out are null, or an error when not nullable.
        let seen = state.seen.borrow();
        for (index, field) in schema.fields().iter().enumerate() {
            if seen[index] != record {
                if !field.nullable {
                    return Err(state.fail(Some(&field.name), "missing field".into()));
                }
                self.columns[index].push_null();
            }
        }
        state.rows.set(state.rows.get() + 1);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.state.fail(None, "expected a record object, found an array".into()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.state.fail(None, "expected a record object, found a boolean".into()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.state.fail(None, "expected a record object, found a number".into()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.state.fail(None, "expected a record object, found a number".into()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.state.fail(None, "expected a record object, found a number".into()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.state.fail(None, "expected a record object, found a string".into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.state.fail(None, "expected a record object, found null".into()))
    }
}

/// Resolves a key to its field index without allocating; `None` for keys
/// the schema does not know (they are skipped).
struct KeySeed<'s> {
    schema: &'s Schema,
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.schema.position(key, self.hint))
    }
}

/// A JSON number as serde_json read it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    I(i64),
    U(u64),
    F(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::I(v) => write!(f, "{v}"),
            Number::U(v) => write!(f, "{v}"),
            Number::F(v) => write!(f, "{v}"),
        }
    }
}

/// What a value turned out to be, for error messages.
fn describe_str(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("the string \"{cut}…\"")
    } else {
        format!("the string \"{s}\"")
    }
}

struct ValueSeed<'a, 's> {
    state: &'a State<'s>,
    field: &'a Field,
    column: &'a mut dyn ColumnBuilder,
}

impl ValueSeed<'_, '_> {
    fn check<E: de::Error>(&self, result: Result<(), String>) -> Result<(), E> {
        result.map_err(|message| self.state.fail(Some(&self.field.name), message))
    }

    fn wrong<E: de::Error>(&self, found: &str) -> E {
        self.state.fail(Some(&self.field.name), format!("expected {}, found {found}", self.field.ty))
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.field.ty)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let result = self.column.push_bool(v);
        self.check(result)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let result = self.column.push_number(Number::I(v));
        self.check(result)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let result = self.column.push_number(Number::U(v));
        self.check(result)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let result = self.column.push_number(Number::F(v));
        self.check(result)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let result = self.column.push_str(v);
        self.check(result)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if !self.field.nullable {
            return Err(self
                .state
                .fail(Some(&self.field.name), "null is not allowed: the field is not nullable".into()));
        }
        self.column.push_null();
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(items) = self.column.items() else {
            return Err(self.wrong("an array"));
        };
        let field = self.field;
        let state = self.state;
        items.begin();
        while seq.next_element_seed(ItemSeed { state, field, items: &mut *items })?.is_some() {}
        items.end().map_err(|message| state.fail(Some(&field.name), message))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong("an object"))
    }
}

/// One number inside a list or array field.
struct ItemSeed<'a, 's> {
    state: &'a State<'s>,
    field: &'a Field,
    items: &'a mut dyn ItemSink,
}

impl ItemSeed<'_, '_> {
    fn push<E: de::Error>(self, n: Number) -> Result<(), E> {
        let result = self.items.push(n);
        result.map_err(|message| self.state.fail(Some(&self.field.name), message))
    }

    fn wrong<E: de::Error>(&self, found: &str) -> E {
        self.state.fail(Some(&self.field.name), format!("expected {}, found an item that is {found}", self.field.ty))
    }
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(Number::I(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(Number::U(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(Number::F(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.wrong("a boolean"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.wrong("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.wrong("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong("an object"))
    }
}

/// Converts a JSON number to a column's native type, refusing what would
/// not round-trip (fractions into integers, values out of range).
pub(crate) trait FromNumber: Sized {
    fn from_number(n: Number) -> Result<Self, String>;
}

fn out_of_range(n: Number, ty: &str) -> String {
    format!("{n} is out of range for {ty}")
}

macro_rules! int_from_number {
    ($($t:ty => $name:literal),*) => {$(
        impl FromNumber for $t {
            fn from_number(n: Number) -> Result<Self, String> {
                match n {
                    Number::I(v) => <$t>::try_from(v).map_err(|_| out_of_range(n, $name)),
                    Number::U(v) => <$t>::try_from(v).map_err(|_| out_of_range(n, $name)),
                    Number::F(v) if v.fract() != 0.0 || !v.is_finite() => {
                        Err(format!("expected an integer ({}), found {v}", $name))
                    }
                    Number::F(v) if v < <$t>::MIN as f64 || v > <$t>::MAX as f64 => {
                        Err(out_of_range(n, $name))
                    }
                    Number::F(v) => Ok(v as $t),
                }
            }
        }
    )*};
}

int_from_number!(i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64");

impl FromNumber for f64 {
    fn from_number(n: Number) -> Result<Self, String> {
        Ok(match n {
            Number::I(v) => v as f64,
            Number::U(v) => v as f64,
            Number::F(v) => v,
        })
    }
}

impl FromNumber for f32 {
    fn from_number(n: Number) -> Result<Self, String> {
        let v = f64::from_number(n)?;
        if v.abs() > f32::MAX as f64 {
            return Err(out_of_range(n, "f32"));
        }
        Ok(v as f32)
    }
}

/// Appends the values of one field. The default methods refuse the JSON
/// type, so each builder implements only what it accepts.
trait ColumnBuilder {
    fn type_name(&self) -> String;
    fn push_null(&mut self);
    fn push_number(&mut self, n: Number) -> Result<(), String> {
        Err(format!("expected {}, found the number {n}", self.type_name()))
    }
    fn push_str(&mut self, s: &str) -> Result<(), String> {
        Err(format!("expected {}, found {}", self.type_name(), describe_str(s)))
    }
    fn push_bool(&mut self, b: bool) -> Result<(), String> {
        Err(format!("expected {}, found the boolean {b}", self.type_name()))
    }
    /// The item sink of a list or array column; `None` for scalar columns.
    fn items(&mut self) -> Option<&mut dyn ItemSink> {
        None
    }
    fn finish(self: Box<Self>, field: &Field) -> Series;
}

/// Collects the items of one list or array value.
trait ItemSink {
    fn begin(&mut self);
    fn push(&mut self, n: Number) -> Result<(), String>;
    fn end(&mut self) -> Result<(), String>;
}

/// Expands `$body` once per numeric type, with `$T` the Polars type.
macro_rules! with_numeric {
    ($n:expr, $T:ident => $body:expr) => {
        match $n {
            Numeric::I8 => {
                type $T = Int8Type;
                $body
            }
            Numeric::I16 => {
                type $T = Int16Type;
                $body
            }
            Numeric::I32 => {
                type $T = Int32Type;
                $body
            }
            Numeric::I64 => {
                type $T = Int64Type;
                $body
            }
            Numeric::U8 => {
                type $T = UInt8Type;
                $body
            }
            Numeric::U16 => {
                type $T = UInt16Type;
                $body
            }
            Numeric::U32 => {
                type $T = UInt32Type;
                $body
            }
            Numeric::U64 => {
                type $T = UInt64Type;
                $body
            }
            Numeric::F32 => {
                type $T = Float32Type;
                $body
            }
            Numeric::F64 => {
                type $T = Float64Type;
                $body
            }
        }
    };
}

fn builder_for(field: &Field, capacity: usize) -> Box<dyn ColumnBuilder> {
    let name: PlSmallStr = field.name.as_str().into();
    match field.ty {
        FieldType::Bool => Box::new(BoolColumn(BooleanChunkedBuilder::new(name, capacity))),
        FieldType::Str => Box::new(StrColumn(StringChunkedBuilder::new(name, capacity))),
        FieldType::Number(n) => with_numeric!(n, T => Box::new(NumColumn::<T>::new(n, capacity))),
        FieldType::List(n) => {
            with_numeric!(n, T => Box::new(ListColumn::<T>::new(n, None, capacity)))
        }
        FieldType::Array(n, width) => {
            with_numeric!(n, T => Box::new(ListColumn::<T>::new(n, Some(width), capacity)))
        }
    }
}

/// Lazily created validity: no bitmap is allocated until the first null.
#[derive(Default)]
struct Validity(Option<MutableBitmap>);

impl Validity {
    fn push(&mut self, valid: bool, len_before: usize) {
        match (&mut self.0, valid) {
            (Some(bitmap), _) => bitmap.push(valid),
            (None, true) => {}
            (None, false) => {
                let mut bitmap = MutableBitmap::with_capacity(len_before + 1);
                bitmap.extend_constant(len_before, true);
                bitmap.push(false);
                self.0 = Some(bitmap);
            }
        }
    }

    fn finish(self) -> Option<polars_arrow::bitmap::Bitmap> {
        self.0.map(Into::into)
    }
}

struct BoolColumn(BooleanChunkedBuilder);

impl ColumnBuilder for BoolColumn {
    fn type_name(&self) -> String {
        "bool".into()
    }
    fn push_null(&mut self) {
        self.0.append_null();
    }
    fn push_bool(&mut self, b: bool) -> Result<(), String> {
        self.0.append_value(b);
        Ok(())
    }
    fn finish(self: Box<Self>, _: &Field) -> Series {
        self.0.finish().into_series()
    }
}

struct StrColumn(StringChunkedBuilder);

impl ColumnBuilder for StrColumn {
    fn type_name(&self) -> String {
        "str".into()
    }
    fn push_null(&mut self) {
        self.0.append_null();
    }
    fn push_str(&mut self, s: &str) -> Result<(), String> {
        self.0.append_value(s);
        Ok(())
    }
    fn finish(self: Box<Self>, _: &Field) -> Series {
        self.0.finish().into_series()
    }
}

struct NumColumn<T: PolarsNumericType> {
    values: Vec<T::Native>,
    validity: Validity,
    ty: Numeric,
}

impl<T: PolarsNumericType> NumColumn<T> {
    fn new(ty: Numeric, capacity: usize) -> Self {
        NumColumn { values: Vec::with_capacity(capacity), validity: Validity::default(), ty }
    }
}

impl<T: PolarsNumericType> ColumnBuilder for NumColumn<T>
where
    T::Native: FromNumber,
{
    fn type_name(&self) -> String {
        self.ty.name().into()
    }
    fn push_null(&mut self) {
        self.validity.push(false, self.values.len());
        self.values.push(T::Native::default());
    }
    fn push_number(&mut self, n: Number) -> Result<(), String> {
        let v = T::Native::from_number(n)?;
        self.validity.push(true, self.values.len());
        self.values.push(v);
        Ok(())
    }
    fn finish(self: Box<Self>, field: &Field) -> Series {
        let this = *self;
        ChunkedArray::<T>::from_vec_validity(field.name.as_str().into(), this.values, this.validity.finish())
            .into_series()
    }
}

/// A list column (`width: None`) or a fixed-size array column.
struct ListColumn<T: PolarsNumericType> {
    values: Vec<T::Native>,
    /// List offsets into `values` (unused for arrays).
    offsets: Vec<i64>,
    validity: Validity,
    rows: usize,
    ty: Numeric,
    width: Option<usize>,
    /// Where the value being read started in `values`.
    start: usize,
}

impl<T: PolarsNumericType> ListColumn<T> {
    fn new(ty: Numeric, width: Option<usize>, capacity: usize) -> Self {
        let per_row = width.unwrap_or(4);
        ListColumn {
            values: Vec::with_capacity(capacity * per_row),
            offsets: vec![0],
            validity: Validity::default(),
            rows: 0,
            ty,
            width,
            start: 0,
        }
    }

    fn close_row(&mut self, valid: bool) {
        self.validity.push(valid, self.rows);
        self.rows += 1;
        self.offsets.push(self.values.len() as i64);
    }
}

impl<T: PolarsNumericType> ColumnBuilder for ListColumn<T>
where
    T::Native: FromNumber,
{
    fn type_name(&self) -> String {
        match self.width {
            Some(w) => format!("array<{}, {w}>", self.ty.name()),
            None => format!("list<{}>", self.ty.name()),
        }
    }
    fn push_null(&mut self) {
        if let Some(width) = self.width {
            // Array rows keep their width even when null.
            self.values.resize(self.values.len() + width, T::Native::default());
        }
        self.close_row(false);
    }
    fn items(&mut self) -> Option<&mut dyn ItemSink> {
        Some(self)
    }
    fn finish(self: Box<Self>, field: &Field) -> Series {
        let this = *self;
        let name: PlSmallStr = field.name.as_str().into();
        let arrow_item = this.ty.dtype().to_arrow(CompatLevel::newest());
        let values: Box<dyn Array> =
            PrimitiveArray::<T::Native>::new(arrow_item.clone(), this.values.into(), None).boxed();
        let validity = this.validity.finish();
        let array: Box<dyn Array> = match this.width {
            Some(width) => {
                let dtype = arrow_item.to_fixed_size_list(width, true);
                FixedSizeListArray::new(dtype, this.rows, values, validity).boxed()
            }
            None => {
                let dtype = polars_arrow::datatypes::ArrowDataType::LargeList(Box::new(
                    polars_arrow::datatypes::Field::new("item".into(), arrow_item, true),
                ));
                // Offsets are built monotonically, so this cannot fail.
                let offsets = unsafe { polars_arrow::offset::OffsetsBuffer::new_unchecked(this.offsets.into()) };
                polars_arrow::array::ListArray::<i64>::new(dtype, offsets, values, validity).boxed()
            }
        };
        // SAFETY: the arrow array was built for exactly this logical dtype.
        unsafe { Series::from_chunks_and_dtype_unchecked(name, vec![array], &field.ty.dtype()) }
    }
}

impl<T: PolarsNumericType> ItemSink for ListColumn<T>
where
    T::Native: FromNumber,
{
    fn begin(&mut self) {
        self.start = self.values.len();
    }
    fn push(&mut self, n: Number) -> Result<(), String> {
        self.values.push(T::Native::from_number(n)?);
        Ok(())
    }
    fn end(&mut self) -> Result<(), String> {
        if let Some(width) = self.width {
            let got = self.values.len() - self.start;
            if got != width {
                return Err(format!("expected {width} values, found {got}"));
            }
        }
        self.close_row(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType, Numeric, Schema};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", FieldType::Number(Numeric::F64)),
            Field::new("n", FieldType::Number(Numeric::I64)).nullable(),
            Field::new("s", FieldType::Str).nullable(),
            Field::new("v", FieldType::Array(Numeric::F32, 2)).nullable(),
            Field::new("l", FieldType::List(Numeric::U8)).nullable(),
            Field::new("b", FieldType::Bool).nullable(),
        ])
        .unwrap()
    }

    fn invalid(body: &str) -> RecordError {
        match decode(&schema(), body.as_bytes()) {
            Err(DecodeError::Invalid(e)) => e,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn decodes_every_kind_with_nulls() {
        let body = r#"[{"a": 1, "n": 9007199254740993, "s": "héllo ✓", "v": [1.5, 2], "l": [1,2,3], "b": true, "extra": {"x": [1]}},
                       {"a": 2.5, "n": null, "v": null, "l": [], "b": false}]"#;
        let df = decode(&schema(), body.as_bytes()).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("a").unwrap().f64().unwrap().get(1), Some(2.5));
        let n = df.column("n").unwrap().i64().unwrap();
        assert_eq!(n.get(0), Some(9007199254740993));
        assert_eq!(n.get(1), None);
        assert_eq!(df.column("s").unwrap().str().unwrap().get(0), Some("héllo ✓"));
        assert_eq!(df.column("s").unwrap().str().unwrap().get(1), None);
        let v = df.column("v").unwrap();
        assert_eq!(v.dtype(), &DataType::Array(Box::new(DataType::Float32), 2));
        assert_eq!(v.null_count(), 1);
        let l = df.column("l").unwrap().list().unwrap();
        assert_eq!(l.get_as_series(0).unwrap().len(), 3);
        assert_eq!(l.get_as_series(1).unwrap().len(), 0);
        assert_eq!(df.column("b").unwrap().bool().unwrap().get(0), Some(true));
    }

    #[test]
    fn single_record_object() {
        let df = decode(&schema(), br#"{"a": 3}"#).unwrap();
        assert_eq!(df.height(), 1);
        assert_eq!(df.column("n").unwrap().null_count(), 1);
    }

    #[test]
    fn errors_name_record_and_field() {
        let e = invalid(r#"[{"a": 1}, {"a": "x"}]"#);
        assert_eq!(e.record, Some(1));
        assert_eq!(e.field.as_deref(), Some("a"));
        assert!(e.message.contains("expected f64"), "{}", e.message);

        let e = invalid(r#"[{"a": 1}, {"n": 1}]"#);
        assert_eq!((e.record, e.field.as_deref()), (Some(1), Some("a")));
        assert_eq!(e.message, "missing field");

        let e = invalid(r#"[{"a": 1, "v": [1]}]"#);
        assert_eq!(e.message, "expected 2 values, found 1");

        let e = invalid(r#"[{"a": 1, "l": [300]}]"#);
        assert_eq!(e.message, "300 is out of range for u8");

        let e = invalid(r#"[{"a": 1, "n": 1.5}]"#);
        assert!(e.message.contains("integer"), "{}", e.message);

        let e = invalid(r#"[{"a": null}]"#);
        assert!(e.message.contains("not nullable"));

        let e = invalid(r#"[{"a": 1, "a": 2}]"#);
        assert!(e.message.contains("twice"));

        let e = invalid(r#"[1]"#);
        assert_eq!((e.record, e.field.as_deref()), (Some(0), None));

        let e = invalid(r#""x""#);
        assert_eq!(e.record, None);
    }

    #[test]
    fn malformed_json_is_not_a_record_error() {
        for body in ["", "[", "[{\"a\": NaN}]", "[{\"a\": 1}] x", "[{\"a\": Infinity}]"] {
            assert!(matches!(decode(&schema(), body.as_bytes()), Err(DecodeError::Malformed(_))), "{body}");
        }
        // Unknown fields are skipped without recursion, however deep.
        let deep = format!("{{\"a\": 1, \"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(decode(&schema(), deep.as_bytes()).unwrap().height(), 1);
        let deep = format!("{{\"a\": 1, \"x\": {}}}", "[".repeat(100_000));
        assert!(matches!(decode(&schema(), deep.as_bytes()), Err(DecodeError::Malformed(_))));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(decode(&schema(), deep.as_bytes()), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn integral_floats_fit_integers() {
        let df = decode(&schema(), br#"{"a": 1, "n": 3.0}"#).unwrap();
        assert_eq!(df.column("n").unwrap().i64().unwrap().get(0), Some(3));
    }
}
