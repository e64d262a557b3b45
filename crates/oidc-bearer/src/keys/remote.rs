//! A key set that follows an issuer's published JWKS, with a cache built so that a request with a
//! known key never waits on the network.
//!
//! The rules, after go-oidc's `jwks.go` (its `inflight` single flight) and jose's `cooldownDuration`:
//! - reads take a `std::sync::RwLock` for a pointer copy; no lock is ever held across I/O on the read
//!   path;
//! - an unknown `kid` triggers at most one shared fetch, and at most one per cooldown window, so a
//!   flood of forged `kid`s cannot flood the issuer (go-oidc refetches on every unknown `kid`; we add
//!   the cooldown);
//! - the set lives as long as the JWKS response's `Cache-Control: max-age` says, clamped, and is
//!   refreshed in the background ahead of expiry;
//! - a failed refresh keeps the keys we have (stale-if-error, RFC 5861 in spirit) up to a maximum
//!   staleness, retrying with exponential backoff; keys missing from a successful refresh are dropped.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use url::Url;

use super::{BoxFuture, Jwks, KeySet};
use crate::clock::{SharedClock, SystemClock};
use crate::discovery;
use crate::error::{ConfigError, KeysError};
use crate::fetch::{Fetcher, HttpSettings};

/// How a [`RemoteKeySet`] caches keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// The least time between two fetches triggered by unknown `kid`s. Default 30 s.
    pub cooldown: Duration,
    /// The key set's lifetime when the JWKS response has no `max-age`. Default 10 min.
    pub default_ttl: Duration,
    /// The shortest lifetime a `max-age` may give. Default 1 min.
    pub min_ttl: Duration,
    /// The longest lifetime a `max-age` may give. Default 24 h.
    pub max_ttl: Duration,
    /// How long past their lifetime keys are still used while refreshes fail. Default 24 h.
    pub max_stale: Duration,
    /// The first retry delay after a failed fetch; it doubles per failure. Default 1 s.
    pub initial_backoff: Duration,
    /// The longest retry delay. Default 60 s.
    pub max_backoff: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(30),
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl CacheSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, reason: &str| {
            Err(ConfigError::InvalidSetting {
                name,
                reason: reason.to_owned(),
            })
        };
        if self.min_ttl > self.max_ttl {
            return bad("min_ttl", "must not exceed max_ttl");
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            return bad(
                "initial_backoff",
                "must be positive and at most max_backoff",
            );
        }
        Ok(())
    }

    fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Where the keys are found.
#[derive(Debug, Clone)]
enum Source {
    /// Discovery at `url`, checked against `issuer`; `jwks_override` replaces the advertised JWKS URL
    /// (discovery still runs, for the issuer check).
    Discovery {
        issuer: String,
        url: Url,
        jwks_override: Option<Url>,
    },
    /// A JWKS URL, without discovery.
    Jwks(Url),
}

/// A key set fetched from an issuer (by discovery or a direct JWKS URL) and cached.
///
/// Cheap to clone; clones share the cache. Construction never fetches: the first verification (or
/// [`ready`](RemoteKeySet::ready)) does.
#[derive(Clone)]
pub struct RemoteKeySet {
    shared: Arc<Shared>,
}

struct Shared {
    source: Source,
    fetcher: Fetcher,
    clock: SharedClock,
    settings: CacheSettings,
    state: RwLock<State>,
    /// Held only by the one task fetching; never by readers.
    fetching: tokio::sync::Mutex<()>,
    background: AtomicBool,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<Jwks>>,
    /// When the keys were fetched and when they expire (clock time).
    fetched_at: Duration,
    expires_at: Duration,
    /// The JWKS URL learnt from discovery.
    jwks_url: Option<Url>,
    /// The last fetch attempt, successful or not (for the cooldown).
    last_attempt: Option<Duration>,
    /// No new attempt before this (backoff after failures).
    retry_at: Duration,
    failures: u32,
    last_error: Option<KeysError>,
    /// Bumped by every completed attempt, so waiters know one happened while they queued.
    generation: u64,
}

impl RemoteKeySet {
    /// Keys found by OpenID Connect Discovery for `issuer`, at the standard discovery URL.
    pub fn discover(issuer: &str) -> Result<Self, ConfigError> {
        Self::builder_discovery(issuer, None, None, HttpSettings::default())
            .map(|b| b.build(Arc::new(SystemClock), CacheSettings::default()))
    }

    /// Keys at a JWKS URL, without discovery.
    pub fn from_jwks_url(url: &str) -> Result<Self, ConfigError> {
        Self::builder_jwks(url, HttpSettings::default())
            .map(|b| b.build(Arc::new(SystemClock), CacheSettings::default()))
    }

