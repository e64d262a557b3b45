//! [`IssuerRegistryBuilder`]: the registry's configuration, its defaults and their checks.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use super::admission::{Bucket, Rate};
use super::fast_path::{DigestIndex, RECENT_TOKENS};
use super::{ExactEntry, Inner, IssuerPattern, IssuerRegistry, LazyExact, SharedClock, State};
use oidc_bearer::__private::{
    BuilderAccess as _, DEFAULT_MAX_TOKEN_BYTES, SharedClients, VerifierAccess as _,
};
use oidc_bearer::ConfigError;
use oidc_bearer::cache::TokenCacheSettings;
use oidc_bearer::clock::{Clock, SystemClock};
use oidc_bearer::{Verifier, VerifierBuilder};

/// The default cap on proven pattern issuers kept at once.
pub(crate) const DEFAULT_MAX_LIVE_ISSUERS: usize = 1000;
/// The default cap on pattern issuers on probation (built, keys not loaded yet) at once.
pub(crate) const DEFAULT_MAX_PENDING_ISSUERS: usize = 64;
/// The default number of new pattern issuers that may be built in a burst.
pub(crate) const DEFAULT_NEW_ISSUER_BURST: u32 = 100;
/// The default time after which one more new pattern issuer may be built (10 per second).
pub(crate) const DEFAULT_NEW_ISSUER_INTERVAL: Duration = Duration::from_millis(100);
/// The default per-issuer token cache of issuers built on demand: 1,000 tokens, 1 MiB.
fn default_issuer_token_cache() -> TokenCacheSettings {
    let mut settings = TokenCacheSettings::default();
    settings.max_entries = 1000;
    settings.max_bytes = 1024 * 1024;
    settings
}

/// The default time an issuer whose keys could not be fetched is refused without a new attempt.
pub(crate) const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// The registry's bounds: set by its builder, then read by the registry as they are.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// Proven pattern issuers kept at once (also bounds the negative cache).
    pub(super) max_live: usize,
    /// Issuers of each pattern on probation at once.
    pub(super) max_pending: usize,
    /// How fast new issuers of each pattern may be built.
    pub(super) rate: Rate,
    /// How long an issuer whose keys could not be fetched is refused.
    pub(super) negative_ttl: Duration,
    /// The longest token parsed.
    pub(super) max_token_bytes: usize,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("max_live_issuers", &self.max_live)
            .field("max_pending_issuers", &self.max_pending)
            .field("new_issuer_burst", &self.rate.burst)
            .field("new_issuer_interval", &self.rate.interval)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish()
    }
}

/// Configures an [`IssuerRegistry`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct IssuerRegistryBuilder {
    exact: Vec<ExactEntry>,
    patterns: Vec<Box<dyn IssuerPattern>>,
    limits: Limits,
    clock: Option<SharedClock>,
    issuer_token_cache: TokenCacheSettings,
}

impl Default for IssuerRegistryBuilder {
    fn default() -> Self {
        Self {
            exact: Vec::new(),
            patterns: Vec::new(),
            limits: Limits {
                max_live: DEFAULT_MAX_LIVE_ISSUERS,
                max_pending: DEFAULT_MAX_PENDING_ISSUERS,
                rate: Rate {
                    burst: DEFAULT_NEW_ISSUER_BURST,
                    interval: DEFAULT_NEW_ISSUER_INTERVAL,
                },
                negative_ttl: DEFAULT_NEGATIVE_TTL,
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            },
            clock: None,
            issuer_token_cache: default_issuer_token_cache(),
        }
    }
}

impl IssuerRegistryBuilder {
    /// Trusts this issuer (and its aliases), with this policy. Built into a verifier when a token first
    /// names it (nothing is fetched before), then kept: never evicted, not counted against
    /// [`with_max_live_issuers`](Self::with_max_live_issuers).
    pub fn with_issuer(mut self, builder: VerifierBuilder) -> Self {
        let names = builder.accepted_issuers().map(str::to_owned).collect();
        self.exact.push(ExactEntry::Lazy(LazyExact {
            builder: Box::new(builder),
            names,
            verifier: OnceLock::new(),
            building: Mutex::new(()),
        }));
        self
    }

    /// Trusts this ready-built verifier's issuer (and aliases). It is shared, never evicted, and keeps
    /// its own key cache and backoff.
    pub fn with_verifier(mut self, verifier: Verifier) -> Self {
        self.exact.push(ExactEntry::Built(verifier));
        self
    }

    /// Trusts the issuers this pattern accepts, when no exact entry names them. Patterns are tried in
    /// the order they were added.
    pub fn with_pattern(mut self, pattern: impl IssuerPattern) -> Self {
        self.patterns.push(Box::new(pattern));
        self
    }

    /// The most proven pattern issuers (keys loaded) kept at once (default 1000); the least recently
    /// used is dropped to make room for a newly proven one. Exact issuers do not count. Also bounds the
    /// negative cache.
    pub fn with_max_live_issuers(mut self, max: usize) -> Self {
        self.limits.max_live = max;
        self
    }

    /// The most issuers of each pattern on probation — built, keys not loaded yet — at once (default
    /// 64, at least 1). While that many are, a token naming another new issuer of that pattern is
    /// refused with
    /// [`VerifyError::TooManyNewIssuers`](oidc_bearer::VerifyError::TooManyNewIssuers) (503 with
    /// `Retry-After`) without building or fetching anything. An issuer leaves probation when a verification loads its keys (it is then
    /// kept, see [`with_max_live_issuers`](Self::with_max_live_issuers)) or fails to (it is then
    /// negatively cached).
    pub fn with_max_pending_issuers(mut self, max: usize) -> Self {
        self.limits.max_pending = max;
        self
    }

