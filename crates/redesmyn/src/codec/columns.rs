//! Column builders: values in, Polars columns out, whatever the wire format.
//!
//! A decoder (records JSON today; V2 tensors, binary tensors, protobuf or
//! Arrow later) walks its payload and appends each value to the builder of
//! its field. Builders check the value against the field's type, refuse what
//! would not round-trip (fractions into integers, values out of range), and
//! finish into a Series with the schema's dtype. They never see the format.

use std::fmt;

use polars::prelude::*;
use polars_arrow::array::{Array, FixedSizeListArray, PrimitiveArray};
use polars_arrow::bitmap::MutableBitmap;

use crate::schema::{Field, FieldType, Numeric, Schema};

/// A number as the decoder read it (JSON numbers are one of these three).
#[derive(Debug, Clone, Copy)]
pub enum Number {
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
pub fn describe_str(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("the string \"{cut}…\"")
    } else {
        format!("the string \"{s}\"")
    }
}

/// Converts a JSON number to a column's native type, refusing what would
/// not round-trip (fractions into integers, values out of range).
pub trait FromNumber: Sized {
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
pub trait ColumnBuilder {
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
pub trait ItemSink {
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
pub(crate) use with_numeric;

pub fn builder_for(field: &Field, capacity: usize) -> Box<dyn ColumnBuilder> {
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
                // SAFETY: offsets are pushed in order from 0, each the previous plus a row's length: monotonic.
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

/// One builder per field of `schema`, in field order.
pub fn builders(schema: &Schema, capacity: usize) -> Vec<Box<dyn ColumnBuilder>> {
    schema.fields().iter().map(|f| builder_for(f, capacity)).collect()
}

/// The frame of `rows` rows the builders hold, columns in the schema's order.
pub fn finish(schema: &Schema, builders: Vec<Box<dyn ColumnBuilder>>, rows: usize) -> PolarsResult<DataFrame> {
    let columns =
        schema.fields().iter().zip(builders).map(|(field, builder)| builder.finish(field).into_column()).collect();
    DataFrame::new(rows, columns)
}
