//! The inference service as the gRPC front door's [`Backend`]: models by
//! V2 name and version, requests through the same queues and batches as
//! every other front door, counted under the `v2-grpc` protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::convert::InferRequest;
use super::server::{Backend, Inferred};
use crate::batch::Liveness;
use crate::error::{Outcome, RequestError};
use crate::metrics::Protocol;
use crate::service::InferenceService;
use crate::v2::infer;
use crate::v2::wire::{ModelMetadata, ServerMetadata};

pub struct ServiceBackend {
    service: Arc<InferenceService>,
    ready: Arc<AtomicBool>,
}

impl ServiceBackend {
    /// `ready`: the server's readiness (listening, prefetch done, not stopping).
    pub fn new(service: Arc<InferenceService>, ready: Arc<AtomicBool>) -> Self {
        ServiceBackend { service, ready }
    }
}

/// Set when the RPC's future is dropped (the client cancelled or went
/// away), so a batch not yet run skips its rows.
struct Cancelled(AtomicBool);

impl Liveness for Cancelled {
    fn gone(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct CancelOnDrop(Arc<Cancelled>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0 .0.store(true, Ordering::Release);
    }
}

impl Backend for ServiceBackend {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn server_metadata(&self) -> ServerMetadata {
        infer::server_metadata()
    }

    fn model_ready(&self, name: &str, version: &str) -> Result<bool, RequestError> {
        self.service.resolve_v2(name, Some(version))?;
        Ok(self.ready())
    }

    fn model_metadata(&self, name: &str, version: &str) -> Result<ModelMetadata, RequestError> {
        let (model, _) = self.service.resolve_v2(name, Some(version))?;
        Ok(infer::model_metadata(&model))
    }

    fn infer(
        &self,
        request: InferRequest,
        deadline: Option<Duration>,
    ) -> BoxFuture<'static, Result<Inferred, RequestError>> {
        let service = Arc::clone(&self.service);
        Box::pin(async move {
            let arrived = Instant::now();
            let InferRequest { model_name, model_version, id, parameters, inputs, outputs } = request;
            let (model, from_version) = service.resolve_v2(&model_name, Some(&model_version))?;
            let tracked = model.track_via(arrived, Protocol::V2Grpc);
            let cancelled = Arc::new(Cancelled(AtomicBool::new(false)));
            let _guard = CancelOnDrop(Arc::clone(&cancelled));
            let result = async {
                let params = infer::params(&model, &parameters, from_version)?;
                let client: Arc<dyn Liveness> = cancelled;
                let request = infer::Request {
                    parameters,
                    inputs,
                    outputs,
                    binary_output: false,
                    arrived,
                    client: Some(client),
                    deadline,
                };
                infer::infer(&model, params, request).await
            }
            .await;
            tracked.finish(Outcome::from(&result));
            let code = match &result {
                Ok(_) => tonic::Code::Ok,
                Err(e) => super::status::code_of_kind(e.kind()),
            };
            tracing::info!(
                target: "redesmyn::request",
                id = %id.as_deref().unwrap_or(""),
                endpoint = %model.label(),
                protocol = "v2-grpc",
                code = ?code,
                total_ms = arrived.elapsed().as_secs_f64() * 1e3,
                "request"
            );
            let inferred = result?;
            Ok(Inferred {
                model_name: model.key().name.clone(),
                model_version: model.key().version.clone().unwrap_or_default(),
                outputs: inferred.outputs.into_iter().map(|(o, _)| o).collect(),
            })
        })
    }
}
