//! One request's scope, whatever door it came through.
//!
//! A door (native REST and its SSE, V1, V2 REST and generate, gRPC unary
//! and streaming, jobs, management's predict, the in-process client) opens
//! a [`Call`] with its protocol, the request id and the model it names. The
//! call resolves the model (traffic weights by routing key; a version that
//! selects a cached variant), counts the request in flight, and, once the
//! door has its answer, records the outcome in the model's metrics and
//! writes the one request log line. The door itself only decodes and
//! encodes. Whatever must see every request (traces, payload logs, load on
//! demand) hooks in here, never into a door.

use std::sync::Arc;
use std::time::Instant;

use super::{InferenceService, ServedModel};
use crate::error::{Outcome, RequestError};
use crate::metrics::Protocol;
use crate::pending::Answer;
use crate::telemetry::{Incoming, RequestSpan, SpanContext};
use opentelemetry::KeyValue;

/// The model a request names: its name, optionally a version, and the
/// routing key that keeps a client on one version under traffic weights.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub routing_key: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn named(name: &'a str) -> Self {
        Target { name, version: None, routing_key: None }
    }

    pub fn version(mut self, version: Option<&'a str>) -> Self {
        self.version = version;
        self
    }

    pub fn routing_key(mut self, routing_key: Option<&'a str>) -> Self {
        self.routing_key = routing_key;
        self
    }
}

/// A request in flight, from the moment its model is known until its
/// answer is recorded. Dropping it unfinished (a client that left) still
/// takes it out of the in-flight count.
pub struct Call {
    model: Arc<ServedModel>,
    from_version: Option<(String, String)>,
    protocol: Protocol,
    id: String,
    arrived: Instant,
    /// How the log names where the request came in (the model's label by default).
    endpoint: Option<String>,
    /// The request's server span, when tracing is on (`telemetry`).
    span: Option<RequestSpan>,
}

impl InferenceService {
    /// Opens the scope of a request for `target` that came in through
    /// `protocol` (see [`InferenceService::route`] for how it resolves).
    pub fn open(&self, protocol: Protocol, id: impl Into<String>, target: Target<'_>) -> Result<Call, RequestError> {
        let arrived = Instant::now();
        let (model, from_version) = self.route(target.name, target.version, target.routing_key)?;
        Ok(Call::on(model, protocol, id).with_version_param(from_version).arrived_at(arrived))
    }
}

impl Call {
    /// The scope of a request for a model the door already holds.
    pub fn on(model: Arc<ServedModel>, protocol: Protocol, id: impl Into<String>) -> Self {
        // The model's own handles: no clone of its metrics per request.
        if let Some(m) = &model.metrics {
            m.in_flight.inc();
        }
        Call { model, from_version: None, protocol, id: id.into(), arrived: Instant::now(), endpoint: None, span: None }
    }

    fn with_version_param(mut self, from_version: Option<(String, String)>) -> Self {
        self.from_version = from_version;
        self
    }

    /// Counts the request's time from `arrived` (when the door took it).
    pub fn arrived_at(mut self, arrived: Instant) -> Self {
        self.arrived = arrived;
        self
    }

    /// Names where the request came in, in the log (an endpoint's path).
    pub fn at(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Starts the request's server span when tracing is on, continuing the
    /// caller's trace from `incoming` (call it once the door knows its
    /// endpoint, see [`Self::at`]). Nothing happens while tracing is off.
    pub fn traced(mut self, incoming: Incoming<'_>) -> Self {
        if !crate::telemetry::enabled() {
            return self;
        }
        let key = self.model.key();
        let mut attributes = vec![
            KeyValue::new("redesmyn.model", key.name.clone()),
            KeyValue::new("redesmyn.protocol", self.protocol.as_str()),
            KeyValue::new("redesmyn.request_id", self.id.clone()),
        ];
        if let Some(version) = &key.version {
            attributes.push(KeyValue::new("redesmyn.version", version.clone()));
        }
        if self.protocol == Protocol::V2Grpc {
            attributes.push(KeyValue::new("rpc.system", "grpc"));
            attributes.push(KeyValue::new("rpc.service", "inference.GRPCInferenceService"));
        } else {
            attributes.push(KeyValue::new("http.request.method", "POST"));
            attributes.push(KeyValue::new("http.route", self.endpoint().to_string()));
        }
        let name = format!("{} {}", self.protocol.as_str(), self.endpoint());
        self.span = RequestSpan::start(incoming, name, self.arrived, attributes);
        self
    }

    /// The request's span, which its batch links, when it is traced.
    pub fn trace(&self) -> Option<SpanContext> {
        self.span.as_ref().map(|s| s.context().clone())
    }

    /// The `traceparent` of the request's span, for the response.
    pub fn traceparent(&self) -> Option<String> {
        self.span.as_ref().map(RequestSpan::traceparent)
    }

    fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(self.model.label())
    }

