//! Input tensors into the DataFrame of an endpoint's schema.
//!
//! Two layouts are accepted:
//! - **by name**: each schema field is an input of the same name; scalar
//!   fields (numbers, BOOL, BYTES as strings) take shape `[N]` or `[N, 1]`,
//!   array fields `array<T, k>` take `[N, k]`, list fields `[N, k]` (every
//!   row then has k items).
//! - **one matrix** (what MLServer and KServe users send): a single 2-D
//!   input `[N, F]` whose name is not a field, with F the number of fields,
//!   all scalar; column j is field j in schema order. A one-field schema
//!   takes its single input whatever its name.
//!
//! Numeric tensors are converted to the field's number type when every
//! value fits (FP32 into an f64 field, INT64 into i32 when in range, an
//! integral float into an integer); a tensor of the field's own type is
//! moved into the column without a copy.

use std::any::Any;

use polars::prelude::*;
use polars_arrow::array::{Array, FixedSizeListArray, ListArray, PrimitiveArray};

use super::error::{names, V2Error};
use super::tensor::{InputTensor, Values};
use crate::codec::columns::with_numeric;
use crate::schema::{Field, FieldType, Numeric, Schema};

/// Builds the schema's DataFrame from the request's inputs.
pub fn to_frame(schema: &Schema, inputs: Vec<InputTensor>) -> Result<DataFrame, V2Error> {
    for (i, input) in inputs.iter().enumerate() {
        if inputs[..i].iter().any(|other| other.name == input.name) {
            return Err(V2Error::DuplicateInput(input.name.clone()));
        }
    }
    let expected = || names(schema.fields().iter().map(|f| f.name.as_str()));
    let fields = schema.fields();

    if inputs.len() == 1 && schema.position(&inputs[0].name, 0).is_none() {
        let Some(input) = inputs.into_iter().next() else {
            return Err(V2Error::Malformed("no inputs".into()));
        };
        if fields.len() == 1 {
            let rows = rows_of(&input);
            let column = column_for(&fields[0], input, rows)?;
            return frame(rows, vec![column]);
        }
        let all_scalar = fields.iter().all(|f| is_scalar(f.ty));
        if all_scalar && input.shape.len() == 2 && input.shape[1] == fields.len() {
            let rows = input.shape[0];
            let width = fields.len();
            let mut columns = Vec::with_capacity(width);
            for (j, field) in fields.iter().enumerate() {
                let values = input.values.gather(j, width, rows);
                let column = InputTensor { name: input.name.clone(), shape: vec![rows], values };
                columns.push(column_for(field, column, rows).map_err(|e| rename(e, &input.name, &field.name))?);
            }
            return frame(rows, columns);
        }
        if all_scalar && input.shape.len() == 2 {
            let (width, shape) = (fields.len(), input.shape.clone());
            return Err(V2Error::MatrixWidth { input: input.name, expected: expected(), width, shape });
        }
        return Err(V2Error::UnknownInput { input: input.name, expected: expected() });
    }

    if let Some(unknown) = inputs.iter().find(|i| schema.position(&i.name, 0).is_none()) {
        return Err(V2Error::UnknownInput { input: unknown.name.clone(), expected: expected() });
    }
    let mut rows: Option<(String, usize)> = None;
    for input in &inputs {
        let n = rows_of(input);
        match &rows {
            None => rows = Some((input.name.clone(), n)),
            Some((first, r)) if *r != n => {
                return Err(V2Error::BatchMismatch {
                    first: first.clone(),
                    rows: *r,
                    input: input.name.clone(),
                    found: n,
                })
            }
            Some(_) => {}
        }
    }
    let rows = rows.map(|(_, n)| n).unwrap_or(0);
    let mut slots: Vec<Option<InputTensor>> = fields.iter().map(|_| None).collect();
    for input in inputs {
        if let Some(index) = schema.position(&input.name, 0) {
            slots[index] = Some(input);
        }
    }
    let mut columns = Vec::with_capacity(fields.len());
    for (field, slot) in fields.iter().zip(slots) {
        match slot {
            Some(input) => columns.push(column_for(field, input, rows)?),
            None if field.nullable => {
                columns.push(Series::full_null(field.name.as_str().into(), rows, &field.ty.dtype()).into_column())
            }
            None => return Err(V2Error::MissingInput { input: field.name.clone(), expected: expected() }),
        }
    }
    frame(rows, columns)
}

