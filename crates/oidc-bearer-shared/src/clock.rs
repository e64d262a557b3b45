//! The clock that verifiers, key caches and token sources read, injectable so tests can move time
//! (go-oidc's `Config.Now`, rustls' `TimeProvider`). One clock for both crates: a [`ManualClock`]
//! handed to a verifier and to a token source moves both. [`AtomicTime`] holds such a time in an
//! atomic; [`numeric_date`] reads a token's NumericDate as one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
///
/// Token lifetimes (`exp`, `nbf`, `iat`), key-cache lifetimes (Cache-Control, cooldown, backoff) and
/// a token source's refresh schedule are all judged against it.
pub trait Clock: Send + Sync + 'static {
    /// The current time, as a duration since the Unix epoch.
    fn now(&self) -> Duration;
}

/// A shared clock is a clock: one [`ManualClock`] (or any clock) can be handed to many builders.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share the same time.
///
/// ```
/// use oidc_bearer_shared::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::at_unix(1_000);
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), Duration::from_secs(1_060));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    // Any `Duration`, to the nanosecond (a step smaller than a millisecond is a step).
    time: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// A clock set to the system's current time.
    pub fn new() -> Self {
        let clock = Self::default();
        clock.set(SystemClock.now());
        clock
    }

    /// A clock set to `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        let clock = Self::default();
        clock.set(Duration::from_secs(secs));
        clock
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut time = self.time.lock().unwrap_or_else(|e| e.into_inner());
        *time = time.saturating_add(by);
    }

    /// Sets the clock.
    pub fn set(&self, to: Duration) {
        *self.time.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.time.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

/// A time shared without a lock: whole nanoseconds since the epoch (up to the year 2554; later
/// reads as [`NEVER`](Self::NEVER)).
#[derive(Debug)]
pub struct AtomicTime(AtomicU64);

impl AtomicTime {
    /// After every clock reading: a deadline that never passes, or a start that has not happened.
    /// `Duration::MAX`, not the largest time the atomic holds: a clock may read later than 2554
    /// (set by hand, or wrong), and a deadline of "never" must still be after it.
    pub const NEVER: Duration = Duration::MAX;

    /// A time holding `time`.
    #[inline]
    pub const fn new(time: Duration) -> Self {
        Self(AtomicU64::new(nanos(time)))
    }

    /// The time held.
    #[inline]
    pub fn load(&self, order: Ordering) -> Duration {
        from_nanos(self.0.load(order))
    }

    /// Sets the time.
    #[inline]
    pub fn store(&self, time: Duration, order: Ordering) {
        self.0.store(nanos(time), order);
    }

    /// Moves the time forward to `time`, never back.
    #[inline]
    pub fn fetch_max(&self, time: Duration, order: Ordering) {
        self.0.fetch_max(nanos(time), order);
    }

    /// Sets the time, returning the time held before.
    #[inline]
    pub fn swap(&self, time: Duration, order: Ordering) -> Duration {
        from_nanos(self.0.swap(nanos(time), order))
    }

    /// Sets `new` if the time is `current`.
    #[inline]
    pub fn replace(&self, current: Duration, new: Duration, order: Ordering) {
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
#[inline]
pub fn numeric_date(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of a nanosecond moves the clock (a test one tick past a deadline means one tick).
    #[test]
    fn a_manual_clock_keeps_nanoseconds_and_saturates() {
        let clock = ManualClock::at_unix(1_700_000_000);
        clock.advance(Duration::from_nanos(1));
        assert_eq!(clock.now(), Duration::new(1_700_000_000, 1));
        clock.set(Duration::new(20_000_000_000, 999_999_999));
        assert_eq!(clock.now(), Duration::new(20_000_000_000, 999_999_999));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::MAX);
    }

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