    pub(crate) fn builder_discovery(
        issuer: &str,
        discovery_url: Option<&str>,
        jwks_override: Option<&str>,
        http: HttpSettings,
    ) -> Result<Pending, ConfigError> {
        let insecure = http.allow_insecure_http;
        let url = crate::fetch::parse_url(
            discovery_url.unwrap_or(&discovery::discovery_url(issuer)),
            insecure,
        )?;
        let jwks_override = jwks_override
            .map(|u| crate::fetch::parse_url(u, insecure))
            .transpose()?;
        // The fetch bearer token goes only where the user pointed us, never to a `jwks_uri` that the
        // discovery document advertises on another host.
        let origins = std::iter::once(&url).chain(&jwks_override).map(Url::origin);
        let fetcher = Fetcher::new(http.with_authorization_origins(origins))?;
        Ok(Pending {
            source: Source::Discovery {
                issuer: issuer.to_owned(),
                url,
                jwks_override,
            },
            fetcher,
        })
    }

    pub(crate) fn builder_jwks(url: &str, http: HttpSettings) -> Result<Pending, ConfigError> {
        let url = crate::fetch::parse_url(url, http.allow_insecure_http)?;
        let fetcher = Fetcher::new(http.with_authorization_origins([url.origin()]))?;
        Ok(Pending {
            source: Source::Jwks(url),
            fetcher,
        })
    }

    /// Fetches the keys now if none are loaded: a warm-up before serving. Verification works without
    /// it (the first token triggers the fetch), and a failure here is not fatal: later requests retry.
    pub async fn ready(&self) -> Result<(), KeysError> {
        self.load().await.map(|_| ())
    }

    /// How many keys are loaded now.
    pub fn loaded_keys(&self) -> usize {
        self.current().map_or(0, |k| k.len())
    }

    fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    /// The keys, fetching (single flight) if none are loaded.
    async fn load(&self) -> Result<Arc<Jwks>, KeysError> {
        match self.current() {
            Some(keys) => Ok(keys),
            None => self.refresh_inner().await,
        }
    }

    async fn refresh_inner(&self) -> Result<Arc<Jwks>, KeysError> {
        let shared = &self.shared;
        let generation = {
            let state = shared.state.read().unwrap_or_else(|e| e.into_inner());
            let now = self.now();
            if let Some(keys) = usable(&state, now, &shared.settings) {
                // An unknown kid: at most one fetch per cooldown window (and none while backing off).
                let cooling = state
                    .last_attempt
                    .is_some_and(|t| now < t.saturating_add(shared.settings.cooldown));
                if cooling || now < state.retry_at {
                    return Ok(keys);
                }
            } else if now < state.retry_at {
                return Err(unavailable(&state, now));
            }
            state.generation
        };
        // Single flight: one task fetches; the others wait here for its result.
        let _fetching = shared.fetching.lock().await;
        {
            let state = shared.state.read().unwrap_or_else(|e| e.into_inner());
            if state.generation != generation {
                let now = self.now();
                return usable(&state, now, &shared.settings)
                    .ok_or_else(|| unavailable(&state, now));
            }
        }
        self.fetch_and_store().await
    }

    /// Fetches once and updates the state. Must be called with `fetching` held.
    async fn fetch_and_store(&self) -> Result<Arc<Jwks>, KeysError> {
        let shared = &self.shared;
        let started = self.now();
        let known_jwks_url = shared
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .jwks_url
            .clone();
        let result = self.fetch(known_jwks_url).await;
        let now = self.now();
        let mut state = shared.state.write().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        state.last_attempt = Some(started);
        match result {
            Ok((keys, ttl, jwks_url)) => {
                tracing::debug!(
                    keys = keys.len(),
                    skipped = keys.skipped(),
                    ttl_secs = ttl.as_secs(),
                    "fetched JWKS"
                );
                let keys = Arc::new(keys);
                state.keys = Some(keys.clone());
                state.fetched_at = now;
                state.expires_at = now.saturating_add(ttl);
                state.jwks_url = Some(jwks_url);
                state.failures = 0;
                state.retry_at = now;
                state.last_error = None;
                Ok(keys)
            }
            Err(error) => {
                state.failures += 1;
                state.retry_at = now.saturating_add(shared.settings.backoff(state.failures));
                // Re-discover next time: the JWKS URL may have moved.
                state.jwks_url = None;
                tracing::warn!(code = error.code(), %error, failures = state.failures, "JWKS refresh failed; keeping cached keys");
                state.last_error = Some(error.clone());
                match usable(&state, now, &shared.settings) {
                    Some(keys) => Ok(keys),
                    None if state.keys.is_some() => Err(unavailable(&state, now)),
                    // The fetching task reports its own error; waiters see it behind `Backoff`.
                    None => Err(error),
                }
            }
        }
    }

