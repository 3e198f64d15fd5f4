//! A local copy of a folder in an object store (a whole model repository),
//! kept in step by [`Mirror::sync`]: the listing is read, new and changed
//! objects are downloaded and verified into a staging folder, and only when
//! every one has arrived are they moved into the copy: a file by a rename,
//! a new folder (a new version) by one rename of the whole folder, so a
//! reader never sees part of a download. A failed sync moves nothing: the
//! copy keeps the last complete state, and the next sync tries again. A
//! manifest of each file's ETag and size lets a restart reuse what has not
//! changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::cloud::{self, Remote};
use super::download::{download, Limits};
use super::store::{StoreError, StoreOptions};

/// Downloads running at once.
const PARALLEL: usize = 4;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorReport {
    /// The local copy.
    pub dir: PathBuf,
    /// Objects in the store.
    pub files: usize,
    pub downloaded: usize,
    /// Files kept because their ETag and size did not change.
    pub reused: usize,
    /// Files removed because their object is gone.
    pub removed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    etag: Option<String>,
    size: u64,
}

type Manifest = BTreeMap<String, Entry>;

/// A store folder and its local copy under `cache_dir`.
pub struct Mirror {
    remote: Remote,
    root: PathBuf,
    limits: Limits,
}

impl Mirror {
    /// The copy of `url` lives in a folder of `cache_dir` named after the
    /// URL, so a restart finds it again.
    pub fn new(url: &str, options: &StoreOptions, cache_dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        Self::of(cloud::open(url, options)?, cache_dir, limits)
    }

    /// The mirror of an open store.
    pub fn of(remote: Remote, cache_dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        let digest = remote.url.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
        let root = cache_dir.join(format!("repository-{digest:016x}"));
        std::fs::create_dir_all(root.join("tree"))
            .map_err(|e| StoreError::Other(format!("cache directory {}: {e}", root.display())))?;
        Ok(Mirror { remote, root, limits })
    }

    /// The local copy (complete as of the last successful sync).
    pub fn dir(&self) -> PathBuf {
        self.root.join("tree")
    }

    pub fn url(&self) -> &str {
        &self.remote.url
    }

    fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    fn read_manifest(&self) -> Manifest {
        std::fs::read(self.manifest_path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let path = self.manifest_path();
        let temp = self.root.join(".manifest.json.tmp");
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Other(e.to_string()))?;
        std::fs::write(&temp, bytes)
            .and_then(|_| std::fs::rename(&temp, &path))
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))
    }

    /// Every object below the prefix, by its relative key; keys that could
    /// not be a relative path on disk are left out.
    async fn listing(&self) -> Result<BTreeMap<String, Entry>, StoreError> {
        let remote = &self.remote;
        let prefix = (!remote.prefix.is_empty()).then(|| ObjectPath::from(remote.prefix.as_str()));
        let strip = if remote.prefix.is_empty() { String::new() } else { format!("{}/", remote.prefix) };
        let metas: Vec<object_store::ObjectMeta> =
            remote.store.list(prefix.as_ref()).try_collect().await.map_err(|e| remote.error("", e))?;
        let mut out = BTreeMap::new();
        for meta in metas {
            let Some(key) = meta.location.as_ref().strip_prefix(strip.as_str()) else { continue };
            let safe =
                key.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
            if !safe {
                tracing::warn!(url = %remote.url_of(key), "an object whose name is not a relative path is skipped");
                continue;
            }
            out.insert(key.to_string(), Entry { etag: meta.e_tag, size: meta.size });
        }
        Ok(out)
    }

    /// Brings the local copy to the store's current state (see the module).
    pub async fn sync(&self) -> Result<MirrorReport, StoreError> {
        let tree = self.dir();
        let listed = self.listing().await?;
        let mut manifest = self.read_manifest();
        let unchanged = |key: &str, entry: &Entry| {
            manifest.get(key) == Some(entry)
                && std::fs::metadata(tree.join(key)).is_ok_and(|m| m.is_file() && m.len() == entry.size)
        };
        let wanted: Vec<(&String, &Entry)> = listed.iter().filter(|(k, e)| !unchanged(k, e)).collect();
        // Refuse before any download when one object is too large.
        for (key, entry) in &wanted {
            let meta = object_store::ObjectMeta {
                location: self.remote.location(key),
                last_modified: chrono::DateTime::<chrono::Utc>::MIN_UTC,
                size: entry.size,
                e_tag: entry.etag.clone(),
                version: None,
            };
            self.limits.check(&self.remote, key, &meta)?;
        }
        let staging = self.root.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        let keys: Vec<String> = wanted.iter().map(|(key, _)| (*key).clone()).collect();
        let fetched: Vec<String> = futures::stream::iter(keys.into_iter().map(|key| {
            let target = staging.join(&key);
            let remote = self.remote.clone();
            let limits = self.limits;
            async move {
                download(&remote, &key, &limits, &move |_| target.clone()).await?;
                Ok::<_, StoreError>(key)
            }
        }))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;

        // Everything arrived: files into existing folders first, then each
        // new folder whole.
        let io = |p: &Path, e: std::io::Error| StoreError::Other(format!("{}: {e}", p.display()));
        let mut new_folders = BTreeSet::new();
        for key in &fetched {
            match first_missing(&tree, key) {
                Some(folder) => {
                    new_folders.insert(folder);
                }
                None => {
                    let target = tree.join(key);
                    std::fs::rename(staging.join(key), &target).map_err(|e| io(&target, e))?;
                }
            }
            // The listing's ETag and size: what the next listing is compared
            // with (a HEAD may spell the ETag differently; an object changed
            // since the listing no longer matches and is fetched again).
            if let Some(entry) = listed.get(key) {
                manifest.insert(key.clone(), entry.clone());
            }
        }
        for folder in &new_folders {
            let target = tree.join(folder);
            std::fs::rename(staging.join(folder), &target).map_err(|e| io(&target, e))?;
        }
        let gone: Vec<String> = manifest.keys().filter(|k| !listed.contains_key(*k)).cloned().collect();
        for key in &gone {
            let _ = std::fs::remove_file(tree.join(key));
            manifest.remove(key);
            prune_empty(&tree, key);
        }
        self.write_manifest(&manifest)?;
        let _ = std::fs::remove_dir_all(&staging);
        Ok(MirrorReport {
            dir: tree,
            files: listed.len(),
            downloaded: fetched.len(),
            reused: listed.len() - fetched.len(),
            removed: gone.len(),
        })
    }
}

