//! The inference service: the one way into a model, whatever the transport.
//!
//! resolve the model → check its parameters → decode the payload → queue →
//! wait within the deadline → answer. Front doors (HTTP today; V2, gRPC,
//! SSE, jobs and file scoring later) and the in-process `predict()` are
//! clients of this service and never of each other. Nothing here knows a
//! socket, a status code or a header: errors are [`RequestError`]s with a
//! neutral kind, and the client's liveness is a [`Liveness`] probe.

use crate::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use polars::prelude::DataFrame;
use tokio::runtime::Handle;

use crate::batch::{Answer, Liveness, Queues};
use crate::cache::ModelCache;
use crate::codec::records::decode_request;
use crate::error::{Outcome, RequestError};
use crate::handler::Params;
use crate::metrics::{EndpointMetrics, Metrics, Protocol};
use crate::model::{Model, ModelKey, ModelRegistry};
use crate::pipeline::{StepModel, StepModels};
use crate::prediction_cache::PredictionCache;
use crate::schema::Schema;
use crate::schema::TensorMetadata;
use crate::stream::ChunkStream;
use crate::telemetry::{Incoming, SpanContext};

mod call;
mod changes;

pub use call::{Call, StreamCall, Target};

use changes::Index;
pub use changes::{ChangeError, ModelGroup};

/// A model found by name (and version), and the parameter value its version
/// stood for when the version selects a cached variant.
pub type Resolved = (Arc<ServedModel>, Option<(String, String)>);

/// The models of a running server, ready to take requests; models and
/// versions come and go while it serves.
///
/// The live set is an immutable index (`service/changes.rs`, with the
/// changes: add, remove, traffic, defaults) swapped whole on every change
/// (`arc-swap`): a request reads it without a lock, a change builds the
/// next index from the current one under `changes`. A removed model leaves
/// the index first, so no new request finds it; requests that found it
/// still hold it and are answered; then its queues drain and it is dropped.
pub struct InferenceService {
    index: ArcSwap<Index>,
    /// Serialises changes: each builds the next index from the current one.
    changes: Mutex<()>,
    runtime: Handle,
    metrics: Option<Arc<Metrics>>,
}

/// A model with its queues and metric handles.
pub struct ServedModel {
    key: ModelKey,
    /// How metrics and logs name the model: its endpoint path when it has one.
    label: String,
    schema: Schema,
    params: Vec<String>,
    outputs: Vec<TensorMetadata>,
    /// The outputs of a model that declares none, learned from its first
    /// answer, so V2 metadata lists them from then on.
    learned: std::sync::OnceLock<Vec<TensorMetadata>>,
    inputs: Vec<TensorMetadata>,
    /// The models a pipeline runs (see [`Model::uses`]).
    uses: Vec<ModelKey>,
    queues: Queues,
    cache: Option<Arc<ModelCache>>,
    /// Answers remembered per row, when the model asks for it.
    predictions: Option<Arc<PredictionCache>>,
    metrics: Option<EndpointMetrics>,
    timeout: Option<Duration>,
    /// The artifact cache's background refresh, for models added while serving.
    refresh: Mutex<Option<tokio::task::AbortHandle>>,
}

/// An in-process prediction and where its time went.
pub struct Prediction {
    pub id: String,
    /// `None` for an empty array of records.
    pub answer: Option<Answer>,
    pub total: Duration,
}

/// What a client brings besides its payload.
pub struct InferenceRequest {
    /// Parameter values, in the model's parameter order.
    pub params: Params,
    /// When the request arrived: its deadline counts from here.
    pub arrived: Instant,
    /// Asked before the batch runs whether the client is still there.
    pub client: Option<Arc<dyn Liveness>>,
    /// The request's span ([`Call::trace`]), when it is traced.
    pub trace: Option<SpanContext>,
}

impl InferenceService {
    /// Starts serving every model of `registry`: their batchers run on
    /// `runtime`. `label` names a model in metrics and logs.
    pub fn start(
        registry: ModelRegistry,
        label: impl Fn(&ModelKey) -> String,
        metrics: Option<Arc<Metrics>>,
        runtime: &Handle,
    ) -> Self {
        let index = registry.into_iter().fold(Index::default(), |index, model: Model| {
            let label = label(&model.key());
            index.with(Arc::new(ServedModel::start(model, label, metrics.as_deref(), runtime)))
        });
        InferenceService {
            index: ArcSwap::from_pointee(index),
            changes: Mutex::new(()),
            runtime: runtime.clone(),
            metrics,
        }
    }

