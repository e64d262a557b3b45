//! The wall clock the sources compare `exp` and reload times against, replaceable in tests.

use std::{fmt, sync::Arc, time::SystemTime};

/// `SystemTime::now`, or a function the user supplied with `with_clock`.
///
/// Wall-clock time, not `Instant`, because `exp` is wall-clock time; a clock that steps backwards is
/// handled by the sources (a check time in the future by more than its interval counts as due).
#[derive(Clone, Default)]
pub(crate) struct Clock(Option<Arc<dyn Fn() -> SystemTime + Send + Sync>>);

impl Clock {
    pub(crate) fn custom(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    pub(crate) fn now(&self) -> SystemTime {
        match &self.0 {
            Some(now) => now(),
            None => SystemTime::now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(custom)"
        } else {
            "Clock(system)"
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    /// A clock that stands still until a test moves it.
    #[derive(Clone)]
    pub(crate) struct ManualClock(Arc<AtomicU64>);

    impl ManualClock {
        /// Starts at the real time, so tokens minted against it look ordinary.
        pub(crate) fn new() -> Self {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            Self(Arc::new(AtomicU64::new(now.as_millis() as u64)))
        }

        pub(crate) fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
        }

        pub(crate) fn unix_secs(&self) -> u64 {
            self.0.load(Ordering::SeqCst) / 1000
        }

        pub(crate) fn advance(&self, by: Duration) {
            self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }

        pub(crate) fn rewind(&self, by: Duration) {
            self.0.fetch_sub(by.as_millis() as u64, Ordering::SeqCst);
        }

        pub(crate) fn as_fn(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
            let clock = self.clone();
            move || clock.now()
        }
    }
}
