//! Prometheus metrics, exposed at `GET /metrics` (OpenMetrics text).
//!
//! Recording stays cheap on the request path: each endpoint resolves its
//! metric handles once ([`EndpointMetrics`]); a request then touches a few
//! atomics and two histogram locks. Model-cache counters are read from the
//! caches when scraped.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::cache::ModelCache;
use crate::emf::{Emf, EmfEndpoint};
use crate::error::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    /// Empty for an unversioned model.
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    endpoint: String,
    protocol: &'static str,
}

/// The front door a request came through, as the `protocol` label of
/// `redesmyn_protocol_requests_total` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The endpoint's own path, records JSON.
    Native,
    /// Open Inference Protocol over REST (`/v2/models/...`).
    V2Rest,
    /// Open Inference Protocol over gRPC.
    V2Grpc,
    /// KServe V1 (`/v1/models/{m}:predict`).
    V1,
}

impl Protocol {
    const ALL: [Protocol; 4] = [Protocol::Native, Protocol::V2Rest, Protocol::V2Grpc, Protocol::V1];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::V2Rest => "v2-rest",
            Protocol::V2Grpc => "v2-grpc",
            Protocol::V1 => "v1",
        }
    }
}

type Histograms = Family<EndpointLabel, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 50 µs … ~26 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

fn chunks() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

fn rows() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

/// What a pool of worker processes behind a runtime reports at each scrape
/// (`redesmyn_workers_alive`, `redesmyn_worker_restarts_total{cause}`,
/// `redesmyn_worker_batches_total{worker}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    pub alive: u64,
    /// Restarts by cause (`signal`, `exit`, `timeout`, `rss`, ...).
    pub restarts: Vec<(String, u64)>,
    /// Batches run, by worker slot.
    pub batches: Vec<u64>,
}

/// A runtime's worker pool, read when metrics are scraped.
pub trait PoolStats: Send + Sync {
    fn snapshot(&self) -> PoolSnapshot;
}

/// Every metric of a server.
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    by_protocol: Family<ProtocolLabels, Counter>,
    by_model: Family<ModelLabels, Counter>,
    request_duration: Histograms,
    queue_duration: Histograms,
    handler_duration: Histograms,
    batch_size: Histograms,
    queue_depth: Family<EndpointLabel, Gauge>,
    in_flight: Family<EndpointLabel, Gauge>,
    streams_open: Family<EndpointLabel, Gauge>,
    first_chunk: Histograms,
    stream_chunks: Histograms,
    prediction_hits: Family<EndpointLabel, Counter>,
    prediction_misses: Family<EndpointLabel, Counter>,
    prediction_entries: Family<EndpointLabel, Gauge>,
    prediction_bytes: Family<EndpointLabel, Gauge>,
    poison: Family<EndpointLabel, Counter>,
    isolation_calls: Family<EndpointLabel, Counter>,
    emf: Option<Arc<Emf>>,
}

