//! Plain option objects passed from TypeScript, and their core equivalents.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use napi::{Error, Result, Status};
use napi_derive::napi;
use redesmyn::cache::{
    ArtifactStore, CacheConfig, FsStore, Loader, ModelCache, ObjectStoreStore, PathTemplate, Refresh,
};
use redesmyn::emf::{EmfConfig, EmfOutput};
use redesmyn::schema::{Field, FieldType, Numeric, Schema};
use redesmyn::{BatchConfig, ServerConfig};

#[napi(object)]
pub struct PythonOptions {
    /// A Python executable whose installation or venv to use.
    pub executable: Option<String>,
    /// A virtual environment directory.
    pub venv: Option<String>,
    /// Extra import paths, searched first.
    pub path: Option<Vec<String>>,
}

#[napi(object)]
pub struct ServerOptions {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub workers: Option<u32>,
    /// Largest request body in bytes.
    pub body_limit: Option<f64>,
    pub shutdown_timeout_ms: Option<f64>,
    pub python: Option<PythonOptions>,
    /// Serve Prometheus metrics at /metrics (default true).
    pub metrics: Option<bool>,
    pub emf: Option<EmfOptions>,
    pub log: Option<LogOptions>,
}

#[napi(object)]
pub struct EmfOptions {
    pub namespace: String,
    pub dimensions: Option<HashMap<String, String>>,
    /// `stdout` (default) or a file path to append to.
    pub output: Option<String>,
    pub interval_ms: Option<f64>,
}

#[napi(object)]
pub struct LogOptions {
    /// A level (`error` … `trace`) or a filter such as `warn,redesmyn::request=info`.
    pub level: Option<String>,
    /// `json` (default) or `text`.
    pub format: Option<String>,
}

#[napi(object)]
pub struct FieldSpec {
    pub name: String,
    /// `bool`, `str`, a numeric type (`i8` … `f64`), `list` or `array`.
    #[napi(js_name = "type")]
    pub kind: String,
    /// Item type of a `list` or `array`.
    pub item: Option<String>,
    /// Width of an `array`.
    pub size: Option<u32>,
    pub nullable: Option<bool>,
}

#[napi(object)]
pub struct BatchOptions {
    pub max_size: Option<u32>,
    pub max_delay_ms: Option<f64>,
    pub max_concurrent: Option<u32>,
    pub max_queue: Option<u32>,
    pub timeout_ms: Option<f64>,
}

#[napi(object)]
pub struct ClientSpec {
    /// `fs` or `object-store`.
    pub kind: String,
    /// Artifact path below the base, e.g. `iris/{run_id}/{model_id}/model.joblib`.
    pub path_template: String,
    /// `fs`: the base directory.
    pub base_path: Option<String>,
    /// `object-store`: `s3://bucket/prefix` (or `http(s)://…`).
    pub url: Option<String>,
    /// `object-store`: `object_store` options (`aws_endpoint`, `aws_region`, …).
    pub options: Option<HashMap<String, String>>,
    /// `object-store`: where downloads land.
    pub cache_dir: Option<String>,
}

#[napi(object)]
pub struct CacheSpec {
    pub client: ClientSpec,
    pub max_size: Option<u32>,
    pub refresh_interval_ms: Option<f64>,
    pub refresh_cron: Option<String>,
    pub refresh_force: Option<bool>,
    pub prefetch: Option<bool>,
    /// Parameter name → regular expression its values must match.
    pub params: Option<HashMap<String, String>>,
    pub retry_backoff_ms: Option<f64>,
}

#[napi(object)]
pub struct EndpointSpec {
    pub path: String,
    pub fields: Vec<FieldSpec>,
    pub batch: Option<BatchOptions>,
    pub cache: Option<CacheSpec>,
}

fn invalid(message: String) -> Error {
    Error::new(Status::InvalidArg, message)
}

impl ServerOptions {
    pub fn to_config(&self) -> Result<ServerConfig> {
        let defaults = ServerConfig::default();
        let port = match self.port {
            Some(p) if p > u16::MAX as u32 => return Err(invalid(format!("port {p} is out of range"))),
            Some(p) => p as u16,
            None => defaults.port,
        };
        Ok(ServerConfig {
            host: self.host.clone().unwrap_or(defaults.host),
            port,
            workers: self.workers.map(|w| w.max(1) as usize),
            body_limit: self.body_limit.map_or(defaults.body_limit, |b| b.max(0.0) as usize),
            shutdown_timeout: self
                .shutdown_timeout_ms
                .map_or(defaults.shutdown_timeout, |ms| Duration::from_millis(ms.max(0.0) as u64)),
            metrics: self.metrics.unwrap_or(defaults.metrics),
            emf: self.emf.as_ref().map(|e| EmfConfig {
                namespace: e.namespace.clone(),
                dimensions: e.dimensions.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
                output: match e.output.as_deref() {
                    None | Some("stdout") => EmfOutput::Stdout,
                    Some(path) => EmfOutput::File(path.into()),
                },
                interval: Duration::from_secs_f64(e.interval_ms.unwrap_or(60_000.0).max(10.0) / 1e3),
            }),
        })
    }
}