    pub fn model(&self) -> &Arc<ServedModel> {
        &self.model
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn arrived(&self) -> Instant {
        self.arrived
    }

    /// The parameter value the requested version stood for, when the
    /// version selects a cached variant (taken once).
    pub fn take_version_param(&mut self) -> Option<(String, String)> {
        self.from_version.take()
    }

    /// Records how the request ended and writes its log line; `status` is
    /// the door's own answer (an HTTP status, a gRPC code's name).
    pub fn finish(mut self, outcome: Outcome, status: impl tracing::Value + ToString, answer: Option<&Answer>) {
        let total = self.arrived.elapsed();
        if let Some(span) = self.span.take() {
            self.end_span(span, outcome, status.to_string(), answer);
        }
        if let Some(m) = &self.model.metrics {
            m.answered(outcome, total);
            m.answered_via(self.protocol);
        }
        let timing = answer.map(|a| a.timing(total));
        tracing::info!(
            target: "redesmyn::request",
            id = %self.id,
            endpoint = %self.endpoint.as_deref().unwrap_or(self.model.label()),
            protocol = self.protocol.as_str(),
            status = status,
            total_ms = total.as_secs_f64() * 1e3,
            timing = timing.as_deref().unwrap_or(""),
            "request"
        );
    }

    /// Ends the request's span with how it ended and where its time went.
    fn end_span(&self, mut span: RequestSpan, outcome: Outcome, status: String, answer: Option<&Answer>) {
        match self.protocol {
            Protocol::V2Grpc => span.set(KeyValue::new("rpc.grpc.status", status)),
            _ => match status.parse::<i64>() {
                Ok(code) => span.set(KeyValue::new("http.response.status_code", code)),
                Err(_) => span.set(KeyValue::new("redesmyn.status", status)),
            },
        }
        if let Some(answer) = answer {
            span.set(KeyValue::new("redesmyn.rows", answer.predictions.len() as i64));
            span.set(KeyValue::new("redesmyn.cached_rows", answer.cached_rows as i64));
            span.set(KeyValue::new("redesmyn.batch.size", answer.batch_rows as i64));
            span.set(KeyValue::new("redesmyn.queue_wait_ms", answer.queued.as_secs_f64() * 1e3));
            if let Some(batch) = &answer.batch {
                span.set(KeyValue::new("redesmyn.batch.span_id", batch.span_id().to_string()));
            }
        }
        let failed = matches!(outcome, Outcome::Failed(_)).then(|| outcome.status_label().to_string());
        span.end(failed);
    }

    /// The scope of a streaming request, which lives as long as its
    /// stream does (past the door's handler), owned by the stream.
    pub fn into_stream(self) -> StreamCall {
        StreamCall { call: Some(self) }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if let Some(m) = &self.model.metrics {
            m.in_flight.dec();
        }
    }
}

/// A streaming request's scope: finished when its stream ends or fails.
/// Dropped unfinished (the client left), it is logged as cancelled and
/// leaves the metrics' outcomes alone, as a unary request whose client left.
pub struct StreamCall {
    call: Option<Call>,
}

impl StreamCall {
    pub fn model(&self) -> Option<&Arc<ServedModel>> {
        self.call.as_ref().map(|c| &c.model)
    }

    /// Records a step of the stream that sent `chunks` chunks to the client,
    /// as an event of the request's span (nothing while untraced).
    pub fn step(&mut self, chunks: usize) {
        if let Some(span) = self.call.as_mut().and_then(|c| c.span.as_mut()) {
            span.event("step", vec![KeyValue::new("redesmyn.chunks", chunks as i64)]);
        }
    }

    /// Records how the stream ended (the log line's status is the
    /// outcome's label).
    pub fn finish(&mut self, outcome: Outcome) {
        if let Some(call) = self.call.take() {
            call.finish(outcome, outcome.status_label(), None);
        }
    }
}

impl Drop for StreamCall {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            tracing::info!(
                target: "redesmyn::request",
                id = %call.id,
                endpoint = %call.endpoint.as_deref().unwrap_or(call.model.label()),
                protocol = call.protocol.as_str(),
                status = Outcome::Failed(crate::error::ErrorKind::Cancelled).status_label(),
                total_ms = call.arrived.elapsed().as_secs_f64() * 1e3,
                "stream left by its client"
            );
        }
    }
}
