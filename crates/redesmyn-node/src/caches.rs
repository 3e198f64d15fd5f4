//! `NativeCaches`: the artifact caches and prediction caches of a server's
//! endpoints, by endpoint path: what they hold, their counters, refresh and
//! clear.

use std::collections::HashMap;
use std::sync::Arc;

use napi_derive::napi;
use redesmyn::prediction_cache::PredictionCache;

use crate::error::{BindingError, Result};
use crate::shared::Shared;

#[napi(object)]
pub struct CacheStatsReport {
    pub hits: f64,
    pub misses: f64,
    pub loads: f64,
    pub load_failures: f64,
    pub evictions: f64,
    pub refreshes: f64,
    pub refresh_failures: f64,
    pub load_seconds_total: f64,
    /// Models in memory.
    pub size: f64,
}

#[napi(object)]
pub struct PredictionCacheStatsReport {
    /// Rows answered from the cache.
    pub hits: f64,
    /// Rows that went to the handler.
    pub misses: f64,
    /// Rows held.
    pub entries: f64,
    /// Memory held, approximately.
    pub bytes: f64,
}

#[napi]
pub struct NativeCaches {
    shared: Arc<Shared>,
}

impl NativeCaches {
    pub fn new(shared: Arc<Shared>) -> Self {
        NativeCaches { shared }
    }

    fn prediction_cache(&self, path: &str) -> Result<Arc<PredictionCache>> {
        let running = self.shared.running()?;
        let model = running.model_at(path).ok_or_else(|| BindingError::invalid(format!("no endpoint at '{path}'")))?;
        model
            .prediction_cache()
            .cloned()
            .ok_or_else(|| BindingError::invalid(format!("endpoint '{path}' has no prediction cache")))
    }
}

#[napi]
impl NativeCaches {
    /// The path parameters of the models the endpoint at `path` holds in memory.
    #[napi]
    pub async fn keys(&self, path: String) -> napi::Result<Vec<HashMap<String, String>>> {
        let cache = self.shared.cache(&path)?;
        cache.sync().await;
        Ok(cache.keys().iter().map(|p| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).collect())
    }

    /// Counters of the endpoint's model cache.
    #[napi]
    pub async fn stats(&self, path: String) -> napi::Result<CacheStatsReport> {
        let cache = self.shared.cache(&path)?;
        cache.sync().await;
        let s = cache.stats();
        Ok(CacheStatsReport {
            hits: s.hits as f64,
            misses: s.misses as f64,
            loads: s.loads as f64,
            load_failures: s.load_failures as f64,
            evictions: s.evictions as f64,
            refreshes: s.refreshes as f64,
            refresh_failures: s.refresh_failures as f64,
            load_seconds_total: s.load_seconds_total,
            size: s.size as f64,
        })
    }

    /// Checks every cached model's artifact now and reloads what changed (all with `force`).
    #[napi]
    pub async fn refresh(&self, path: String, force: Option<bool>) -> napi::Result<()> {
        self.shared.cache(&path)?.refresh(force.unwrap_or(false)).await;
        Ok(())
    }

    /// Counters of the endpoint's prediction cache (needs a serving server).
    #[napi]
    pub fn prediction_stats(&self, path: String) -> napi::Result<PredictionCacheStatsReport> {
        let s = self.prediction_cache(&path)?.stats();
        Ok(PredictionCacheStatsReport {
            hits: s.hits as f64,
            misses: s.misses as f64,
            entries: s.entries as f64,
            bytes: s.bytes as f64,
        })
    }

    /// Forgets every answer the endpoint's prediction cache holds.
    #[napi]
    pub fn prediction_clear(&self, path: String) -> napi::Result<()> {
        self.prediction_cache(&path)?.clear();
        Ok(())
    }
}