impl PythonOptions {
    pub fn to_config(&self) -> redesmyn_python::PythonConfig {
        redesmyn_python::PythonConfig {
            executable: self.executable.as_ref().map(Into::into),
            venv: self.venv.as_ref().map(Into::into),
            path: self.path.iter().flatten().map(Into::into).collect(),
        }
    }
}

fn numeric(name: &str, field: &str) -> Result<Numeric> {
    Numeric::parse(name).ok_or_else(|| invalid(format!("field '{field}': unknown numeric type '{name}'")))
}

impl FieldSpec {
    fn to_field(&self) -> Result<Field> {
        let item = || -> Result<Numeric> {
            let item = self
                .item
                .as_deref()
                .ok_or_else(|| invalid(format!("field '{}': a {} needs an item type", self.name, self.kind)))?;
            numeric(item, &self.name)
        };
        let ty = match self.kind.as_str() {
            "bool" => FieldType::Bool,
            "str" => FieldType::Str,
            "list" => FieldType::List(item()?),
            "array" => {
                let size = self.size.ok_or_else(|| invalid(format!("field '{}': an array needs a size", self.name)))?;
                FieldType::Array(item()?, size as usize)
            }
            other => FieldType::Number(numeric(other, &self.name)?),
        };
        Ok(Field { name: self.name.clone(), ty, nullable: self.nullable.unwrap_or(false) })
    }
}

impl EndpointSpec {
    pub fn schema(&self) -> Result<Schema> {
        let fields = self.fields.iter().map(FieldSpec::to_field).collect::<Result<Vec<_>>>()?;
        Schema::new(fields).map_err(|e| invalid(format!("endpoint '{}': {e}", self.path)))
    }

    pub fn batch_config(&self) -> BatchConfig {
        let d = BatchConfig::default();
        let Some(b) = &self.batch else { return d };
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1e3);
        BatchConfig {
            max_size: b.max_size.map_or(d.max_size, |v| v.max(1) as usize),
            max_delay: b.max_delay_ms.map_or(d.max_delay, ms),
            max_concurrent: b.max_concurrent.map_or(d.max_concurrent, |v| v.max(1) as usize),
            max_queue: b.max_queue.map_or(d.max_queue, |v| v.max(1) as usize),
            timeout: b.timeout_ms.map(ms).or(d.timeout),
        }
    }
}

impl CacheSpec {
    /// The endpoint's model cache, with `loader` making its models.
    pub fn build(&self, endpoint_path: &str, loader: Arc<dyn Loader>) -> Result<ModelCache> {
        let fail = |e: String| invalid(format!("endpoint '{endpoint_path}': {e}"));
        let param_order = redesmyn::endpoint::parse_path(endpoint_path).map_err(|e| fail(e.to_string()))?;
        let template = PathTemplate::parse(&self.client.path_template).map_err(|e| fail(e.to_string()))?;
        let store: Arc<dyn ArtifactStore> = match self.client.kind.as_str() {
            "fs" => {
                let base = self.client.base_path.as_deref().ok_or_else(|| fail("FsClient needs a basePath".into()))?;
                Arc::new(FsStore::new(base).map_err(|e| fail(e.to_string()))?)
            }
            "object-store" => {
                let url = self.client.url.as_deref().ok_or_else(|| fail("ObjectStoreClient needs a url".into()))?;
                let options = self.client.options.clone().unwrap_or_default().into_iter().collect();
                let cache_dir = self
                    .client
                    .cache_dir
                    .clone()
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| std::env::temp_dir().join("redesmyn-artifacts"));
                Arc::new(ObjectStoreStore::new(url, options, cache_dir).map_err(|e| fail(e.to_string()))?)
            }
            other => return Err(fail(format!("unknown client kind '{other}'"))),
        };
        let refresh = match (&self.refresh_cron, self.refresh_interval_ms) {
            (Some(cron), _) => Some(Refresh::cron(cron).map_err(fail)?),
            (None, Some(ms)) => Some(Refresh::every(Duration::from_secs_f64(ms.max(0.0) / 1e3))),
            (None, None) => None,
        }
        .map(|r| Refresh { force: self.refresh_force.unwrap_or(false), ..r });
        let patterns = self.params.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        let defaults = CacheConfig::default();
        let config = CacheConfig {
            max_size: self.max_size.map_or(defaults.max_size, |n| n.max(1) as u64),
            refresh,
            prefetch: self.prefetch.unwrap_or(false),
            patterns,
            retry_backoff: self
                .retry_backoff_ms
                .map_or(defaults.retry_backoff, |ms| Duration::from_secs_f64(ms.max(0.0) / 1e3)),
        };
        ModelCache::new(template, &param_order, store, loader, config).map_err(|e| fail(e.to_string()))
    }
}
