//! AWS CloudWatch Embedded Metric Format: one JSON document per endpoint and
//! flush interval, written as a line to stdout or a file, which the
//! CloudWatch agent (or Lambda / ECS log drivers) turn into metrics.
//!
//! Each document carries `_aws.CloudWatchMetrics` as an array with one
//! directive (namespace, one dimension set: `Endpoint` plus the configured
//! extra dimensions, and the metric definitions with units); the metric
//! values sit at the document's root. Latency-like metrics are arrays of up
//! to 100 sampled values (the format's limit), so CloudWatch can compute
//! percentiles.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::error::Outcome;

/// Values per metric per document (the EMF limit).
const MAX_VALUES: usize = 100;

#[derive(Debug, Clone)]
pub enum EmfOutput {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct EmfConfig {
    pub namespace: String,
    /// Extra dimensions, added to `Endpoint` in every document.
    pub dimensions: Vec<(String, String)>,
    pub output: EmfOutput,
    pub interval: Duration,
}

/// A uniform sample of at most [`MAX_VALUES`] observations.
#[derive(Default)]
struct Reservoir {
    values: Vec<f64>,
    seen: u64,
}

impl Reservoir {
    fn add(&mut self, value: f64, random: u64) {
        self.seen += 1;
        if self.values.len() < MAX_VALUES {
            self.values.push(value);
        } else {
            let slot = random % self.seen;
            if (slot as usize) < MAX_VALUES {
                self.values[slot as usize] = value;
            }
        }
    }
}

#[derive(Default)]
struct Window {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
    rows: u64,
    latency: Reservoir,
    queue: Reservoir,
    handler: Reservoir,
    batch_size: Reservoir,
}

/// One endpoint's observations since the last flush.
pub struct EmfEndpoint {
    endpoint: String,
    window: Mutex<Window>,
    random: AtomicU64,
}

impl EmfEndpoint {
    fn next_random(&self) -> u64 {
        // A splitmix64 step: enough randomness for sampling, no lock.
        let x = self.random.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn with<F: FnOnce(&mut Window, u64)>(&self, f: F) {
        let random = self.next_random();
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut window, random);
    }

    pub fn answered(&self, outcome: Outcome, elapsed: Duration) {
        let status = outcome.status_label();
        self.with(|w, r| {
            w.requests += 1;
            match status {
                400..=499 => w.client_errors += 1,
                500..=599 => w.server_errors += 1,
                _ => {}
            }
            w.latency.add(elapsed.as_secs_f64() * 1e3, r);
        });
    }

    pub fn queued(&self, waited: Duration) {
        self.with(|w, r| w.queue.add(waited.as_secs_f64() * 1e3, r));
    }

    pub fn batch(&self, rows: usize, handled: Duration) {
        self.with(|w, r| {
            w.rows += rows as u64;
            w.batch_size.add(rows as f64, r);
            w.handler.add(handled.as_secs_f64() * 1e3, r >> 1);
        });
    }
}

/// Collects observations and writes EMF documents.
pub struct Emf {
    config: EmfConfig,
    endpoints: Mutex<Vec<Arc<EmfEndpoint>>>,
}

impl Emf {
    pub fn new(config: EmfConfig) -> Self {
        Emf { config, endpoints: Mutex::new(Vec::new()) }
    }

    pub fn config(&self) -> &EmfConfig {
        &self.config
    }

    pub fn endpoint(&self, endpoint: &str) -> Arc<EmfEndpoint> {
        let recorder = Arc::new(EmfEndpoint {
            endpoint: endpoint.to_string(),
            window: Mutex::new(Window::default()),
            random: AtomicU64::new(endpoint.len() as u64),
        });
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&recorder));
        recorder
    }

    /// The documents for everything observed since the last flush (one per
    /// endpoint with requests), and a fresh window.
    pub fn documents(&self) -> Vec<Value> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut documents = Vec::new();
        for recorder in endpoints {
            let window = std::mem::take(&mut *recorder.window.lock().unwrap_or_else(|p| p.into_inner()));
            if window.requests == 0 && window.batch_size.seen == 0 {
                continue;
            }
            documents.push(self.document(&recorder.endpoint, &window, timestamp));
        }
        documents
    }

    fn document(&self, endpoint: &str, w: &Window, timestamp: u64) -> Value {
        let mut root = Map::new();
        let mut dimension_names = vec![Value::from("Endpoint")];
        root.insert("Endpoint".into(), Value::from(endpoint));
        for (name, value) in &self.config.dimensions {
            dimension_names.push(Value::from(name.as_str()));
            root.insert(name.clone(), Value::from(value.as_str()));
        }
        let mut definitions = Vec::new();
        let mut metric = |name: &str, unit: &str, value: Value| {
            definitions.push(json!({ "Name": name, "Unit": unit }));
            root.insert(name.to_string(), value);
        };
        metric("Requests", "Count", Value::from(w.requests));
        metric("ClientErrors", "Count", Value::from(w.client_errors));
        metric("ServerErrors", "Count", Value::from(w.server_errors));
        metric("Rows", "Count", Value::from(w.rows));
        let mut sampled = |name: &str, unit: &str, r: &Reservoir| {
            if !r.values.is_empty() {
                metric(name, unit, Value::from(r.values.clone()));
            }
        };
        sampled("Latency", "Milliseconds", &w.latency);
        sampled("QueueTime", "Milliseconds", &w.queue);
        sampled("HandlerTime", "Milliseconds", &w.handler);
        sampled("BatchSize", "Count", &w.batch_size);
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.config.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }]
            }),
        );
        Value::Object(root)
    }

    /// Writes the pending documents, one JSON line each.
    pub fn flush(&self) {
        let documents = self.documents();
        if documents.is_empty() {
            return;
        }
        let mut text = String::new();
        for d in documents {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        let result = match &self.config.output {
            EmfOutput::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
            EmfOutput::File(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes())),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not write EMF metrics");
        }
    }

    /// Flushes every interval until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.interval).await;
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_format() {
        use crate::error::ErrorKind;
        let emf = Emf::new(EmfConfig {
            namespace: "redesmyn".into(),
            dimensions: vec![("Service".into(), "iris".into())],
            output: EmfOutput::Stdout,
            interval: Duration::from_secs(60),
        });
        let e = emf.endpoint("/p");
        for i in 0..250 {
            let outcome = if i % 50 == 0 { Outcome::Failed(ErrorKind::Internal) } else { Outcome::Ok };
            e.answered(outcome, Duration::from_millis(i));
        }
        e.batch(64, Duration::from_millis(3));
        let docs = emf.documents();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert!(d["_aws"]["CloudWatchMetrics"].is_array());
        assert_eq!(directive["Namespace"], "redesmyn");
        assert_eq!(directive["Dimensions"], json!([["Endpoint", "Service"]]));
        assert_eq!(d["Endpoint"], "/p");
        assert_eq!(d["Service"], "iris");
        assert_eq!(d["Requests"], 250);
        assert_eq!(d["ServerErrors"], 5);
        assert_eq!(d["Latency"].as_array().unwrap().len(), 100);
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(d.get(m["Name"].as_str().unwrap()).is_some());
            assert!(m["Unit"].is_string());
        }
        assert!(emf.documents().is_empty(), "a flush starts a new window");
    }
}