fn frame(rows: usize, columns: Vec<Column>) -> Result<DataFrame, V2Error> {
    DataFrame::new(rows, columns).map_err(|e| V2Error::Malformed(e.to_string()))
}

/// In the matrix layout, errors name the input and the column it stood for.
fn rename(e: V2Error, input: &str, field: &str) -> V2Error {
    match e {
        V2Error::BadData { reason, .. } => {
            V2Error::BadData { input: input.into(), reason: format!("column '{field}': {reason}") }
        }
        V2Error::TypeMismatch { datatype, field: ty, .. } => {
            V2Error::TypeMismatch { input: input.into(), datatype, field: format!("{ty} ('{field}')") }
        }
        other => other,
    }
}

fn is_scalar(ty: FieldType) -> bool {
    matches!(ty, FieldType::Bool | FieldType::Number(_) | FieldType::Str)
}

fn rows_of(input: &InputTensor) -> usize {
    input.shape.first().copied().unwrap_or(0)
}

/// One column from one input, checking the input's shape against the field.
fn column_for(field: &Field, input: InputTensor, rows: usize) -> Result<Column, V2Error> {
    let shape_error = |input: &InputTensor, reason: String| V2Error::BadShape {
        input: input.name.clone(),
        shape: input.shape.iter().map(|&d| d as i64).collect(),
        reason,
    };
    let name: PlSmallStr = field.name.as_str().into();
    let mismatch = |input: &InputTensor| V2Error::TypeMismatch {
        input: input.name.clone(),
        datatype: input.datatype().to_string(),
        field: field.ty.to_string(),
    };
    let series = match field.ty {
        FieldType::Bool | FieldType::Number(_) | FieldType::Str => {
            let ok = matches!(input.shape.as_slice(), [_] | [_, 1]);
            if !ok {
                return Err(shape_error(
                    &input,
                    format!("field '{}' is a scalar: send shape [N] or [N, 1]", field.name),
                ));
            }
            match (field.ty, input.values) {
                (FieldType::Bool, Values::Bool(v)) => BooleanChunked::from_slice(name, &v).into_series(),
                (FieldType::Str, Values::Bytes(v)) => {
                    let mut strings = Vec::with_capacity(v.len());
                    for (i, bytes) in v.iter().enumerate() {
                        match std::str::from_utf8(bytes) {
                            Ok(s) => strings.push(s),
                            Err(_) => {
                                return Err(V2Error::BadData {
                                    input: input.name,
                                    reason: format!("element {i} is not valid UTF-8 text"),
                                })
                            }
                        }
                    }
                    StringChunked::from_slice(name, &strings).into_series()
                }
                (FieldType::Number(n), values) if is_numeric(&values) => numeric_series(name, n, values, &input.name)?,
                (_, values) => {
                    let input = InputTensor { values, ..input };
                    return Err(mismatch(&input));
                }
            }
        }
        FieldType::Array(n, _) | FieldType::List(n) => {
            let (fixed, width) = match field.ty {
                FieldType::Array(_, width) => (true, width),
                _ => (false, 0),
            };
            let k = match input.shape.as_slice() {
                [_, k] if !fixed || *k == width => *k,
                _ if fixed => {
                    return Err(shape_error(
                        &input,
                        format!("field '{}' is array<{}, {width}>: send shape [N, {width}]", field.name, n.name()),
                    ))
                }
                _ => return Err(shape_error(&input, format!("field '{}' is a list: send shape [N, k]", field.name))),
            };
            if !is_numeric(&input.values) {
                return Err(mismatch(&input));
            }
            nested_series(name, field.ty, n, k, rows, input.values, &input.name)?
        }
    };
    Ok(series.into_column())
}

fn is_numeric(values: &Values) -> bool {
    !matches!(values, Values::Bool(_) | Values::Bytes(_))
}

/// A number read from any numeric tensor, for conversion.
#[derive(Clone, Copy)]
enum Num {
    I(i64),
    U(u64),
    F(f64),
}

/// A column element type converted to from other numeric datatypes.
trait Element: Copy + 'static {
    const NAME: &'static str;
    fn from_num(n: Num) -> Option<Self>;
}

