//! The record schema of an endpoint: which fields a request carries and the
//! Polars column each one becomes.

use std::fmt;

use polars::prelude::DataType;

/// Element type of a numeric column, or of the items of a list / array column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numeric {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

impl Numeric {
    pub fn dtype(self) -> DataType {
        match self {
            Numeric::I8 => DataType::Int8,
            Numeric::I16 => DataType::Int16,
            Numeric::I32 => DataType::Int32,
            Numeric::I64 => DataType::Int64,
            Numeric::U8 => DataType::UInt8,
            Numeric::U16 => DataType::UInt16,
            Numeric::U32 => DataType::UInt32,
            Numeric::U64 => DataType::UInt64,
            Numeric::F32 => DataType::Float32,
            Numeric::F64 => DataType::Float64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Numeric::I8 => "i8",
            Numeric::I16 => "i16",
            Numeric::I32 => "i32",
            Numeric::I64 => "i64",
            Numeric::U8 => "u8",
            Numeric::U16 => "u16",
            Numeric::U32 => "u32",
            Numeric::U64 => "u64",
            Numeric::F32 => "f32",
            Numeric::F64 => "f64",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "i8" => Numeric::I8,
            "i16" => Numeric::I16,
            "i32" => Numeric::I32,
            "i64" => Numeric::I64,
            "u8" => Numeric::U8,
            "u16" => Numeric::U16,
            "u32" => Numeric::U32,
            "u64" => Numeric::U64,
            "f32" => Numeric::F32,
            "f64" => Numeric::F64,
            _ => return None,
        })
    }
}

/// The type of one field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    Number(Numeric),
    Str,
    /// A variable-length list of numbers.
    List(Numeric),
    /// A fixed-size array of numbers (an embedding, a small tensor).
    Array(Numeric, usize),
}

impl FieldType {
    pub fn dtype(self) -> DataType {
        match self {
            FieldType::Bool => DataType::Boolean,
            FieldType::Number(n) => n.dtype(),
            FieldType::Str => DataType::String,
            FieldType::List(n) => DataType::List(Box::new(n.dtype())),
            FieldType::Array(n, width) => DataType::Array(Box::new(n.dtype()), width),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Bool => f.write_str("bool"),
            FieldType::Number(n) => f.write_str(n.name()),
            FieldType::Str => f.write_str("str"),
            FieldType::List(n) => write!(f, "list<{}>", n.name()),
            FieldType::Array(n, width) => write!(f, "array<{}, {width}>", n.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub nullable: bool,
}

impl Field {
    pub fn new(name: impl Into<String>, ty: FieldType) -> Self {
        Field { name: name.into(), ty, nullable: false }
    }

    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("a schema needs at least one field")]
    Empty,
    #[error("field '{0}' is declared twice")]
    Duplicate(String),
    #[error("field names must not be empty")]
    EmptyName,
    #[error("field '{0}': an array needs a size of at least 1")]
    ZeroWidth(String),
}

/// An ordered set of fields. Column order of the parsed batch follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<Field>,
}

impl Schema {
    pub fn new(fields: Vec<Field>) -> Result<Self, SchemaError> {
        if fields.is_empty() {
            return Err(SchemaError::Empty);
        }
        for (i, field) in fields.iter().enumerate() {
            if field.name.is_empty() {
                return Err(SchemaError::EmptyName);
            }
            if fields[..i].iter().any(|f| f.name == field.name) {
                return Err(SchemaError::Duplicate(field.name.clone()));
            }
            if let FieldType::Array(_, 0) = field.ty {
                return Err(SchemaError::ZeroWidth(field.name.clone()));
            }
        }
        Ok(Schema { fields })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Index of the field named `name`. Records usually list their keys in
    /// schema order, so the field after `hint` is tried first.
    pub fn position(&self, name: &str, hint: usize) -> Option<usize> {
        if let Some(f) = self.fields.get(hint) {
            if f.name == name {
                return Some(hint);
            }
        }
        self.fields.iter().position(|f| f.name == name)
    }
}

/// A declared input or output tensor of a model (what V2 metadata lists);
/// `-1` marks a variable dimension.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_and_empty() {
        let f = Field::new("a", FieldType::Number(Numeric::F64));
        assert_eq!(Schema::new(vec![]), Err(SchemaError::Empty));
        assert_eq!(Schema::new(vec![f.clone(), f.clone()]), Err(SchemaError::Duplicate("a".into())));
        assert_eq!(
            Schema::new(vec![Field::new("v", FieldType::Array(Numeric::F32, 0))]),
            Err(SchemaError::ZeroWidth("v".into()))
        );
    }

    #[test]
    fn position_uses_hint_then_scans() {
        let s = Schema::new(vec![Field::new("a", FieldType::Bool), Field::new("b", FieldType::Str)]).unwrap();
        assert_eq!(s.position("b", 1), Some(1));
        assert_eq!(s.position("a", 1), Some(0));
        assert_eq!(s.position("c", 0), None);
    }
}