impl Metrics {
    /// `caches` are the model caches by endpoint path, read at each scrape;
    /// with `emf`, observations also go to EMF documents.
    pub fn new(caches: Vec<(String, Arc<ModelCache>)>, emf: Option<Arc<Emf>>) -> Self {
        let mut registry = Registry::with_prefix("redesmyn");
        let requests = Family::<StatusLabels, Counter>::default();
        let by_protocol = Family::<ProtocolLabels, Counter>::default();
        let by_model = Family::<ModelLabels, Counter>::default();
        let request_duration = Histograms::new_with_constructor(seconds);
        let queue_duration = Histograms::new_with_constructor(seconds);
        let handler_duration = Histograms::new_with_constructor(seconds);
        let batch_size = Histograms::new_with_constructor(rows);
        let queue_depth = Family::<EndpointLabel, Gauge>::default();
        let in_flight = Family::<EndpointLabel, Gauge>::default();
        let model_load_duration = Histograms::new_with_constructor(seconds);
        let streams_open = Family::<EndpointLabel, Gauge>::default();
        let first_chunk = Histograms::new_with_constructor(seconds);
        let stream_chunks = Histograms::new_with_constructor(chunks);
        registry.register("requests", "Requests answered, by endpoint and HTTP status", requests.clone());
        registry.register(
            "protocol_requests",
            "Requests answered, by endpoint and the protocol they came in (native, v2-rest, v2-grpc, v1)",
            by_protocol.clone(),
        );
        registry.register(
            "model_requests",
            "Requests answered, by model name and version (the traffic share of each version of a model)",
            by_model.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer",
            Unit::Seconds,
            request_duration.clone(),
        );
        registry.register_with_unit(
            "queue_duration",
            "Time a request waited before its batch's handler started",
            Unit::Seconds,
            queue_duration.clone(),
        );
        registry.register_with_unit(
            "handler_duration",
            "Time a handler took per batch",
            Unit::Seconds,
            handler_duration.clone(),
        );
        registry.register("batch_size", "Rows per batch handed to a handler", batch_size.clone());
        registry.register("queue_depth", "Requests waiting for a batch", queue_depth.clone());
        registry.register("in_flight", "Requests being served", in_flight.clone());
        registry.register_with_unit(
            "model_load_duration",
            "Time to fetch and load a model",
            Unit::Seconds,
            model_load_duration.clone(),
        );
        registry.register("streams_open", "Streaming requests whose stream is open", streams_open.clone());
        registry.register_with_unit(
            "stream_first_chunk",
            "Time from a streaming request's arrival to its first chunk",
            Unit::Seconds,
            first_chunk.clone(),
        );
        registry.register("stream_chunks", "Chunks sent per stream", stream_chunks.clone());
        let prediction_hits = Family::<EndpointLabel, Counter>::default();
        let prediction_misses = Family::<EndpointLabel, Counter>::default();
        let prediction_entries = Family::<EndpointLabel, Gauge>::default();
        let prediction_bytes = Family::<EndpointLabel, Gauge>::default();
        registry.register("prediction_cache_hits", "Rows answered from the prediction cache", prediction_hits.clone());
        registry.register(
            "prediction_cache_misses",
            "Rows looked up in the prediction cache and sent to the handler",
            prediction_misses.clone(),
        );
        registry.register("prediction_cache_entries", "Rows held by the prediction cache", prediction_entries.clone());
        registry.register_with_unit(
            "prediction_cache",
            "Memory held by the prediction cache (keys, values, overhead; approximate)",
            Unit::Bytes,
            prediction_bytes.clone(),
        );
        let poison = Family::<EndpointLabel, Counter>::default();
        let isolation_calls = Family::<EndpointLabel, Counter>::default();
        registry.register(
            "poison_requests",
            "Requests that failed alone when their batch was run again in parts (the batch's others were answered)",
            poison.clone(),
        );
        registry.register(
            "isolation_calls",
            "Extra handler calls made to find the requests that failed a batch",
            isolation_calls.clone(),
        );
        for (endpoint, cache) in &caches {
            let histogram = model_load_duration.get_or_create(&EndpointLabel { endpoint: endpoint.clone() }).clone();
            cache.on_load(move |d| histogram.observe(d.as_secs_f64()));
        }
        registry.register_collector(Box::new(CacheCollector { caches }));
        Metrics {
            registry,
            requests,
            by_protocol,
            by_model,
            request_duration,
            queue_duration,
            handler_duration,
            batch_size,
            queue_depth,
            in_flight,
            streams_open,
            first_chunk,
            stream_chunks,
            prediction_hits,
            prediction_misses,
            prediction_entries,
            prediction_bytes,
            poison,
            isolation_calls,
            emf,
        }
    }

