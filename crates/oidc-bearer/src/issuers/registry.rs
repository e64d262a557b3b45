//! [`IssuerRegistry`]: many issuers behind one verifier, each token checked by its own issuer's policy
//! and keys only.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ClockHandle;
use crate::cache::{TokenCacheSettings, TokenCacheStats};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{ConfigError, KeysError, VerifyError};
use crate::token::{ClaimValue, Parsed};
use crate::verify::{DEFAULT_MAX_TOKEN_BYTES, Verifier, VerifierBuilder, VerifyToken};

/// The default cap on issuers built on demand and kept at once.
pub const DEFAULT_MAX_LIVE_ISSUERS: usize = 1000;
/// The default per-issuer token cache of issuers built on demand: 1,000 tokens, 1 MiB.
fn default_issuer_token_cache() -> TokenCacheSettings {
    TokenCacheSettings {
        max_entries: 1000,
        max_bytes: 1024 * 1024,
    }
}

/// The default time an issuer whose keys could not be fetched is refused without a new attempt.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// Decides whether an issuer not listed exactly is trusted, and with which policy.
///
/// Implemented by closures `Fn(&str) -> Option<VerifierBuilder>`, and by
/// [`GkeClusters`](super::gke::GkeClusters) and
/// [`ServiceAccounts`](super::google::ServiceAccounts).
///
/// The issuer it is called with is the token's `iss` **before** any verification: anyone can put
/// anything there. A pattern must match strictly (whole URL, known projects), must not fetch anything,
/// and should be cheap; the registry calls it once per new issuer (and again after the issuer was
/// evicted or its negative entry expired). The builder it returns must accept that exact issuer.
pub trait IssuerPattern: Send + Sync + 'static {
    /// The policy for `issuer`, or `None` if this pattern does not trust it.
    fn verifier_for(&self, issuer: &str) -> Option<VerifierBuilder>;
}

impl<F> IssuerPattern for F
where
    F: Fn(&str) -> Option<VerifierBuilder> + Send + Sync + 'static,
{
    fn verifier_for(&self, issuer: &str) -> Option<VerifierBuilder> {
        self(issuer)
    }
}

/// Verifies tokens of many issuers: each token goes to the policy of its own `iss`, and only that
/// issuer's keys are used (RFC 8725 §3.8), so one issuer's key can never vouch for another's tokens.
///
/// Issuers are listed exactly ([`with_issuer`](IssuerRegistryBuilder::with_issuer),
/// [`with_verifier`](IssuerRegistryBuilder::with_verifier)) or matched by
/// [patterns](IssuerRegistryBuilder::with_pattern); exact entries win. A token whose `iss` is trusted
/// by neither is refused with [`VerifyError::UntrustedIssuer`] before any fetch.
///
/// - **Lazy**: a [`VerifierBuilder`] is built into a verifier when a token first names its issuer,
///   and nothing is fetched before a token needs it, so thousands of issuers cost little until used.
/// - **Bounded**: at most [`with_max_live_issuers`](IssuerRegistryBuilder::with_max_live_issuers)
///   built-on-demand issuers are kept; the one used least recently is dropped to make room (and built
///   again, with a fresh key cache, if it comes back).
/// - **Negative caching**: when a built-on-demand issuer's keys cannot be fetched, its tokens are
///   refused with [`VerifyError::KeysUnavailable`] for
///   [`with_negative_ttl`](IssuerRegistryBuilder::with_negative_ttl) without a new attempt, even if
///   the issuer was evicted meanwhile: a broken or made-up issuer costs at most one fetch per period,
///   however many tokens name it.
/// - **Independent**: each issuer has its own key cache, refresh schedule and backoff.
/// - **Fast**: the issuer is found by hash lookup, whatever the number of issuers; locks are std
///   locks, held for map operations only, never across a fetch.
///
/// Cheap to clone; clones share everything. It implements [`VerifyToken`], so the HTTP layer takes it
/// wherever it takes a [`Verifier`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_bearer::{Verifier, VerifyError};
/// use oidc_bearer::claims::DefaultClaims;
/// use oidc_bearer::issuers::IssuerRegistry;
/// use oidc_bearer_testing::TestIssuer;
///
/// let (a, b) = (TestIssuer::start().await, TestIssuer::start().await);
/// let registry = IssuerRegistry::builder()
///     .with_issuer(Verifier::builder(a.issuer(), "my-service"))
///     .with_issuer(Verifier::builder(b.issuer(), "my-service"))
///     .build()
///     .unwrap();
///
/// let claims: DefaultClaims = registry.verify(&b.token().aud("my-service").sign()).await.unwrap();
/// assert_eq!(claims.registered.iss, b.issuer());
///
/// let stranger = TestIssuer::start().await;
/// let err = registry
///     .verify::<DefaultClaims>(&stranger.token().aud("my-service").sign())
///     .await
///     .unwrap_err();
/// assert!(matches!(err, VerifyError::UntrustedIssuer { .. }));
/// assert_eq!(stranger.discovery_fetches(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct IssuerRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every exact name (issuers and their aliases); never changes after `build`.
    exact: HashMap<String, Arc<ExactEntry>>,
    exact_count: usize,
    patterns: Vec<Box<dyn IssuerPattern>>,
    max_live: usize,
    negative_ttl: Duration,
    max_token_bytes: usize,
    clock: SharedClock,
    /// Whether the registry's clock is given to the verifiers it builds.
    share_clock: bool,
    /// The token cache of verifiers built on demand whose builders keep the default.
    issuer_token_cache: TokenCacheSettings,
    state: RwLock<State>,
}

