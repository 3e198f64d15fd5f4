//! A model cache as TypeScript describes it: artifact client, size,
//! refresh, prefetch, parameter patterns; converted to the core's `CacheSpec`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use napi_derive::napi;
use redesmyn::cache::{ArtifactStore, CacheConfig, FsStore, ObjectStoreStore, Refresh};

use crate::error::{BindingError, Result};

fn invalid(message: String) -> BindingError {
    BindingError::Invalid(message)
}

#[napi(object)]
pub struct ClientSpec {
    /// `fs` or `object-store`.
    pub kind: String,
    /// Artifact path below the base, e.g. `iris/{run_id}/{model_id}/model.joblib`.
    pub path_template: String,
    /// `fs`: the base directory.
    pub base_path: Option<String>,
    /// `object-store`: `s3://bucket/prefix`, `gs://…`, `az://…`, `http(s)://…`.
    pub url: Option<String>,
    /// `object-store`: `object_store` options (`aws_endpoint`, `google_base_url`, `azure_storage_account_key`, …).
    pub options: Option<HashMap<String, String>>,
    /// `object-store`: objects declared larger are refused before downloading.
    pub max_bytes: Option<f64>,
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

impl CacheSpec {
    /// The core's cache spec: the store the client names, the template and
    /// the cache's settings (the core's model builder makes the cache).
    pub fn to_spec(&self, endpoint_path: &str) -> Result<redesmyn::model::CacheSpec> {
        let fail = |e: String| invalid(format!("endpoint '{endpoint_path}': {e}"));
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
                let max_bytes = self.client.max_bytes.map(|n| n.max(0.0) as u64);
                Arc::new(
                    ObjectStoreStore::new(url, options, cache_dir).map_err(|e| fail(e.to_string()))?.with_max_bytes(max_bytes),
                )
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
        Ok(redesmyn::model::CacheSpec { path_template: self.client.path_template.clone(), store, config })
    }
}
