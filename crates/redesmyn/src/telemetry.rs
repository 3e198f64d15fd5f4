//! Traces: OpenTelemetry spans for every request, its queue wait, the batch
//! that served it and the handler call, exported over OTLP.
//!
//! Off by default; a server turns it on from its `telemetry` option or
//! `OTEL_TRACES_EXPORTER=otlp` ([`TelemetrySpec`]). While it is off, a
//! request costs one atomic load here and allocates nothing. Like the
//! OpenTelemetry SDKs' global tracer provider, the running tracer is the
//! process's: the server that starts it installs it, and stopping that
//! server flushes and removes it.
//!
//! The trace tree (`docs/observability.md`): a request's server span
//! (`Call`, in `service/call.rs`) continues the caller's W3C `traceparent`
//! or starts a trace; its `queue` child spans the wait for a batch. A
//! batch's span is a child of the first request it serves and links every
//! other request span it serves; each request span records the batch
//! span's id.
//! The `handler` span, the handler call, is the batch span's child.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
pub use opentelemetry::trace::SpanContext;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanExporter};
use opentelemetry_sdk::Resource;

mod export;
mod spec;

use export::BoundedQueue;
pub use export::ExportCounts;
pub use spec::{OtlpProtocol, Resolved, TelemetryError, TelemetrySpec};

/// The running tracer, when a server turned tracing on.
static CURRENT: ArcSwapOption<Telemetry> = ArcSwapOption::const_empty();

/// A started tracer: spans go through a bounded queue to the exporter.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    queue: Arc<BoundedQueue>,
    counts: ExportCounts,
}

/// How long a stopping server waits for its spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Checks `spec` and, when tracing is on, starts the exporter with its
    /// task on `runtime`. An unusable setting is an error naming it.
    pub fn start(spec: &TelemetrySpec, runtime: &tokio::runtime::Handle) -> Result<Option<Arc<Self>>, TelemetryError> {
        let Some(resolved) = spec.resolve()? else { return Ok(None) };
        let _entered = runtime.enter(); // the OTLP clients are built on the runtime they run on
        let built = match resolved.protocol {
            OtlpProtocol::Grpc => {
                opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(&resolved.endpoint).build()
            }
            OtlpProtocol::HttpProtobuf => {
                opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(&resolved.endpoint).build()
            }
        };
        let exporter = built.map_err(|e| TelemetryError {
            option: "telemetry.endpoint".into(),
            value: resolved.endpoint.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(Self::with_exporter(exporter, &resolved, runtime)))
    }

    /// Tracing with `exporter` (the core's tests give the SDK's in-memory one).
    pub fn with_exporter<E: SpanExporter + 'static>(
        mut exporter: E,
        settings: &Resolved,
        runtime: &tokio::runtime::Handle,
    ) -> Arc<Self> {
        let mut resource = Resource::builder();
        resource = match &settings.service_name {
            Some(name) => resource.with_service_name(name.clone()),
            // `OTEL_RESOURCE_ATTRIBUTES` may name it; otherwise the SDK says `unknown_service`.
            None if std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name=")) => resource,
            None => resource.with_service_name("redesmyn"),
        };
        let resource = resource.build();
        exporter.set_resource(&resource);
        let counts = ExportCounts::default();
        let (queue, task) = BoundedQueue::new(
            exporter,
            settings.max_queue,
            settings.export_batch,
            settings.export_delay,
            counts.clone(),
        );
        drop(runtime.spawn(task));
        let queue = Arc::new(queue);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SharedQueue(Arc::clone(&queue)))
            .with_sampler(settings.sampler.clone())
            // A batch links every other request it serves.
            .with_max_links_per_span(4096)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("redesmyn");
        Arc::new(Telemetry { provider, tracer, queue, counts })
    }

    /// What became of the spans so far.
    pub fn counts(&self) -> &ExportCounts {
        &self.counts
    }

    /// Makes this the process's tracer: requests from now on are traced.
    pub fn install(self: &Arc<Self>) {
        CURRENT.store(Some(Arc::clone(self)));
    }

    /// Exports every span ended so far (within a few seconds).
    pub async fn flush(&self) {
        self.queue.flush(FLUSH_TIMEOUT).await;
    }

    /// Stops tracing: no new spans (when this is the process's tracer), the
    /// ended ones are exported, and the exporter closes.
    pub async fn stop(self: &Arc<Self>) {
        let _ = CURRENT.compare_and_swap(&Some(Arc::clone(self)), None);
        self.flush().await;
        self.queue.close();
        let _ = self.provider.shutdown();
    }
}

/// The provider owns its processors; the queue is shared with [`Telemetry`]
/// so that a stopping server can wait for its export.
#[derive(Debug)]
struct SharedQueue(Arc<BoundedQueue>);

impl opentelemetry_sdk::trace::SpanProcessor for SharedQueue {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.0.on_start(span, cx)
    }
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.0.on_end(span)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// The tracer, when tracing is on: one atomic load.
fn tracer() -> Option<SdkTracer> {
    CURRENT.load().as_ref().map(|t| t.tracer.clone())
}

/// Whether requests are traced now.
pub fn enabled() -> bool {
    CURRENT.load().is_some()
}

/// Where a request's trace context comes from.
pub enum Incoming<'a> {
    /// HTTP headers (`traceparent`, `tracestate`).
    Http(&'a actix_web::http::header::HeaderMap),
    /// The same two values, taken from gRPC metadata ([`TraceHeaders::of_grpc`]).
    Carried(Option<&'a TraceHeaders>),
    /// A request started here (a job, the in-process client): a new trace.
    Root,
}

impl Incoming<'_> {
    fn context(&self) -> Context {
        let propagator = TraceContextPropagator::new();
        match self {
            Incoming::Http(headers) => propagator.extract(&HttpHeaders(headers)),
            Incoming::Carried(Some(headers)) => propagator.extract(*headers),
            Incoming::Carried(None) => Context::new(),
            Incoming::Root => Context::new(),
        }
    }
}

