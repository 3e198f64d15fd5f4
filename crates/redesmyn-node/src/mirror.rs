//! Object stores for the TypeScript repository loader: a whole repository
//! copied to a local folder (see `redesmyn::cache::Mirror`), and single
//! objects a model's settings name by URL.

use std::collections::HashMap;
use std::path::PathBuf;

use napi_derive::napi;
use redesmyn::cache::{ArtifactStore, Limits, Mirror, MirrorReport, ObjectStoreStore};

use crate::error::BindingError;

#[napi(object)]
pub struct MirrorSpec {
    /// `s3://bucket/prefix`, `gs://…`, `az://…`.
    pub url: String,
    /// `object_store` options, on top of the cloud's standard variables.
    pub options: Option<HashMap<String, String>>,
    /// Where copies are kept (one folder per URL).
    pub cache_dir: String,
    /// Objects declared larger are refused before any download.
    pub max_bytes: Option<f64>,
}

#[napi(object)]
pub struct MirrorSyncReport {
    pub dir: String,
    pub files: u32,
    pub downloaded: u32,
    pub reused: u32,
    pub removed: u32,
}

impl From<MirrorReport> for MirrorSyncReport {
    fn from(r: MirrorReport) -> Self {
        MirrorSyncReport {
            dir: r.dir.display().to_string(),
            files: r.files as u32,
            downloaded: r.downloaded as u32,
            reused: r.reused as u32,
            removed: r.removed as u32,
        }
    }
}

#[napi(object)]
pub struct ObjectFetchSpec {
    /// The object: `gs://bucket/models/iris/model.joblib`, `s3://…`, `az://…`, `https://…`.
    pub url: String,
    pub options: Option<HashMap<String, String>>,
    /// Where downloads are kept (one folder per version).
    pub cache_dir: String,
    pub max_bytes: Option<f64>,
}

/// Downloads one object (unless its current version is cached) and returns the local path.
#[napi]
pub async fn fetch_object(spec: ObjectFetchSpec) -> napi::Result<String> {
    let options = spec.options.unwrap_or_default().into_iter().collect();
    let (store, key) = ObjectStoreStore::for_object(&spec.url, options, PathBuf::from(spec.cache_dir))
        .map_err(|e| BindingError::invalid(e.to_string()))?;
    let store = store.with_max_bytes(spec.max_bytes.map(|n| n.max(0.0) as u64));
    let fetched = store.fetch(&key).await.map_err(|e| BindingError::failed(e.to_string()))?;
    Ok(fetched.path.display().to_string())
}

#[napi]
pub struct NativeMirror {
    mirror: Mirror,
}

#[napi]
impl NativeMirror {
    #[napi(constructor)]
    pub fn new(spec: MirrorSpec) -> napi::Result<Self> {
        let options = spec.options.unwrap_or_default().into_iter().collect();
        let limits = Limits { max_bytes: spec.max_bytes.map(|n| n.max(0.0) as u64) };
        let mirror = Mirror::new(&spec.url, &options, &PathBuf::from(spec.cache_dir), limits)
            .map_err(|e| BindingError::invalid(e.to_string()))?;
        Ok(NativeMirror { mirror })
    }

    /// The local copy.
    #[napi(getter)]
    pub fn dir(&self) -> String {
        self.mirror.dir().display().to_string()
    }

    /// Brings the local copy to the store's state; rejects (moving nothing) when a download fails.
    #[napi]
    pub async fn sync(&self) -> napi::Result<MirrorSyncReport> {
        let report = self.mirror.sync().await.map_err(|e| BindingError::failed(format!("{}: {e}", self.mirror.url())))?;
        Ok(report.into())
    }
}
