//! The gRPC front door: `inference.GRPCInferenceService`, the standard
//! `grpc.health.v1` service and server reflection, served by tonic on its
//! own listener (a pre-bound one, so port 0 works) until a shutdown future
//! resolves; requests in flight then finish (graceful).
//!
//! The models behind it are reached through [`Backend`] (the inference
//! service implements it in [`super::backend`]), so this module knows
//! tensors and statuses only; statuses come from [`super::status`].
//!
//! `ModelStreamInfer` answers as Triton does (tritonclient's
//! `start_stream` / `async_stream_infer`): each request of the stream runs
//! on its own, its responses correlated by `id`; a streaming model sends one
//! response per chunk, then an empty one whose parameter
//! `triton_final_response` is true; a unary model sends its one response
//! with that flag. A failure is a response with `error_message` set, and
//! the stream stays open. Responses wait in a bounded channel: a client
//! that does not read pauses its streams' generators.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, InferRequest};
use super::proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use super::proto::model_metadata_response::TensorMetadata;
use super::proto::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse, ModelReadyRequest,
    ModelReadyResponse, ModelStreamInferResponse, ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest,
    ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse, FILE_DESCRIPTOR_SET,
};
use super::status::status_of;
use crate::error::RequestError;
use crate::v2::wire::{self, ModelMetadata, ServerMetadata};
use crate::v2::OutputTensor;

/// What an inference produced.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub model_name: String,
    pub model_version: String,
    pub outputs: Vec<OutputTensor>,
    /// The `traceparent` of the request's span, when it is traced.
    pub traceparent: Option<String>,
}

/// One request's responses on a `ModelStreamInfer` stream: its chunks'
/// outputs, ending after the last (or a failure).
pub type Chunks = BoxStream<'static, Result<Vec<OutputTensor>, RequestError>>;

/// Responses a `ModelStreamInfer` stream may hold for a slow client.
const STREAM_RESPONSES: usize = 16;

/// The models, as the gRPC front door sees them.
pub trait Backend: Send + Sync + 'static {
    /// Ready to serve inference (started, not stopping).
    fn ready(&self) -> bool;
    fn server_metadata(&self) -> ServerMetadata;
    /// The metadata key whose value is a request's routing key.
    fn routing_header(&self) -> &str {
        crate::http::ROUTING_HEADER
    }
    /// `Ok(false)` for a known model that cannot serve now; NotFound for an
    /// unknown model or version. An empty version is the current one.
    fn model_ready(&self, name: &str, version: &str) -> Result<bool, RequestError>;
    fn model_metadata(&self, name: &str, version: &str) -> Result<ModelMetadata, RequestError>;
    /// Runs one request through the model's queue and batches; `deadline`
    /// is the client's `grpc-timeout`, if any.
    fn infer(
        &self,
        request: InferRequest,
        deadline: Option<std::time::Duration>,
    ) -> BoxFuture<'static, Result<Inferred, RequestError>>;
    /// Runs one request of a `ModelStreamInfer` stream: the model's name
    /// and version, and its chunks (one for a unary model).
    fn stream(&self, request: InferRequest) -> BoxFuture<'static, Result<(String, String, Chunks), RequestError>>;
}

/// The `GRPCInferenceService` implementation over a [`Backend`].
pub struct Inference<B: ?Sized> {
    backend: Arc<B>,
}

impl<B: ?Sized> Inference<B> {
    pub fn new(backend: Arc<B>) -> Self {
        Inference { backend }
    }
}

fn tensors(list: Vec<wire::TensorMetadata>) -> Vec<TensorMetadata> {
    list.into_iter().map(|t| TensorMetadata { name: t.name, datatype: t.datatype, shape: t.shape }).collect()
}

