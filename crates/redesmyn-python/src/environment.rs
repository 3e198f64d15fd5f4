//! Which Python environment to embed, and where its libpython is.
//!
//! The environment is chosen in this order: the `venv` option, the
//! `executable` option, `$VIRTUAL_ENV`, then `python3` on `PATH`. Its
//! executable is run once to read `sys` and `sysconfig` ([`Probe`]); the
//! checks below refuse, with what to do, every environment the bridge
//! cannot serve, before anything is loaded into the process.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Which Python environment handlers run in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonConfig {
    /// A Python executable whose installation (or virtual environment) to use.
    pub executable: Option<PathBuf>,
    /// A virtual environment directory (its `bin/python` is the executable).
    /// Wins over `executable`.
    pub venv: Option<PathBuf>,
    /// Extra import paths, searched before site-packages.
    pub path: Vec<PathBuf>,
}

/// The oldest CPython the bridge's stable ABI (abi3-py310) runs on.
pub const MIN_MINOR: u32 = 10;

/// Printed as JSON by the environment's own executable. Python 3.6+ syntax,
/// so that too old a Python still answers and gets a clear refusal.
const PROBE: &str = r#"
import json, sys, sysconfig
v = sysconfig.get_config_var
try:
    import importlib.util
    polars = importlib.util.find_spec("polars") is not None
except Exception:
    polars = False
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "abiflags": getattr(sys, "abiflags", ""),
    "gil_disabled": bool(v("Py_GIL_DISABLED")),
    "libdir": v("LIBDIR"),
    "instsoname": v("INSTSONAME"),
    "ldlibrary": v("LDLIBRARY"),
    "framework_prefix": v("PYTHONFRAMEWORKPREFIX"),
    "polars": polars,
}))
"#;

/// What the environment's executable says about itself.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Probe {
    pub version: (u32, u32, u32),
    pub executable: String,
    pub prefix: String,
    pub base_prefix: String,
    #[serde(default)]
    pub abiflags: String,
    #[serde(default)]
    pub gil_disabled: bool,
    pub libdir: Option<String>,
    pub instsoname: Option<String>,
    pub ldlibrary: Option<String>,
    pub framework_prefix: Option<String>,
    #[serde(default)]
    pub polars: bool,
}

impl Probe {
    pub fn minor_version(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    fn full_version(&self) -> String {
        format!("{}.{}.{}", self.version.0, self.version.1, self.version.2)
    }
}

/// An environment that passed every check: what the bridge needs to start.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Given to `Py_SetProgramName`: decides `sys.prefix` and `sys.executable`.
    pub program: PathBuf,
    pub libpython: PathBuf,
    pub probe: Probe,
}