struct HttpHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A caller's `traceparent` and `tracestate`, carried with a request
/// that leaves its transport's headers behind (gRPC's backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceHeaders {
    /// The trace context in gRPC metadata, read only while tracing is on.
    pub fn of_grpc(metadata: &tonic::metadata::MetadataMap) -> Option<Self> {
        if !enabled() {
            return None;
        }
        let value = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok()).map(str::to_string);
        Some(TraceHeaders { traceparent: value("traceparent")?, tracestate: value("tracestate") })
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(&self.traceparent),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The response header (and gRPC metadata key) naming the server span.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C `traceparent` value that names a span.
pub fn traceparent(span: &SpanContext) -> String {
    format!("00-{}-{}-{:02x}", span.trace_id(), span.span_id(), span.trace_flags().to_u8())
}

/// The time an [`Instant`] stood for, on the wall clock spans use.
fn wall(at: Instant) -> SystemTime {
    let now = (SystemTime::now(), Instant::now());
    now.0 - now.1.saturating_duration_since(at)
}

/// The server span of one request, from its arrival to its answer.
pub struct RequestSpan {
    span: Span,
    context: SpanContext,
}

impl RequestSpan {
    /// Starts the span of a request that arrived at `arrived`, continuing
    /// the caller's trace from `incoming`; `None` while tracing is off.
    pub fn start(incoming: Incoming<'_>, name: String, arrived: Instant, attributes: Vec<KeyValue>) -> Option<Self> {
        let tracer = tracer()?;
        let parent = incoming.context();
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(wall(arrived))
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        let context = span.span_context().clone();
        Some(RequestSpan { span, context })
    }

    /// The span's context: what its queue wait and batch hang from.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// The `traceparent` a response carries, so the caller can find the span.
    pub fn traceparent(&self) -> String {
        traceparent(&self.context)
    }

    pub fn set(&mut self, attribute: KeyValue) {
        self.span.set_attribute(attribute);
    }

    /// Records an event on the span (a stream's step: one span per stream,
    /// an event per step, not a span each).
    pub fn event(&mut self, name: &'static str, attributes: Vec<KeyValue>) {
        self.span.add_event(name, attributes);
    }

    /// Ends the span; a failure sets its status to error with `message`.
    pub fn end(mut self, failed: Option<String>) {
        if let Some(message) = failed {
            self.span.set_status(Status::error(message));
        }
        self.span.end();
    }
}

/// The span of one batch, when any request in it is traced.
pub struct BatchSpan {
    tracer: SdkTracer,
    span: Span,
    context: SpanContext,
}

impl BatchSpan {
    /// Starts the span of a batch of `rows` rows serving requests whose
    /// spans are `requests` (untraced ones are `None`): a child of the
    /// first traced one, linked to each of the others. (The parent is not
    /// linked as well: Jaeger drops a parent edge that is also a link.)
    pub fn start<'a>(requests: impl Iterator<Item = Option<&'a SpanContext>>, rows: usize) -> Option<Self> {
        let mut links = Vec::new();
        let mut parent = None;
        for request in requests.flatten() {
            match parent {
                None => parent = Some(request.clone()),
                Some(_) => links.push(opentelemetry::trace::Link::with_context(request.clone())),
            }
        }
        let parent = parent?;
        let tracer = tracer()?;
        let requests = links.len() as i64 + 1;
        let span = tracer
            .span_builder("batch")
            .with_kind(SpanKind::Internal)
            .with_links(links)
            .with_attributes([
                KeyValue::new("redesmyn.batch.rows", rows as i64),
                KeyValue::new("redesmyn.batch.requests", requests),
            ])
            .start_with_context(&tracer, &Context::new().with_remote_span_context(parent));
        let context = span.span_context().clone();
        Some(BatchSpan { tracer, span, context })
    }

    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Records a request's wait in the queue, `enqueued` to `taken`, as a
    /// child of its span.
    pub fn queue_wait(&self, request: &SpanContext, enqueued: Instant, taken: Instant) {
        let parent = Context::new().with_remote_span_context(request.clone());
        let waited = taken.saturating_duration_since(enqueued);
        let mut span = self
            .tracer
            .span_builder("queue")
            .with_start_time(wall(enqueued))
            .with_attributes([KeyValue::new("redesmyn.queue_wait_ms", waited.as_secs_f64() * 1e3)])
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(wall(taken));
    }

    /// Starts the handler call's span, a child of the batch's.
    pub fn handler(&self, name: impl Into<Cow<'static, str>>) -> HandlerSpan {
        let parent = Context::new().with_remote_span_context(self.context.clone());
        HandlerSpan(self.tracer.span_builder(name).start_with_context(&self.tracer, &parent))
    }

    pub fn set(&mut self, attribute: KeyValue) {
        self.span.set_attribute(attribute);
    }

    /// Ends the batch's span; a failure sets its status to error.
    pub fn end(mut self, failed: Option<&str>) {
        if let Some(message) = failed {
            self.span.set_status(Status::error(message.to_string()));
        }
        self.span.end();
    }
}

/// The span of one handler call.
pub struct HandlerSpan(Span);

impl HandlerSpan {
    pub fn context(&self) -> &SpanContext {
        self.0.span_context()
    }

    pub fn end(mut self, failed: Option<&str>) {
        if let Some(message) = failed {
            self.0.set_status(Status::error(message.to_string()));
        }
        self.0.end();
    }
}

#[cfg(test)]
mod tests;