/// Parses `grpc-timeout` (`<digits><unit>`, unit one of H M S m u n).
fn grpc_timeout<T>(request: &Request<T>) -> Option<std::time::Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    use std::time::Duration;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl<B: Backend + ?Sized> GrpcInferenceService for Inference<B> {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: self.backend.ready() }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let ready = self.backend.model_ready(&r.name, &r.version).map_err(|e| status_of(&e))?;
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        let m = self.backend.server_metadata();
        Ok(Response::new(ServerMetadataResponse { name: m.name, version: m.version, extensions: m.extensions }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let m = self.backend.model_metadata(&r.name, &r.version).map_err(|e| status_of(&e))?;
        Ok(Response::new(ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: tensors(m.inputs),
            outputs: tensors(m.outputs),
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let deadline = grpc_timeout(&request);
        let routing_key = request.metadata().get(self.backend.routing_header()).and_then(|v| v.to_str().ok());
        let routing_key = routing_key.map(str::to_string);
        let (metadata, _, request) = request.into_parts();
        let mut request = convert::infer_request(request).map_err(|e| status_of(&e.into()))?;
        request.routing_key = routing_key;
        request.trace = crate::telemetry::TraceHeaders::of_grpc(&metadata);
        let id = request.id.clone().unwrap_or_default();
        let inferred = self.backend.infer(request, deadline).await.map_err(|e| status_of(&e))?;
        let traceparent = inferred.traceparent.and_then(|t| t.parse().ok());
        let meta = convert::ResponseMeta {
            model_name: inferred.model_name,
            model_version: inferred.model_version,
            id,
            parameters: Default::default(),
        };
        let mut response = Response::new(convert::infer_response(meta, inferred.outputs));
        if let Some(traceparent) = traceparent {
            response.metadata_mut().insert(crate::telemetry::TRACEPARENT, traceparent);
        }
        Ok(response)
    }

    type ModelStreamInferStream = BoxStream<'static, Result<ModelStreamInferResponse, Status>>;

    /// Every request of the stream runs at once, its responses sent as
    /// they come; the stream ends when the client closes its side and every
    /// request is answered.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let mut requests = request.into_inner();
        let backend = Arc::clone(&self.backend);
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_RESPONSES);
        tokio::spawn(async move {
            let mut running = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    message = requests.message() => match message {
                        Ok(Some(request)) => {
                            running.spawn(stream_one(Arc::clone(&backend), request, tx.clone()));
                        }
                        Ok(None) | Err(_) => break,
                    },
                    _ = tx.closed() => break,
                }
            }
            drop(tx);
            while running.join_next().await.is_some() {}
        });
        let responses = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (Ok(r), rx)) });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Answers one request of a `ModelStreamInfer` stream on `tx`. Stops early
/// when the client is gone (sending fails), which drops the chunks and so
/// ends the request's rows.
async fn stream_one(
    backend: Arc<impl Backend + ?Sized>,
    request: ModelInferRequest,
    tx: tokio::sync::mpsc::Sender<ModelStreamInferResponse>,
) {
    let mut meta = convert::ResponseMeta {
        model_name: request.model_name.clone(),
        model_version: request.model_version.clone(),
        id: request.id.clone(),
        parameters: Default::default(),
    };
    let failed = |meta: &convert::ResponseMeta, error: &RequestError| {
        let mut meta = meta.clone();
        meta.parameters.insert(FINAL.into(), true.into());
        ModelStreamInferResponse {
            error_message: error.to_string(),
            infer_response: Some(convert::infer_response(meta, Vec::new())),
        }
    };
    let opened = match convert::infer_request(request) {
        Ok(request) => backend.stream(request).await,
        Err(e) => Err(e.into()),
    };
    let mut chunks = match opened {
        Ok((name, version, chunks)) => {
            meta.model_name = name;
            meta.model_version = version;
            chunks
        }
        Err(e) => {
            let _ = tx.send(failed(&meta, &e)).await;
            return;
        }
    };
    use futures::StreamExt;
    while let Some(chunk) = chunks.next().await {
        let response = match chunk {
            Ok(outputs) => ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(convert::infer_response(meta.clone(), outputs)),
            },
            Err(e) => {
                let _ = tx.send(failed(&meta, &e)).await;
                return;
            }
        };
        if tx.send(response).await.is_err() {
            return;
        }
    }
    let mut last = meta;
    last.parameters.insert(FINAL.into(), true.into());
    let _ = tx
        .send(ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(convert::infer_response(last, Vec::new())),
        })
        .await;
}

