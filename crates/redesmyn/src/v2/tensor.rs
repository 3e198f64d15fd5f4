//! Typed tensor buffers. A tensor's elements are kept flat and row-major in
//! one `Vec` of their native type ([`Values`]), however they arrived: JSON
//! `data` (flat or nested) is read once straight into that `Vec`, raw
//! little-endian bytes are copied into it, gRPC typed contents are moved or
//! narrowed into it. Building a Polars column from it is then a move.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use super::datatype::Datatype;
use super::error::V2Error;

/// The elements of one tensor, flat and row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

/// Expands `$body` with `$v` bound to the inner `Vec` of every variant.
macro_rules! each_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::Bool($v) => $body,
            Values::U8($v) => $body,
            Values::U16($v) => $body,
            Values::U32($v) => $body,
            Values::U64($v) => $body,
            Values::I8($v) => $body,
            Values::I16($v) => $body,
            Values::I32($v) => $body,
            Values::I64($v) => $body,
            Values::F32($v) => $body,
            Values::F64($v) => $body,
            Values::Bytes($v) => $body,
        }
    };
}

/// Same, rebuilding the same variant from `$body`'s `Vec`.
macro_rules! map_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::Bool($v) => Values::Bool($body),
            Values::U8($v) => Values::U8($body),
            Values::U16($v) => Values::U16($body),
            Values::U32($v) => Values::U32($body),
            Values::U64($v) => Values::U64($body),
            Values::I8($v) => Values::I8($body),
            Values::I16($v) => Values::I16($body),
            Values::I32($v) => Values::I32($body),
            Values::I64($v) => Values::I64($body),
            Values::F32($v) => Values::F32($body),
            Values::F64($v) => Values::F64($body),
            Values::Bytes($v) => Values::Bytes($body),
        }
    };
}

impl Values {
    pub fn len(&self) -> usize {
        each_values!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> Datatype {
        match self {
            Values::Bool(_) => Datatype::Bool,
            Values::U8(_) => Datatype::U8,
            Values::U16(_) => Datatype::U16,
            Values::U32(_) => Datatype::U32,
            Values::U64(_) => Datatype::U64,
            Values::I8(_) => Datatype::I8,
            Values::I16(_) => Datatype::I16,
            Values::I32(_) => Datatype::I32,
            Values::I64(_) => Datatype::I64,
            Values::F32(_) => Datatype::F32,
            Values::F64(_) => Datatype::F64,
            Values::Bytes(_) => Datatype::Bytes,
        }
    }

    /// Elements `start, start + stride, …` (`count` of them): column `start`
    /// of a row-major `[count, stride]` matrix.
    pub fn gather(&self, start: usize, stride: usize, count: usize) -> Values {
        map_values!(self, v => v.iter().skip(start).step_by(stride.max(1)).take(count).cloned().collect())
    }

    /// Appends `other`, which must have the same datatype (else returns it).
    pub fn extend(&mut self, other: Values) -> Result<(), Values> {
        macro_rules! ext {
            ($($var:ident),*) => {
                match (self, other) {
                    $((Values::$var(a), Values::$var(b)) => { a.extend(b); Ok(()) })*
                    (_, other) => Err(other),
                }
            };
        }
        ext!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, F32, F64, Bytes)
    }