    /// The prediction cache handles of one endpoint (only models with a
    /// prediction cache ask, so others show no such series).
    pub fn prediction_cache(&self, endpoint: &str) -> PredictionCacheMetrics {
        let label = EndpointLabel { endpoint: endpoint.to_string() };
        PredictionCacheMetrics {
            hits: self.prediction_hits.get_or_create(&label).clone(),
            misses: self.prediction_misses.get_or_create(&label).clone(),
            entries: self.prediction_entries.get_or_create(&label).clone(),
            bytes: self.prediction_bytes.get_or_create(&label).clone(),
        }
    }

    /// Adds the worker pools of runtimes, by endpoint, read at each scrape.
    pub fn with_pools(mut self, pools: Vec<(String, Arc<dyn PoolStats>)>) -> Self {
        if !pools.is_empty() {
            self.registry.register_collector(Box::new(PoolCollector { pools }));
        }
        self
    }

    /// The handles of one endpoint, resolved once.
    /// Reports what became of the trace spans: exported, dropped on a full
    /// queue, lost to a collector that failed.
    pub fn with_spans(mut self, counts: &crate::telemetry::ExportCounts) -> Self {
        let r = &mut self.registry;
        r.register("trace_spans_exported", "Trace spans sent to the collector", counts.exported.clone());
        r.register(
            "trace_spans_dropped",
            "Trace spans dropped because the export queue was full",
            counts.dropped.clone(),
        );
        r.register(
            "trace_spans_failed",
            "Trace spans lost because the collector failed or was unreachable",
            counts.failed.clone(),
        );
        self
    }

    pub fn endpoint(&self, endpoint: &str) -> EndpointMetrics {
        self.model(endpoint, endpoint, None)
    }

    /// The handles of one model, labelled `endpoint` and counted in
    /// `redesmyn_model_requests_total` by its name and version.
    pub fn model(&self, endpoint: &str, name: &str, version: Option<&str>) -> EndpointMetrics {
        let label = EndpointLabel { endpoint: endpoint.to_string() };
        let by_model = ModelLabels { model: name.to_string(), version: version.unwrap_or_default().to_string() };
        EndpointMetrics {
            by_model: self.by_model.get_or_create(&by_model).clone(),
            endpoint: endpoint.to_string(),
            requests: self.requests.clone(),
            by_protocol: Protocol::ALL.map(|p| {
                self.by_protocol
                    .get_or_create(&ProtocolLabels { endpoint: endpoint.to_string(), protocol: p.as_str() })
                    .clone()
            }),
            ok: self.requests.get_or_create(&StatusLabels { endpoint: endpoint.to_string(), status: 200 }).clone(),
            request_duration: self.request_duration.get_or_create(&label).clone(),
            queue_duration: self.queue_duration.get_or_create(&label).clone(),
            handler_duration: self.handler_duration.get_or_create(&label).clone(),
            batch_size: self.batch_size.get_or_create(&label).clone(),
            queue_depth: self.queue_depth.get_or_create(&label).clone(),
            in_flight: self.in_flight.get_or_create(&label).clone(),
            streams_open: self.streams_open.get_or_create(&label).clone(),
            first_chunk: self.first_chunk.get_or_create(&label).clone(),
            stream_chunks: self.stream_chunks.get_or_create(&label).clone(),
            poison: self.poison.get_or_create(&label).clone(),
            isolation_calls: self.isolation_calls.get_or_create(&label).clone(),
            emf: self.emf.as_ref().map(|e| e.endpoint(endpoint)),
            stats: Arc::default(),
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and parsers
    /// that do not speak OpenMetrics: counter families are named with their
    /// `_total` suffix, and `# UNIT` / `# EOF` lines are dropped.
    pub fn encode_classic(&self) -> String {
        let open = self.encode();
        let counters: std::collections::HashSet<&str> =
            open.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.strip_suffix(" counter")).collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let name = rest.split(' ').next()?;
                counters.contains(name).then(|| format!("{prefix}{name}_total{}", &rest[name.len()..]))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }
}

/// One endpoint's metric handles.
#[derive(Clone)]
pub struct EndpointMetrics {
    endpoint: String,
    requests: Family<StatusLabels, Counter>,
    /// One counter per [`Protocol`], in `Protocol::ALL` order.
    by_protocol: [Counter; 4],
    /// Answered requests of this model and version.
    by_model: Counter,
    ok: Counter,
    request_duration: Histogram,
    queue_duration: Histogram,
    handler_duration: Histogram,
    batch_size: Histogram,
    pub(crate) queue_depth: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) streams_open: Gauge,
    first_chunk: Histogram,
    stream_chunks: Histogram,
    pub(crate) poison: Counter,
    pub(crate) isolation_calls: Counter,
    emf: Option<Arc<EmfEndpoint>>,
    /// The model's Triton-shaped statistics (`GET /v2/models/{m}/stats`).
    pub stats: Arc<crate::stats::ModelStats>,
}