/// The executable to probe, from the configuration and `$VIRTUAL_ENV`.
pub fn chosen_executable(config: &PythonConfig, virtual_env: Option<PathBuf>) -> Result<PathBuf, String> {
    let in_venv = |venv: &Path| venv.join("bin").join("python");
    if let Some(venv) = &config.venv {
        let exe = in_venv(venv);
        return match exe.exists() {
            true => Ok(absolute(&exe)),
            false => {
                Err(format!("no Python executable at {}: is {} a virtual environment?", exe.display(), venv.display()))
            }
        };
    }
    if let Some(exe) = &config.executable {
        return match exe.exists() {
            true => Ok(absolute(exe)),
            false => Err(format!("no Python executable at {}", exe.display())),
        };
    }
    if let Some(venv) = virtual_env.filter(|v| !v.as_os_str().is_empty()) {
        let exe = in_venv(&venv);
        return match exe.exists() {
            true => Ok(exe),
            false => Err(format!("$VIRTUAL_ENV is {}, which has no {}", venv.display(), exe.display())),
        };
    }
    Ok(PathBuf::from("python3"))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Runs `executable` once and reads what it says about itself.
pub fn probe(executable: &Path) -> Result<Probe, String> {
    let output = Command::new(executable).arg("-c").arg(PROBE).output().map_err(|e| {
        if executable == Path::new("python3") {
            format!(
                "no Python environment was configured and `python3` could not be run ({e}); \
                 set python.venv or python.executable, or activate a virtual environment"
            )
        } else {
            format!("could not run {}: {e}", executable.display())
        }
    })?;
    if !output.status.success() {
        return Err(format!(
            "{} failed while describing itself: {}",
            executable.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{} described itself in an unexpected way ({e})", executable.display()))
}

/// Every check, then the libpython to load.
pub fn check(executable: &Path, probe: Probe, exists: impl Fn(&Path) -> bool) -> Result<Environment, String> {
    let exe = if probe.executable.is_empty() { executable.display().to_string() } else { probe.executable.clone() };
    let version = probe.full_version();
    let (major, minor, _) = probe.version;
    if major != 3 || minor < MIN_MINOR {
        return Err(format!(
            "{exe} is Python {version}; redesmyn needs CPython 3.{MIN_MINOR} or later (3.10 to 3.13 are tested). \
             Point python.venv or python.executable at a newer Python"
        ));
    }
    if probe.gil_disabled || probe.abiflags.contains('t') {
        return Err(format!(
            "{exe} is a free-threaded build of Python {version}, which cannot load stable-ABI extensions such as \
             redesmyn's bridge; use the regular build of Python {} (python{} rather than python{}t)",
            probe.minor_version(),
            probe.minor_version(),
            probe.minor_version()
        ));
    }
    check_venv_version(&exe, &probe)?;
    let candidates = libpython_candidates(&probe);
    let libpython = candidates.iter().find(|p| exists(p)).cloned().ok_or_else(|| {
        let looked = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let v = probe.minor_version();
        format!(
            "{exe} (Python {version}) has no shared libpython (looked for {looked}); redesmyn loads libpython at run \
             time, so it needs a Python built as a shared library: on Debian or Ubuntu `apt install libpython{v}`, \
             with pyenv `PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install {version}`, or a Python from uv or \
             python-build-standalone; then make the virtual environment with that Python"
        )
    })?;
    if !probe.polars {
        return Err(format!(
            "polars is not installed in the Python environment at {}: run `{exe} -m pip install polars`",
            probe.prefix
        ));
    }
    let program = if probe.executable.is_empty() { executable.to_path_buf() } else { PathBuf::from(&probe.executable) };
    Ok(Environment { program, libpython, probe })
}

/// A venv whose `pyvenv.cfg` names another minor version than its python
/// runs (its base Python was replaced) would start without its
/// site-packages: refuse it.
fn check_venv_version(exe: &str, probe: &Probe) -> Result<(), String> {
    if probe.prefix == probe.base_prefix {
        return Ok(());
    }
    let cfg = Path::new(&probe.prefix).join("pyvenv.cfg");
    let Ok(text) = std::fs::read_to_string(&cfg) else {
        return Ok(());
    };
    let Some(made_with) = venv_version(&text) else {
        return Ok(());
    };
    let running = probe.minor_version();
    let made_minor = made_with.split('.').take(2).collect::<Vec<_>>().join(".");
    if made_minor != running {
        return Err(format!(
            "the virtual environment {} was made with Python {made_with}, but its python ({exe}) runs Python {}; \
             recreate it with the Python you mean to use (`python{running} -m venv --clear {}` and reinstall \
             its packages), or point python.venv at a matching environment",
            probe.prefix,
            probe.full_version(),
            probe.prefix
        ));
    }
    Ok(())
}

/// The `version` (or `version_info`) line of a `pyvenv.cfg`.
pub fn venv_version(cfg: &str) -> Option<String> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    })
}

/// Where the shared libpython may be, most specific first. Static archives
/// (`.a`) are not candidates: they cannot be loaded.
pub fn libpython_candidates(probe: &Probe) -> Vec<PathBuf> {
    let shared =
        |name: &Option<String>| name.as_deref().filter(|n| !n.is_empty() && !n.ends_with(".a")).map(str::to_string);
    let names: Vec<String> = [shared(&probe.instsoname), shared(&probe.ldlibrary)].into_iter().flatten().collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(libdir) = probe.libdir.as_deref().filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(libdir));
    }
    dirs.push(Path::new(&probe.base_prefix).join("lib"));
    let mut candidates = Vec::new();
    for dir in &dirs {
        for name in &names {
            candidates.push(dir.join(name));
        }
    }
    // macOS frameworks: <prefix>/Python3.framework/Versions/3.X/Python3 is what LDLIBRARY names.
    if let (Some(prefix), Some(ldlibrary)) = (probe.framework_prefix.as_deref(), probe.ldlibrary.as_deref()) {
        if !prefix.is_empty() && ldlibrary.contains(".framework/") {
            candidates.push(Path::new(prefix).join(ldlibrary));
        }
    }
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|p| seen.insert(p.clone()));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe {
            version: (3, 12, 1),
            executable: "/envs/app/bin/python".into(),
            prefix: "/envs/app".into(),
            base_prefix: "/opt/py312".into(),
            abiflags: String::new(),
            gil_disabled: false,
            libdir: Some("/opt/py312/lib".into()),
            instsoname: Some("libpython3.12.so.1.0".into()),
            ldlibrary: Some("libpython3.12.so".into()),
            framework_prefix: Some(String::new()),
            polars: true,
        }
    }

    fn only(path: &'static str) -> impl Fn(&Path) -> bool {
        move |p: &Path| p == Path::new(path)
    }

    #[test]
    fn finds_the_shared_library_by_its_soname_first() {
        let env = check(Path::new("python3"), probe(), |_| true).unwrap();
        assert_eq!(env.libpython, Path::new("/opt/py312/lib/libpython3.12.so.1.0"));
        assert_eq!(env.program, Path::new("/envs/app/bin/python"));
    }

    #[test]
    fn debian_static_python_uses_the_separate_shared_library_by_soname() {
        let mut p = probe();
        p.libdir = Some("/usr/lib/x86_64-linux-gnu".into());
        p.ldlibrary = Some("libpython3.12.a".into());
        let env = check(Path::new("python3"), p, only("/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0")).unwrap();
        assert_eq!(env.libpython, Path::new("/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0"));
    }

    #[test]
    fn refuses_a_python_without_a_shared_library_and_says_how_to_get_one() {
        let mut p = probe();
        p.ldlibrary = Some("libpython3.12.a".into());
        let err = check(Path::new("python3"), p, |_| false).unwrap_err();
        assert!(err.contains("has no shared libpython"), "{err}");
        assert!(err.contains("apt install libpython3.12"), "{err}");
        assert!(err.contains("--enable-shared"), "{err}");
        assert!(!err.contains(".a,"), "static archives are not candidates: {err}");
    }

    #[test]
    fn refuses_free_threaded_builds() {
        let mut p = probe();
        p.version = (3, 13, 0);
        p.gil_disabled = true;
        p.abiflags = "t".into();
        let err = check(Path::new("python3"), p, |_| true).unwrap_err();
        assert!(err.contains("free-threaded build of Python 3.13.0"), "{err}");
        assert!(err.contains("python3.13t"), "{err}");
    }

    #[test]
    fn refuses_pythons_older_than_3_10() {
        let mut p = probe();
        p.version = (3, 9, 18);
        let err = check(Path::new("python3"), p, |_| true).unwrap_err();
        assert!(err.contains("is Python 3.9.18; redesmyn needs CPython 3.10 or later"), "{err}");
    }

    #[test]
    fn refuses_an_environment_without_polars() {
        let mut p = probe();
        p.polars = false;
        let err = check(Path::new("python3"), p, |_| true).unwrap_err();
        assert_eq!(err, "polars is not installed in the Python environment at /envs/app: run `/envs/app/bin/python -m pip install polars`");
    }

    #[test]
    fn refuses_a_venv_made_by_another_minor_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyvenv.cfg"), "home = /opt/py311/bin\nversion = 3.11.7\n").unwrap();
        let mut p = probe();
        p.prefix = dir.path().display().to_string();
        let err = check(Path::new("python3"), p, |_| true).unwrap_err();
        assert!(err.contains("was made with Python 3.11.7, but its python"), "{err}");
        assert!(err.contains("runs Python 3.12.1"), "{err}");
        std::fs::write(dir.path().join("pyvenv.cfg"), "home = /opt/py312/bin\nversion_info = 3.12.1.final.0\n")
            .unwrap();
        let mut p = probe();
        p.prefix = dir.path().display().to_string();
        assert!(check(Path::new("python3"), p, |_| true).is_ok());
    }

    #[test]
    fn the_venv_option_wins_then_the_executable_then_virtual_env_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        let exe = dir.path().join("python3.12");
        std::fs::write(&exe, "").unwrap();
        let both = PythonConfig { venv: Some(venv.clone()), executable: Some(exe.clone()), path: vec![] };
        assert_eq!(chosen_executable(&both, None).unwrap(), venv.join("bin/python"));
        let exe_only = PythonConfig { executable: Some(exe.clone()), ..Default::default() };
        assert_eq!(chosen_executable(&exe_only, Some(venv.clone())).unwrap(), exe);
        assert_eq!(chosen_executable(&PythonConfig::default(), Some(venv.clone())).unwrap(), venv.join("bin/python"));
        assert_eq!(chosen_executable(&PythonConfig::default(), None).unwrap(), PathBuf::from("python3"));
        let missing = PythonConfig { venv: Some(dir.path().join("nope")), ..Default::default() };
        assert!(chosen_executable(&missing, None).unwrap_err().ends_with("nope a virtual environment?"));
    }

    #[test]
    fn parses_what_the_probe_prints() {
        let json = r#"{"version": [3, 11, 7], "executable": "/v/bin/python", "prefix": "/v", "base_prefix": "/b",
            "abiflags": "", "gil_disabled": false, "libdir": "/b/lib", "instsoname": "libpython3.11.so.1.0",
            "ldlibrary": "libpython3.11.so", "framework_prefix": "", "polars": true}"#;
        let p: Probe = serde_json::from_str(json).unwrap();
        assert_eq!(p.version, (3, 11, 7));
        assert_eq!(p.instsoname.as_deref(), Some("libpython3.11.so.1.0"));
    }
}
