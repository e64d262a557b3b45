//! Issuers listed exactly: built on their first use, once for all their names, then kept.

use std::sync::{Mutex, OnceLock, PoisonError};

use super::IssuerRegistry;
use oidc_bearer::VerifyError;
use oidc_bearer::{Verifier, VerifierBuilder};

pub(super) enum ExactEntry {
    /// Built by the caller: always live, never evicted, never negatively cached (its own key cache's
    /// backoff applies).
    Built(Verifier),
    /// Built on first use, under all its names (the issuer and its aliases) at once, so that every
    /// spelling shares one key cache; then kept like a ready-built one.
    Lazy(LazyExact),
}

pub(super) struct LazyExact {
    pub(super) builder: Box<VerifierBuilder>,
    pub(super) names: Vec<String>,
    pub(super) verifier: OnceLock<Verifier>,
    /// Held while building, so that the issuer is built once even when its first tokens race.
    pub(super) building: Mutex<()>,
}

impl IssuerRegistry {
    /// An exact issuer, built on its first use.
    pub(super) fn exact_lazy(&self, iss: &str, lazy: &LazyExact) -> Result<Verifier, VerifyError> {
        if let Some(verifier) = lazy.verifier.get() {
            return Ok(verifier.clone());
        }
        let inner = &*self.inner;
        if let Some(negative) = inner.read().negative.get(iss)
            && inner.clock.now() < negative.until
        {
            return Err(negative.error.clone());
        }
        // Concurrent first uses wait for one build (milliseconds, once per issuer) rather than build
        // verifiers that would be thrown away.
        let _building = lazy.building.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(verifier) = lazy.verifier.get() {
            return Ok(verifier.clone());
        }
        let verifier = self.build(iss, (*lazy.builder).clone())?;
        let verifier = lazy.verifier.get_or_init(|| verifier).clone();
        inner.write().exact_built.push(verifier.clone());
        Ok(verifier)
    }

    /// [`Verifier::warm_up`] for every issuer listed exactly (built now if it was not, once for all
    /// its names): their keys load in the background from now on. Pattern issuers are known only
    /// from the tokens that name them, so they load on first use.
    pub fn warm_up(&self) {
        let mut seen = std::collections::HashSet::new();
        for (iss, entry) in &self.inner.exact {
            // Aliases share their issuer's entry: one warm-up each.
            if !seen.insert(std::sync::Arc::as_ptr(entry)) {
                continue;
            }
            match &**entry {
                ExactEntry::Built(verifier) => verifier.warm_up(),
                // A builder that fails is logged at ERROR by `build`, as on first use.
                ExactEntry::Lazy(lazy) => {
                    if let Ok(verifier) = self.exact_lazy(iss, lazy) {
                        verifier.warm_up();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Selected;
    use super::*;
    use crate::tests::{aliased_builder, example_pattern, proven, static_builder, use_};
    use oidc_bearer::clock::ManualClock;

    #[test]
    fn exact_issuers_are_built_once_under_all_their_names_and_never_evicted() {
        let clock = ManualClock::at_unix(1_000);
        let registry = IssuerRegistry::builder()
            .with_issuer(aliased_builder())
            .with_issuer(static_builder("https://b.example"))
            .with_issuer(static_builder("https://c.example"))
            .with_pattern(example_pattern)
            .with_max_live_issuers(1)
            .with_clock(clock.clone())
            .build()
            .unwrap();
        let exact = [
            "accounts.google.com",
            "https://accounts.google.com",
            "https://b.example",
            "https://c.example",
        ];
        for iss in exact {
            assert!(matches!(use_(&registry, iss), Selected::Exact(_)));
            clock.advance(Duration::from_secs(1));
        }
        // Pattern issuers come and go in the one proven slot; the exact ones stay.
        for i in 0..5 {
            use_(&registry, &format!("https://{i}.example"));
        }
        assert_eq!(proven(&registry), ["https://4.example"]);
        for iss in exact {
            assert!(matches!(use_(&registry, iss), Selected::Exact(_)));
        }
        // Three issuers, built once each (the alias shares Google's verifier).
        assert_eq!(registry.inner.read().exact_built.len(), 3);
        // Counted as built, but only the pattern issuer is proven (what `max_live` bounds).
        assert_eq!(registry.built_issuers(), 4);
        assert_eq!(registry.proven_issuers(), 1);
    }
}
