//! A prediction cache as TypeScript describes it (`predictionCache` on an
//! endpoint): bounds and time to live, checked and converted to the core's
//! `PredictionCacheConfig`.

use std::time::Duration;

use napi_derive::napi;
use redesmyn::prediction_cache::PredictionCacheConfig;

use crate::error::{BindingError, Result};

#[napi(object)]
pub struct PredictionCacheSpec {
    /// Rows remembered at most.
    pub max_entries: f64,
    /// Bytes remembered at most (default 64 MiB).
    pub max_bytes: Option<f64>,
    /// How long an answer is reused (default: until evicted or invalidated).
    pub ttl_ms: Option<f64>,
}

impl PredictionCacheSpec {
    pub fn config(&self, endpoint_path: &str) -> Result<PredictionCacheConfig> {
        let whole = |name: &str, v: f64| -> Result<u64> {
            if v.is_finite() && v >= 1.0 && v.fract() == 0.0 {
                Ok(v as u64)
            } else {
                Err(BindingError::invalid(format!(
                    "endpoint '{endpoint_path}': predictionCache.{name} must be a whole number >= 1, got {v}"
                )))
            }
        };
        let ttl = match self.ttl_ms {
            Some(ms) if !ms.is_finite() || ms <= 0.0 => {
                return Err(BindingError::invalid(format!(
                    "endpoint '{endpoint_path}': predictionCache.ttlMs must be a positive number, got {ms}"
                )))
            }
            Some(ms) => Some(Duration::from_secs_f64(ms / 1e3)),
            None => None,
        };
        Ok(PredictionCacheConfig {
            max_entries: whole("maxEntries", self.max_entries)?,
            max_bytes: match self.max_bytes {
                Some(b) => whole("maxBytes", b)?,
                None => PredictionCacheConfig::DEFAULT_MAX_BYTES,
            },
            ttl,
        })
    }
}
