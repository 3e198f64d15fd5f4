//! Where model artifacts live: a local directory, or object storage (S3,
//! Google Cloud Storage, Azure Blob or plain HTTP, see [`super::cloud`]),
//! with downloads landing atomically in a local cache directory.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;

pub use super::cloud::StoreOptions;
use super::cloud::{self, Remote};
use super::download::{download, Limits};
pub use super::store_error::StoreError;

/// Identifies one content of an artifact (mtime and size, or an ETag):
/// when it changes, a refresh reloads the model.
pub type Version = String;

/// A local file holding an artifact, and the version it holds.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    pub version: Version,
}

/// A place artifacts are read from. Keys are relative, `/`-separated paths
/// rendered from the endpoint's path template.
pub trait ArtifactStore: Send + Sync + 'static {
    /// The current version of `key`.
    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Version, StoreError>>;
    /// A local file with the artifact's current content.
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched, StoreError>>;
    /// Every key that starts with `prefix`.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
    /// For messages: where this store reads from.
    fn describe(&self) -> String;
}

/// Artifacts in a local directory, read in place.
pub struct FsStore {
    base: PathBuf,
}

impl FsStore {
    pub fn new(base: impl AsRef<Path>) -> Result<Self, StoreError> {
        let base = base.as_ref();
        let base = std::fs::canonicalize(base)
            .map_err(|e| StoreError::Other(format!("model directory {}: {e}", base.display())))?;
        Ok(FsStore { base })
    }

    /// The file of `key`, which must stay inside the base directory even
    /// through symbolic links.
    fn resolve(&self, key: &str) -> Result<PathBuf, StoreError> {
        let path = self.base.join(key);
        let real = std::fs::canonicalize(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(key.to_string()),
            _ => StoreError::Other(format!("{}: {e}", path.display())),
        })?;
        if !real.starts_with(&self.base) {
            return Err(StoreError::Outside { key: key.to_string() });
        }
        if !real.is_file() {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(real)
    }

    fn version_of(path: &Path) -> Result<Version, StoreError> {
        let meta = std::fs::metadata(path).map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        let modified =
            meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        Ok(format!("{modified}-{}", meta.len()))
    }
}

impl ArtifactStore for FsStore {
    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Version, StoreError>> {
        Box::pin(async move { Self::version_of(&self.resolve(key)?) })
    }

    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched, StoreError>> {
        Box::pin(async move {
            let path = self.resolve(key)?;
            let version = Self::version_of(&path)?;
            Ok(Fetched { path, version })
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut stack = vec![self.base.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(_) => continue,
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Ok(relative) = path.strip_prefix(&self.base) else {
                        continue;
                    };
                    let key = relative.to_string_lossy().replace('\\', "/");
                    let file_type = match entry.file_type() {
                        Ok(t) => t,
                        Err(_) => continue,
                    };
                    if file_type.is_dir() {
                        // Only descend where keys with this prefix can be.
                        if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                            stack.push(path);
                        }
                    } else if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn describe(&self) -> String {
        self.base.display().to_string()
    }
}

/// Artifacts in object storage, downloaded into `cache_dir`.
pub struct ObjectStoreStore {
    remote: Remote,
    cache_dir: PathBuf,
    limits: Limits,
}

impl ObjectStoreStore {
    /// `url` is any URL [`cloud::open`] takes (`s3://`, `gs://`, `az://`, `http(s)://`, …).
    pub fn new(url: &str, options: StoreOptions, cache_dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let remote = cloud::open(url, &options)?;
        let cache_dir = cache_dir.into();
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| StoreError::Other(format!("cache directory {}: {e}", cache_dir.display())))?;
        Ok(ObjectStoreStore { remote, cache_dir, limits: Limits::default() })
    }

    /// The store of an object's folder and the object's key in it.
    pub fn for_object(
        url: &str,
        options: StoreOptions,
        cache_dir: impl Into<PathBuf>,
    ) -> Result<(Self, String), StoreError> {
        let (dir, name) = cloud::split_object_url(url)?;
        Ok((Self::new(dir, options, cache_dir)?, name.to_string()))
    }

    /// Refuse objects larger than `max_bytes`, before downloading them.
    pub fn with_max_bytes(mut self, max_bytes: Option<u64>) -> Self {
        self.limits.max_bytes = max_bytes;
        self
    }

    fn version_of(meta: &object_store::ObjectMeta) -> Version {
        meta.e_tag
            .clone()
            .unwrap_or_else(|| format!("{}-{}", meta.last_modified.timestamp_nanos_opt().unwrap_or(0), meta.size))
    }
}

impl ArtifactStore for ObjectStoreStore {
    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Version, StoreError>> {
        Box::pin(async move {
            let meta =
                self.remote.store.head(&self.remote.location(key)).await.map_err(|e| self.remote.error(key, e))?;
            Ok(Self::version_of(&meta))
        })
    }

    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched, StoreError>> {
        Box::pin(async move {
            // One directory per version keeps a file a loader may still read
            // from being replaced under it; the file keeps its own name.
            let folder = |meta: &object_store::ObjectMeta| {
                let version = Self::version_of(meta);
                let digest =
                    version.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
                self.cache_dir.join(format!("{digest:016x}")).join(key)
            };
            let (path, meta) = download(&self.remote, key, &self.limits, &folder).await?;
            Ok(Fetched { path, version: Self::version_of(&meta) })
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            // List under the last whole directory of the prefix.
            let dir = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let remote = &self.remote;
            let location = if dir.is_empty() {
                (!remote.prefix.is_empty()).then(|| ObjectPath::from(remote.prefix.as_str()))
            } else {
                Some(remote.location(dir))
            };
            let strip = if remote.prefix.is_empty() { String::new() } else { format!("{}/", remote.prefix) };
            let metas: Vec<object_store::ObjectMeta> =
                remote.store.list(location.as_ref()).try_collect().await.map_err(|e| remote.error(prefix, e))?;
            let mut keys: Vec<String> = metas
                .into_iter()
                .filter_map(|m| m.location.as_ref().strip_prefix(strip.as_str()).map(str::to_string))
                .filter(|k| k.starts_with(prefix))
                .collect();
            keys.sort();
            Ok(keys)
        })
    }

    fn describe(&self) -> String {
        self.remote.url.clone()
    }
}
