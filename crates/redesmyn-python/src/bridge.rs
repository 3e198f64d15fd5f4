//! Loading libpython and the bridge library, and safe calls into the
//! bridge's C ABI (`redesmyn_python_abi`).
//!
//! libpython is opened with `RTLD_NOW | RTLD_GLOBAL` first: the bridge and
//! every extension module (numpy, polars, scikit-learn) resolve CPython's
//! symbols from the global namespace. The bridge is then found at
//! `$REDESMYN_PYTHON_BRIDGE`, else beside the library this code runs in
//! (the Node addon), and its ABI version checked before any call.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LOCAL, RTLD_NOW};
use redesmyn_python_abi::{self as abi, status, BridgeApi, Param, Sink, Str};

/// The environment variable naming the bridge library's file.
pub const BRIDGE_ENV: &str = "REDESMYN_PYTHON_BRIDGE";

/// The bridge's file name on this platform.
pub const BRIDGE_FILE: &str =
    if cfg!(target_os = "macos") { "libredesmyn_python_bridge.dylib" } else { "libredesmyn_python_bridge.so" };

/// Loads `path` with its symbols global. Kept loaded for the process's life.
pub fn load_libpython(path: &Path) -> Result<(), String> {
    // SAFETY: loading runs only libpython's own initialisers, which set up
    // static state and call nothing of ours; `path` is the environment's
    // libpython as `environment::check` found it, and nothing in it is called
    // here. It stays loaded (the handle is forgotten), so the symbols the
    // bridge resolves from it never dangle.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| format!("could not load {}: {e}", path.display()))?;
    std::mem::forget(library);
    Ok(())
}

/// Where the bridge is looked for: `$REDESMYN_PYTHON_BRIDGE`, else the
/// directory of the file this code was loaded from.
pub fn bridge_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BRIDGE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let here = own_file().ok_or("could not tell which file redesmyn was loaded from; set REDESMYN_PYTHON_BRIDGE")?;
    Ok(here.parent().unwrap_or(Path::new(".")).join(BRIDGE_FILE))
}

/// The shared object (or executable) that contains this function.
fn own_file() -> Option<PathBuf> {
    // SAFETY: an all-zero `Dl_info` is valid (null pointers and zeros).
    // `dladdr` only reads the loader's tables, for an address inside this
    // very object, and fills `info`. A non-null `dli_fname` is a
    // NUL-terminated string owned by the loader while the object is loaded,
    // which it is while this code runs; it is copied at once.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(own_file as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned();
        Some(std::fs::canonicalize(&name).unwrap_or_else(|_| PathBuf::from(name)))
    }
}

/// Where the bridge was looked for, and what to do.
pub fn missing(path: &Path) -> String {
    format!(
        "the Python bridge library is missing: looked for {} ({BRIDGE_ENV} {}); build it with `npm run build` \
         (cargo build -p redesmyn-python-bridge) or set {BRIDGE_ENV} to its path",
        path.display(),
        if std::env::var_os(BRIDGE_ENV).is_some() { "is set" } else { "is not set, so beside the addon" }
    )
}

/// The loaded bridge: its function table, valid for the process's life.
pub struct Bridge {
    api: &'static BridgeApi,
}

