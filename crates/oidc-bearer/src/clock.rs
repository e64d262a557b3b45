//! The clock a verifier reads, injectable so tests can move time (go-oidc's `Config.Now`, rustls'
//! `TimeProvider`); the same clock as `oidc-bearer-client`'s, so one [`ManualClock`] moves both.

// Inside the crate a time is a `Duration` since the Unix epoch, as `Clock::now` gives it; an atomic
// holds one as an `AtomicTime`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use oidc_bearer_shared::clock::{Clock, ManualClock, SystemClock};

pub(crate) type SharedClock = Arc<dyn Clock>;

/// A time shared without a lock: whole nanoseconds since the epoch (up to the year 2554; later
/// reads as [`NEVER`](Self::NEVER)).
#[derive(Debug)]
pub(crate) struct AtomicTime(AtomicU64);

impl AtomicTime {
    /// After every clock reading: a deadline that never passes, or a start that has not happened.
    /// `Duration::MAX`, not the largest time the atomic holds: a clock may read later than 2554
    /// (set by hand, or wrong), and a deadline of "never" must still be after it.
    pub(crate) const NEVER: Duration = Duration::MAX;

    pub(crate) const fn new(time: Duration) -> Self {
        Self(AtomicU64::new(nanos(time)))
    }

    pub(crate) fn load(&self, order: Ordering) -> Duration {
        from_nanos(self.0.load(order))
    }

    pub(crate) fn store(&self, time: Duration, order: Ordering) {
        self.0.store(nanos(time), order);
    }

    /// Moves the time forward to `time`, never back.
    pub(crate) fn fetch_max(&self, time: Duration, order: Ordering) {
        self.0.fetch_max(nanos(time), order);
    }

    pub(crate) fn swap(&self, time: Duration, order: Ordering) -> Duration {
        from_nanos(self.0.swap(nanos(time), order))
    }

    /// Sets `new` if the time is `current`.
    pub(crate) fn replace(&self, current: Duration, new: Duration, order: Ordering) {
        let _ = self
            .0
            .compare_exchange(nanos(current), nanos(new), order, order);
    }
}

/// The time `nanos` holds: `u64::MAX` (any time from 2554 on) is [`AtomicTime::NEVER`].
const fn from_nanos(nanos: u64) -> Duration {
    if nanos == u64::MAX {
        AtomicTime::NEVER
    } else {
        Duration::from_nanos(nanos)
    }
}

const fn nanos(time: Duration) -> u64 {
    let nanos = time.as_nanos();
    if nanos > u64::MAX as u128 {
        u64::MAX
    } else {
        nanos as u64
    }
}

/// A token's NumericDate (RFC 7519 §2: seconds, possibly fractional, a finite JSON number) as a
/// time; before the epoch reads as the epoch.
pub(crate) fn numeric_date(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_time_keeps_nanoseconds_and_saturates_at_never() {
        let t = Duration::new(1_700_000_000, 123_456_789);
        let time = AtomicTime::new(t);
        assert_eq!(time.load(Ordering::Relaxed), t);
        time.fetch_max(t - Duration::from_nanos(1), Ordering::Relaxed);
        assert_eq!(time.load(Ordering::Relaxed), t, "never moved back");
        time.store(Duration::MAX, Ordering::Relaxed);
        assert_eq!(time.load(Ordering::Relaxed), AtomicTime::NEVER);
        assert!(AtomicTime::NEVER > Duration::from_secs(500 * 365 * 86_400));
        time.replace(t, Duration::ZERO, Ordering::Relaxed);
        assert_eq!(
            time.swap(t, Ordering::Relaxed),
            AtomicTime::NEVER,
            "not `t`: kept"
        );
        time.replace(t, Duration::ZERO, Ordering::Relaxed);
        assert_eq!(time.load(Ordering::Relaxed), Duration::ZERO);
    }

    /// NEVER is after every clock reading, including one past what whole nanoseconds in a `u64`
    /// hold (the year 2554): a deadline stored as NEVER never passes.
    #[test]
    fn never_is_after_a_reading_past_the_year_2554() {
        let time = AtomicTime::new(AtomicTime::NEVER);
        for reading in [
            Duration::from_secs(20_000_000_000),
            Duration::from_secs(u64::MAX / 2),
        ] {
            assert!(
                reading < time.load(Ordering::Relaxed),
                "{reading:?} is after NEVER"
            );
            let stored = AtomicTime::new(reading);
            assert_eq!(stored.load(Ordering::Relaxed), AtomicTime::NEVER);
        }
    }

    #[test]
    fn a_numeric_date_is_a_time_since_the_epoch() {
        assert_eq!(numeric_date(1.5), Duration::from_millis(1_500));
        assert_eq!(numeric_date(-10.0), Duration::ZERO);
        assert_eq!(numeric_date(1e300), Duration::MAX);
    }
}