enum ExactEntry {
    /// Built by the caller: always live, never evicted, never negatively cached (its own key cache's
    /// backoff applies).
    Built(Verifier),
    /// Built on first use, under all of `names` (the issuer and its aliases) at once, so that every
    /// spelling shares one key cache.
    Lazy {
        builder: Box<VerifierBuilder>,
        names: Vec<String>,
    },
}

#[derive(Default)]
struct State {
    /// Built-on-demand verifiers by `iss`; an issuer with aliases appears under each name.
    live: HashMap<String, Arc<Live>>,
    live_count: usize,
    /// Issuers refused without an attempt until `until`.
    negative: HashMap<String, Negative>,
}

struct Live {
    verifier: Verifier,
    names: Vec<String>,
    /// Clock time of the last use, in milliseconds (for eviction).
    last_used: AtomicU64,
}

struct Negative {
    until: Duration,
    error: VerifyError,
}

impl IssuerRegistry {
    /// Starts configuring a registry.
    pub fn builder() -> IssuerRegistryBuilder {
        IssuerRegistryBuilder::default()
    }

    /// Verifies `token` with the policy of the issuer its `iss` names, and decodes its payload into
    /// `T`.
    ///
    /// The token is parsed once; its unverified `iss` only selects the policy, which then checks
    /// everything (`iss` included) with that issuer's keys.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        let parsed = Parsed::new(token, self.inner.max_token_bytes)?;
        let (verifier, on_demand) = self.select(&parsed)?;
        let result = verifier.verify_parsed(token, &parsed).await;
        self.after(&parsed, on_demand, result.as_ref().err());
        result
    }

    /// Like [`verify`](Self::verify), with the claims shared (what the HTTP layer uses; served from
    /// the issuer's token cache when it has the token).
    pub async fn verify_shared<T>(&self, token: &str) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let parsed = Parsed::new(token, self.inner.max_token_bytes)?;
        let (verifier, on_demand) = self.select(&parsed)?;
        let result = verifier.verify_parsed_shared(token, &parsed).await;
        self.after(&parsed, on_demand, result.as_ref().err());
        result
    }

    /// The verifier for the token's issuer.
    fn select(&self, parsed: &Parsed<'_>) -> Result<(Verifier, bool), VerifyError> {
        match &parsed.claims.iss {
            ClaimValue::Str(iss) => self.lookup(iss),
            ClaimValue::Absent => Err(VerifyError::UntrustedIssuer { found: None }),
            _ => Err(VerifyError::InvalidClaim {
                claim: "iss",
                reason: "must be a single string (RFC 7519 §4.1.1)",
            }),
        }
    }

    /// Remembers an issuer built on demand whose keys could not be had.
    fn after(&self, parsed: &Parsed<'_>, on_demand: bool, error: Option<&VerifyError>) {
        if let (Some(VerifyError::KeysUnavailable { source }), true, Some(iss)) =
            (error, on_demand, parsed.claims.issuer())
        {
            self.remember_failure(iss, backoff(source.clone()));
        }
    }

    /// How many built-on-demand issuers are kept now (exact [`Verifier`]s given ready-built are not
    /// counted).
    pub fn live_issuers(&self) -> usize {
        self.inner.read().live_count
    }

    /// The token-cache counters of the issuers built on demand that are live now, added up (an issuer
    /// with aliases is counted once), for metrics and to watch the per-issuer bounds.
    pub fn token_cache_stats(&self) -> TokenCacheStats {
        let state = self.inner.read();
        let mut seen = std::collections::HashSet::new();
        let mut total = TokenCacheStats::default();
        for live in state.live.values() {
            if !seen.insert(Arc::as_ptr(live)) {
                continue;
            }
            if let Some(s) = live.verifier.token_cache_stats() {
                total.entries += s.entries;
                total.bytes += s.bytes;
                total.hits += s.hits;
                total.misses += s.misses;
                total.insertions += s.insertions;
                total.evictions += s.evictions;
                total.invalidations += s.invalidations;
            }
        }
        total
    }

    /// How many issuers are listed exactly (aliases not counted).
    pub fn exact_issuers(&self) -> usize {
        self.inner.exact_count
    }

    /// The verifier for `iss`, and whether it was built on demand (evictable, negatively cached).
    fn lookup(&self, iss: &str) -> Result<(Verifier, bool), VerifyError> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        {
            let state = inner.read();
            if let Some(negative) = state.negative.get(iss)
                && now < negative.until
            {
                return Err(negative.error.clone());
            }
            if let Some(live) = state.live.get(iss) {
                live.last_used.store(millis(now), Ordering::Relaxed);
                return Ok((live.verifier.clone(), true));
            }
        }
        let untrusted = || VerifyError::UntrustedIssuer {
            found: Some(iss.to_owned()),
        };
        let (builder, names) = match inner.exact.get(iss).map(|e| &**e) {
            Some(ExactEntry::Built(verifier)) => return Ok((verifier.clone(), false)),
            Some(ExactEntry::Lazy { builder, names }) => (*builder.clone(), names.clone()),
            None => {
                let Some(builder) = inner.patterns.iter().find_map(|p| p.verifier_for(iss)) else {
                    return Err(untrusted());
                };
                if !builder.accepted_issuers().any(|name| name == iss) {
                    // The pattern is wrong; its verifier would refuse every token anyway.
                    tracing::error!(iss, builder = ?builder, "issuer pattern returned a verifier for another issuer");
                    return Err(untrusted());
                }
                (builder, vec![iss.to_owned()])
            }
        };
        let builder = if inner.share_clock {
            builder.with_clock(ClockHandle(inner.clock.clone()))
        } else {
            builder
        };
        let builder = if builder.has_default_token_cache() {
            builder.with_token_cache(inner.issuer_token_cache.clone())
        } else {
            builder
        };
        match builder.build() {
            Ok(verifier) => Ok((self.insert_live(iss, verifier, names, now), true)),
            Err(error) => {
                // Not a token problem: the configuration of a trusted issuer is wrong. Said loudly,
                // remembered so that the builder is not retried on every request.
                tracing::error!(iss, code = error.code(), %error, "cannot build the verifier of a trusted issuer");
                self.remember_failure(iss, untrusted());
                Err(untrusted())
            }
        }
    }

    fn insert_live(
        &self,
        iss: &str,
        verifier: Verifier,
        names: Vec<String>,
        now: Duration,
    ) -> Verifier {
        let inner = &*self.inner;
        let mut state = inner.write();
        // Another request may have built it meanwhile: keep the first, so one key cache serves the
        // issuer and only one fetch happens.
        if let Some(live) = state.live.get(iss) {
            live.last_used.store(millis(now), Ordering::Relaxed);
            return live.verifier.clone();
        }
        while state.live_count >= inner.max_live {
            evict_least_recently_used(&mut state);
        }
        let live = Arc::new(Live {
            verifier: verifier.clone(),
            names,
            last_used: AtomicU64::new(millis(now)),
        });
        for name in &live.names {
            state.live.insert(name.clone(), live.clone());
        }
        state.live_count += 1;
        verifier
    }

    fn remember_failure(&self, iss: &str, error: VerifyError) {
        let inner = &*self.inner;
        if inner.negative_ttl.is_zero() {
            return;
        }
        let now = inner.clock.now();
        let mut state = inner.write();
        // Bounded like the live set: expired entries go first, then the one expiring soonest.
        if state.negative.len() >= inner.max_live && !state.negative.contains_key(iss) {
            state.negative.retain(|_, n| n.until > now);
            while state.negative.len() >= inner.max_live {
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
            iss,
            ttl_secs = inner.negative_ttl.as_secs(),
            code = error.code(),
            "issuer negatively cached"
        );
        state.negative.insert(
            iss.to_owned(),
            Negative {
                until: now + inner.negative_ttl,
                error,
            },
        );
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the live issuer used least recently, under all its names. O(live issuers), paid only when a
/// new issuer arrives at a full registry.
fn evict_least_recently_used(state: &mut State) {
    let Some(oldest) = state
        .live
        .values()
        .min_by_key(|live| live.last_used.load(Ordering::Relaxed))
        .cloned()
    else {
        state.live_count = 0;
        return;
    };
    tracing::debug!(issuer = oldest.verifier.issuer(), "evicting idle issuer");
    for name in &oldest.names {
        state.live.remove(name);
    }
    state.live_count -= 1;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The error served while an issuer is negatively cached: the original failure, marked as a wait.
fn backoff(source: KeysError) -> VerifyError {
    let source = match source {
        KeysError::Backoff { .. } => source,
        other => KeysError::Backoff {
            last: Box::new(other),
        },
    };
    VerifyError::KeysUnavailable { source }
}

impl VerifyToken for IssuerRegistry {
    fn verify_token<T>(
        &self,
        token: &str,
    ) -> impl std::future::Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_shared(token)
    }
}

impl fmt::Debug for IssuerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRegistry")
            .field("exact_issuers", &self.inner.exact_count)
            .field("patterns", &self.inner.patterns.len())
            .field("live_issuers", &self.live_issuers())
            .field("max_live_issuers", &self.inner.max_live)
            .field("negative_ttl", &self.inner.negative_ttl)
            .finish_non_exhaustive()
    }
}