impl Bridge {
    /// Loads the bridge library (libpython must be loaded already).
    pub fn load(path: &Path) -> Result<Bridge, String> {
        if !path.exists() {
            return Err(missing(path));
        }
        // SAFETY: the bridge is a Rust cdylib of this workspace whose
        // initialisers set up only its own statics; its CPython symbols bind
        // now (`RTLD_NOW`) to the libpython loaded globally before, or the
        // load fails.
        let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|e| format!("could not load the Python bridge {}: {e}", path.display()))?;
        // SAFETY: every bridge, of any ABI version, exports `ENTRY_SYMBOL` as
        // `extern "C" fn() -> *const BridgeApi` (the contract's one fixed
        // point), which is `EntryFn`; it takes nothing and returns a pointer
        // to a static. The symbol is used while `library` is loaded.
        let api = unsafe {
            let entry = library
                .get::<abi::EntryFn>(abi::ENTRY_SYMBOL)
                .map_err(|e| format!("{} is not a redesmyn Python bridge: {e}", path.display()))?;
            entry()
        };
        if api.is_null() {
            return Err(format!("{} returned no function table", path.display()));
        }
        // SAFETY: `api` is non-null and points to the bridge's static table,
        // aligned and initialised; `abi_version` is its first field in every
        // ABI version, so reading it through the raw pointer is sound before
        // the rest of the layout is known.
        let version = unsafe { std::ptr::addr_of!((*api).abi_version).read() };
        if version != abi::ABI_VERSION {
            return Err(format!(
                "the Python bridge {} speaks ABI version {version}, but this addon speaks {}: rebuild both together \
                 (npm run build)",
                path.display(),
                abi::ABI_VERSION
            ));
        }
        // SAFETY: the version matched, so the table has this build's layout.
        // The library is never unloaded (forgotten below), so the static
        // table lives for the process.
        let api: &'static BridgeApi = unsafe { &*api };
        std::mem::forget(library);
        Ok(Bridge { api })
    }

    /// Starts the interpreter; returns what it reported (`prefix`, `version`, ...).
    pub fn start(&self, program: &Path, paths: &[String]) -> Result<Vec<(String, String)>, Failure> {
        let program = program.to_string_lossy();
        let paths: Vec<Str> = paths.iter().map(|p| Str::new(p)).collect();
        let mut out = Collected::default();
        // SAFETY: `self.api` is a table whose ABI version was checked in `load`, from a library never unloaded. The `Str`s borrow `program` and `paths`, alive past the
        // call; `paths` is an array of `paths.len()` `Str`s; the sink (a
        // temporary alive until the statement ends) has callbacks matching its
        // `ctx`, which points to `out`, untouched by anything else during the
        // call. `start` is called once per process (through `interpreter::started`).
        let code = unsafe { (self.api.start)(Str::new(&program), paths.as_ptr(), paths.len(), &out.sink()) };
        out.result(code).map(|out| out.info)
    }

    pub fn add_paths(&self, paths: &[String]) -> Result<(), Failure> {
        let paths: Vec<Str> = paths.iter().map(|p| Str::new(p)).collect();
        let mut out = Collected::default();
        // SAFETY: as in `start`: a checked table, `Str`s borrowed from `paths`
        // for the call, and a sink whose `ctx` is `out` for the call.
        let code = unsafe { (self.api.add_paths)(paths.as_ptr(), paths.len(), &out.sink()) };
        out.result(code).map(drop)
    }

    pub fn resolve(&'static self, module: &str, attribute: &str) -> Result<Object, Failure> {
        let mut object: *mut abi::Object = std::ptr::null_mut();
        let mut out = Collected::default();
        // SAFETY: as in `start`: a checked table, `Str`s borrowed from
        // `module` and `attribute` for the call, a sink whose `ctx` is `out`;
        // `object` is a local, writable slot.
        let code = unsafe { (self.api.resolve)(Str::new(module), Str::new(attribute), &mut object, &out.sink()) };
        out.result(code)?;
        Ok(Object { bridge: self, raw: object })
    }

    /// Calls a handler. `batch` is moved into the bridge.
    pub fn call_handler(
        &self,
        function: &Object,
        model: Option<&Object>,
        batch: polars_arrow::ffi::ArrowArrayStream,
        params: &[(&str, &str)],
        traceparent: Option<&str>,
    ) -> Result<(u32, Vec<(String, polars_arrow::ffi::ArrowArrayStream)>), Failure> {
        // The bridge moves the stream out and leaves ours released.
        let mut batch = to_abi(batch);
        let params: Vec<Param> = params.iter().map(|(k, v)| Param { key: Str::new(k), value: Str::new(v) }).collect();
        let mut kind = 0u32;
        let mut out = Collected::default();
        // SAFETY: as in `start`: a checked table and a sink whose `ctx` is
        // `out`. `function` and `model` hold live handles, not released
        // while borrowed here (an `Object` releases its handle only when
        // dropped). `batch` is an initialised stream the bridge moves out
        // (leaving it released, so dropping it after is a no-op); `params`
        // borrows `Str`s alive past the call; `kind` is a local.
        let code = unsafe {
            (self.api.call_handler)(
                function.raw,
                model.map_or(std::ptr::null(), |m| m.raw),
                &mut batch,
                params.as_ptr(),
                params.len(),
                Str::new(traceparent.unwrap_or_default()),
                &mut kind,
                &out.sink(),
            )
        };
        let out = out.result(code)?;
        Ok((kind, out.columns))
    }

    pub fn call_loader(
        &'static self,
        function: &Object,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Object, Failure> {
        let params: Vec<Param> = params.iter().map(|(k, v)| Param { key: Str::new(k), value: Str::new(v) }).collect();
        let mut object: *mut abi::Object = std::ptr::null_mut();
        let mut out = Collected::default();
        // SAFETY: as in `call_handler`: a checked table, a live handle
        // borrowed for the call, `Str`s alive past it, a local `object` slot
        // and a sink whose `ctx` is `out`.
        let code = unsafe {
            (self.api.call_loader)(
                function.raw,
                Str::new(path),
                params.as_ptr(),
                params.len(),
                &mut object,
                &out.sink(),
            )
        };
        out.result(code)?;
        Ok(Object { bridge: self, raw: object })
    }
}

