//! Per-server request accounting: requests in flight (for `least_conn` and `max_conns`)
//! and nginx's passive health (`max_fails` failures make a server unavailable for
//! `fail_timeout`).

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on a monotonic clock.
fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// Counts one request in flight until dropped. Kept in the request context, so the count
/// is released on every path: success, error, retry (replaced) and closed websockets.
pub struct InFlightGuard(Arc<AtomicUsize>);

impl InFlightGuard {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(Arc::clone(counter))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// nginx's passive health for one server.
#[derive(Debug)]
pub struct PassiveHealth {
    max_fails: u32,
    fail_timeout: Duration,
    fails: AtomicU32,
    /// When the last failure happened, or when the server was last tried after being
    /// unavailable (nginx's `checked`).
    checked_ms: AtomicU64,
}

impl PassiveHealth {
    pub fn new(max_fails: u32, fail_timeout: Duration) -> Self {
        PassiveHealth {
            max_fails,
            fail_timeout,
            fails: AtomicU32::new(0),
            checked_ms: AtomicU64::new(0),
        }
    }

    /// False while `max_fails` failures are less than `fail_timeout` old.
    pub fn available(&self) -> bool {
        // The clock is read only once the server has failed enough for it to matter: this
        // runs for every candidate of every request.
        self.max_fails == 0
            || self.fails.load(Ordering::Relaxed) < self.max_fails
            || self.available_at(now_ms())
    }

    fn available_at(&self, now: u64) -> bool {
        self.max_fails == 0
            || self.fails.load(Ordering::Relaxed) < self.max_fails
            || now.saturating_sub(self.checked_ms.load(Ordering::Relaxed))
                > self.fail_timeout.as_millis() as u64
    }

    /// Records a failed attempt; returns true when it makes the server unavailable.
    pub fn failed(&self) -> bool {
        self.failed_at(now_ms())
    }

    fn failed_at(&self, now: u64) -> bool {
        self.checked_ms.store(now, Ordering::Relaxed);
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_fails > 0 && fails == self.max_fails
    }

    /// A successful attempt makes the server fully available again.
    pub fn succeeded(&self) {
        if self.fails.load(Ordering::Relaxed) != 0 {
            self.fails.store(0, Ordering::Relaxed);
        }
    }

    /// Forgets failures, as nginx does when every server of a pool has failed, so that the
    /// next request tries them again instead of failing for `fail_timeout`.
    pub fn reset(&self) {
        self.fails.store(0, Ordering::Relaxed);
    }

    pub fn fails(&self) -> u32 {
        self.fails.load(Ordering::Relaxed)
    }

    pub fn fail_timeout(&self) -> Duration {
        self.fail_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fails_failures_make_a_server_unavailable_until_fail_timeout() {
        let p = PassiveHealth::new(2, Duration::from_millis(50));
        assert!(p.available_at(1000));
        assert!(!p.failed_at(1000));
        assert!(p.available_at(1001));
        assert!(p.failed_at(1010));
        assert!(!p.available_at(1010));
        assert!(
            !p.available_at(1060),
            "still within fail_timeout of the last failure"
        );
        assert!(p.available_at(1061), "back after fail_timeout");
        p.succeeded();
        assert_eq!(p.fails(), 0);
    }

    #[test]
    fn max_fails_zero_never_disables() {
        let p = PassiveHealth::new(0, Duration::from_secs(10));
        for _ in 0..5 {
            assert!(!p.failed());
        }
        assert!(p.available());
    }

    #[test]
    fn guards_count_in_flight_requests() {
        let counter = Arc::new(AtomicUsize::new(0));
        let a = InFlightGuard::new(&counter);
        let b = InFlightGuard::new(&counter);
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        drop(a);
        drop(b);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