    async fn fetch(&self, known_jwks_url: Option<Url>) -> Result<(Jwks, Duration, Url), KeysError> {
        let shared = &self.shared;
        let jwks_url = match (&shared.source, known_jwks_url) {
            (Source::Jwks(url), _) => url.clone(),
            (Source::Discovery { .. }, Some(url)) => url,
            (
                Source::Discovery {
                    issuer,
                    url,
                    jwks_override,
                },
                None,
            ) => {
                let advertised = discovery::discover(&shared.fetcher, url, issuer).await?.1;
                // An override still goes through discovery, which checks the issuer: inside a
                // cluster, keys come from the API server whatever URL the document advertises.
                jwks_override.clone().unwrap_or(advertised)
            }
        };
        let fetched = shared.fetcher.get(&jwks_url).await?;
        let jwks = Jwks::parse(&fetched.body).map_err(|message| KeysError::InvalidDocument {
            url: jwks_url.to_string(),
            message,
        })?;
        if jwks.is_empty() {
            return Err(KeysError::NoUsableKeys {
                url: jwks_url.to_string(),
                skipped: jwks.skipped(),
            });
        }
        Ok((jwks, shared.settings.ttl(fetched.max_age), jwks_url))
    }

    /// Starts a background refresh when the keys are due, unless one is running or backing off.
    fn maybe_refresh_in_background(&self, state: &State, now: Duration) {
        let lifetime = state.expires_at.saturating_sub(state.fetched_at);
        // Refresh once three quarters of the lifetime has passed, so no request meets expired keys.
        let due = state.fetched_at.saturating_add(lifetime.mul_f64(0.75));
        if now < due || now < state.retry_at {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .shared
            .background
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let this = self.clone();
        runtime.spawn(async move {
            if let Ok(_fetching) = this.shared.fetching.try_lock() {
                let _ = this.fetch_and_store().await;
            }
            this.shared.background.store(false, Ordering::Release);
        });
    }
}

/// The keys if they are within their lifetime plus the maximum staleness.
fn usable(state: &State, now: Duration, settings: &CacheSettings) -> Option<Arc<Jwks>> {
    let keys = state.keys.as_ref()?;
    (now < state.expires_at.saturating_add(settings.max_stale)).then(|| keys.clone())
}

fn unavailable(state: &State, now: Duration) -> KeysError {
    if state.keys.is_some() {
        return KeysError::Stale {
            age: now.saturating_sub(state.fetched_at),
        };
    }
    match &state.last_error {
        Some(e) if now < state.retry_at => KeysError::Backoff {
            last: Box::new(e.clone()),
        },
        Some(e) => e.clone(),
        None => KeysError::Backoff {
            last: Box::new(KeysError::Transport {
                url: String::new(),
                message: "no fetch attempted yet".into(),
            }),
        },
    }
}

impl KeySet for RemoteKeySet {
    fn current(&self) -> Option<Arc<Jwks>> {
        let now = self.now();
        let state = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
        let keys = usable(&state, now, &self.shared.settings)?;
        self.maybe_refresh_in_background(&state, now);
        Some(keys)
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Arc<Jwks>, KeysError>> {
        Box::pin(self.refresh_inner())
    }
}

impl fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("source", &self.shared.source)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

/// A remote key set whose source is known, waiting for its clock and cache settings.
pub(crate) struct Pending {
    source: Source,
    fetcher: Fetcher,
}

impl Pending {
    pub(crate) fn build(self, clock: SharedClock, settings: CacheSettings) -> RemoteKeySet {
        RemoteKeySet {
            shared: Arc::new(Shared {
                source: self.source,
                fetcher: self.fetcher,
                clock,
                settings,
                state: RwLock::new(State::default()),
                fetching: tokio::sync::Mutex::new(()),
                background: AtomicBool::new(false),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_follows_max_age_within_bounds() {
        let s = CacheSettings::default();
        assert_eq!(s.ttl(None), Duration::from_secs(600));
        assert_eq!(s.ttl(Some(Duration::from_secs(5))), Duration::from_secs(60));
        assert_eq!(
            s.ttl(Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            s.ttl(Some(Duration::from_secs(10 * 86400))),
            Duration::from_secs(86400)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = CacheSettings::default();
        let secs: Vec<u64> = (1..=9).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(60));
    }
}