impl EndpointMetrics {
    /// Records how a request ended. The `status` label keeps the HTTP
    /// status the outcome maps to (what dashboards already query), whichever
    /// front door the request came through.
    pub fn answered(&self, outcome: Outcome, elapsed: Duration) {
        self.by_model.inc();
        match outcome {
            Outcome::Ok => {
                self.ok.inc();
            }
            Outcome::Failed(_) => {
                let status = outcome.status_label();
                self.requests.get_or_create(&StatusLabels { endpoint: self.endpoint.clone(), status }).inc();
            }
        }
        self.request_duration.observe(elapsed.as_secs_f64());
        self.stats.answered(outcome == Outcome::Ok, elapsed);
        if let Some(emf) = &self.emf {
            emf.answered(outcome, elapsed);
        }
    }

    /// Counts an answered request under the protocol it came in.
    pub fn answered_via(&self, protocol: Protocol) {
        let index = Protocol::ALL.iter().position(|p| *p == protocol).unwrap_or(0);
        self.by_protocol[index].inc();
    }

    /// A stream's first chunk reached its client's buffer `after` its arrival.
    pub fn first_chunk(&self, after: Duration) {
        self.first_chunk.observe(after.as_secs_f64());
    }

    /// A stream ended (or its client left) after `chunks` chunks.
    pub fn stream_chunks(&self, chunks: u64) {
        self.stream_chunks.observe(chunks as f64);
    }

    pub fn queued(&self, waited: Duration) {
        self.queue_duration.observe(waited.as_secs_f64());
        self.stats.queued(waited);
        if let Some(emf) = &self.emf {
            emf.queued(waited);
        }
    }

    pub fn batch(&self, rows: usize, handled: Duration) {
        self.batch_size.observe(rows as f64);
        self.handler_duration.observe(handled.as_secs_f64());
        self.stats.batch(rows, handled);
        if let Some(emf) = &self.emf {
            emf.batch(rows, handled);
        }
    }
}

