//! A gRPC V2 server over a stand-in iris model, for checking wire
//! compatibility with real clients: `cargo run -p redesmyn --example v2_grpc -- 8081`.
//! The "model" answers 1 when petal_length > 2.5, else 0.

use std::sync::Arc;

use futures::future::BoxFuture;
use polars::prelude::*;
use redesmyn::grpc::convert::InferRequest;
use redesmyn::grpc::server::{serve, Backend, Failure, Inferred};
use redesmyn::v2::wire::{ModelMetadata, ServerMetadata};
use redesmyn::v2::{metadata, outputs_from_predictions, to_frame};
use redesmyn::{Field, FieldType, Numeric, Predictions, Schema};

struct Iris(Schema);

impl Backend for Iris {
    fn ready(&self) -> bool {
        true
    }
    fn server_metadata(&self) -> ServerMetadata {
        ServerMetadata { name: "redesmyn".into(), version: env!("CARGO_PKG_VERSION").into(), extensions: vec![] }
    }
    fn model_ready(&self, name: &str, _: &str) -> Result<bool, Failure> {
        (name == "iris").then_some(true).ok_or_else(|| Failure::NotFound(format!("unknown model '{name}'")))
    }
    fn model_metadata(&self, name: &str, _: &str) -> Result<ModelMetadata, Failure> {
        self.model_ready(name, "")?;
        Ok(metadata::model(name, vec!["1".into()], &self.0, vec![]))
    }
    fn infer(&self, request: InferRequest, _: Option<std::time::Duration>) -> BoxFuture<'static, Result<Inferred, Failure>> {
        let schema = self.0.clone();
        Box::pin(async move {
            let frame = to_frame(&schema, request.inputs)?;
            let petal = frame.column("petal_length").map_err(|e| Failure::Internal(e.to_string()))?;
            let petal = petal.f64().map_err(|e| Failure::Internal(e.to_string()))?;
            let classes = Int64Chunked::from_vec("class".into(), petal.iter().map(|v| i64::from(v.unwrap_or(0.0) > 2.5)).collect());
            let outputs = outputs_from_predictions(&Predictions::Column(classes.into_series()), &[])?;
            Ok(Inferred { model_name: request.model_name, model_version: "1".into(), outputs })
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map(|p| p.parse()).transpose()?.unwrap_or(8081);
    let schema = Schema::new(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"]
            .iter()
            .map(|n| Field::new(*n, FieldType::Number(Numeric::F64)))
            .collect(),
    )?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    // Runs until killed.
    serve(Arc::new(Iris(schema)), listener, std::future::pending::<()>()).await?;
    Ok(())
}
