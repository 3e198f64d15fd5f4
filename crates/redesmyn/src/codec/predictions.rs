//! Predictions to JSON, written straight from the Polars columns.
//!
//! Numbers are written with `itoa` / `ryu` (through serde_json), non-finite
//! floats as `null`, lists and arrays as JSON arrays, several output columns
//! as one object per row. A `Binary` column holds JSON text produced by a
//! handler (for values that have no column type) and is written as is.

use polars::prelude::*;

use crate::handler::Predictions;

/// Writes `{"id":"<id>","predictions":[...]}`.
pub fn response_body(id: &str, predictions: &Predictions) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + predictions.len() * 12);
    out.extend_from_slice(b"{\"id\":");
    write_str(&mut out, id);
    out.extend_from_slice(b",\"predictions\":");
    write_predictions(&mut out, predictions);
    out.push(b'}');
    out
}

pub fn write_predictions(out: &mut Vec<u8>, predictions: &Predictions) {
    match predictions {
        Predictions::Column(series) => write_series(out, series),
        Predictions::Columns(frame) => {
            let columns: Vec<&Series> = frame.columns().iter().map(|c| c.as_materialized_series()).collect();
            let names: Vec<Vec<u8>> = columns
                .iter()
                .map(|s| {
                    let mut key = Vec::new();
                    write_str(&mut key, s.name());
                    key.push(b':');
                    key
                })
                .collect();
            out.push(b'[');
            for row in 0..frame.height() {
                if row > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                for (i, (series, key)) in columns.iter().zip(&names).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key);
                    write_value(out, series, row);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
    }
}

/// Writes the prediction of one row: a value, or an object of outputs.
pub fn write_row(out: &mut Vec<u8>, predictions: &Predictions, row: usize) {
    match predictions {
        Predictions::Column(series) => write_value(out, series, row),
        Predictions::Columns(frame) => {
            out.push(b'{');
            for (i, column) in frame.columns().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, column.name());
                out.push(b':');
                write_value(out, column.as_materialized_series(), row);
            }
            out.push(b'}');
        }
    }
}

/// Writes a whole series as a JSON array.
pub fn write_series(out: &mut Vec<u8>, series: &Series) {
    out.push(b'[');
    macro_rules! each {
        ($ca:expr, $write:expr) => {
            for (i, v) in $ca.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match v {
                    Some(v) => $write(&mut *out, v),
                    None => out.extend_from_slice(b"null"),
                }
            }
        };
    }
    match series.dtype() {
        DataType::Float64 => each!(series.f64().expect("dtype checked"), write_f64),
        DataType::Float32 => each!(series.f32().expect("dtype checked"), write_f32),
        DataType::Int64 => each!(series.i64().expect("dtype checked"), write_int),
        DataType::Int32 => each!(series.i32().expect("dtype checked"), write_int),
        DataType::Boolean => each!(series.bool().expect("dtype checked"), write_bool),
        DataType::String => each!(series.str().expect("dtype checked"), write_str),
        _ => {
            for row in 0..series.len() {
                if row > 0 {
                    out.push(b',');
                }
                write_value(out, series, row);
            }
        }
    }
    out.push(b']');
}

/// Writes one value of any supported dtype.
fn write_value(out: &mut Vec<u8>, series: &Series, row: usize) {
    let value = match series.get(row) {
        Ok(v) => v,
        Err(_) => {
            out.extend_from_slice(b"null");
            return;
        }
    };
    write_any(out, &value);
}

fn write_any(out: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::Null => out.extend_from_slice(b"null"),
        AnyValue::Boolean(b) => write_bool(out, *b),
        AnyValue::Int8(v) => write_int(out, *v),
        AnyValue::Int16(v) => write_int(out, *v),
        AnyValue::Int32(v) => write_int(out, *v),
        AnyValue::Int64(v) => write_int(out, *v),
        AnyValue::UInt8(v) => write_int(out, *v),
        AnyValue::UInt16(v) => write_int(out, *v),
        AnyValue::UInt32(v) => write_int(out, *v),
        AnyValue::UInt64(v) => write_int(out, *v),
        AnyValue::Float32(v) => write_f32(out, *v),
        AnyValue::Float64(v) => write_f64(out, *v),
        AnyValue::String(s) => write_str(out, s),
        AnyValue::StringOwned(s) => write_str(out, s),
        AnyValue::Binary(b) => out.extend_from_slice(b),
        AnyValue::BinaryOwned(b) => out.extend_from_slice(b),
        AnyValue::List(inner) => write_series(out, inner),
        AnyValue::Array(inner, _) => write_series(out, inner),
        other => {
            // Dates, decimals and the like: their display form, as a string.
            write_str(out, &other.to_string());
        }
    }
}

fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn write_int<I: serde::Serialize>(out: &mut Vec<u8>, v: I) {
    // serde_json writes integers with itoa; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &v);
}

/// Floats as JavaScript prints them: shortest round-trip digits, whole
/// numbers without a trailing `.0`, and `null` for NaN and infinities.
fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.extend_from_slice(buf.format_finite(v).trim_end_matches(".0").as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.extend_from_slice(buf.format_finite(v).trim_end_matches(".0").as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(p: &Predictions) -> String {
        let mut out = Vec::new();
        write_predictions(&mut out, p);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scalars_nulls_and_non_finite() {
        let s = Series::new("p".into(), [Some(1.5), None, Some(f64::NAN), Some(2.0)]);
        assert_eq!(json(&Predictions::Column(s)), "[1.5,null,null,2]");
        let s = Series::new("p".into(), [1e20, -0.0, 100.0, 1e-7]);
        assert_eq!(json(&Predictions::Column(s)), "[1e20,-0,100,1e-7]");
        let s = Series::new("p".into(), [Some("a\"b"), None]);
        assert_eq!(json(&Predictions::Column(s)), r#"["a\"b",null]"#);
        let s = Series::new("p".into(), [u64::MAX]);
        assert_eq!(json(&Predictions::Column(s)), "[18446744073709551615]");
    }

    #[test]
    fn several_columns_become_objects() {
        let df =
            DataFrame::new(2, vec![Column::new("label".into(), ["a", "b"]), Column::new("p".into(), [0.25f32, 0.5])])
                .unwrap();
        assert_eq!(json(&Predictions::Columns(df)), r#"[{"label":"a","p":0.25},{"label":"b","p":0.5}]"#);
    }

    #[test]
    fn lists_and_raw_json() {
        let inner = Series::new("".into(), [1i32, 2]);
        let s = Series::new("p".into(), [inner.clone(), inner.slice(1, 1)]);
        assert_eq!(json(&Predictions::Column(s)), "[[1,2],[2]]");
        let raw = Series::new("p".into(), [b"{\"a\":1}".as_slice()]);
        assert_eq!(json(&Predictions::Column(raw)), r#"[{"a":1}]"#);
    }

    #[test]
    fn one_row_is_a_value_or_an_object() {
        let mut out = Vec::new();
        write_row(&mut out, &Predictions::Column(Series::new("p".into(), ["a", "b"])), 1);
        assert_eq!(out, br#""b""#);
        let df = DataFrame::new(1, vec![Column::new("w".into(), ["x"]), Column::new("n".into(), [2i64])]).unwrap();
        out.clear();
        write_row(&mut out, &Predictions::Columns(df), 0);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"w":"x","n":2}"#);
    }

    #[test]
    fn response_envelope() {
        let s = Series::new("p".into(), [1i64]);
        let body = response_body("r-1", &Predictions::Column(s));
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"id":"r-1","predictions":[1]}"#);
    }
}