macro_rules! int_element {
    ($($t:ty => $name:literal),*) => {$(
        impl Element for $t {
            const NAME: &'static str = $name;
            fn from_num(n: Num) -> Option<Self> {
                match n {
                    Num::I(v) => <$t>::try_from(v).ok(),
                    Num::U(v) => <$t>::try_from(v).ok(),
                    Num::F(v) if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 => Some(v as $t),
                    Num::F(_) => None,
                }
            }
        }
    )*};
}

int_element!(i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64");

impl Element for f64 {
    const NAME: &'static str = "f64";
    fn from_num(n: Num) -> Option<Self> {
        Some(match n {
            Num::I(v) => v as f64,
            Num::U(v) => v as f64,
            Num::F(v) => v,
        })
    }
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    fn from_num(n: Num) -> Option<Self> {
        match n {
            Num::I(v) => Some(v as f32),
            Num::U(v) => Some(v as f32),
            Num::F(v) if v.is_finite() && v.abs() > f32::MAX as f64 => None,
            Num::F(v) => Some(v as f32),
        }
    }
}

/// The values as `Vec<T>`: moved when already `T`, else converted with a
/// range check per value.
fn convert<T: Element>(values: Values, input: &str) -> Result<Vec<T>, V2Error> {
    fn go<S: Copy + 'static, T: Element>(
        v: Vec<S>,
        input: &str,
        num: impl Fn(S) -> Num,
        show: impl Fn(S) -> String,
    ) -> Result<Vec<T>, V2Error> {
        let mut slot = Some(v);
        if let Some(same) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<T>>>() {
            return Ok(same.take().unwrap_or_default());
        }
        let v = slot.unwrap_or_default();
        v.iter()
            .enumerate()
            .map(|(i, &x)| {
                T::from_num(num(x)).ok_or_else(|| V2Error::BadData {
                    input: input.into(),
                    reason: format!("element {i}: {} does not fit {}", show(x), T::NAME),
                })
            })
            .collect()
    }
    match values {
        Values::U8(v) => go(v, input, |x| Num::U(x as u64), |x| x.to_string()),
        Values::U16(v) => go(v, input, |x| Num::U(x as u64), |x| x.to_string()),
        Values::U32(v) => go(v, input, |x| Num::U(x as u64), |x| x.to_string()),
        Values::U64(v) => go(v, input, Num::U, |x| x.to_string()),
        Values::I8(v) => go(v, input, |x| Num::I(x as i64), |x| x.to_string()),
        Values::I16(v) => go(v, input, |x| Num::I(x as i64), |x| x.to_string()),
        Values::I32(v) => go(v, input, |x| Num::I(x as i64), |x| x.to_string()),
        Values::I64(v) => go(v, input, Num::I, |x| x.to_string()),
        Values::F32(v) => go(v, input, |x| Num::F(x as f64), |x| x.to_string()),
        Values::F64(v) => go(v, input, Num::F, |x| x.to_string()),
        Values::Bool(_) | Values::Bytes(_) => {
            Err(V2Error::BadData { input: input.into(), reason: "expected numbers".into() })
        }
    }
}

fn numeric_series(name: PlSmallStr, n: Numeric, values: Values, input: &str) -> Result<Series, V2Error> {
    with_numeric!(n, T => {
        let v = convert::<<T as PolarsNumericType>::Native>(values, input)?;
        Ok(ChunkedArray::<T>::from_vec(name, v).into_series())
    })
}