    /// Reads the raw layout: little-endian elements, BOOL one byte each,
    /// BYTES elements each a 4-byte little-endian length then the bytes.
    /// The byte length must match `count` elements exactly.
    pub fn from_raw(datatype: Datatype, bytes: &[u8], count: usize) -> Result<Values, RawError> {
        macro_rules! le {
            ($t:ty, $var:ident) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                check_len(bytes.len(), count, SIZE)?;
                Values::$var(
                    bytes
                        .chunks_exact(SIZE)
                        .map(|c| {
                            let mut a = [0u8; SIZE];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            }};
        }
        Ok(match datatype {
            Datatype::Bool => {
                check_len(bytes.len(), count, 1)?;
                Values::Bool(bytes.iter().map(|&b| b != 0).collect())
            }
            Datatype::U8 => {
                check_len(bytes.len(), count, 1)?;
                Values::U8(bytes.to_vec())
            }
            Datatype::I8 => {
                check_len(bytes.len(), count, 1)?;
                Values::I8(bytes.iter().map(|&b| b as i8).collect())
            }
            Datatype::U16 => le!(u16, U16),
            Datatype::U32 => le!(u32, U32),
            Datatype::U64 => le!(u64, U64),
            Datatype::I16 => le!(i16, I16),
            Datatype::I32 => le!(i32, I32),
            Datatype::I64 => le!(i64, I64),
            Datatype::F32 => le!(f32, F32),
            Datatype::F64 => le!(f64, F64),
            Datatype::Bytes => Values::Bytes(read_bytes_elements(bytes, count)?),
            Datatype::F16 | Datatype::Bf16 => return Err(RawError::Unsupported),
        })
    }

    /// Appends the raw layout of these values to `out` (see [`Values::from_raw`]).
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        macro_rules! le {
            ($v:expr) => {{
                out.reserve($v.len() * 8);
                for x in $v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }};
        }
        match self {
            Values::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
            Values::U8(v) => out.extend_from_slice(v),
            Values::I8(v) => out.extend(v.iter().map(|&b| b as u8)),
            Values::U16(v) => le!(v),
            Values::U32(v) => le!(v),
            Values::U64(v) => le!(v),
            Values::I16(v) => le!(v),
            Values::I32(v) => le!(v),
            Values::I64(v) => le!(v),
            Values::F32(v) => le!(v),
            Values::F64(v) => le!(v),
            Values::Bytes(v) => {
                for item in v {
                    out.extend_from_slice(&(item.len() as u32).to_le_bytes());
                    out.extend_from_slice(item);
                }
            }
        }
    }

    /// The raw layout as a new buffer.
    pub fn to_raw(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_raw(&mut out);
        out
    }

    /// Reads JSON `data`, flat or nested to any depth, as `datatype`.
    pub fn from_json(datatype: Datatype, data: &RawValue) -> Result<Values, String> {
        fn read<T: JsonElement>(data: &RawValue) -> Result<Vec<T>, String> {
            let mut out = Vec::new();
            let mut error = None;
            let mut de = serde_json::Deserializer::from_str(data.get());
            let result = Flat { out: &mut out, error: &mut error }.deserialize(&mut de);
            match (result, error) {
                (Ok(()), _) => Ok(out),
                (Err(_), Some(message)) => Err(message),
                (Err(e), None) => Err(e.to_string()),
            }
        }
        Ok(match datatype {
            Datatype::Bool => Values::Bool(read(data)?),
            Datatype::U8 => Values::U8(read(data)?),
            Datatype::U16 => Values::U16(read(data)?),
            Datatype::U32 => Values::U32(read(data)?),
            Datatype::U64 => Values::U64(read(data)?),
            Datatype::I8 => Values::I8(read(data)?),
            Datatype::I16 => Values::I16(read(data)?),
            Datatype::I32 => Values::I32(read(data)?),
            Datatype::I64 => Values::I64(read(data)?),
            Datatype::F32 => Values::F32(read(data)?),
            Datatype::F64 => Values::F64(read(data)?),
            Datatype::Bytes => Values::Bytes(read(data)?),
            Datatype::F16 | Datatype::Bf16 => return Err(format!("{datatype} has no JSON form")),
        })
    }
}

/// JSON output: a flat array; BYTES elements as strings (invalid UTF-8 is
/// replaced: ask for binary output to get exact bytes); NaN and infinities
/// as `null`.
impl Serialize for Values {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        match self {
            Values::Bytes(v) => {
                for item in v {
                    seq.serialize_element(&String::from_utf8_lossy(item))?;
                }
            }
            other => each_values!(other, v => {
                for x in v {
                    seq.serialize_element(x)?;
                }
            }),
        }
        seq.end()
    }
}

