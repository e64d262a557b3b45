//! Rate-limited log lines for paths that callers (or attackers) drive: one line per period, with a
//! count of the lines suppressed since the last one, so that a flood of bad tokens or an issuer
//! outage cannot fill a disk. Only the logging is throttled; the typed reason still travels with
//! every response.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The period of the layer's and the policy's per-request lines.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Allows one line per period; lock-free (two relaxed atomics on the suppressed path).
///
/// One per log call site (a `static`), so the hit path carries no state: the lines of all verifiers
/// in the process share a call site's budget, and each line says how many of its kind it stands for.
#[derive(Default)]
pub struct LogLimiter {
    /// Milliseconds since [`origin`] before which no line is allowed (0: none logged yet).
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter that allows its first line.
    #[inline]
    pub const fn new() -> Self {
        Self {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed)` when a line may be logged now (the lines suppressed since the last one);
    /// `None` when it must be dropped (and is counted).
    #[inline]
    pub fn allow(&self, period: Duration) -> Option<u64> {
        let now = origin().elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        let period_ms = period.as_millis().min(u128::from(u64::MAX / 2)) as u64;
        if now < next
            || self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(period_ms).max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[inline]
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_of_the_rest() {
        let limiter = LogLimiter::new();
        assert_eq!(limiter.allow(Duration::from_secs(3600)), Some(0));
        for _ in 0..999 {
            assert_eq!(limiter.allow(Duration::from_secs(3600)), None);
        }
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 999);
        // A period that has passed (zero here) allows the next line, which reports the 999.
        limiter.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(limiter.allow(Duration::from_secs(3600)), Some(999));
        assert_eq!(limiter.allow(Duration::from_secs(3600)), None);
    }

    #[test]
    fn concurrent_callers_let_one_line_through() {
        let limiter = LogLimiter::new();
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..1000)
                            .filter(|_| limiter.allow(Duration::from_secs(3600)).is_some())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 1);
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 3999);
    }
}