    /// The model of this name and version.
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, RequestError> {
        self.index
            .load()
            .by_name
            .get(name)
            .and_then(|models| models.iter().find(|m| m.key.version.as_deref() == version))
            .map(Arc::clone)
            .ok_or_else(|| RequestError::ModelNotFound(format!("no model named '{name}'")))
    }

    /// The model `target` names; see [`Self::route`].
    pub fn route_target(&self, target: Target<'_>) -> Result<Resolved, RequestError> {
        self.route(target.name, target.version, target.routing_key)
    }

    /// The model V2 clients address as `name` and, optionally, `version`;
    /// see [`Self::route`] (without a routing key).
    pub fn resolve_v2(&self, name: &str, version: Option<&str>) -> Result<Resolved, RequestError> {
        self.route(name, version, None)
    }

    /// The model a request for `name` and, optionally, `version` reaches.
    ///
    /// Without a version: when the name has traffic weights, the version
    /// they pick (by `routing_key`'s hash when given, else at random);
    /// else the unversioned model of that name, else its highest version.
    /// With a version: the model of that version; failing that, a model of
    /// that name with exactly one parameter takes the version as that
    /// parameter's value (returned as `Some`), so `/versions/{v}` selects a
    /// cached variant.
    pub fn route(
        &self,
        name: &str,
        version: Option<&str>,
        routing_key: Option<&str>,
    ) -> Result<Resolved, RequestError> {
        let index = self.index.load();
        let Some(named) = index.by_name.get(name) else {
            return Err(RequestError::ModelNotFound(format!("unknown model '{name}'")));
        };
        let version = version.filter(|v| !v.is_empty());
        let found = match version {
            None => match index.traffic.get(name) {
                Some(traffic) => {
                    let picked = traffic.pick(routing_key);
                    named.iter().find(|m| m.key.version.as_deref() == Some(picked)).map(|m| (m, None))
                }
                None => index.default_of(name, named).map(|m| (m, None)),
            },
            Some(v) => named.iter().find(|m| m.key.version.as_deref() == Some(v)).map(|m| (m, None)).or_else(|| {
                named.iter().find(|m| m.params.len() == 1).map(|m| (m, Some((m.params[0].clone(), v.to_string()))))
            }),
        };
        match found {
            Some((model, param)) => Ok((Arc::clone(model), param)),
            None => Err(RequestError::ModelNotFound(format!(
                "model '{name}' has no version '{}'",
                version.unwrap_or_default()
            ))),
        }
    }

    /// Every model now, in registration order.
    pub fn models(&self) -> impl Iterator<Item = Arc<ServedModel>> {
        self.index.load_full().models.clone().into_iter()
    }

    /// The artifact caches of every model, for background refresh and prefetch.
    pub fn caches(&self) -> impl Iterator<Item = Arc<ModelCache>> {
        self.models().filter_map(|m| m.cache.clone())
    }

    /// Resolves once no model has an open stream.
    pub async fn streams_closed(&self) {
        for model in self.models() {
            model.queues.streams_closed().await;
        }
    }

    /// Ends every open stream with an error (a stop's step once open
    /// streams had their time to finish, so streaming connections close
    /// rather than hold the stop up).
    pub fn end_streams(&self) {
        for model in self.models() {
            model.queues.end_streams();
        }
    }

    /// Stops taking requests; every queued and running batch is answered.
    pub async fn shutdown(&self) {
        for model in self.models() {
            model.retire().await;
        }
    }
}

/// The models of a running server: a pipeline added while serving runs
/// the version its step names, else the one an unversioned request reaches.
impl StepModels for InferenceService {
    fn step_model(&self, name: &str, version: Option<&str>) -> Option<StepModel> {
        let (model, param) = self.route(name, version, None).ok()?;
        if param.is_some() {
            return None;
        }
        let cache = model.cache.clone();
        let step = StepModel::of(model.queues.runtime(), &model.schema, &model.outputs, cache, &model.params);
        Some(StepModel { max_size: model.queues.config().max_size, ..step })
    }
}

