//! Schedule predictions from Rust and poll them back, no HTTP client
//! involved: a hundred requests queued without blocking, batched together,
//! then collected as they finish with their timings and metadata.
//!
//!     cargo run -p redesmyn --example schedule

use std::sync::Arc;
use std::time::Duration;

use polars::prelude::*;
use redesmyn::engine::{Engine, Scheduled};
use redesmyn::{
    Batch, BatchConfig, Endpoint, Field, FieldType, Handler, Numeric, Predictions, Schema, Server, ServerConfig,
};

/// The square of `x`, after 5 ms per batch (a model's fixed cost).
fn squares() -> Arc<dyn Handler> {
    Arc::new(|batch: Batch| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let x = batch.frame.column("x").map_err(|e| redesmyn::HandlerError::new(e.to_string()))?.f64().cloned();
        let x = x.map_err(|e| redesmyn::HandlerError::new(e.to_string()))?;
        Ok(Predictions::Column((&x * &x).into_series()))
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let schema = Schema::new(vec![Field::new("x", FieldType::Number(Numeric::F64))])?;
    let mut server = Server::new(ServerConfig { port: 0, ..Default::default() });
    server.register(Endpoint::new("/squares", schema, BatchConfig::default(), squares())?)?;
    let running = server.start(runtime.handle().clone())?;

    // The metadata is any value: here, which caller asked.
    let engine: Engine<String> = Engine::new(Arc::clone(running.service()), runtime.handle().clone());
    let mut tickets = Vec::new();
    for i in 0..100 {
        let request = Scheduled::new("squares", df!("x" => [f64::from(i)])?).metadata(format!("caller {i}"));
        tickets.push(engine.schedule(request)?);
    }
    println!("scheduled {} requests; state: {:?}", engine.pending(), engine.state("squares", None)?);

    let mut batches = std::collections::BTreeMap::new();
    while !tickets.is_empty() {
        tickets.retain(|ticket| match engine.try_poll(ticket) {
            None => true,
            Some(Ok(done)) => {
                *batches.entry(done.batch_size).or_insert(0) += 1;
                if done.metadata == "caller 99" {
                    println!(
                        "{}: {:?} in {:?} (queued {:?})",
                        done.metadata, done.predictions, done.duration, done.queue_wait
                    );
                }
                false
            }
            Some(Err(e)) => {
                eprintln!("failed: {e}");
                false
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("requests per batch size: {batches:?}; state: {:?}", engine.state("squares", None)?);
    runtime.block_on(running.stop());
    Ok(())
}
