//! Structured logs through `tracing`: JSON lines (or plain text) on stderr,
//! level from the options or `REDESMYN_LOG` (which wins). Each request logs
//! its id, endpoint, status and timings at `info`; handler failures log
//! their traceback or stack at `error`.

use std::sync::OnceLock;

use tracing_subscriber::{fmt, EnvFilter};

static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the process-wide subscriber once; later calls are no-ops.
/// `level` is a filter such as `info` or `warn,redesmyn::request=info`.
pub fn init(level: Option<&str>, json: bool) -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            let filter = std::env::var("REDESMYN_LOG")
                .ok()
                .or_else(|| level.map(str::to_string))
                .unwrap_or_else(|| "warn".into());
            let filter = EnvFilter::try_new(&filter).map_err(|e| format!("bad log level '{filter}': {e}"))?;
            let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
            let result = if json {
                builder.json().flatten_event(true).with_current_span(false).try_init()
            } else {
                builder.try_init()
            };
            result.map_err(|e| e.to_string())
        })
        .clone()
}