/// Configures an [`IssuerRegistry`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct IssuerRegistryBuilder {
    exact: Vec<ExactEntry>,
    patterns: Vec<Box<dyn IssuerPattern>>,
    max_live: usize,
    negative_ttl: Duration,
    max_token_bytes: usize,
    clock: Option<SharedClock>,
    issuer_token_cache: TokenCacheSettings,
}

impl Default for IssuerRegistryBuilder {
    fn default() -> Self {
        Self {
            exact: Vec::new(),
            patterns: Vec::new(),
            max_live: DEFAULT_MAX_LIVE_ISSUERS,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            clock: None,
            issuer_token_cache: default_issuer_token_cache(),
        }
    }
}

impl IssuerRegistryBuilder {
    /// Trusts this issuer (and its aliases), with this policy. Built into a verifier when a token first
    /// names it; nothing is fetched before.
    pub fn with_issuer(mut self, builder: VerifierBuilder) -> Self {
        let names = builder.accepted_issuers().map(str::to_owned).collect();
        self.exact.push(ExactEntry::Lazy {
            builder: Box::new(builder),
            names,
        });
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

    /// The most built-on-demand issuers kept at once (default 1000); the least recently used is dropped
    /// to make room. Also bounds the negative cache.
    pub fn with_max_live_issuers(mut self, max: usize) -> Self {
        self.max_live = max;
        self
    }

    /// How long an issuer whose keys could not be fetched is refused without a new attempt (default
    /// 30 s; zero disables the negative cache, leaving only each key cache's own backoff, which
    /// eviction resets).
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The verified-token cache of each issuer the registry builds on demand, when its builder keeps the
    /// default cache (default 1,000 tokens and 1 MiB per issuer, so the registry's cache memory is
    /// bounded by `max_live_issuers` × this, 1 GiB at most with the defaults — and only tokens that
    /// verified are ever cached). A builder configured with its own cache settings keeps them.
    pub fn with_issuer_token_cache(mut self, settings: TokenCacheSettings) -> Self {
        self.issuer_token_cache = settings;
        self
    }

    /// The largest token parsed to find its issuer (default 8 KiB); each issuer's own cap applies too.
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// The clock for idle and negative-cache times (default: the system clock). It is also given to
    /// every verifier the registry builds, so that one clock rules them all (tests move it by hand);
    /// ready-built verifiers keep their own.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the configuration and builds the registry. Nothing is fetched, and issuers given as
    /// builders are built only when first used (so a mistake in one of them is reported then, as an
    /// error log and [`VerifyError::UntrustedIssuer`]).
    pub fn build(self) -> Result<IssuerRegistry, ConfigError> {
        let invalid = |name, reason: &str| ConfigError::InvalidSetting {
            name,
            reason: reason.to_owned(),
        };
        if self.max_live == 0 {
            return Err(invalid("max_live_issuers", "must be positive"));
        }
        if self.max_token_bytes == 0 {
            return Err(invalid("max_token_bytes", "must be positive"));
        }
        let exact_count = self.exact.len();
        let mut exact = HashMap::with_capacity(exact_count);
        for entry in self.exact {
            let names: Vec<String> = match &entry {
                ExactEntry::Built(verifier) => {
                    verifier.accepted_issuers().map(str::to_owned).collect()
                }
                ExactEntry::Lazy { names, .. } => names.clone(),
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
        Ok(IssuerRegistry {
            inner: Arc::new(Inner {
                exact,
                exact_count,
                patterns: self.patterns,
                max_live: self.max_live,
                negative_ttl: self.negative_ttl,
                max_token_bytes: self.max_token_bytes,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                share_clock,
                issuer_token_cache: self.issuer_token_cache,
                state: RwLock::new(State::default()),
            }),
        })
    }
}

impl fmt::Debug for IssuerRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRegistryBuilder")
            .field("exact_issuers", &self.exact.len())
            .field("patterns", &self.patterns.len())
            .field("max_live_issuers", &self.max_live)
            .field("negative_ttl", &self.negative_ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::{Jwks, StaticKeySet};

    fn static_builder(iss: &str) -> VerifierBuilder {
        let keys = StaticKeySet::new(Jwks::from_json(br#"{"keys": []}"#).unwrap());
        Verifier::builder(iss, "aud").with_key_set(keys)
    }

    #[test]
    fn an_issuer_listed_twice_is_a_configuration_error() {
        let err = IssuerRegistry::builder()
            .with_issuer(static_builder("https://a.example"))
            .with_issuer(static_builder("https://b.example").with_issuer_alias("https://a.example"))
            .build()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_issuer");
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = IssuerRegistry::builder()
            .with_max_live_issuers(0)
            .build()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_setting");
    }

    #[test]
    fn the_least_recently_used_issuer_is_evicted_under_all_its_names() {
        let clock = ManualClock::at_unix(1_000);
        let registry = IssuerRegistry::builder()
            .with_issuer(static_builder("https://a.example").with_issuer_alias("a.example"))
            .with_issuer(static_builder("https://b.example"))
            .with_issuer(static_builder("https://c.example"))
            .with_max_live_issuers(2)
            .with_clock(clock.clone())
            .build()
            .unwrap();
        let step = || clock.advance(Duration::from_secs(1));
        registry.lookup("a.example").unwrap();
        step();
        registry.lookup("https://a.example").unwrap();
        {
            // The other spelling shares the same verifier (and so the same key cache).
            let state = registry.inner.read();
            assert!(Arc::ptr_eq(
                &state.live["a.example"],
                &state.live["https://a.example"]
            ));
            assert_eq!(state.live_count, 1);
        }
        step();
        registry.lookup("https://b.example").unwrap();
        step();
        registry.lookup("https://a.example").unwrap(); // a is now the most recent
        step();
        registry.lookup("https://c.example").unwrap(); // evicts b
        assert_eq!(registry.live_issuers(), 2);
        let state = registry.inner.read();
        let mut names: Vec<&str> = state.live.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["a.example", "https://a.example", "https://c.example"]
        );
    }

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
