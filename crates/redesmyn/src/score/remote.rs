//! Inputs and outputs in object stores: an input URL is downloaded into a
//! private temporary folder before the run, and the output (with its
//! rejects file) is written there and uploaded when the run succeeds, so a
//! failed run leaves nothing at the output URL.

use std::path::{Path, PathBuf};

use crate::cache::cloud::{self, Remote};
use crate::cache::{download, Limits, StoreOptions};

use super::ScoreError;

/// A URL split into the store of its folder and the object's name.
fn open_parent(url: &str, options: &StoreOptions) -> Result<(Remote, String), ScoreError> {
    let (dir, name) = cloud::split_object_url(url).map_err(|e| ScoreError::Io(e.to_string()))?;
    let remote = cloud::open(dir, options).map_err(|e| ScoreError::Io(e.to_string()))?;
    Ok((remote, name.to_string()))
}

/// A private folder for one run's staged files, removed when dropped.
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    pub fn new() -> Result<Self, ScoreError> {
        let dir = std::env::temp_dir().join(format!("redesmyn-score-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| ScoreError::Io(format!("{}: {e}", dir.display())))?;
        Ok(Staging { dir })
    }

    /// The local copy of the input at `url`.
    pub async fn download(&self, url: &str, options: &StoreOptions) -> Result<PathBuf, ScoreError> {
        let (remote, name) = open_parent(url, options)?;
        let target = self.dir.join("input").join(&name);
        let (path, _) = download(&remote, &name, &Limits::default(), &|_| target.clone())
            .await
            .map_err(|e| ScoreError::Io(format!("cannot read the input: {e}")))?;
        Ok(path)
    }

    /// Where the output for `url` is written before it is uploaded; checks
    /// first that the store takes writes.
    pub fn output_path(&self, url: &str, options: &StoreOptions) -> Result<PathBuf, ScoreError> {
        let (remote, name) = open_parent(url, options)?;
        if !remote.scheme.writable() {
            return Err(ScoreError::Io(format!(
                "cannot write '{url}': {} locations are read-only",
                remote.scheme.name()
            )));
        }
        let dir = self.dir.join("output");
        std::fs::create_dir_all(&dir).map_err(|e| ScoreError::Io(format!("{}: {e}", dir.display())))?;
        Ok(dir.join(name))
    }

    /// Uploads the local file `path` to `url`, in parts, without holding it in memory.
    pub async fn upload(&self, path: &Path, url: &str, options: &StoreOptions) -> Result<(), ScoreError> {
        let (remote, name) = open_parent(url, options)?;
        let failed = |e: String| ScoreError::Io(format!("cannot write '{url}': {e}"));
        let mut file = tokio::fs::File::open(path).await.map_err(|e| failed(e.to_string()))?;
        let mut writer =
            object_store::buffered::BufWriter::new(std::sync::Arc::clone(&remote.store), remote.location(&name));
        let done = match tokio::io::copy(&mut file, &mut writer).await {
            // A failed shutdown has already given up its upload.
            Ok(_) => tokio::io::AsyncWriteExt::shutdown(&mut writer).await,
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        };
        if let Err(e) = done {
            // The store's own error (a refused key, a missing bucket) when there is one.
            let message = match e.into_inner().map(|inner| inner.downcast::<object_store::Error>()) {
                Some(Ok(store_error)) => remote.error(&name, *store_error).to_string(),
                Some(Err(other)) => other.to_string(),
                None => "the upload failed".into(),
            };
            return Err(failed(message));
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a score input or output names an object-store URL.
pub fn is_remote(path: &Path) -> bool {
    path.to_str().is_some_and(cloud::is_url)
}
