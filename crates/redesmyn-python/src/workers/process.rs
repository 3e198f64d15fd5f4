//! One worker process and its control protocol: spawn it with its control
//! socket and two shared-memory regions, wait for it to import the handler,
//! then exchange one short JSON line per batch each way (the data crosses
//! in the regions, see `region.rs`).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::DataFrame;
use redesmyn::{HandlerError, Predictions};
use serde::{Deserialize, Serialize};

use super::region::Region;
use crate::interpreter::PythonError;

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct Launch {
    pub executable: PathBuf,
    /// Import paths (before site-packages), as `PYTHONPATH`.
    pub paths: Vec<String>,
    pub handler: String,
    pub loader: Option<String>,
    /// Models each worker keeps loaded (its LRU's size).
    pub models: usize,
    /// How long a batch may run before the worker is killed.
    pub timeout: Option<Duration>,
}

/// How long a worker may take to import the handler's module.
const READY_WITHIN: Duration = Duration::from_secs(300);
/// How long a worker asked to exit may take before it is killed.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// What went wrong with a worker (it is gone, or must be replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It died: `worker exited with signal 11`, `worker exited with code 3`.
    Died { cause: &'static str, text: String },
    /// The batch ran past the time limit; the worker was killed.
    Timeout(Duration),
    /// It answered something that is not the protocol.
    Protocol(String),
}

impl Fault {
    /// The `cause` label of the restarts metric.
    pub fn cause(&self) -> &'static str {
        match self {
            Fault::Died { cause, .. } => cause,
            Fault::Timeout(_) => "timeout",
            Fault::Protocol(_) => "protocol",
        }
    }

    pub fn describe(&self, pid: u32) -> String {
        match self {
            Fault::Died { text, .. } => format!("the Python worker (pid {pid}) failed with this batch: {text}"),
            Fault::Timeout(limit) => format!(
                "the Python worker (pid {pid}) ran this batch past its time limit of {} ms and was killed",
                limit.as_millis()
            ),
            Fault::Protocol(text) => format!("the Python worker (pid {pid}) broke the protocol: {text}"),
        }
    }
}

/// What an exit status says, as the client reads it.
pub fn exit_text(status: ExitStatus) -> (&'static str, String) {
    match (status.signal(), status.code()) {
        (Some(signal), _) => ("signal", format!("worker exited with signal {signal}")),
        (_, Some(code)) => ("exit", format!("worker exited with code {code}")),
        _ => ("exit", format!("worker exited ({status})")),
    }
}

#[derive(Serialize)]
struct Request<'a> {
    size: usize,
    params: std::collections::BTreeMap<&'a str, &'a str>,
    model: Option<ModelSpec<'a>>,
    /// The batch span, the handler's OpenTelemetry context in the worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
}

#[derive(Serialize)]
pub struct ModelSpec<'a> {
    pub id: u64,
    pub path: &'a str,
    pub params: std::collections::BTreeMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
struct Ready {
    ready: bool,
    #[serde(default)]
    code: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    size: usize,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    rss: u64,
}

/// A batch's answer from a live worker: predictions, or the handler's error.
pub struct Answer {
    pub result: Result<Predictions, HandlerError>,
    /// The worker's resident memory after the batch.
    pub rss: u64,
}

/// A running worker process.
pub struct Worker {
    child: Child,
    control: UnixStream,
    reader: BufReader<UnixStream>,
    batches: Region,
    predictions: Region,
    line: String,
}