impl Bridge {
    /// Calls a streaming handler; `batch` is moved into the bridge. The
    /// returned object is the generator's stream handle.
    pub fn open_stream(
        &'static self,
        function: &Object,
        model: Option<&Object>,
        batch: polars_arrow::ffi::ArrowArrayStream,
        params: &[(&str, &str)],
    ) -> Result<Object, Failure> {
        let mut batch = to_abi(batch);
        let params: Vec<Param> = params.iter().map(|(k, v)| Param { key: Str::new(k), value: Str::new(v) }).collect();
        let mut object: *mut abi::Object = std::ptr::null_mut();
        let mut out = Collected::default();
        // SAFETY: as in `call_handler`: a checked table, live handles
        // borrowed for the call, a batch moved to the bridge, `Str`s alive
        // past the call, a local `object` slot and a sink whose `ctx` is `out`.
        let code = unsafe {
            (self.api.open_stream)(
                function.raw,
                model.map_or(std::ptr::null(), |m| m.raw),
                &mut batch,
                params.as_ptr(),
                params.len(),
                &mut object,
                &out.sink(),
            )
        };
        out.result(code)?;
        Ok(Object { bridge: self, raw: object })
    }

    /// The next step of a stream handle: `None` when the generator is done,
    /// else the step's kind, columns and ended rows. The caller keeps calls
    /// on one handle from overlapping.
    pub fn next_step(&self, stream: &Object) -> Result<Option<Step>, Failure> {
        let mut kind = 0u32;
        let mut out = Collected::default();
        // SAFETY: a checked table, a live stream handle borrowed for the
        // call (not used by another call: the caller's obligation), a local
        // `kind` and a sink whose `ctx` is `out`.
        let code = unsafe { (self.api.next_step)(stream.raw, &mut kind, &out.sink()) };
        if code == status::FINISHED {
            return Ok(None);
        }
        let out = out.result(code)?;
        Ok(Some(Step { kind, columns: out.columns, ended: out.rows }))
    }

    /// Closes a stream handle's generator early (its `finally` runs).
    pub fn close_stream(&self, stream: &Object) -> Result<(), Failure> {
        let mut out = Collected::default();
        // SAFETY: as in `next_step`.
        let code = unsafe { (self.api.close_stream)(stream.raw, &out.sink()) };
        out.result(code).map(drop)
    }
}

/// One step of a Python stream, as the bridge reported it.
pub struct Step {
    pub kind: u32,
    pub columns: Vec<(String, polars_arrow::ffi::ArrowArrayStream)>,
    pub ended: Vec<u64>,
}

/// A failed bridge call: its status code, message and traceback.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    pub detail: String,
}

/// A Python object owned by the bridge (an imported function or a model).
/// Dropping it releases it through the bridge, which takes the GIL.
pub struct Object {
    bridge: &'static Bridge,
    raw: *mut abi::Object,
}

// SAFETY: the handle is only passed to the bridge, whose functions may be
// called from any thread and take the GIL for every use of the Python
// object (ABI contract); the host never dereferences it. `bridge` is a
// shared `&'static` to an immutable table of function pointers.
unsafe impl Send for Object {}
// SAFETY: shared use only passes the handle to `call_handler` /
// `call_loader`, which the ABI contract allows concurrently (the bridge
// serialises Python work under the GIL); only `Drop`, with `&mut`, releases it.
unsafe impl Sync for Object {}

impl Drop for Object {
    fn drop(&mut self) {
        let release = self.bridge.api.release;
        let raw = self.raw as usize;
        // Taking the GIL may wait for a running handler: never on a runtime worker.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || {
                    // SAFETY: `raw` is this object's live handle, from a
                    // bridge never unloaded; `Drop` runs once and no borrow of
                    // the object remains, so it is released exactly once and
                    // in use by no call, as the ABI contract asks.
                    unsafe { release(raw as *mut abi::Object) }
                });
            }
            // SAFETY: as above, on this thread.
            Err(_) => unsafe { release(self.raw) },
        }
    }
}

fn to_abi(stream: polars_arrow::ffi::ArrowArrayStream) -> abi::ArrowArrayStream {
    // SAFETY: both are `#[repr(C)]` renderings of the Arrow spec's
    // `struct ArrowArrayStream`: five pointer-sized fields in the same order,
    // whose callbacks differ only in pointee types of pointer arguments
    // (same C ABI), and `None` is the null pointer in both. `transmute`
    // checks the sizes (so does `streams_keep_their_layout_across_the_abi`)
    // and moves the value: the source's `Drop` does not run, so the stream
    // is neither released nor duplicated.
    unsafe { std::mem::transmute::<polars_arrow::ffi::ArrowArrayStream, abi::ArrowArrayStream>(stream) }
}

fn from_abi(stream: abi::ArrowArrayStream) -> polars_arrow::ffi::ArrowArrayStream {
    // SAFETY: as in `to_abi`, the other way round.
    unsafe { std::mem::transmute::<abi::ArrowArrayStream, polars_arrow::ffi::ArrowArrayStream>(stream) }
}