/// The outermost folder of `key` (relative) that `tree` does not have yet.
fn first_missing(tree: &Path, key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).find(|folder| !tree.join(folder).is_dir())
}

/// Removes the folders of `key` that are left empty.
fn prune_empty(tree: &Path, key: &str) {
    let mut dir = tree.join(key);
    while dir.pop() && dir != tree && dir.starts_with(tree) {
        if std::fs::remove_dir(&dir).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};

    use super::*;
    use crate::cache::cloud::Scheme;

    fn memory() -> (Arc<InMemory>, Remote) {
        let store = Arc::new(InMemory::new());
        let remote = Remote {
            store: Arc::clone(&store) as Arc<dyn ObjectStore>,
            scheme: Scheme::S3,
            url: "memory://bucket/repo".into(),
            prefix: "repo".into(),
        };
        (store, remote)
    }

    async fn put(store: &InMemory, key: &str, body: &str) {
        store.put(&ObjectPath::from(format!("repo/{key}")), body.to_string().into()).await.unwrap();
    }

    #[tokio::test]
    async fn syncs_new_changed_and_removed_files_and_reuses_the_copy() {
        let cache = tempfile::tempdir().unwrap();
        let (store, remote) = memory();
        put(&store, "iris/model-settings.json", "{}").await;
        put(&store, "iris/1/model.joblib", "one").await;
        put(&store, "notes.txt", "x").await; // a file at the root of the repository
        store.put(&ObjectPath::from("elsewhere/model.joblib"), "no".to_string().into()).await.unwrap();
        let mirror = Mirror::of(remote.clone(), cache.path(), Limits::default()).unwrap();
        let first = mirror.sync().await.unwrap();
        assert_eq!((first.files, first.downloaded, first.reused, first.removed), (3, 3, 0, 0));
        let tree = mirror.dir();
        assert_eq!(std::fs::read_to_string(tree.join("iris/1/model.joblib")).unwrap(), "one");
        assert!(!tree.join("elsewhere").exists());

        put(&store, "iris/2/model.joblib", "two").await;
        put(&store, "iris/1/model.joblib", "uno").await;
        store.delete(&ObjectPath::from("repo/notes.txt")).await.unwrap();
        let second = mirror.sync().await.unwrap();
        assert_eq!((second.files, second.downloaded, second.reused, second.removed), (3, 2, 1, 1));
        assert_eq!(std::fs::read_to_string(tree.join("iris/1/model.joblib")).unwrap(), "uno");
        assert_eq!(std::fs::read_to_string(tree.join("iris/2/model.joblib")).unwrap(), "two");
        assert!(!tree.join("notes.txt").exists());

        // A new mirror of the same URL (a restart) reuses every file.
        let again = Mirror::of(remote, cache.path(), Limits::default()).unwrap().sync().await.unwrap();
        assert_eq!((again.downloaded, again.reused), (0, 3));
    }

    #[tokio::test]
    async fn a_refused_object_moves_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let (store, remote) = memory();
        put(&store, "iris/1/model.joblib", "one").await;
        let mirror = Mirror::of(remote, cache.path(), Limits { max_bytes: Some(5) }).unwrap();
        mirror.sync().await.unwrap();
        put(&store, "iris/2/model.joblib", "two").await;
        put(&store, "iris/2/weights.bin", "far too large").await;
        let err = mirror.sync().await.unwrap_err().to_string();
        assert!(
            err.contains("memory://bucket/repo/iris/2/weights.bin is 13 bytes, more than the limit of 5 bytes"),
            "{err}"
        );
        assert!(!mirror.dir().join("iris/2").exists(), "no part of version 2 appears");
    }

    #[test]
    fn finds_the_outermost_new_folder() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("iris/1")).unwrap();
        assert_eq!(first_missing(tree.path(), "iris/2/model.joblib"), Some("iris/2".into()));
        assert_eq!(first_missing(tree.path(), "iris/1/model.joblib"), None);
        assert_eq!(first_missing(tree.path(), "wine/model-settings.json"), Some("wine".into()));
        assert_eq!(first_missing(tree.path(), "settings.json"), None);
        std::fs::write(tree.path().join("iris/1/model.joblib"), b"x").unwrap();
        prune_empty(tree.path(), "iris/1/model.joblib");
        assert!(tree.path().join("iris/1").is_dir(), "a folder with a file stays");
        std::fs::remove_file(tree.path().join("iris/1/model.joblib")).unwrap();
        prune_empty(tree.path(), "iris/1/model.joblib");
        assert!(!tree.path().join("iris").exists() && tree.path().exists());
    }
}