impl Worker {
    /// Starts a worker and waits until it imported the handler (and loader).
    /// Call from a thread that lives as long as the worker should: the
    /// kernel's parent-death signal follows the thread that forked.
    pub fn spawn(launch: &Launch, slot: usize) -> Result<Worker, PythonError> {
        let failed = |e: std::io::Error| PythonError::Start(format!("could not start a Python worker: {e}"));
        let (control, theirs) = UnixStream::pair().map_err(failed)?;
        let batches = Region::new(&format!("redesmyn-batches-{slot}")).map_err(failed)?;
        let predictions = Region::new(&format!("redesmyn-predictions-{slot}")).map_err(failed)?;
        let inherited: [RawFd; 3] = [theirs.as_raw_fd(), batches.fd(), predictions.fd()];
        let mut command = Command::new(&launch.executable);
        command
            .args(["-u", "-m", "redesmyn_runtimes._worker"])
            .args(["--control", &inherited[0].to_string()])
            .args(["--batches", &inherited[1].to_string()])
            .args(["--predictions", &inherited[2].to_string()])
            .args(["--parent", &std::process::id().to_string()])
            .args(["--handler", &launch.handler])
            .args(["--models", &launch.models.to_string()])
            .stdin(Stdio::null());
        if let Some(loader) = &launch.loader {
            command.args(["--loader", loader]);
        }
        let mut paths = launch.paths.clone();
        if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            paths.push(existing.to_string_lossy().into_owned());
        }
        command.env("PYTHONPATH", paths.join(":"));
        // SAFETY: the closure runs in the forked child before exec and calls
        // only async-signal-safe functions (`fcntl`, `prctl`) on plain
        // integers; it allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(move || {
                for fd in inherited {
                    // The three descriptors the worker is told of survive exec; every other stays closed on exec.
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // SIGKILL when the thread that forked (this pool's slot thread) ends.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            PythonError::Start(format!("could not start a Python worker with {}: {e}", launch.executable.display()))
        })?;
        drop(theirs);
        let reader = BufReader::new(control.try_clone().map_err(failed)?);
        let mut worker = Worker { child, control, reader, batches, predictions, line: String::new() };
        worker.ready(launch)?;
        worker.control.set_read_timeout(launch.timeout).map_err(failed)?;
        Ok(worker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ready(&mut self, launch: &Launch) -> Result<(), PythonError> {
        let failed = |e: std::io::Error| PythonError::Start(format!("a Python worker did not start: {e}"));
        self.control.set_read_timeout(Some(READY_WITHIN)).map_err(failed)?;
        self.line.clear();
        let read = self.reader.read_line(&mut self.line);
        if !matches!(read, Ok(n) if n > 0) {
            let status = self.stop();
            let how = status.map(|s| exit_text(s).1).unwrap_or_else(|| "worker did not answer".into());
            return Err(PythonError::Start(format!(
                "a Python worker ({}) exited before it imported {}: {how} (its stderr is above)",
                launch.executable.display(),
                launch.handler
            )));
        }
        let ready: Ready = serde_json::from_str(&self.line)
            .map_err(|e| PythonError::Start(format!("a Python worker answered {:?}: {e}", self.line.trim())))?;
        if ready.ready {
            return Ok(());
        }
        self.stop();
        let module = ready.target.split(':').next().unwrap_or_default().to_string();
        Err(match ready.code.as_str() {
            "import" => PythonError::Import { module, error: ready.error },
            "attribute" => PythonError::MissingAttribute {
                module,
                attribute: ready.target.split(':').nth(1).unwrap_or_default().to_string(),
            },
            "callable" => PythonError::NotCallable(ready.target),
            _ => PythonError::Start(ready.error),
        })
    }

    /// Runs one batch. `Err` means the worker is gone or must be replaced
    /// (it has been killed then); a Python exception is an `Ok` answer.
    pub fn run(
        &mut self,
        frame: &DataFrame,
        params: &[(String, String)],
        model: Option<ModelSpec<'_>>,
        traceparent: Option<&str>,
    ) -> Result<Answer, Fault> {
        let size = match self.batches.write_frame(frame) {
            Ok(size) => size,
            Err(e) => {
                return Ok(Answer {
                    result: Err(HandlerError::new(format!("could not write the batch for the Python worker: {e}"))),
                    rss: 0,
                })
            }
        };
        let params = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let request = Request { size, params, model, traceparent };
        let mut message = serde_json::to_vec(&request).map_err(|e| Fault::Protocol(e.to_string()))?;
        message.push(b'\n');
        if self.control.write_all(&message).is_err() {
            return Err(self.died());
        }
        self.line.clear();
        match self.reader.read_line(&mut self.line) {
            Ok(0) => return Err(self.died()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Fault::Timeout(self.timeout_of()));
            }
            Err(_) => return Err(self.died()),
        }
        let reply: Reply = match serde_json::from_str(&self.line) {
            Ok(reply) => reply,
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Fault::Protocol(format!("{e} in {:?}", self.line.trim())));
            }
        };
        let result = match reply.ok {
            true => self.predictions(reply.size, &reply.kind),
            false => {
                tracing::error!(error = %reply.error, traceback = %reply.detail, "Python handler raised (worker)");
                let error = HandlerError::new(reply.error);
                Err(if reply.detail.is_empty() { error } else { error.with_detail(reply.detail) })
            }
        };
        Ok(Answer { result, rss: reply.rss })
    }

    fn timeout_of(&self) -> Duration {
        self.control.read_timeout().ok().flatten().unwrap_or_default()
    }

    fn predictions(&mut self, size: usize, kind: &str) -> Result<Predictions, HandlerError> {
        let frame = self
            .predictions
            .read_frame(size)
            .map_err(|e| HandlerError::new(format!("could not read the Python worker's predictions: {e}")))?;
        if kind == "columns" {
            return Ok(Predictions::Columns(frame));
        }
        frame
            .columns()
            .first()
            .map(|c| Predictions::Column(c.as_materialized_series().clone()))
            .ok_or_else(|| HandlerError::new("the Python handler returned no column"))
    }

    /// The socket broke: reap the process and say how it ended.
    fn died(&mut self) -> Fault {
        let status = self.reap(Duration::from_secs(2));
        match status {
            Some(status) => {
                let (cause, text) = exit_text(status);
                Fault::Died { cause, text }
            }
            None => Fault::Died { cause: "broken_pipe", text: "worker closed its control socket".into() },
        }
    }

    /// Waits up to `within` for the process to end, then kills it.
    fn reap(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }

    /// Asks the worker to exit (its control socket reaches EOF) and waits
    /// for it, killing it if it takes too long.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let _ = self.control.shutdown(std::net::Shutdown::Both);
        self.reap(EXIT_WITHIN)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}