/// Why a raw buffer does not hold `count` elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    /// Fixed-size elements: the byte count is wrong.
    Length {
        expected: usize,
        found: usize,
    },
    /// BYTES elements: the framing is wrong.
    Bytes(String),
    Unsupported,
}

fn check_len(found: usize, count: usize, size: usize) -> Result<(), RawError> {
    let expected = count.saturating_mul(size);
    if found != expected {
        return Err(RawError::Length { expected, found });
    }
    Ok(())
}

fn read_bytes_elements(mut bytes: &[u8], count: usize) -> Result<Vec<Vec<u8>>, RawError> {
    // Every element takes at least its 4-byte length: bound the allocation.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 4));
    for index in 0..count {
        if bytes.len() < 4 {
            return Err(RawError::Bytes(format!("BYTES element {index} of {count}: the data ends inside its length")));
        }
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        bytes = &bytes[4..];
        if bytes.len() < len {
            return Err(RawError::Bytes(format!(
                "BYTES element {index} of {count}: length {len} runs past the data ({} bytes left)",
                bytes.len()
            )));
        }
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    if !bytes.is_empty() {
        return Err(RawError::Bytes(format!("{} bytes follow the last of {count} BYTES elements", bytes.len())));
    }
    Ok(out)
}

/// One element type read from JSON. The defaults refuse the JSON type.
trait JsonElement: Sized {
    const NAME: &'static str;
    fn from_bool(b: bool) -> Result<Self, String> {
        Err(format!("expected {}, found the boolean {b}", Self::NAME))
    }
    fn from_i64(v: i64) -> Result<Self, String> {
        Err(format!("expected {}, found the number {v}", Self::NAME))
    }
    fn from_u64(v: u64) -> Result<Self, String> {
        Err(format!("expected {}, found the number {v}", Self::NAME))
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        Err(format!("expected {}, found the number {v}", Self::NAME))
    }
    fn from_str(s: &str) -> Result<Self, String> {
        let shown: String = s.chars().take(40).collect();
        Err(format!("expected {}, found the string \"{shown}\"", Self::NAME))
    }
}

impl JsonElement for bool {
    const NAME: &'static str = "BOOL";
    fn from_bool(b: bool) -> Result<Self, String> {
        Ok(b)
    }
}

impl JsonElement for Vec<u8> {
    const NAME: &'static str = "BYTES (a string)";
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(s.as_bytes().to_vec())
    }
}

macro_rules! json_int {
    ($($t:ty => $name:literal),*) => {$(
        impl JsonElement for $t {
            const NAME: &'static str = $name;
            fn from_i64(v: i64) -> Result<Self, String> {
                <$t>::try_from(v).map_err(|_| format!("{v} is out of range for {}", $name))
            }
            fn from_u64(v: u64) -> Result<Self, String> {
                <$t>::try_from(v).map_err(|_| format!("{v} is out of range for {}", $name))
            }
            fn from_f64(v: f64) -> Result<Self, String> {
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(format!("expected an integer ({}), found {v}", $name));
                }
                if v < <$t>::MIN as f64 || v > <$t>::MAX as f64 {
                    return Err(format!("{v} is out of range for {}", $name));
                }
                Ok(v as $t)
            }
        }
    )*};
}

json_int!(u8 => "UINT8", u16 => "UINT16", u32 => "UINT32", u64 => "UINT64",
    i8 => "INT8", i16 => "INT16", i32 => "INT32", i64 => "INT64");

impl JsonElement for f64 {
    const NAME: &'static str = "FP64";
    fn from_i64(v: i64) -> Result<Self, String> {
        Ok(v as f64)
    }
    fn from_u64(v: u64) -> Result<Self, String> {
        Ok(v as f64)
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        Ok(v)
    }
}

