//! Supervision of one worker slot: a thread that owns the slot's process,
//! takes batches from the pool's queue while its worker is alive, and
//! replaces the worker when it dies (with backoff), runs past the time limit
//! (killed) or grows past the memory limit (recycled after its batch).
//!
//! The slot's thread is also the process's parent thread: the kernel's
//! parent-death signal (`PR_SET_PDEATHSIG`) follows the thread that forked,
//! so a worker spawned from a short-lived thread would be killed with it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polars::prelude::DataFrame;
use redesmyn::metrics::{PoolSnapshot, PoolStats};
use redesmyn::{HandlerError, Predictions};

use super::process::{Launch, ModelSpec, Worker};
use crate::interpreter::PythonError;

/// A batch for the pool, and where its answer goes.
pub struct Job {
    pub frame: DataFrame,
    pub params: Vec<(String, String)>,
    pub model: Option<Arc<super::WorkerModel>>,
    /// The batch span's W3C `traceparent`, when a request in it is traced.
    pub traceparent: Option<String>,
    pub reply: tokio::sync::oneshot::Sender<Result<Predictions, HandlerError>>,
}

/// The delay before the `n`th restart in a row (n ≥ 1): 100 ms, doubling, at most 10 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << n.saturating_sub(1).min(7))).min(Duration::from_secs(10))
}

/// Counters read by `/metrics`: workers alive, restarts by cause, batches by slot.
pub struct Stats {
    alive: AtomicU64,
    restarts: Mutex<Vec<(&'static str, u64)>>,
    batches: Vec<AtomicU64>,
}

impl Stats {
    pub fn new(slots: usize) -> Stats {
        Stats {
            alive: AtomicU64::new(0),
            restarts: Mutex::new(Vec::new()),
            batches: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn restarted(&self, cause: &'static str) {
        let mut restarts = self.restarts.lock().unwrap_or_else(|p| p.into_inner());
        match restarts.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => restarts.push((cause, 1)),
        }
    }

    fn up(&self) {
        self.alive.fetch_add(1, Ordering::Relaxed);
    }

    fn down(&self) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PoolStats for Stats {
    fn snapshot(&self) -> PoolSnapshot {
        let restarts = self.restarts.lock().unwrap_or_else(|p| p.into_inner());
        PoolSnapshot {
            alive: self.alive.load(Ordering::Relaxed),
            restarts: restarts.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            batches: self.batches.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        }
    }
}

/// What a slot shares with the pool.
pub struct Shared {
    pub launch: Launch,
    pub max_rss: Option<u64>,
    pub queue: Mutex<Receiver<Job>>,
    pub closing: AtomicBool,
    pub stats: Arc<Stats>,
}

/// The slot's thread: start the first worker (reporting to `started`), then
/// serve batches until the queue closes.
pub fn run(shared: Arc<Shared>, slot: usize, started: Sender<Result<u32, PythonError>>) {
    let mut worker = match Worker::spawn(&shared.launch, slot) {
        Ok(worker) => {
            let _ = started.send(Ok(worker.pid()));
            shared.stats.up();
            worker
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    drop(started);
    let mut failures = 0u32;
    loop {
        let Some(job) = next_job(&shared) else { break };
        let model = job.model.as_ref().map(|m| ModelSpec {
            id: m.id,
            path: &m.path,
            params: m.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        });
        let pid = worker.pid();
        match worker.run(&job.frame, &job.params, model, job.traceparent.as_deref()) {
            Ok(answer) => {
                failures = 0;
                shared.stats.batches[slot].fetch_add(1, Ordering::Relaxed);
                let _ = job.reply.send(answer.result);
                let over = shared.max_rss.filter(|limit| answer.rss > *limit);
                if let Some(limit) = over {
                    tracing::warn!(pid, rss = answer.rss, limit, "Python worker recycled: over its memory limit");
                    worker.stop();
                    shared.stats.down();
                    shared.stats.restarted("rss");
                    match respawn(&shared, slot, 0) {
                        Some(next) => worker = next,
                        None => return,
                    }
                }
            }
            Err(fault) => {
                shared.stats.batches[slot].fetch_add(1, Ordering::Relaxed);
                let message = fault.describe(pid);
                tracing::error!(pid, error = %message, "Python worker lost");
                let _ = job.reply.send(Err(HandlerError::new(message)));
                shared.stats.down();
                shared.stats.restarted(fault.cause());
                failures += 1;
                drop(worker);
                match respawn(&shared, slot, failures) {
                    Some(next) => worker = next,
                    None => return,
                }
            }
        }
    }
    worker.stop();
    shared.stats.down();
}

/// The next batch, or `None` when the pool closes.
fn next_job(shared: &Shared) -> Option<Job> {
    let queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match queue.recv_timeout(Duration::from_millis(200)) {
            Ok(job) => return Some(job),
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) if shared.closing.load(Ordering::Relaxed) => return None,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// A new worker for the slot after `failures` faults in a row (0: a
/// recycle, at once); tries again with backoff until it starts or the pool
/// closes (`None`).
fn respawn(shared: &Shared, slot: usize, failures: u32) -> Option<Worker> {
    let mut attempt = failures;
    loop {
        if attempt > 0 && !sleep_unless_closing(shared, backoff(attempt)) {
            return None;
        }
        if shared.closing.load(Ordering::Relaxed) {
            return None;
        }
        match Worker::spawn(&shared.launch, slot) {
            Ok(worker) => {
                tracing::info!(pid = worker.pid(), slot, "Python worker restarted");
                shared.stats.up();
                return Some(worker);
            }
            Err(e) => {
                tracing::error!(slot, error = %e, "a Python worker could not restart");
                attempt += 1;
            }
        }
    }
}

fn sleep_unless_closing(shared: &Shared, delay: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut left = delay;
    while !left.is_zero() {
        if shared.closing.load(Ordering::Relaxed) {
            return false;
        }
        let now = left.min(step);
        std::thread::sleep(now);
        left -= now;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_up_to_10_s() {
        let delays: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(backoff(1000), Duration::from_secs(10));
    }

    #[test]
    fn restarts_are_counted_by_cause() {
        let stats = Stats::new(2);
        stats.up();
        stats.up();
        stats.down();
        stats.restarted("signal");
        stats.restarted("timeout");
        stats.restarted("signal");
        stats.batches[1].fetch_add(3, Ordering::Relaxed);
        let s = stats.snapshot();
        assert_eq!(s.alive, 1);
        assert_eq!(s.restarts, vec![("signal".to_string(), 2), ("timeout".to_string(), 1)]);
        assert_eq!(s.batches, vec![0, 3]);
    }
}
