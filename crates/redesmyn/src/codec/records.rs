//! The records codec: a JSON body (an array of records or one record
//! object) straight into Polars columns.
//!
//! A `serde` [`DeserializeSeed`] walks the JSON body once and appends each
//! value to the column builder of its field: no `serde_json::Value` is built
//! per record. The first value that does not fit the schema stops the parse
//! and is reported with its record index and field name, so one bad record
//! fails only the request that carried it, before it can reach a batch.

use std::cell::{Cell, RefCell};
use std::fmt;

use polars::prelude::*;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::columns::{self, ColumnBuilder, ItemSink, Number};
use crate::error::RequestError;
pub use crate::error::{DecodeError, RecordError};
use crate::schema::{Field, Schema};

/// A request body as the service decodes it: an empty (or all-whitespace)
/// body is refused before parsing, with its own message.
pub fn decode_request(schema: &Schema, body: &[u8]) -> Result<DataFrame, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::EmptyBody);
    }
    Ok(decode(schema, body)?)
}

/// Parses a body — an array of records or one record object — into a
/// DataFrame whose columns follow the schema's field order.
pub fn decode(schema: &Schema, body: &[u8]) -> Result<DataFrame, DecodeError> {
    // A rough guess of the row count keeps builders from regrowing.
    let capacity = (body.len() / (schema.len() * 6 + 2)).clamp(1, 4096);
    let mut columns = columns::builders(schema, capacity);
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
    columns::finish(schema, columns, rows).map_err(|e| DecodeError::Malformed(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FieldType, Numeric};

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