impl JsonElement for f32 {
    const NAME: &'static str = "FP32";
    fn from_i64(v: i64) -> Result<Self, String> {
        Ok(v as f32)
    }
    fn from_u64(v: u64) -> Result<Self, String> {
        Ok(v as f32)
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        if v.abs() > f32::MAX as f64 {
            return Err(format!("{v} is out of range for FP32"));
        }
        Ok(v as f32)
    }
}

/// Flattens nested JSON arrays into `out`; scalar errors are stashed with
/// the element index so the message says where.
struct Flat<'v, T> {
    out: &'v mut Vec<T>,
    error: &'v mut Option<String>,
}

impl<T: JsonElement> Flat<'_, T> {
    fn push<E: de::Error>(self, v: Result<T, String>) -> Result<(), E> {
        match v {
            Ok(v) => {
                self.out.push(v);
                Ok(())
            }
            Err(message) => {
                let index = self.out.len();
                *self.error = Some(format!("element {index}: {message}"));
                Err(E::custom("bad element"))
            }
        }
    }
}

impl<'de, T: JsonElement> DeserializeSeed<'de> for Flat<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: JsonElement> Visitor<'de> for Flat<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of {}", T::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flat { out: &mut *self.out, error: &mut *self.error })?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(T::from_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(T::from_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(T::from_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(T::from_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.push(T::from_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        *self.error = Some(format!("element {}: null is not a tensor value", self.out.len()));
        Err(E::custom("null"))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        *self.error = Some(format!("element {}: an object is not a tensor value", self.out.len()));
        Err(de::Error::custom("object"))
    }
}

