//! Plain option objects passed from TypeScript, and their core equivalents.

use std::time::Duration;

use napi::{Error, Result, Status};
use napi_derive::napi;
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
pub struct EndpointSpec {
    pub path: String,
    pub fields: Vec<FieldSpec>,
    pub batch: Option<BatchOptions>,
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
                let size = self
                    .size
                    .ok_or_else(|| invalid(format!("field '{}': an array needs a size", self.name)))?;
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