/// What one call reported through the sink.
#[derive(Default)]
struct Collected {
    error: Option<(String, String)>,
    columns: Vec<(String, polars_arrow::ffi::ArrowArrayStream)>,
    info: Vec<(String, String)>,
    rows: Vec<u64>,
}

impl Collected {
    fn sink(&mut self) -> Sink {
        Sink {
            ctx: self as *mut Collected as *mut c_void,
            error: on_error,
            column: on_column,
            info: on_info,
            rows: on_rows,
        }
    }

    fn result(self, code: i32) -> Result<Collected, Failure> {
        if code == status::OK {
            return Ok(self);
        }
        let (message, detail) =
            self.error.unwrap_or_else(|| (format!("the Python bridge failed with status {code}"), String::new()));
        Err(Failure { code, message, detail })
    }
}

/// [`Sink::error`].
///
/// # Safety
/// Called only by the bridge during a call, with the `ctx` of a sink made by
/// [`Collected::sink`] (a live `Collected` that nothing else touches during
/// the call) and strings valid for the call (ABI contract).
unsafe extern "C" fn on_error(ctx: *mut c_void, message: Str, detail: Str) {
    // SAFETY: `ctx` is a live, exclusively used `*mut Collected` for the call
    // (this function's obligation).
    let out = unsafe { &mut *(ctx as *mut Collected) };
    // SAFETY: both strings are valid UTF-8 for the call (ABI contract) and
    // are copied at once.
    out.error = Some(unsafe { (message.as_str().to_owned(), detail.as_str().to_owned()) });
}

/// [`Sink::column`].
///
/// # Safety
/// As for [`on_error`]; `stream` points to an initialised Arrow C stream
/// that the bridge hands over (it is moved out here).
unsafe extern "C" fn on_column(ctx: *mut c_void, name: Str, stream: *mut abi::ArrowArrayStream) {
    // SAFETY: `ctx` is a live, exclusively used `*mut Collected` for the call
    // (this function's obligation).
    let out = unsafe { &mut *(ctx as *mut Collected) };
    // SAFETY: `stream` points to an initialised stream handed over for the
    // call (this function's obligation); `take` moves it out and leaves the
    // bridge's copy released, as the Arrow C stream interface prescribes.
    let stream = unsafe { abi::ArrowArrayStream::take(stream) };
    // SAFETY: `name` is valid UTF-8 for the call (ABI contract) and is copied
    // at once.
    let name = unsafe { name.as_str() }.to_owned();
    out.columns.push((name, from_abi(stream)));
}

/// [`Sink::rows`].
///
/// # Safety
/// As for [`on_error`]; `rows..rows+n` is a readable array of `u64` for the call.
unsafe extern "C" fn on_rows(ctx: *mut c_void, rows: *const u64, n: usize) {
    // SAFETY: `ctx` is a live, exclusively used `*mut Collected` for the call
    // (this function's obligation).
    let out = unsafe { &mut *(ctx as *mut Collected) };
    if rows.is_null() || n == 0 {
        return;
    }
    // SAFETY: `rows..rows+n` is readable for the call (this function's
    // obligation); the values are copied at once.
    out.rows.extend_from_slice(unsafe { std::slice::from_raw_parts(rows, n) });
}

/// [`Sink::info`].
///
/// # Safety
/// As for [`on_error`].
unsafe extern "C" fn on_info(ctx: *mut c_void, key: Str, value: Str) {
    // SAFETY: `ctx` is a live, exclusively used `*mut Collected` for the call
    // (this function's obligation).
    let out = unsafe { &mut *(ctx as *mut Collected) };
    // SAFETY: both strings are valid UTF-8 for the call (ABI contract) and
    // are copied at once.
    out.info.push(unsafe { (key.as_str().to_owned(), value.as_str().to_owned()) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bridge_says_where_it_looked_and_what_to_do() {
        let err = Bridge::load(Path::new("/nowhere/libredesmyn_python_bridge.so")).err().unwrap();
        assert!(err.contains("looked for /nowhere/libredesmyn_python_bridge.so"), "{err}");
        assert!(err.contains("npm run build"), "{err}");
    }

    #[test]
    fn the_bridge_is_looked_for_beside_the_running_file() {
        if std::env::var_os(BRIDGE_ENV).is_some() {
            return;
        }
        let path = bridge_path().unwrap();
        let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(path, exe.parent().unwrap().join(BRIDGE_FILE));
    }

    #[test]
    fn streams_keep_their_layout_across_the_abi() {
        assert_eq!(
            std::mem::size_of::<polars_arrow::ffi::ArrowArrayStream>(),
            std::mem::size_of::<abi::ArrowArrayStream>()
        );
    }
}
