//! One object downloaded into a local file atomically: the size is checked
//! against a limit before any byte is read, the bytes go to a temporary file
//! beside the target, and only a complete download of one unchanged version
//! (size as declared, same ETag before and after) is renamed into place.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::{GetOptions, ObjectMeta, ObjectStoreExt};

use super::cloud::Remote;
use super::store_error::StoreError;

/// Downloads tried when the object changes under one.
const ATTEMPTS: usize = 3;

/// What a download may take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Objects declared larger than this are refused before downloading.
    pub max_bytes: Option<u64>,
}

impl Limits {
    pub fn check(&self, remote: &Remote, key: &str, meta: &ObjectMeta) -> Result<(), StoreError> {
        match self.max_bytes {
            Some(max) if meta.size > max => Err(StoreError::Other(format!(
                "{} is {} bytes, more than the limit of {max} bytes; not downloaded",
                remote.url_of(key),
                meta.size
            ))),
            _ => Ok(()),
        }
    }
}

enum Attempt {
    /// The object changed (another ETag) between the listing and the end of the download.
    Changed,
    Failed(StoreError),
}

/// Downloads `key` to the path `target` names for its current metadata,
/// unless that file is already there; returns the path and the metadata
/// of the version it holds.
pub async fn download(
    remote: &Remote,
    key: &str,
    limits: &Limits,
    target: &(dyn Fn(&ObjectMeta) -> PathBuf + Send + Sync),
) -> Result<(PathBuf, ObjectMeta), StoreError> {
    let location = remote.location(key);
    for _ in 0..ATTEMPTS {
        let meta = remote.store.head(&location).await.map_err(|e| remote.error(key, e))?;
        limits.check(remote, key, &meta)?;
        let path = target(&meta);
        if path.is_file() {
            return Ok((path, meta));
        }
        match download_once(remote, key, &meta, &path).await {
            Ok(()) => return Ok((path, meta)),
            Err(Attempt::Changed) => {
                tracing::info!(url = %remote.url_of(key), "the object changed during its download; downloading again");
            }
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
    Err(StoreError::Other(format!("{} changed during each of {ATTEMPTS} downloads", remote.url_of(key))))
}

async fn download_once(remote: &Remote, key: &str, meta: &ObjectMeta, target: &Path) -> Result<(), Attempt> {
    let failed = |e: StoreError| Attempt::Failed(e);
    let dir = target.parent().unwrap_or(target).to_path_buf();
    tokio::fs::create_dir_all(&dir).await.map_err(|e| failed(StoreError::Other(format!("{}: {e}", dir.display()))))?;
    let temp = dir.join(format!(".download-{}", uuid::Uuid::new_v4().simple()));
    let written = match write_temp(remote, key, meta, &temp).await {
        Ok(written) => written,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
    };
    // The same version still: otherwise the bytes may mix two versions
    // (and a short body is a change, not a failure, when the object changed).
    let after = remote.store.head(&remote.location(key)).await.map_err(|e| failed(remote.error(key, e)));
    let unchanged = after.as_ref().is_ok_and(|a| a.e_tag == meta.e_tag && a.size == meta.size);
    if !unchanged || written != meta.size {
        let _ = tokio::fs::remove_file(&temp).await;
        return match after {
            Err(e) => Err(e),
            Ok(_) if !unchanged => Err(Attempt::Changed),
            Ok(_) => Err(failed(StoreError::Other(format!(
                "{}: the download ended after {written} of {} bytes",
                remote.url_of(key),
                meta.size
            )))),
        };
    }
    tokio::fs::rename(&temp, target).await.map_err(|e| failed(StoreError::Other(format!("{}: {e}", target.display()))))
}

/// The body into `temp`, synced; how many bytes it had.
async fn write_temp(remote: &Remote, key: &str, meta: &ObjectMeta, temp: &Path) -> Result<u64, Attempt> {
    let io = |e: std::io::Error| Attempt::Failed(StoreError::Other(format!("{}: {e}", temp.display())));
    let options = GetOptions { if_match: meta.e_tag.clone(), ..Default::default() };
    let result = match remote.store.get_opts(&remote.location(key), options).await {
        Ok(result) => result,
        Err(object_store::Error::Precondition { .. }) => return Err(Attempt::Changed),
        Err(e) => return Err(Attempt::Failed(remote.error(key, e))),
    };
    if result.meta.e_tag.is_some() && meta.e_tag.is_some() && result.meta.e_tag != meta.e_tag {
        return Err(Attempt::Changed);
    }
    let mut file = tokio::fs::File::create(temp).await.map_err(io)?;
    let mut stream = result.into_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Attempt::Failed(remote.error(key, e)))?;
        written += chunk.len() as u64;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await.map_err(io)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    Ok(written)
}
