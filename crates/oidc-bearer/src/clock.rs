//! The clock a verifier reads, injectable so tests can move time (go-oidc's `Config.Now`, rustls'
//! `TimeProvider`); the same clock as `oidc-bearer-client`'s, so one [`ManualClock`] moves both.

// Inside the crate a time is a `Duration` since the Unix epoch, as `Clock::now` gives it; an atomic
// holds one as an `AtomicTime` (`oidc_bearer_shared::clock`).

use std::sync::Arc;

pub use oidc_bearer_shared::clock::{Clock, ManualClock, SystemClock};

pub(crate) type SharedClock = Arc<dyn Clock>;
