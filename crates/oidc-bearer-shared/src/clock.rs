//! The clock that verifiers, key caches and token sources read, injectable so tests can move time
//! (go-oidc's `Config.Now`, rustls' `TimeProvider`). One clock for both crates: a [`ManualClock`]
//! handed to a verifier and to a token source moves both.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    millis: Arc<AtomicU64>,
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
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, to: Duration) {
        self.millis.store(to.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}