/// Reads the model caches' counters at scrape time.
#[derive(Debug)]
struct CacheCollector {
    caches: Vec<(String, Arc<ModelCache>)>,
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.caches.is_empty() {
            return Ok(());
        }
        let stats: Vec<_> = self.caches.iter().map(|(e, c)| (e.as_str(), c.stats())).collect();
        type Get = fn(&crate::cache::CacheStats) -> u64;
        let counters: [(&str, &str, Get); 7] = [
            ("cache_hits", "Model lookups served from memory", |s| s.hits),
            ("cache_misses", "Model lookups that had to load", |s| s.misses),
            ("cache_loads", "Models loaded", |s| s.loads),
            ("cache_load_failures", "Model loads that failed", |s| s.load_failures),
            ("cache_evictions", "Models evicted to stay within maxSize", |s| s.evictions),
            ("cache_refreshes", "Models reloaded by a refresh", |s| s.refreshes),
            ("cache_refresh_failures", "Refreshes that failed (the old model kept serving)", |s| s.refresh_failures),
        ];
        for (name, help, get) in counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (endpoint, s) in &stats {
                let labels = EndpointLabel { endpoint: endpoint.to_string() };
                ConstCounter::new(get(s)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor("cache_models", "Models in memory", None, MetricType::Gauge)?;
        for (endpoint, s) in &stats {
            let labels = EndpointLabel { endpoint: endpoint.to_string() };
            ConstGauge::new(s.size as i64).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

struct PoolCollector {
    pools: Vec<(String, Arc<dyn PoolStats>)>,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.pools.iter().map(|(endpoint, _)| endpoint)).finish()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    endpoint: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    endpoint: String,
    worker: u32,
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<_> = self.pools.iter().map(|(e, p)| (e.as_str(), p.snapshot())).collect();
        let mut metric =
            encoder.encode_descriptor("workers_alive", "Worker processes alive", None, MetricType::Gauge)?;
        for (endpoint, s) in &stats {
            let labels = EndpointLabel { endpoint: endpoint.to_string() };
            ConstGauge::new(s.alive as i64).encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "worker_restarts",
            "Worker processes replaced, by cause",
            None,
            MetricType::Counter,
        )?;
        for (endpoint, s) in &stats {
            for (cause, n) in &s.restarts {
                let labels = CauseLabels { endpoint: endpoint.to_string(), cause: cause.clone() };
                ConstCounter::new(*n).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric =
            encoder.encode_descriptor("worker_batches", "Batches run, by worker slot", None, MetricType::Counter)?;
        for (endpoint, s) in &stats {
            for (worker, n) in s.batches.iter().enumerate() {
                let labels = WorkerLabels { endpoint: endpoint.to_string(), worker: worker as u32 };
                ConstCounter::new(*n).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The cache's counters: Prometheus handles, which are plain atomics, so the
/// same values serve `/metrics` and the prediction cache's `stats`.
#[derive(Clone, Default)]
pub struct PredictionCacheMetrics {
    /// Rows answered from the cache.
    pub hits: Counter,
    /// Rows that went to the handler.
    pub misses: Counter,
    /// Rows remembered.
    pub entries: Gauge,
    /// Bytes remembered (approximate: keys, values and a fixed overhead per entry).
    pub bytes: Gauge,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl PoolStats for Fixed {
        fn snapshot(&self) -> PoolSnapshot {
            PoolSnapshot { alive: 2, restarts: vec![("signal".into(), 1)], batches: vec![5, 7] }
        }
    }

    #[test]
    fn worker_pools_are_scraped() {
        let metrics = Metrics::new(Vec::new(), None).with_pools(vec![("/rf".into(), Arc::new(Fixed))]);
        let text = metrics.encode();
        assert!(text.contains("redesmyn_workers_alive{endpoint=\"/rf\"} 2"), "{text}");
        assert!(text.contains("redesmyn_worker_restarts_total{endpoint=\"/rf\",cause=\"signal\"} 1"), "{text}");
        assert!(text.contains("redesmyn_worker_batches_total{endpoint=\"/rf\",worker=\"1\"} 7"), "{text}");
    }

    #[test]
    fn classic_text_names_counters_with_total() {
        let metrics = Metrics::new(Vec::new(), None);
        let e = metrics.endpoint("/p");
        e.answered(Outcome::Ok, Duration::from_millis(2));
        e.answered(Outcome::Failed(crate::error::ErrorKind::InvalidArgument), Duration::from_millis(1));
        let open = metrics.encode();
        assert!(open.contains("# TYPE redesmyn_requests counter"));
        assert!(open.contains("redesmyn_requests_total{endpoint=\"/p\",status=\"422\"} 1"));
        assert!(open.ends_with("# EOF\n"));
        let classic = metrics.encode_classic();
        assert!(classic.contains("# TYPE redesmyn_requests_total counter"));
        assert!(classic.contains("# HELP redesmyn_requests_total "));
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
        assert!(classic.contains("# TYPE redesmyn_request_duration_seconds histogram"));
    }
}
