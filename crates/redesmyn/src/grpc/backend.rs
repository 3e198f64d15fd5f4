//! The inference service as the gRPC front door's [`Backend`]: models by
//! V2 name and version, requests through the same queues and batches as
//! every other front door, counted under the `v2-grpc` protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::convert::InferRequest;
use super::server::{Backend, Chunks, Inferred};
use crate::batch::Liveness;
use crate::error::{Outcome, RequestError};
use crate::metrics::Protocol;
use crate::service::{InferenceRequest, InferenceService, Target};
use crate::stream::Event;
use crate::telemetry::Incoming;
use crate::v2::infer;
use crate::v2::output::{outputs_from_predictions, select_outputs};
use crate::v2::wire::{ModelMetadata, ServerMetadata};

pub struct ServiceBackend {
    service: Arc<InferenceService>,
    ready: Arc<AtomicBool>,
    routing_header: String,
}

impl ServiceBackend {
    /// `ready`: the server's readiness (listening, prefetch done, not stopping).
    pub fn new(service: Arc<InferenceService>, ready: Arc<AtomicBool>) -> Self {
        ServiceBackend { service, ready, routing_header: crate::http::ROUTING_HEADER.into() }
    }

    /// The metadata key of the routing key (the HTTP routing header's name).
    pub fn with_routing_header(mut self, header: &str) -> Self {
        self.routing_header = header.to_string();
        self
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

    fn routing_header(&self) -> &str {
        &self.routing_header
    }

    fn model_ready(&self, name: &str, version: &str) -> Result<bool, RequestError> {
        self.service.route_target(Target::named(name).version(Some(version)))?;
        Ok(self.ready())
    }

    fn model_metadata(&self, name: &str, version: &str) -> Result<ModelMetadata, RequestError> {
        let (model, _) = self.service.route_target(Target::named(name).version(Some(version)))?;
        Ok(infer::model_metadata(&model))
    }

    fn infer(
        &self,
        request: InferRequest,
        deadline: Option<Duration>,
    ) -> BoxFuture<'static, Result<Inferred, RequestError>> {
        let service = Arc::clone(&self.service);
        Box::pin(async move {
            let InferRequest { model_name, model_version, id, parameters, inputs, outputs, routing_key, trace } =
                request;
            let target = Target::named(&model_name).version(Some(&model_version)).routing_key(routing_key.as_deref());
            let mut call = service
                .open(Protocol::V2Grpc, id.unwrap_or_default(), target)?
                .at("ModelInfer")
                .traced(Incoming::Carried(trace.as_ref()));
            let from_version = call.take_version_param();
            let model = Arc::clone(call.model());
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
                    arrived: call.arrived(),
                    client: Some(client),
                    deadline,
                    trace: call.trace(),
                };
                infer::infer(&model, params, request).await
            }
            .await;
            let code = match &result {
                Ok(_) => tonic::Code::Ok,
                Err(e) => super::status::code_of_kind(e.kind()),
            };
            let answer = result.as_ref().ok().and_then(|i| i.answer.as_ref());
            let traceparent = call.traceparent();
            call.finish(Outcome::from(&result), code.description(), answer);
            let inferred = result?;
            Ok(Inferred {
                model_name: model.key().name.clone(),
                model_version: model.key().version.clone().unwrap_or_default(),
                outputs: inferred.outputs.into_iter().map(|(o, _)| o).collect(),
                traceparent,
            })
        })
    }

    fn stream(&self, request: InferRequest) -> BoxFuture<'static, Result<(String, String, Chunks), RequestError>> {
        let service = Arc::clone(&self.service);
        let unary = self.infer(request.clone(), None);
        Box::pin(async move {
            let InferRequest { model_name, model_version, id, parameters, inputs, outputs, routing_key, trace } =
                request;
            let target = Target::named(&model_name).version(Some(&model_version)).routing_key(routing_key.as_deref());
            let mut call = service.open(Protocol::V2Grpc, id.unwrap_or_default(), target)?;
            let from_version = call.take_version_param();
            let model = Arc::clone(call.model());
            if model.streams() {
                call = call.at("ModelStreamInfer").traced(Incoming::Carried(trace.as_ref()));
            }
            let name = model.key().name.clone();
            let version = model.key().version.clone().unwrap_or_default();
            if !model.streams() {
                // A unary model answers once on the stream.
                let one = futures::stream::once(async move { unary.await.map(|inferred| inferred.outputs) });
                return Ok((name, version, Box::pin(one) as Chunks));
            }
            let arrived = call.arrived();
            let mut tracked = call.into_stream();
            let params = infer::params(&model, &parameters, from_version)?;
            let request = InferenceRequest { params, arrived, client: None, trace: None };
            let events =
                model.stream(request, |schema| crate::v2::frame::to_frame(schema, inputs).map_err(RequestError::from));
            let events = match events {
                Ok(events) => events,
                Err(e) => {
                    tracked.finish(Outcome::from_error(&e));
                    return Err(e);
                }
            };
            let Some(events) = events else {
                tracked.finish(Outcome::Ok);
                return Ok((name, version, Box::pin(futures::stream::empty()) as Chunks));
            };
            let declared: Vec<String> = model.declared_outputs().iter().map(|o| o.name.clone()).collect();
            let state = (events, tracked, Vec::new(), false);
            let chunks = futures::stream::unfold(state, move |(mut events, mut tracked, mut pending, done)| {
                let declared = declared.clone();
                let outputs = outputs.clone();
                async move {
                    loop {
                        if let Some(chunk) = pending.pop() {
                            return Some((chunk, (events, tracked, pending, done)));
                        }
                        if done {
                            return None;
                        }
                        match events.next().await {
                            None => {
                                tracked.finish(Outcome::Ok);
                                return None;
                            }
                            Some(Event::Failed(e)) => {
                                tracked.finish(Outcome::from_error(&e));
                                return Some((Err(e), (events, tracked, pending, true)));
                            }
                            Some(Event::Step { chunks, .. }) => {
                                tracked.step(chunks.len());
                                // Reversed, so `pop` sends them in order.
                                for (_, chunk) in chunks.into_iter().rev() {
                                    let selected = outputs_from_predictions(&chunk, &declared)
                                        .map_err(RequestError::from)
                                        .and_then(|t| {
                                            select_outputs(t, outputs.as_deref(), false).map_err(RequestError::from)
                                        });
                                    pending.push(selected.map(|s| s.into_iter().map(|(o, _)| o).collect()));
                                }
                            }
                        }
                    }
                }
            });
            Ok((name, version, Box::pin(chunks) as Chunks))
        })
    }
}