impl ServedModel {
    fn start(model: Model, label: String, metrics: Option<&Metrics>, runtime: &Handle) -> Self {
        let key = model.key();
        let endpoint_metrics = metrics.map(|m| m.model(&label, &key.name, key.version.as_deref()));
        let predictions = model.prediction_cache.clone().filter(|_| !model.runtime.is_stream()).map(|config| {
            let handles = metrics.map(|m| m.prediction_cache(&label)).unwrap_or_default();
            Arc::new(PredictionCache::new(config, handles))
        });
        ServedModel {
            queues: Queues::with_parts(
                model.runtime,
                model.cache.clone(),
                endpoint_metrics.clone(),
                model.batch.clone(),
                runtime.clone(),
            ),
            timeout: model.batch.timeout,
            key,
            label,
            schema: model.schema,
            params: model.params,
            outputs: model.outputs,
            learned: std::sync::OnceLock::new(),
            inputs: model.inputs,
            uses: model.uses,
            cache: model.cache,
            predictions,
            metrics: endpoint_metrics,
            refresh: Mutex::new(None),
        }
    }

    /// Stops taking requests, answers every queued and running batch, and
    /// stops the artifact cache's refresh.
    async fn retire(&self) {
        if let Some(refresh) = lock(&self.refresh).take() {
            refresh.abort();
        }
        self.queues.shutdown().await;
    }

    /// How many artifact-cache variants are loaded; `None` for a model
    /// without an artifact cache.
    pub fn loaded_variants(&self) -> Option<u64> {
        self.cache.as_ref().map(|c| c.stats().size)
    }

    /// Whether a failed batch is bisected to fail only its guilty requests
    /// (and file scoring bisects a failed request's rows the same way).
    pub fn isolates(&self) -> bool {
        self.queues.config().isolate
    }

    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Names of the parameters that select a variant, in order.
    pub fn param_names(&self) -> &[String] {
        &self.params
    }

    /// Declared input tensors; empty when undeclared (the schema's fields then).
    pub fn inputs(&self) -> &[TensorMetadata] {
        &self.inputs
    }

    /// Declared output tensors; when undeclared, those the model's first
    /// answer formed (empty until it has answered).
    pub fn outputs(&self) -> &[TensorMetadata] {
        if self.outputs.is_empty() {
            return self.learned.get().map_or(&[], Vec::as_slice);
        }
        &self.outputs
    }

    /// Names the declared outputs, for naming the tensors of an answer
    /// (learned ones are not declared: their names are what answers form).
    pub fn declared_outputs(&self) -> &[TensorMetadata] {
        &self.outputs
    }

    /// The model's parameters taken from `lookup`, in order; `None` for a
    /// missing one becomes an empty value (as an HTTP route never lacks one).
    pub fn params_from<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Params {
        Params::new(self.params.iter().map(|n| (n.clone(), lookup(n).unwrap_or_default().to_string())).collect())
    }