    /// How fast new issuers of each pattern may be built: `burst` at once, then one more per
    /// `interval` (default 100, then one per 100 ms, 10 per second), timed by the registry's
    /// [clock](Self::with_clock). Beyond it, a token naming a new issuer of that pattern is refused
    /// like when probation is full. Known issuers and exact ones are not limited, and a token that
    /// the pattern's policy refuses without a key (a wrong algorithm, audience or `typ`, an
    /// expired token) never takes from it. `burst` must be at least 1 and `interval` positive.
    pub fn with_new_issuer_rate(mut self, burst: u32, interval: Duration) -> Self {
        self.limits.rate = Rate { burst, interval };
        self
    }

    /// How long an issuer whose keys could not be fetched is refused without a new attempt (default
    /// 30 s; zero disables the negative cache, leaving only each key cache's own backoff, which
    /// eviction resets).
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.limits.negative_ttl = ttl;
        self
    }

    /// The verified-token cache of each issuer the registry builds on demand, when its builder keeps the
    /// default cache (default 1,000 tokens and 1 MiB per issuer, so the registry's cache memory is
    /// bounded by (exact issuers + `max_live_issuers` + patterns × `max_pending_issuers`) × this,
    /// about 1 GiB at most with the defaults, one pattern and no exact issuers — and only tokens that verified are ever cached). A
    /// builder configured with its own cache settings keeps them.
    pub fn with_issuer_token_cache(mut self, settings: TokenCacheSettings) -> Self {
        self.issuer_token_cache = settings;
        self
    }

    /// The largest token parsed to find its issuer (default 8 KiB); each issuer's own cap applies too.
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.limits.max_token_bytes = max;
        self
    }

    /// The clock for idle and negative-cache times and the new-issuer rate (default: the system
    /// clock). It is also given to every verifier the registry builds, so that one clock rules them
    /// all (tests move it by hand); ready-built verifiers keep their own.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the configuration and builds the registry. Nothing is fetched, and issuers given as
    /// builders are built only when first used (so a mistake in one of them is reported then, as an
    /// error log and [`VerifyError::UntrustedIssuer`](oidc_bearer::VerifyError::UntrustedIssuer)).
    pub fn build(self) -> Result<IssuerRegistry, ConfigError> {
        let limits = &self.limits;
        for (name, zero) in [
            ("max_live_issuers", limits.max_live == 0),
            ("max_pending_issuers", limits.max_pending == 0),
            ("new_issuer_burst", limits.rate.burst == 0),
            ("new_issuer_interval", limits.rate.interval.is_zero()),
            ("max_token_bytes", limits.max_token_bytes == 0),
        ] {
            if zero {
                return Err(ConfigError::invalid(name, "must be positive"));
            }
        }
        let exact_count = self.exact.len();
        let mut exact = HashMap::with_capacity(exact_count);
        for entry in self.exact {
            let names: Vec<String> = match &entry {
                ExactEntry::Built(verifier) => {
                    verifier.accepted_issuers().map(str::to_owned).collect()
                }
                ExactEntry::Lazy(lazy) => lazy.names.clone(),
            };
            let entry = Arc::new(entry);
            for name in names {
                if name.is_empty() {
                    return Err(ConfigError::InvalidIssuer {
                        issuer: name,
                        reason: "empty".into(),
                    });
                }
                match exact.entry(name) {
                    Entry::Occupied(e) => {
                        return Err(ConfigError::InvalidIssuer {
                            issuer: e.key().clone(),
                            reason: "listed twice in the registry".into(),
                        });
                    }
                    Entry::Vacant(e) => {
                        e.insert(entry.clone());
                    }
                }
            }
        }
        self.issuer_token_cache.validate()?;
        let share_clock = self.clock.is_some();
        let state = State {
            proven: HashMap::new(),
            pending: HashMap::new(),
            building: HashMap::new(),
            buckets: vec![Bucket::full(self.limits.rate); self.patterns.len()],
            negative: HashMap::new(),
            exact_built: Vec::new(),
        };
        Ok(IssuerRegistry {
            inner: Arc::new(Inner {
                exact,
                exact_count,
                patterns: self.patterns,
                limits: self.limits,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                share_clock,
                issuer_token_cache: self.issuer_token_cache,
                clients: SharedClients::default(),
                recent: DigestIndex::new(RECENT_TOKENS),
                state: RwLock::new(state),
            }),
        })
    }
}

impl fmt::Debug for IssuerRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRegistryBuilder")
            .field("exact_issuers", &self.exact.len())
            .field("patterns", &self.patterns.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{aliased_builder, static_builder};

    #[test]
    fn invalid_settings_are_configuration_errors() {
        let err = IssuerRegistry::builder()
            .with_issuer(static_builder("accounts.google.com"))
            .with_issuer(aliased_builder())
            .build()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_issuer");
        assert!(err.to_string().contains("listed twice"), "{err}");
        let settings = [
            IssuerRegistry::builder().with_max_live_issuers(0),
            IssuerRegistry::builder().with_max_pending_issuers(0),
            IssuerRegistry::builder().with_new_issuer_rate(0, Duration::from_secs(1)),
            IssuerRegistry::builder().with_new_issuer_rate(1, Duration::ZERO),
        ];
        for builder in settings {
            assert_eq!(builder.build().unwrap_err().code(), "invalid_setting");
        }
    }
}
