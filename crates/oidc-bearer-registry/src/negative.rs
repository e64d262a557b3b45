//! The negative cache: an issuer whose keys could not be had (or whose verifier could not be built)
//! is refused for the negative TTL without a new attempt, however many tokens name it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{IssuerRegistry, State};
use oidc_bearer::__private::Excerpt;
use oidc_bearer::{KeysError, VerifyError};

/// An issuer refused without an attempt until `until`, with the error of its failure.
pub(super) struct Negative {
    pub(super) until: Duration,
    pub(super) error: VerifyError,
}

impl IssuerRegistry {
    pub(super) fn remember_failure(&self, iss: &str, error: VerifyError) {
        self.remember_failure_in(&mut self.inner.write(), iss, error);
    }

    pub(super) fn remember_failure_in(&self, state: &mut State, iss: &str, error: VerifyError) {
        let inner = &*self.inner;
        if inner.limits.negative_ttl.is_zero() {
            return;
        }
        let now = inner.clock.now();
        // Bounded like the live set: expired entries go first, then the one expiring soonest. The scan
        // is paid only by failures of new issuers, which the rate limit paces.
        if state.negative.len() >= inner.limits.max_live && !state.negative.contains_key(iss) {
            state.negative.retain(|_, n| n.until > now);
            while state.negative.len() >= inner.limits.max_live {
                let Some(first) = state
                    .negative
                    .iter()
                    .min_by_key(|(_, n)| n.until)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                state.negative.remove(&first);
            }
        }
        tracing::debug!(
            iss = ?Excerpt(iss),
            ttl_secs = inner.limits.negative_ttl.as_secs(),
            code = error.code(),
            "issuer negatively cached"
        );
        let until = now.saturating_add(inner.limits.negative_ttl);
        // A proven issuer stays in `proven` while negatively cached (and one on probation may be
        // proven meanwhile): its fast path must wait too.
        for live in [state.proven.get(iss), state.pending.get(iss)]
            .into_iter()
            .flatten()
        {
            live.refuse_until.fetch_max(until, Ordering::AcqRel);
        }
        state
            .negative
            .insert(iss.to_owned(), Negative { until, error });
    }
}

/// The error served while an issuer is negatively cached: the original failure, marked as a wait.
pub(super) fn backoff(source: KeysError) -> VerifyError {
    let source = match source {
        KeysError::Backoff { .. } => source,
        other => KeysError::Backoff {
            last: Box::new(other),
        },
    };
    VerifyError::KeysUnavailable { source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oidc_bearer::clock::ManualClock;

    #[test]
    fn the_negative_cache_is_bounded() {
        let clock = ManualClock::at_unix(1_000);
        let registry = IssuerRegistry::builder()
            .with_max_live_issuers(3)
            .with_clock(clock.clone())
            .build()
            .unwrap();
        for i in 0..10 {
            registry.remember_failure(
                &format!("https://{i}.example"),
                VerifyError::UntrustedIssuer { found: None },
            );
            clock.advance(Duration::from_secs(1));
        }
        let state = registry.inner.read();
        let mut names: Vec<&str> = state.negative.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "https://7.example",
                "https://8.example",
                "https://9.example"
            ]
        );
    }
}
