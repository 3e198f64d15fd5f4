//! A model served from Rust alone, no Node and no Python: a closure that
//! adds two features, batched, over HTTP (its own path, V1, V2 REST) and V2
//! gRPC.
//!
//!     cargo run -p redesmyn --example serve
//!     curl -s localhost:8080/sums -H 'content-type: application/json' -d '[{"a": 1, "b": 2}, {"a": 3, "b": 4}]'
//!     curl -s localhost:8080/v2/models/sums/infer -d \
//!       '{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
//!                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [2]}]}'

use std::sync::Arc;

use polars::prelude::*;
use redesmyn::{
    Batch, BatchConfig, Endpoint, Field, FieldType, Handler, HandlerError, Numeric, Predictions, Schema, Server,
    ServerConfig,
};

/// `a + b` for every row of the batch: the whole batch in one call.
fn sums() -> Arc<dyn Handler> {
    Arc::new(|batch: Batch| async move {
        let column = |name: &str| -> Result<Float64Chunked, HandlerError> {
            let c = batch.frame.column(name).map_err(|e| HandlerError::new(e.to_string()))?;
            c.f64().cloned().map_err(|e| HandlerError::new(e.to_string()))
        };
        Ok(Predictions::Column((column("a")? + column("b")?).into_series()))
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = Schema::new(vec![
        Field::new("a", FieldType::Number(Numeric::F64)),
        Field::new("b", FieldType::Number(Numeric::F64)),
    ])?;
    let batch = BatchConfig { max_delay: std::time::Duration::from_millis(2), ..Default::default() };
    let mut server = Server::new(ServerConfig { grpc_port: Some(8081), ..Default::default() });
    server.register(Endpoint::new("/sums", schema, batch, sums())?)?;
    let running = tokio::task::spawn_blocking(move || server.start(tokio::runtime::Handle::current())).await??;
    println!("serving /sums on port {} (gRPC on {:?}); Ctrl-C stops", running.port(), running.grpc_port());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
