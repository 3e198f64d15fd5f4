//! Model metadata (`GET /v2/models/{m}`, gRPC `ModelMetadata`) derived from
//! an endpoint's schema and declared outputs. Inputs are listed by name, as
//! [`super::frame`] reads them: scalars `[-1]`, arrays `[-1, k]`, lists
//! `[-1, -1]`; `-1` is a variable dimension.

use super::datatype::Datatype;
use super::wire::{ModelMetadata, TensorMetadata};
use crate::schema::{FieldType, Schema};

/// The inputs a schema takes.
pub fn inputs(schema: &Schema) -> Vec<TensorMetadata> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let (datatype, shape) = match field.ty {
                FieldType::Bool => (Datatype::Bool, vec![-1]),
                FieldType::Str => (Datatype::Bytes, vec![-1]),
                FieldType::Number(n) => (Datatype::of_numeric(n), vec![-1]),
                FieldType::Array(n, width) => (Datatype::of_numeric(n), vec![-1, width as i64]),
                FieldType::List(n) => (Datatype::of_numeric(n), vec![-1, -1]),
            };
            TensorMetadata { name: field.name.clone(), datatype: datatype.as_str().into(), shape }
        })
        .collect()
}

/// Metadata of a model; `outputs` are the declared ones (possibly none: a
/// handler's outputs are only known once it has answered).
pub fn model(name: &str, versions: Vec<String>, schema: &Schema, outputs: Vec<TensorMetadata>) -> ModelMetadata {
    ModelMetadata { name: name.into(), versions, platform: "redesmyn".into(), inputs: inputs(schema), outputs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, Numeric};

    #[test]
    fn inputs_follow_the_schema() {
        let s = Schema::new(vec![
            Field::new("a", FieldType::Number(Numeric::F64)),
            Field::new("t", FieldType::Str),
            Field::new("v", FieldType::Array(Numeric::F32, 3)),
            Field::new("l", FieldType::List(Numeric::I64)),
            Field::new("b", FieldType::Bool),
        ])
        .unwrap();
        let m = model("m", vec!["1".into()], &s, vec![]);
        let got: Vec<(&str, &str, Vec<i64>)> =
            m.inputs.iter().map(|t| (t.name.as_str(), t.datatype.as_str(), t.shape.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("a", "FP64", vec![-1]),
                ("t", "BYTES", vec![-1]),
                ("v", "FP32", vec![-1, 3]),
                ("l", "INT64", vec![-1, -1]),
                ("b", "BOOL", vec![-1]),
            ]
        );
        assert_eq!(serde_json::to_value(&m).unwrap()["platform"], "redesmyn");
    }
}
