//! Per-model statistics in the shape of Triton's statistics extension
//! (`GET /v2/models/{m}/stats`): counts and cumulative nanoseconds for
//! successes, failures, queueing and handler calls, and how many rows and
//! batches ran. Plain atomics, recorded where the Prometheus metrics are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// A count and the time it took, cumulatively.
#[derive(Default)]
struct Tally {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Tally {
    fn add(&self, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(took.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    fn read(&self) -> Duration2 {
        Duration2 { count: self.count.load(Ordering::Relaxed), ns: self.ns.load(Ordering::Relaxed) }
    }
}

/// One model's statistics since the server started.
#[derive(Default)]
pub struct ModelStats {
    success: Tally,
    fail: Tally,
    queue: Tally,
    compute_infer: Tally,
    /// Rows that went through the handler.
    inference_count: AtomicU64,
    /// Handler calls (batches).
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
}

/// `{count, ns}`, as Triton writes a statistic.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Duration2 {
    pub count: u64,
    pub ns: u64,
}

#[derive(Debug, Serialize)]
pub struct InferenceStats {
    pub success: Duration2,
    pub fail: Duration2,
    pub queue: Duration2,
    pub compute_infer: Duration2,
}

/// One entry of `model_stats`.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub name: String,
    pub version: String,
    /// Milliseconds since the epoch of the last batch; 0 before any.
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
}

impl ModelStats {
    /// A request ended, well or not, `took` after it arrived.
    pub fn answered(&self, ok: bool, took: Duration) {
        if ok { &self.success } else { &self.fail }.add(took);
    }

    /// A request waited `waited` in its queue.
    pub fn queued(&self, waited: Duration) {
        self.queue.add(waited);
    }

    /// A batch of `rows` ran its handler in `handled`.
    pub fn batch(&self, rows: usize, handled: Duration) {
        self.compute_infer.add(handled);
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.inference_count.fetch_add(rows as u64, Ordering::Relaxed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.last_inference_ms.store(now as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self, name: &str, version: &str) -> Snapshot {
        Snapshot {
            name: name.into(),
            version: version.into(),
            last_inference: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            inference_stats: InferenceStats {
                success: self.success.read(),
                fail: self.fail.read(),
                queue: self.queue.read(),
                compute_infer: self.compute_infer.read(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_up_per_kind() {
        let stats = ModelStats::default();
        stats.answered(true, Duration::from_nanos(10));
        stats.answered(true, Duration::from_nanos(5));
        stats.answered(false, Duration::from_nanos(1));
        stats.queued(Duration::from_nanos(3));
        stats.batch(4, Duration::from_nanos(7));
        let s = stats.snapshot("m", "1");
        assert_eq!(s.inference_stats.success, Duration2 { count: 2, ns: 15 });
        assert_eq!(s.inference_stats.fail, Duration2 { count: 1, ns: 1 });
        assert_eq!(s.inference_stats.queue, Duration2 { count: 1, ns: 3 });
        assert_eq!((s.inference_count, s.execution_count), (4, 1));
    }
}