/// Where an input's elements come from.
#[derive(Debug)]
pub enum Source<'a> {
    /// JSON `data`.
    Json(&'a RawValue),
    /// The raw layout (a binary REST body section, or gRPC raw contents).
    Raw(&'a [u8]),
    /// Already typed (gRPC typed contents).
    Values(Values),
    /// Nothing was sent.
    Missing,
}

/// One validated input: its datatype is supported, its shape is sane, and
/// it holds exactly the elements its shape says.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// Largest element count accepted in one tensor, to refuse absurd shapes
/// before allocating.
const MAX_ELEMENTS: usize = 1 << 31;

impl InputTensor {
    pub fn new(name: String, datatype: &str, shape: &[i64], source: Source<'_>) -> Result<Self, V2Error> {
        let Some(dt) = Datatype::parse(datatype) else {
            return Err(V2Error::UnknownDatatype { input: name, datatype: datatype.into() });
        };
        if !dt.is_supported() {
            return Err(V2Error::UnsupportedDatatype { input: name, datatype: datatype.into() });
        }
        let bad_shape = |name: String, reason: &str| V2Error::BadShape {
            input: name,
            shape: shape.to_vec(),
            reason: reason.into(),
        };
        if shape.is_empty() {
            return Err(bad_shape(name, "a tensor needs at least a batch dimension"));
        }
        let mut dims = Vec::with_capacity(shape.len());
        let mut count: usize = 1;
        for &d in shape {
            let Ok(d) = usize::try_from(d) else {
                return Err(bad_shape(name, "dimensions must not be negative"));
            };
            count = match count.checked_mul(d) {
                Some(c) if c <= MAX_ELEMENTS => c,
                _ => return Err(bad_shape(name, "too many elements")),
            };
            dims.push(d);
        }
        let values = match source {
            Source::Missing => return Err(V2Error::NoData { input: name }),
            Source::Json(raw) => {
                Values::from_json(dt, raw).map_err(|reason| V2Error::BadData { input: name.clone(), reason })?
            }
            Source::Raw(bytes) => Values::from_raw(dt, bytes, count).map_err(|e| match e {
                RawError::Length { expected, found } => V2Error::ByteCount {
                    input: name.clone(),
                    shape: shape.to_vec(),
                    datatype: dt.to_string(),
                    expected,
                    found,
                },
                RawError::Bytes(reason) => V2Error::BadData { input: name.clone(), reason },
                RawError::Unsupported => V2Error::UnsupportedDatatype { input: name.clone(), datatype: dt.to_string() },
            })?,
            Source::Values(values) => {
                if values.datatype() != dt {
                    return Err(V2Error::BadData {
                        input: name,
                        reason: format!("the contents are {} but the datatype is {dt}", values.datatype()),
                    });
                }
                values
            }
        };
        if values.len() != count {
            return Err(V2Error::ElementCount {
                input: name,
                shape: shape.to_vec(),
                expected: count,
                found: values.len(),
            });
        }
        Ok(InputTensor { name, shape: dims, values })
    }

    pub fn datatype(&self) -> Datatype {
        self.values.datatype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn json_input(datatype: &str, shape: &[i64], data: &str) -> Result<InputTensor, V2Error> {
        let data = raw(data);
        InputTensor::new("x".into(), datatype, shape, Source::Json(&data))
    }

    #[test]
    fn reads_flat_and_nested_json_alike() {
        let flat = json_input("FP32", &[2, 2], "[1, 2.5, 3, 4]").unwrap();
        let nested = json_input("FP32", &[2, 2], "[[1, 2.5], [3, 4]]").unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.values, Values::F32(vec![1.0, 2.5, 3.0, 4.0]));
        assert_eq!(flat.shape, vec![2, 2]);
        let s = json_input("BYTES", &[2], r#"["héllo", ""]"#).unwrap();
        assert_eq!(s.values, Values::Bytes(vec!["héllo".as_bytes().to_vec(), vec![]]));
        let b = json_input("BOOL", &[1, 2], "[[true, false]]").unwrap();
        assert_eq!(b.values, Values::Bool(vec![true, false]));
        let i = json_input("INT64", &[2], "[9007199254740993, -3.0]").unwrap();
        assert_eq!(i.values, Values::I64(vec![9007199254740993, -3]));
    }

    #[test]
    fn json_type_and_range_errors_name_the_element() {
        let e = json_input("UINT8", &[3], "[1, 2, 300]").unwrap_err();
        assert_eq!(e.to_string(), "input 'x': element 2: 300 is out of range for UINT8");
        let e = json_input("INT32", &[2], "[1, 1.5]").unwrap_err();
        assert!(e.to_string().contains("expected an integer (INT32), found 1.5"), "{e}");
        let e = json_input("BOOL", &[1], "[1]").unwrap_err();
        assert!(e.to_string().contains("expected BOOL, found the number 1"), "{e}");
        let e = json_input("FP64", &[2], r#"[1, "a"]"#).unwrap_err();
        assert!(e.to_string().contains("element 1: expected FP64, found the string \"a\""), "{e}");
        let e = json_input("FP64", &[2], "[1, null]").unwrap_err();
        assert!(e.to_string().contains("null"), "{e}");
        let e = json_input("FP32", &[1], "[1e300]").unwrap_err();
        assert!(e.to_string().contains("out of range for FP32"), "{e}");
    }

    #[test]
    fn shape_and_count_are_checked() {
        let e = json_input("FP32", &[2, 2], "[1, 2, 3]").unwrap_err();
        assert_eq!(e.to_string(), "input 'x': shape [2, 2] holds 4 elements but the data has 3");
        let e = json_input("FP32", &[2], "[1, 2, 3]").unwrap_err();
        assert!(matches!(e, V2Error::ElementCount { expected: 2, found: 3, .. }));
        let e = json_input("FP32", &[-1, 2], "[1, 2]").unwrap_err();
        assert!(e.to_string().contains("must not be negative"), "{e}");
        let e = json_input("FP32", &[], "[1]").unwrap_err();
        assert!(matches!(e, V2Error::BadShape { .. }));
        let e = json_input("FP32", &[1 << 40, 1 << 40], "[1]").unwrap_err();
        assert!(e.to_string().contains("too many elements"), "{e}");
        let e = json_input("FLOAT", &[1], "[1]").unwrap_err();
        assert!(e.to_string().starts_with("input 'x': unknown datatype 'FLOAT'"), "{e}");
        let e = json_input("FP16", &[1], "[1]").unwrap_err();
        assert_eq!(e.to_string(), "input 'x': datatype FP16 is not supported; send FP32 or FP64");
        let e = InputTensor::new("x".into(), "FP32", &[1], Source::Missing).unwrap_err();
        assert!(matches!(e, V2Error::NoData { .. }));
    }

    #[test]
    fn raw_round_trips_every_datatype() {
        let cases = vec![
            Values::Bool(vec![true, false, true]),
            Values::U8(vec![0, 255]),
            Values::U16(vec![1, 65535]),
            Values::U32(vec![7, u32::MAX]),
            Values::U64(vec![u64::MAX]),
            Values::I8(vec![-128, 127]),
            Values::I16(vec![-2, 300]),
            Values::I32(vec![i32::MIN, 5]),
            Values::I64(vec![-9007199254740993]),
            Values::F32(vec![1.5, -0.0, f32::INFINITY]),
            Values::F64(vec![std::f64::consts::PI]),
            Values::Bytes(vec![b"ab".to_vec(), vec![], vec![0, 159, 146, 150]]),
        ];
        for values in cases {
            let bytes = values.to_raw();
            let back = Values::from_raw(values.datatype(), &bytes, values.len()).unwrap();
            assert_eq!(back, values);
        }
        // BYTES: 4-byte little-endian length, then the bytes.
        assert_eq!(Values::Bytes(vec![b"hi".to_vec()]).to_raw(), vec![2, 0, 0, 0, b'h', b'i']);
        assert_eq!(Values::Bool(vec![true, false]).to_raw(), vec![1, 0]);
    }

    #[test]
    fn raw_length_and_framing_errors() {
        assert_eq!(Values::from_raw(Datatype::F32, &[0; 7], 2), Err(RawError::Length { expected: 8, found: 7 }));
        let e = InputTensor::new("x".into(), "INT64", &[2], Source::Raw(&[0; 24])).unwrap_err();
        assert_eq!(e.to_string(), "input 'x': shape [2] of INT64 takes 16 bytes but 24 were sent");
        let e = Values::from_raw(Datatype::Bytes, &[9, 0, 0, 0, b'a'], 1).unwrap_err();
        assert!(matches!(e, RawError::Bytes(ref m) if m.contains("length 9 runs past")), "{e:?}");
        let e = Values::from_raw(Datatype::Bytes, &[1, 0], 1).unwrap_err();
        assert!(matches!(e, RawError::Bytes(ref m) if m.contains("inside its length")), "{e:?}");
        let e = Values::from_raw(Datatype::Bytes, &[0, 0, 0, 0, 7], 1).unwrap_err();
        assert!(matches!(e, RawError::Bytes(ref m) if m.contains("1 bytes follow")), "{e:?}");
        // An absurd count does not allocate before failing.
        assert!(Values::from_raw(Datatype::Bytes, &[], usize::MAX >> 2).is_err());
    }

    #[test]
    fn typed_contents_must_match_the_datatype() {
        let e = InputTensor::new("x".into(), "FP32", &[1], Source::Values(Values::F64(vec![1.0]))).unwrap_err();
        assert!(e.to_string().contains("contents are FP64 but the datatype is FP32"), "{e}");
    }

    #[test]
    fn json_output_and_gather() {
        let v = Values::F64(vec![1.0, f64::NAN, 2.5]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "[1.0,null,2.5]");
        let b = Values::Bytes(vec![b"a\"".to_vec()]);
        assert_eq!(serde_json::to_string(&b).unwrap(), r#"["a\""]"#);
        let m = Values::I32(vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(m.gather(1, 3, 2), Values::I32(vec![2, 5]));
        let mut a = Values::I32(vec![1]);
        a.extend(Values::I32(vec![2])).unwrap();
        assert_eq!(a, Values::I32(vec![1, 2]));
        assert!(a.extend(Values::F32(vec![2.0])).is_err());
    }
}
