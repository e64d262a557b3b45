//! [`LogLimit`]: at most one log line per period for a line that attackers can repeat at will (a
//! refused token), with a count of the lines suppressed meanwhile.
//!
//! The typed reason still travels with every response (in its extensions); only the log line is
//! thinned. Lock-free: a suppressed line costs a clock reading and an atomic add.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The time base of every limiter: nanoseconds since the first limiter was consulted.
fn elapsed_nanos() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Allows one line per period; counts the rest.
pub(crate) struct LogLimit {
    period_nanos: u64,
    /// When the next line may be written (on the [`elapsed_nanos`] scale); 0: now.
    next: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    /// A limiter allowing one line per `period`.
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period_nanos: period.as_nanos() as u64,
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when the caller may write its line now, `n` being how many were suppressed since
    /// the last one written; `None` (and the line counted as suppressed) otherwise.
    pub(crate) fn allow(&self) -> Option<u64> {
        self.allow_at(elapsed_nanos())
    }

    fn allow_at(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Relaxed);
        // One caller wins the period: the compare-exchange moves `next` on, so a concurrent caller
        // that saw the same `next` fails and counts itself as suppressed.
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_nanos),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_rest_counted() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let s = 1_000_000_000;
        assert_eq!(limit.allow_at(5 * s), Some(0));
        assert_eq!(limit.allow_at(5 * s + 1), None);
        assert_eq!(limit.allow_at(14 * s), None);
        assert_eq!(limit.allow_at(15 * s), Some(2));
        assert_eq!(limit.allow_at(16 * s), None);
        assert_eq!(limit.allow_at(100 * s), Some(1));
    }

    #[test]
    fn concurrent_callers_write_one_line_per_period() {
        let limit = LogLimit::new(Duration::from_secs(3600));
        let allowed = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        if limit.allow().is_some() {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 1);
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 3999);
    }
}