/// The parameter that marks a request's last response on a stream (Triton's name).
const FINAL: &str = "triton_final_response";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    #[error("gRPC server: {0}")]
    Transport(String),
}

/// Serves the inference, health and reflection services on `listener`
/// until `shutdown` resolves, then drains requests in flight.
pub async fn serve<B: Backend + ?Sized>(
    backend: Arc<B>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GrpcInferenceServiceServer<Inference<B>>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let inference = GrpcInferenceServiceServer::from_arc(Arc::new(Inference::new(backend)))
        // Tensors can be large; the 4 MiB default would refuse a batch of images.
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(inference)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::proto::model_infer_request::InferInputTensor;
    use crate::v2::Values;

    struct Fake;

    impl Backend for Fake {
        fn ready(&self) -> bool {
            true
        }
        fn server_metadata(&self) -> ServerMetadata {
            ServerMetadata { name: "redesmyn".into(), version: "0".into(), extensions: vec![] }
        }
        fn model_ready(&self, name: &str, _: &str) -> Result<bool, RequestError> {
            if name == "iris" {
                Ok(true)
            } else {
                Err(RequestError::ModelNotFound(format!("unknown model '{name}'")))
            }
        }
        fn model_metadata(&self, name: &str, _: &str) -> Result<ModelMetadata, RequestError> {
            Err(RequestError::ModelNotFound(format!("unknown model '{name}'")))
        }
        fn infer(
            &self,
            request: InferRequest,
            _: Option<std::time::Duration>,
        ) -> BoxFuture<'static, Result<Inferred, RequestError>> {
            // Echoes the first input's row count as an INT64 output.
            Box::pin(async move {
                let rows = request.inputs.first().map(|i| i.shape[0]).unwrap_or(0);
                Ok(Inferred {
                    model_name: request.model_name,
                    model_version: "1".into(),
                    outputs: vec![OutputTensor {
                        name: "output-0".into(),
                        shape: vec![1],
                        values: Values::I64(vec![rows as i64]),
                    }],
                    traceparent: None,
                })
            })
        }
        fn stream(&self, request: InferRequest) -> BoxFuture<'static, Result<(String, String, Chunks), RequestError>> {
            // Three chunks, each the step number; a model named "fail" fails after the first.
            use futures::StreamExt;
            Box::pin(async move {
                let fail = request.model_name == "fail";
                let chunks = futures::stream::iter(0..3i64).map(move |i| {
                    if fail && i == 1 {
                        return Err(RequestError::Handler("boom".into()));
                    }
                    Ok(vec![OutputTensor { name: "output-0".into(), shape: vec![1], values: Values::I64(vec![i]) }])
                });
                Ok((request.model_name, "1".into(), Box::pin(chunks) as Chunks))
            })
        }
    }

    #[tokio::test]
    async fn stream_infer_answers_each_request_by_id_with_a_final_flag_and_errors_in_band() {
        use futures::StreamExt;
        let service = service();
        let requests = vec![
            ModelInferRequest { model_name: "m".into(), id: "a".into(), ..Default::default() },
            ModelInferRequest { model_name: "fail".into(), id: "b".into(), ..Default::default() },
        ];
        // Requests through the service's own handler, as tonic would call it.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        for r in requests {
            tx.send(r).await.unwrap();
        }
        drop(tx);
        let mut responses = Vec::new();
        for r in futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
            .collect::<Vec<_>>()
            .await
        {
            let backend = Arc::clone(&service.backend);
            let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(16);
            stream_one(backend, r, out_tx).await;
            while let Some(response) = out_rx.recv().await {
                responses.push(response);
            }
        }
        let summary: Vec<(String, String, bool)> = responses
            .iter()
            .map(|r| {
                let response = r.infer_response.as_ref().unwrap();
                let last = response.parameters.contains_key(FINAL);
                (response.id.clone(), r.error_message.clone(), last)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), "".into(), false),
                ("a".into(), "".into(), false),
                ("a".into(), "".into(), false),
                ("a".into(), "".into(), true),
                ("b".into(), "".into(), false),
                ("b".into(), "boom".into(), true),
            ]
        );
    }

    fn service() -> Inference<Fake> {
        Inference::new(Arc::new(Fake))
    }

    #[tokio::test]
    async fn a_routing_key_in_the_metadata_keeps_a_call_on_one_version() {
        use crate::handler::{Batch, Handler, HandlerError, Predictions};
        use crate::model::ModelRegistry;
        use crate::service::InferenceService;
        let mut registry = ModelRegistry::new();
        for version in ["1", "2"] {
            let handler: Arc<dyn Handler> =
                Arc::new(|b: Batch| async move { Ok::<_, HandlerError>(Predictions::Columns(b.frame)) });
            registry.insert(crate::testing::model("m", Some(version), handler)).unwrap();
        }
        let models =
            Arc::new(InferenceService::start(registry, |k| k.name.clone(), None, &tokio::runtime::Handle::current()));
        models.set_traffic("m", Some([("1".to_string(), 0.5), ("2".to_string(), 0.5)].into())).unwrap();
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let grpc = Inference::new(Arc::new(crate::grpc::backend::ServiceBackend::new(Arc::clone(&models), ready)));
        let call = |key: String| {
            let request = ModelInferRequest {
                model_name: "m".into(),
                inputs: vec![InferInputTensor {
                    name: "x".into(),
                    datatype: "FP64".into(),
                    shape: vec![1],
                    ..Default::default()
                }],
                raw_input_contents: vec![Values::F64(vec![1.0]).to_raw().into()],
                ..Default::default()
            };
            let mut request = Request::new(request);
            request.metadata_mut().insert("x-routing-key", key.parse().unwrap());
            request
        };
        let mut seen = std::collections::HashSet::new();
        for k in 0..20 {
            let key = format!("user-{k}");
            let expected = models.route("m", None, Some(&key)).unwrap().0.key().version.clone().unwrap();
            for _ in 0..3 {
                let response = grpc.model_infer(call(key.clone())).await.unwrap().into_inner();
                assert_eq!(response.model_version, expected, "{key}");
            }
            seen.insert(expected);
        }
        assert_eq!(seen.len(), 2, "keys spread over both versions");
    }

    #[tokio::test]
    async fn infer_answers_raw_outputs_and_echoes_the_id() {
        let request = ModelInferRequest {
            model_name: "iris".into(),
            id: "7".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![3],
                ..Default::default()
            }],
            raw_input_contents: vec![Values::F32(vec![1.0, 2.0, 3.0]).to_raw().into()],
            ..Default::default()
        };
        let response = service().model_infer(Request::new(request)).await.unwrap().into_inner();
        assert_eq!(response.id, "7");
        assert_eq!(response.model_version, "1");
        assert_eq!(response.raw_output_contents[0].as_ref(), 3i64.to_le_bytes());
    }

    #[tokio::test]
    async fn statuses_carry_the_message() {
        let bad = ModelInferRequest {
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![2],
                ..Default::default()
            }],
            raw_input_contents: vec![vec![0u8; 4].into()],
            ..Default::default()
        };
        let status = service().model_infer(Request::new(bad)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "input 'x': shape [2] of FP32 takes 8 bytes but 4 were sent");
        let status = service()
            .model_ready(Request::new(ModelReadyRequest { name: "nope".into(), version: String::new() }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[test]
    fn grpc_timeout_units() {
        let mut r = Request::new(());
        r.metadata_mut().insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&r), Some(std::time::Duration::from_millis(250)));
        r.metadata_mut().insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&r), None);
    }

    #[tokio::test]
    async fn serves_on_an_ephemeral_port_and_stops() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(Arc::new(Fake), listener, async {
            let _ = stopped.await;
        }));
        // The port accepts connections while serving.
        tokio::net::TcpStream::connect(addr).await.unwrap();
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
