//! Where onnxruntime comes from. The shared library is opened at run time
//! (ort's `load-dynamic`), once per process, from the first of:
//! an explicit path, `$ORT_DYLIB_PATH`, or the copy the `onnxruntime-node`
//! npm package ships (`node_modules/onnxruntime-node/bin/napi-v*/<os>/<arch>/`),
//! looked up from the working directory upwards.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::OnnxError;

/// The environment variable naming the onnxruntime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// What to install when no library is found.
pub const INSTALL_HINT: &str = "npm install onnxruntime-node";

static ENVIRONMENT: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();

#[cfg(target_os = "linux")]
const LIB: (&str, &str) = ("linux", "libonnxruntime.so.1");
#[cfg(target_os = "macos")]
const LIB: (&str, &str) = ("darwin", "libonnxruntime.1.dylib");
#[cfg(target_os = "windows")]
const LIB: (&str, &str) = ("win32", "onnxruntime.dll");
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
const LIB: (&str, &str) = ("unsupported", "libonnxruntime.so");

#[cfg(target_arch = "x86_64")]
const ARCH: &str = "x64";
#[cfg(target_arch = "aarch64")]
const ARCH: &str = "arm64";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: &str = "unsupported";

/// The library to open: `explicit`, else `$ORT_DYLIB_PATH`, else the one in
/// the nearest `node_modules/onnxruntime-node`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, OnnxError> {
    if let Some(path) = explicit {
        return existing(path.to_path_buf(), "the runtime's `dylib` option");
    }
    if let Some(path) = std::env::var_os(DYLIB_ENV).filter(|p| !p.is_empty()) {
        return existing(PathBuf::from(path), DYLIB_ENV);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors().find_map(in_node_modules).ok_or_else(|| OnnxError::LibraryMissing {
        reason: format!(
            "no {DYLIB_ENV} and no node_modules/onnxruntime-node above {}: install it with `{INSTALL_HINT}` \
             or set {DYLIB_ENV} to the onnxruntime shared library ({})",
            cwd.display(),
            LIB.1
        ),
    })
}

fn existing(path: PathBuf, source: &str) -> Result<PathBuf, OnnxError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(OnnxError::LibraryMissing {
            reason: format!(
                "{source} names {}, which is not a file: install onnxruntime with `{INSTALL_HINT}` \
                 or point {DYLIB_ENV} at its shared library",
                path.display()
            ),
        })
    }
}

/// `<dir>/node_modules/onnxruntime-node/bin/napi-v*/<os>/<arch>/<lib>`, newest napi version first.
fn in_node_modules(dir: &Path) -> Option<PathBuf> {
    let bin = dir.join("node_modules").join("onnxruntime-node").join("bin");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&bin)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("napi-v")))
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|v| v.join(LIB.0).join(ARCH).join(LIB.1)).find(|p| p.is_file())
}

/// The process's onnxruntime environment, opening the library on first use.
/// A process holds one onnxruntime: a later call naming another library gets
/// the first one (and a warning in the log).
pub fn environment(explicit: Option<&Path>) -> Result<Environment, OnnxError> {
    if let Some(path) = explicit {
        // A wrong explicit path is a mistake worth reporting even when
        // onnxruntime is already open.
        existing(path.to_path_buf(), "the runtime's `dylib` option")?;
    }
    if let Some(loaded) = ENVIRONMENT.get() {
        return match loaded {
            Ok((env, path)) => {
                if let Some(other) = explicit.filter(|p| *p != path.as_path()) {
                    tracing::warn!(
                        loaded = %path.display(),
                        requested = %other.display(),
                        "onnxruntime is already loaded from another file; using it"
                    );
                }
                Ok(env.clone())
            }
            Err(reason) => Err(OnnxError::LibraryMissing { reason: reason.clone() }),
        };
    }
    // Locating is cheap and may fail for reasons the user can fix (install the
    // package, set the variable), so only a successful open is remembered.
    let path = locate(explicit)?;
    let loaded = ENVIRONMENT.get_or_init(|| open(&path).map(|env| (env, path.clone())));
    match loaded {
        Ok((env, _)) => Ok(env.clone()),
        Err(reason) => Err(OnnxError::LibraryMissing { reason: reason.clone() }),
    }
}

fn open(path: &Path) -> Result<Environment, String> {
    let builder = ort::init_from(path).map_err(|e| format!("cannot open onnxruntime: {e}"))?;
    builder.with_name("redesmyn").build().map_err(|e| format!("onnxruntime did not start from {}: {e}", path.display()))
}

/// The file onnxruntime was loaded from, once it has been.
pub fn loaded_from() -> Option<PathBuf> {
    ENVIRONMENT.get().and_then(|r| r.as_ref().ok()).map(|(_, p)| p.clone())
}