    /// Like [`Self::params_from`], but every parameter must be given.
    pub fn require_params(&self, given: &Params) -> Result<Params, RequestError> {
        let missing: Vec<&str> = self.params.iter().filter(|n| given.get(n).is_none()).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(RequestError::InvalidParam(format!("missing path parameters: {}", missing.join(", "))));
        }
        Ok(self.params_from(|n| given.get(n)))
    }

    /// The model's prediction cache, when it has one.
    pub fn prediction_cache(&self) -> Option<&Arc<PredictionCache>> {
        self.predictions.as_ref()
    }

    /// The model's statistics, when metrics are recorded.
    pub fn stats(&self) -> Option<&Arc<crate::stats::ModelStats>> {
        self.metrics.as_ref().map(|m| &m.stats)
    }

    /// `busy` while requests are in flight, else `idle`; `loading` until
    /// the server is ready (prefetches done).
    pub fn state(&self, ready: bool) -> &'static str {
        if !ready {
            return "loading";
        }
        match &self.metrics {
            Some(m) if m.in_flight.get() > 0 => "busy",
            _ => "idle",
        }
    }

    /// Checks the parameters, decodes the payload with `decode`, queues it
    /// and waits for its answer within the model's deadline. `None` for a
    /// payload with no rows: nothing to predict.
    pub async fn predict(
        &self,
        request: InferenceRequest,
        decode: impl FnOnce(&Schema) -> Result<DataFrame, RequestError>,
    ) -> Result<Option<Answer>, RequestError> {
        self.predict_within(request, None, decode).await
    }

    /// Like [`Self::predict`], answering within `deadline` too when the
    /// client set one (gRPC's `grpc-timeout`): the earlier deadline wins.
    pub async fn predict_within(
        &self,
        request: InferenceRequest,
        deadline: Option<Duration>,
        decode: impl FnOnce(&Schema) -> Result<DataFrame, RequestError>,
    ) -> Result<Option<Answer>, RequestError> {
        let InferenceRequest { params, arrived, client, trace } = request;
        if let Some(cache) = &self.cache {
            // Unsafe parameter values are refused before anything is decoded or queued.
            cache.check(&params)?;
        }
        let frame = decode(&self.schema)?;
        if frame.height() == 0 {
            return Ok(None);
        }
        self.infer_within(params, frame, arrived, client, deadline, trace).await
    }

    /// The in-process client: every parameter must be given, `body` is
    /// records JSON as in an HTTP request, and the request counts in the
    /// model's metrics like one.
    pub async fn predict_records(self: &Arc<Self>, params: &Params, body: &[u8]) -> Result<Prediction, RequestError> {
        let params = self.require_params(params)?;
        let call = Call::on(Arc::clone(self), Protocol::Native, uuid::Uuid::new_v4().to_string())
            .at("predict()")
            .traced(Incoming::Root);
        let request = InferenceRequest { params, arrived: call.arrived(), client: None, trace: call.trace() };
        let result = self.predict(request, |schema| decode_request(schema, body)).await;
        let (id, total) = (call.id().to_string(), call.arrived().elapsed());
        call.finish(
            Outcome::from(&result),
            Outcome::from(&result).status_label(),
            result.as_ref().ok().and_then(Option::as_ref),
        );
        Ok(Prediction { id, answer: result?, total })
    }

    /// Whether the model's handler streams: its requests go through
    /// [`Self::stream`], and unary predictions are refused.
    pub fn streams(&self) -> bool {
        self.queues.streams()
    }

    /// Checks the parameters, decodes the payload with `decode` and queues
    /// it for a streaming model; the events follow as the handler yields.
    /// `None` for a payload with no rows. Errors here come before any
    /// chunk (a client can still get a plain error answer).
    pub fn stream(
        &self,
        request: InferenceRequest,
        decode: impl FnOnce(&Schema) -> Result<DataFrame, RequestError>,
    ) -> Result<Option<ChunkStream>, RequestError> {
        let InferenceRequest { params, arrived, client, trace: _ } = request;
        if !self.streams() {
            return Err(RequestError::NotStreaming(self.key.name.clone()));
        }
        if let Some(cache) = &self.cache {
            cache.check(&params)?;
        }
        let frame = decode(&self.schema)?;
        if frame.height() == 0 {
            return Ok(None);
        }
        self.queues.submit_stream(params, frame, client, arrived).map(Some)
    }

    /// The in-process client of a streaming model, as [`Self::predict_records`].
    pub fn stream_records(&self, params: &Params, body: &[u8]) -> Result<Option<ChunkStream>, RequestError> {
        let arrived = Instant::now();
        let params = self.require_params(params)?;
        let request = InferenceRequest { params, arrived, client: None, trace: None };
        self.stream(request, |schema| decode_request(schema, body))
    }

    /// Queues decoded columns and waits for their answer within the deadline.
    pub async fn infer(
        &self,
        params: Params,
        frame: DataFrame,
        arrived: Instant,
        client: Option<Arc<dyn Liveness>>,
    ) -> Result<Option<Answer>, RequestError> {
        self.infer_within(params, frame, arrived, client, None, None).await
    }

    /// Like [`Self::infer`], with the client's own deadline if it set one
    /// and the request's span when it is traced.
    pub async fn infer_within(
        &self,
        params: Params,
        frame: DataFrame,
        arrived: Instant,
        client: Option<Arc<dyn Liveness>>,
        deadline: Option<Duration>,
        trace: Option<SpanContext>,
    ) -> Result<Option<Answer>, RequestError> {
        let timeout = match (self.timeout, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.streams() {
            return Err(RequestError::StreamOnly(self.key.name.clone()));
        }
        match &self.predictions {
            Some(predictions) => {
                // A reload of the artifact changes the generation: earlier answers are not reused.
                let generation = self.cache.as_ref().map_or(0, |c| c.generation());
                let run = |rows| self.queue(params.clone(), rows, arrived, client.clone(), timeout, trace.clone());
                predictions.serve(&params, generation, frame, run).await
            }
            None => self.queue(params, frame, arrived, client, timeout, trace).await,
        }
    }

    /// Queues rows and waits for their answer within `timeout` of `arrived`.
    async fn queue(
        &self,
        params: Params,
        frame: DataFrame,
        arrived: Instant,
        client: Option<Arc<dyn Liveness>>,
        timeout: Option<Duration>,
        trace: Option<SpanContext>,
    ) -> Result<Option<Answer>, RequestError> {
        let reply = self.queues.submit(params, frame, client, trace)?;
        let reply = match timeout {
            // The deadline covers queueing and the handler: past it the client
            // is answered, and a batch not yet started drops the request.
            Some(timeout) => match tokio::time::timeout_at((arrived + timeout).into(), reply).await {
                Ok(reply) => reply,
                Err(_) => return Err(RequestError::DeadlineExceeded(timeout)),
            },
            None => reply.await,
        };
        match reply {
            Ok(Ok(answer)) => {
                if self.outputs.is_empty() && self.learned.get().is_none() {
                    let _ = self.learned.set(crate::v2::output::describe(&answer.predictions));
                }
                Ok(Some(answer))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RequestError::Handler("the batch ended without an answer".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchConfig;
    use crate::codec::records::decode_request as decode;
    use crate::handler::{Batch, Handler, HandlerError, Predictions};
    use crate::model::Endpoint;

    fn service(timeout: Option<Duration>, delay: Duration) -> InferenceService {
        let handler: Arc<dyn Handler> = Arc::new(move |batch: Batch| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, HandlerError>(Predictions::Column(
                batch.frame.column("x").unwrap().as_materialized_series().clone(),
            ))
        });
        let batch = BatchConfig { timeout, ..Default::default() };
        let endpoint = Endpoint::new("/scores/{run}", crate::testing::f64_schema(&["x"]), batch, handler).unwrap();
        let mut registry = ModelRegistry::new();
        registry.insert(endpoint.model).unwrap();
        InferenceService::start(registry, |k| k.name.clone(), None, &Handle::current())
    }

    fn request(params: Params) -> InferenceRequest {
        InferenceRequest { params, arrived: Instant::now(), client: None, trace: None }
    }

    #[tokio::test]
    async fn a_model_is_reached_by_name_and_answers_its_own_rows() {
        let service = service(None, Duration::ZERO);
        let model = service.resolve("scores", None).unwrap();
        let params = model.require_params(&Params::new(vec![("run".into(), "1".into())])).unwrap();
        let answer = model.predict(request(params), |s| decode(s, br#"[{"x":1},{"x":2}]"#)).await.unwrap();
        assert_eq!(answer.unwrap().predictions.len(), 2);
        let none = model.predict(request(Params::default()), |s| decode(s, b"[]")).await.unwrap();
        assert!(none.is_none());
        assert!(matches!(service.resolve("nope", None), Err(RequestError::ModelNotFound(_))));
    }

    #[tokio::test]
    async fn missing_parameters_and_late_answers_are_refused() {
        let service = service(Some(Duration::from_millis(10)), Duration::from_millis(200));
        let model = service.resolve("scores", None).unwrap();
        let err = model.require_params(&Params::default()).unwrap_err();
        assert_eq!(err.to_string(), "missing path parameters: run");
        let late = model.predict(request(Params::default()), |s| decode(s, br#"{"x":1}"#)).await;
        assert!(matches!(late, Err(RequestError::DeadlineExceeded(_))));
    }
}