/// An `array<T, k>` or `list<T>` column of `rows` rows of `k` items.
fn nested_series(
    name: PlSmallStr,
    ty: FieldType,
    n: Numeric,
    k: usize,
    rows: usize,
    values: Values,
    input: &str,
) -> Result<Series, V2Error> {
    with_numeric!(n, T => {
        let v = convert::<<T as PolarsNumericType>::Native>(values, input)?;
        let arrow_item = n.dtype().to_arrow(CompatLevel::newest());
        let items: Box<dyn Array> = PrimitiveArray::new(arrow_item.clone(), v.into(), None).boxed();
        let array: Box<dyn Array> = match ty {
            FieldType::Array(..) => {
                FixedSizeListArray::new(arrow_item.to_fixed_size_list(k, true), rows, items, None).boxed()
            }
            _ => {
                let dtype = polars_arrow::datatypes::ArrowDataType::LargeList(Box::new(
                    polars_arrow::datatypes::Field::new("item".into(), arrow_item, true),
                ));
                let offsets: Vec<i64> = (0..=rows).map(|r| (r * k) as i64).collect();
                // SAFETY: offsets start at 0 and grow by `k` per row, so they are
                // monotonically increasing and end at `rows * k`, the items' length.
                let offsets = unsafe { polars_arrow::offset::OffsetsBuffer::new_unchecked(offsets.into()) };
                ListArray::<i64>::new(dtype, offsets, items, None).boxed()
            }
        };
        // SAFETY: the arrow array was built for exactly this logical dtype.
        Ok(unsafe { Series::from_chunks_and_dtype_unchecked(name, vec![array], &ty.dtype()) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::tensor::Source;

    fn input(name: &str, datatype: &str, shape: &[i64], data: &str) -> InputTensor {
        let raw = serde_json::value::RawValue::from_string(data.to_owned()).unwrap();
        InputTensor::new(name.into(), datatype, shape, Source::Json(&raw)).unwrap()
    }

    fn iris() -> Schema {
        Schema::new(
            ["sepal_length", "sepal_width", "petal_length", "petal_width"]
                .iter()
                .map(|n| Field::new(*n, FieldType::Number(Numeric::F64)))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn kserve_iris_matrix_becomes_the_schema_columns() {
        let x = input("input-0", "FP32", &[2, 4], "[[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]");
        let df = to_frame(&iris(), vec![x]).unwrap();
        assert_eq!(df.shape(), (2, 4));
        let petal = df.column("petal_length").unwrap().f64().unwrap();
        assert_eq!(petal.get(0), Some(4.8f32 as f64));
        assert_eq!(df.column("sepal_length").unwrap().f64().unwrap().get(1), Some(6.0));
    }

    #[test]
    fn inputs_by_name_in_any_order() {
        let s = Schema::new(vec![
            Field::new("a", FieldType::Number(Numeric::I64)),
            Field::new("s", FieldType::Str),
            Field::new("b", FieldType::Bool),
            Field::new("v", FieldType::Array(Numeric::F32, 2)),
            Field::new("l", FieldType::List(Numeric::U8)),
        ])
        .unwrap();
        let df = to_frame(
            &s,
            vec![
                input("v", "FP64", &[2, 2], "[[1, 2], [3, 4]]"),
                input("b", "BOOL", &[2, 1], "[true, false]"),
                input("s", "BYTES", &[2], r#"["x", "y"]"#),
                input("a", "INT64", &[2], "[1, 2]"),
                input("l", "UINT8", &[2, 3], "[1, 2, 3, 4, 5, 6]"),
            ],
        )
        .unwrap();
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["a", "s", "b", "v", "l"]);
        assert_eq!(df.column("s").unwrap().str().unwrap().get(1), Some("y"));
        assert_eq!(df.column("b").unwrap().bool().unwrap().get(0), Some(true));
        let v = df.column("v").unwrap();
        assert_eq!(v.dtype(), &DataType::Array(Box::new(DataType::Float32), 2));
        match v.get(1).unwrap() {
            AnyValue::Array(row, 2) => {
                assert_eq!(row.f32().unwrap().iter().collect::<Vec<_>>(), [Some(3.0), Some(4.0)])
            }
            other => panic!("{other:?}"),
        }
        let l = df.column("l").unwrap().list().unwrap();
        let row = l.get_as_series(1).unwrap();
        assert_eq!(row.u8().unwrap().iter().collect::<Vec<_>>(), [Some(4), Some(5), Some(6)]);
    }

    #[test]
    fn a_one_field_schema_takes_any_single_input() {
        let s = Schema::new(vec![Field::new("text", FieldType::Str)]).unwrap();
        let df = to_frame(&s, vec![input("input-0", "BYTES", &[1], r#"["hi"]"#)]).unwrap();
        assert_eq!(df.column("text").unwrap().str().unwrap().get(0), Some("hi"));
    }

    #[test]
    fn same_type_moves_and_other_types_convert_when_they_fit() {
        let s = Schema::new(vec![Field::new("n", FieldType::Number(Numeric::U8))]).unwrap();
        let df = to_frame(&s, vec![input("n", "INT64", &[2], "[1, 255]")]).unwrap();
        assert_eq!(df.column("n").unwrap().u8().unwrap().get(1), Some(255));
        let e = to_frame(&s, vec![input("n", "INT64", &[2], "[1, 256]")]).unwrap_err();
        assert_eq!(e.to_string(), "input 'n': element 1: 256 does not fit u8");
        let e = to_frame(&s, vec![input("n", "FP32", &[1], "[1.5]")]).unwrap_err();
        assert!(e.to_string().contains("1.5 does not fit u8"), "{e}");
        let e = to_frame(&s, vec![input("n", "BOOL", &[1], "[true]")]).unwrap_err();
        assert_eq!(e.to_string(), "input 'n': datatype BOOL does not fit the model's u8 field");
    }

    #[test]
    fn missing_unknown_duplicate_and_mismatched_inputs() {
        let s = Schema::new(vec![
            Field::new("a", FieldType::Number(Numeric::F64)),
            Field::new("b", FieldType::Number(Numeric::F64)),
            Field::new("c", FieldType::Number(Numeric::F64)).nullable(),
        ])
        .unwrap();
        let e = to_frame(&s, vec![input("a", "FP64", &[1], "[1]")]).unwrap_err();
        assert_eq!(e.to_string(), "missing input 'b' (the model takes 'a', 'b' and 'c')");
        let e = to_frame(&s, vec![input("a", "FP64", &[1], "[1]"), input("z", "FP64", &[1], "[1]")]).unwrap_err();
        assert!(e.to_string().starts_with("unknown input 'z'"), "{e}");
        let e = to_frame(&s, vec![input("a", "FP64", &[1], "[1]"), input("a", "FP64", &[1], "[1]")]).unwrap_err();
        assert_eq!(e.to_string(), "input 'a' appears twice");
        let e = to_frame(&s, vec![input("a", "FP64", &[1], "[1]"), input("b", "FP64", &[2], "[1, 2]")]).unwrap_err();
        assert_eq!(e.to_string(), "inputs disagree on the batch size: 'a' has 1 rows but 'b' has 2");
        let e = to_frame(&s, vec![input("a", "FP64", &[1, 2], "[1, 2]"), input("b", "FP64", &[1], "[1]")]).unwrap_err();
        assert!(e.to_string().contains("field 'a' is a scalar: send shape [N] or [N, 1]"), "{e}");
        // A nullable field left out is a null column.
        let df = to_frame(&s, vec![input("a", "FP64", &[1], "[1]"), input("b", "FP64", &[1], "[2]")]).unwrap();
        assert_eq!(df.column("c").unwrap().null_count(), 1);
        // A single unnamed matrix of the wrong width says the width it needs.
        let e = to_frame(&s, vec![input("x", "FP64", &[1, 2], "[1, 2]")]).unwrap_err();
        assert!(e.to_string().starts_with("input 'x' is not one of the model's inputs"), "{e}");
        assert!(e.to_string().contains("needs F = 3 columns"), "{e}");
        assert!(e.to_string().contains("its shape is [1, 2]"), "{e}");
        // Anything else of another name is an unknown input.
        let e = to_frame(&s, vec![input("x", "FP64", &[2], "[1, 2]")]).unwrap_err();
        assert!(e.to_string().starts_with("unknown input 'x'"), "{e}");
    }

    #[test]
    fn array_width_is_checked() {
        let s = Schema::new(vec![Field::new("v", FieldType::Array(Numeric::F32, 3))]).unwrap();
        let e = to_frame(&s, vec![input("v", "FP32", &[1, 2], "[1, 2]")]).unwrap_err();
        assert!(e.to_string().contains("send shape [N, 3]"), "{e}");
    }

    #[test]
    fn matrix_errors_name_the_column() {
        let s = Schema::new(vec![
            Field::new("a", FieldType::Number(Numeric::U8)),
            Field::new("b", FieldType::Number(Numeric::U8)),
        ])
        .unwrap();
        let e = to_frame(&s, vec![input("m", "INT32", &[1, 2], "[1, 999]")]).unwrap_err();
        assert_eq!(e.to_string(), "input 'm': column 'b': element 0: 999 does not fit u8");
    }
}
