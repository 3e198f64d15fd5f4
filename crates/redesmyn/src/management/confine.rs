//! What a management call's `path` may name: a file or folder inside the
//! model root, nothing else.
//!
//! Checked before anything is read: no `..` component, no `%` (percent
//! encoding is never decoded, so an encoded `../` is refused rather than
//! read as a strange name), no backslash or NUL; then the path is joined to
//! the root and canonicalized (symbolic links resolved, which stats but
//! never opens a file), and the result must lie under the canonical root.
//! An absolute path is accepted only when it lies inside the root too.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfineError {
    #[error("'path' is empty")]
    Empty,
    #[error("'path' {0:?} must not contain '..'")]
    Parent(String),
    #[error("'path' {0:?} must not contain '%', '\\\\' or NUL (percent-encoding is not decoded)")]
    Encoded(String),
    #[error("'path' {0:?} is outside the model root")]
    Outside(String),
    #[error("'path' {0:?} does not exist under the model root")]
    Missing(String),
}

/// `given` resolved inside `root` (canonical), or why not.
pub fn confine(root: &Path, given: &str) -> Result<PathBuf, ConfineError> {
    if given.is_empty() {
        return Err(ConfineError::Empty);
    }
    if given.contains(['%', '\\', '\0']) {
        return Err(ConfineError::Encoded(given.into()));
    }
    let path = Path::new(given);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(ConfineError::Parent(given.into()));
    }
    let root = root.canonicalize().map_err(|_| ConfineError::Missing(given.into()))?;
    let joined = if path.is_absolute() {
        if !path.starts_with(&root) {
            return Err(ConfineError::Outside(given.into()));
        }
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let resolved = match joined.canonicalize() {
        Ok(p) => p,
        // A dangling link or a missing file: either way nothing to serve.
        Err(_) => return Err(ConfineError::Missing(given.into())),
    };
    if !resolved.starts_with(&root) {
        return Err(ConfineError::Outside(given.into()));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_root_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models");
        std::fs::create_dir_all(root.join("iris")).unwrap();
        std::fs::write(root.join("iris/model.joblib"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.joblib"), b"x").unwrap();
        let root_c = root.canonicalize().unwrap();

        assert_eq!(confine(&root, "iris/model.joblib").unwrap(), root_c.join("iris/model.joblib"));
        assert_eq!(confine(&root, "./iris").unwrap(), root_c.join("iris"));
        let inside = root_c.join("iris/model.joblib");
        assert_eq!(confine(&root, inside.to_str().unwrap()).unwrap(), inside);

        assert_eq!(confine(&root, ""), Err(ConfineError::Empty));
        assert!(matches!(confine(&root, "../secret.joblib"), Err(ConfineError::Parent(_))));
        assert!(matches!(confine(&root, "iris/../../secret.joblib"), Err(ConfineError::Parent(_))));
        assert!(matches!(confine(&root, "%2e%2e%2fsecret.joblib"), Err(ConfineError::Encoded(_))));
        assert!(matches!(confine(&root, "..%2fsecret.joblib"), Err(ConfineError::Encoded(_))));
        assert!(matches!(confine(&root, "..\\secret.joblib"), Err(ConfineError::Encoded(_))));
        let outside = dir.path().join("secret.joblib");
        assert!(matches!(confine(&root, outside.to_str().unwrap()), Err(ConfineError::Outside(_))));
        assert!(matches!(confine(&root, "/etc/passwd"), Err(ConfineError::Outside(_))));
        assert!(matches!(confine(&root, "iris/none.joblib"), Err(ConfineError::Missing(_))));

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.joblib"), root.join("link.joblib")).unwrap();
            std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
            assert!(matches!(confine(&root, "link.joblib"), Err(ConfineError::Outside(_))));
            assert!(matches!(confine(&root, "up/secret.joblib"), Err(ConfineError::Outside(_))));
        }
    }
}
