//! Refill: after a batch of several requests is answered, wait briefly for
//! their clients' next requests before starting the next batch.
//!
//! Clients under load send their next request as soon as the answer comes,
//! so the requests of an answered batch come back together, a moment apart.
//! With the eager window (zero delay), the first of them would find the
//! handler free and run alone, and the rest would wait a whole handler call
//! behind it: batches alternate between one request and all the others.
//! For a model whose call costs about the same for 1 row as for 64 (a
//! scikit-learn random forest), that halves throughput and doubles latency.
//!
//! So when a batch of `n > 1` requests succeeds, the key's next batch waits until
//! `n` requests are queued (or the batch is full), but never longer than an
//! eighth of the answered batch's time, and at most [`MAX_HOLD`]. A lone
//! client (batches of one request) never waits; a key idle for longer than
//! the hold never waits either. A failed batch arms nothing: its clients may
//! retry, and batching the retries together would repeat the failure. A
//! key with a batching window (`max_delay` > 0) has no refill: its batches
//! already wait for the window.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest a refill holds a batch back.
pub const MAX_HOLD: Duration = Duration::from_millis(2);
/// The share of the answered batch's time a refill may wait.
const HOLD_SHARE: u32 = 8;

/// One key's refill state, shared by its batcher, its submitters and the
/// tasks running its batches.
pub struct Refill {
    enabled: bool,
    epoch: Instant,
    /// Requests to wait for; 0 when disarmed.
    requests: AtomicUsize,
    /// Until when, in nanoseconds since `epoch`.
    until: AtomicU64,
}

impl Refill {
    /// A key's refill; one that is not `enabled` never arms.
    pub fn new(enabled: bool) -> Refill {
        Refill { enabled, epoch: Instant::now(), requests: AtomicUsize::new(0), until: AtomicU64::new(0) }
    }

    /// A batch of `requests` requests succeeded after running for `took`.
    pub fn arm(&self, requests: usize, took: Duration) {
        if !self.enabled || requests < 2 {
            return;
        }
        let hold = (took / HOLD_SHARE).min(MAX_HOLD);
        let until = (Instant::now() + hold).saturating_duration_since(self.epoch).as_nanos() as u64;
        self.requests.store(requests, Ordering::Release);
        self.until.store(until, Ordering::Release);
    }

    /// The requests to wait for and until when, while armed and not expired.
    pub fn pending(&self) -> Option<(usize, Instant)> {
        let requests = self.requests.load(Ordering::Acquire);
        if requests < 2 {
            return None;
        }
        let until = self.epoch + Duration::from_nanos(self.until.load(Ordering::Acquire));
        (Instant::now() < until).then_some((requests, until))
    }

    /// A batch left: the refill it waited for is over.
    pub fn disarm(&self) {
        self.requests.store(0, Ordering::Release);
    }

    /// How many queued requests should wake the batcher early: the refill's
    /// count while armed, else none (`usize::MAX`).
    pub fn wake_at(&self) -> usize {
        self.pending().map_or(usize::MAX, |(requests, _)| requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_one_request_arms_nothing() {
        let refill = Refill::new(true);
        refill.arm(1, Duration::from_millis(10));
        assert_eq!(refill.pending(), None);
        assert_eq!(refill.wake_at(), usize::MAX);
    }

    #[test]
    fn a_batch_of_several_holds_an_eighth_of_its_time_at_most_two_ms() {
        let refill = Refill::new(true);
        let before = Instant::now();
        refill.arm(64, Duration::from_millis(8));
        let (requests, until) = refill.pending().expect("armed");
        assert_eq!(requests, 64);
        assert!(until <= Instant::now() + Duration::from_millis(1));
        assert!(until >= before + Duration::from_micros(900));
        refill.arm(64, Duration::from_secs(1));
        let (_, until) = refill.pending().expect("armed");
        assert!(until <= Instant::now() + MAX_HOLD);
        refill.disarm();
        assert_eq!(refill.pending(), None);
    }

    #[test]
    fn a_disabled_refill_never_arms() {
        let refill = Refill::new(false);
        refill.arm(64, Duration::from_millis(8));
        assert_eq!(refill.pending(), None);
    }

    #[test]
    fn an_expired_refill_is_not_pending() {
        let refill = Refill::new(true);
        refill.arm(8, Duration::from_micros(80));
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(refill.pending(), None);
    }
}
