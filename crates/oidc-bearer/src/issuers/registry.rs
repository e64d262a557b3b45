//! [`IssuerRegistry`]: many issuers behind one verifier, each token checked by its own issuer's policy
//! and keys only.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ClockHandle;
use crate::Algorithm;
use crate::cache::{DigestIndex, TokenCacheSettings, TokenCacheStats};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{ConfigError, Excerpt, KeysError, VerifyError};
use crate::token::{ClaimValue, Parsed};
use crate::verify::{
    DEFAULT_MAX_TOKEN_BYTES, Verifier, VerifierBuilder, VerifyToken, WeakVerifier,
};

/// The default cap on proven pattern issuers kept at once.
pub const DEFAULT_MAX_LIVE_ISSUERS: usize = 1000;
/// The default cap on pattern issuers on probation (built, keys not loaded yet) at once.
pub const DEFAULT_MAX_PENDING_ISSUERS: usize = 64;
/// The default number of new pattern issuers that may be built in a burst.
pub const DEFAULT_NEW_ISSUER_BURST: u32 = 100;
/// The default time after which one more new pattern issuer may be built (10 per second).
pub const DEFAULT_NEW_ISSUER_INTERVAL: Duration = Duration::from_millis(100);
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
/// evicted, refused by the limits on new issuers, or its negative entry expired). The builder it
/// returns must accept that exact issuer.
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
/// - **Exact issuers stay**: an issuer listed exactly is built once (one verifier and key cache for
///   all its names) and then kept for the registry's lifetime: never evicted, not counted against
///   any cap (the configuration bounds them), and its own key cache's backoff paces its retries.
/// - **Probation**: the `iss` that selects a pattern issuer is unverified, so anyone can name a new
///   one in every token. A pattern issuer whose keys have not loaded yet is *on probation*: at most
///   [`with_max_pending_issuers`](IssuerRegistryBuilder::with_max_pending_issuers) (default 64) are
///   at once, and new ones are built at most at
///   [`with_new_issuer_rate`](IssuerRegistryBuilder::with_new_issuer_rate) (default a burst of 100,
///   then 10 per second). Beyond either limit a token naming a new pattern issuer is refused with
///   [`VerifyError::KeysUnavailable`] ([`KeysError::TooManyNewIssuers`]; the HTTP layer answers 503
///   with `Retry-After`) without building anything or fetching. The first verification that loads
///   the issuer's keys proves it; one whose keys cannot be fetched leaves probation and is
///   negatively cached.
/// - **Bounded**: at most [`with_max_live_issuers`](IssuerRegistryBuilder::with_max_live_issuers)
///   proven pattern issuers are kept; when a newly proven one needs room, the one used least recently
///   is dropped (and built again, with a fresh key cache, if it comes back). Issuers on probation never
///   evict anything, so a flood of made-up issuers cannot push out the issuers in use.
/// - **Negative caching**: when a pattern issuer's keys cannot be fetched, its tokens are refused with
///   [`VerifyError::KeysUnavailable`] for
///   [`with_negative_ttl`](IssuerRegistryBuilder::with_negative_ttl) without a new attempt, even if
///   the issuer was evicted meanwhile: a broken or made-up issuer costs at most one fetch per period,
///   however many tokens name it.
/// - **Independent**: each issuer has its own key cache, refresh schedule and backoff.
/// - **Fast**: a known issuer is found by hash lookup (exact issuers without any lock, pattern issuers
///   under a read lock), whatever the number of issuers; locks are std locks, held for map operations
///   only, never across a fetch.
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
    max_pending: usize,
    rate: Rate,
    negative_ttl: Duration,
    max_token_bytes: usize,
    clock: SharedClock,
    /// Whether the registry's clock is given to the verifiers it builds.
    share_clock: bool,
    /// The token cache of verifiers built on demand whose builders keep the default.
    issuer_token_cache: TokenCacheSettings,
    /// Which verifier last accepted a token with each recent signature, so that the HTTP layer's
    /// fast path finds a token it has seen in its issuer's token cache without parsing it (that
    /// cache compares the rest of the token). Weak: an issuer the registry drops is not kept
    /// alive, and its tokens are no longer found here.
    recent: DigestIndex<Recent>,
    state: RwLock<State>,
}

/// How many recent tokens the registry remembers the verifier of (about 100 bytes each).
const RECENT_TOKENS: usize = 65_536;

/// The issuer that accepted a recent token, held weakly.
#[derive(Clone)]
enum Recent {
    /// An exact issuer: never evicted or negatively cached once built.
    Exact(WeakVerifier),
    /// A pattern issuer: answered for only while it is proven and not negatively cached.
    Pattern(std::sync::Weak<Live>),
}

enum ExactEntry {
    /// Built by the caller: always live, never evicted, never negatively cached (its own key cache's
    /// backoff applies).
    Built(Verifier),
    /// Built on first use, under all its names (the issuer and its aliases) at once, so that every
    /// spelling shares one key cache; then kept like a ready-built one.
    Lazy(LazyExact),
}

struct LazyExact {
    builder: Box<VerifierBuilder>,
    names: Vec<String>,
    verifier: OnceLock<Verifier>,
    /// Held while building, so that the issuer is built once even when its first tokens race.
    building: Mutex<()>,
}

/// The mutable part of the registry: pattern issuers (proven and on probation), the negative cache.
struct State {
    /// Pattern issuers whose keys have loaded, by `iss`; at most `max_live`, evicted LRU.
    proven: HashMap<String, Arc<Live>>,
    /// Pattern issuers on probation (built, keys never loaded yet), by `iss`. With `building`, at most
    /// `max_pending`; never evicts anything.
    pending: HashMap<String, Arc<Live>>,
    /// Pattern issuers being built (outside the lock), each holding a probation slot; the gate is
    /// locked by the building request, and other first requests for the same issuer wait on it.
    building: HashMap<String, Arc<Mutex<()>>>,
    /// Paces the building of new pattern issuers.
    bucket: Bucket,
    /// Issuers refused without an attempt until `until`.
    negative: HashMap<String, Negative>,
    /// The exact issuers built so far (for counts and cache statistics).
    exact_built: Vec<Verifier>,
}

struct Live {
    verifier: Verifier,
    /// Clock time of the last use, in milliseconds (for eviction).
    last_used: AtomicU64,
    /// Clock time, in milliseconds, until which the fast path (the index of recent tokens) must
    /// not answer for this issuer: the end of its negative caching, or forever once it is evicted
    /// or leaves probation failed. Only ever makes the fast path defer to the full one.
    refuse_until: AtomicU64,
    /// Verifications running while the issuer is on probation (see [`Trial`]).
    trials: AtomicUsize,
}

struct Negative {
    until: Duration,
    error: VerifyError,
}

/// The verifier chosen for a token, and what the verification's outcome changes.
enum Selected {
    /// An exact issuer: kept whatever happens.
    Exact(Verifier),
    /// A proven pattern issuer: negatively cached if its keys become unavailable.
    Proven(Arc<Live>),
    /// A pattern issuer on probation: this verification may prove it or fail it.
    Pending(Trial),
}

impl Selected {
    fn verifier(&self) -> &Verifier {
        match self {
            Self::Exact(verifier) => verifier,
            Self::Proven(live) => &live.verifier,
            Self::Pending(trial) => &trial.live.verifier,
        }
    }
}

/// One verification by an issuer on probation. When the last running one ends without proving or
/// failing the issuer (its token was refused before the keys were needed, or the request was
/// cancelled), the issuer leaves probation (nothing negative is remembered), so an abandoned
/// verification never holds a slot.
struct Trial {
    inner: Arc<Inner>,
    issuer: String,
    live: Arc<Live>,
}

impl Trial {
    /// Joins the trial of `live`; called with the state locked (read or write), so that the count
    /// cannot change between `Drop`'s decrement and its look at `pending` (done under the write lock).
    fn join(inner: &Arc<Inner>, issuer: &str, live: &Arc<Live>) -> Self {
        live.trials.fetch_add(1, Ordering::AcqRel);
        Self {
            inner: inner.clone(),
            issuer: issuer.to_owned(),
            live: live.clone(),
        }
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        let mut state = self.inner.write();
        let last = self.live.trials.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && is_pending(&state, &self.issuer, &self.live) {
            state.pending.remove(&self.issuer);
            tracing::debug!(
                iss = ?Excerpt(&self.issuer),
                "issuer left probation undecided (keys never needed)"
            );
        }
    }
}

fn is_pending(state: &State, issuer: &str, live: &Arc<Live>) -> bool {
    state
        .pending
        .get(issuer)
        .is_some_and(|p| Arc::ptr_eq(p, live))
}

/// How fast new pattern issuers may be built.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: u32,
    interval: Duration,
}

/// A token bucket: `burst` tokens, one more every `interval`, read against the registry's clock.
struct Bucket {
    tokens: u32,
    /// When tokens were last added (`None` until first used).
    refilled: Option<Duration>,
}

impl Bucket {
    fn full(rate: Rate) -> Self {
        Self {
            tokens: rate.burst,
            refilled: None,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Duration, rate: Rate) -> bool {
        let refilled = *self.refilled.get_or_insert(now);
        // A clock moved backwards adds nothing.
        let periods = now.saturating_sub(refilled).as_nanos() / rate.interval.as_nanos().max(1);
        if periods > 0 {
            let tokens = u128::from(self.tokens) + periods;
            match (u32::try_from(tokens), u32::try_from(periods)) {
                (Ok(tokens), Ok(periods)) if tokens < rate.burst => {
                    self.tokens = tokens;
                    // Keep the fraction of a period already elapsed.
                    self.refilled = Some(refilled + rate.interval * periods);
                }
                _ => {
                    self.tokens = rate.burst;
                    self.refilled = Some(now);
                }
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
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
        let (iss, selected) = self.select(&parsed)?;
        let result = selected.verifier().verify_parsed(token, &parsed).await;
        self.settle(iss, &selected, result.as_ref().err());
        result
    }

    /// Like [`verify`](Self::verify), with the claims shared (what the HTTP layer uses; served from
    /// the issuer's token cache when it has the token).
    pub async fn verify_shared<T>(&self, token: &str) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let parsed = Parsed::new(token, self.inner.max_token_bytes)?;
        let (iss, selected) = self.select(&parsed)?;
        let result = selected
            .verifier()
            .verify_parsed_shared(token, &parsed)
            .await;
        self.settle(iss, &selected, result.as_ref().err());
        let (claims, digest) = result?;
        if let Some(digest) = digest {
            let recent = match &selected {
                Selected::Exact(verifier) => Recent::Exact(verifier.downgrade()),
                Selected::Proven(live) => Recent::Pattern(Arc::downgrade(live)),
                Selected::Pending(trial) => Recent::Pattern(Arc::downgrade(&trial.live)),
            };
            self.inner.recent.insert(&digest, recent);
        }
        Ok(claims)
    }

    /// The shared claims of a token accepted before, from its issuer's token cache (see
    /// [`VerifyToken::verify_token_cached`]): a SHA-256 of its signature and two lookups, no
    /// parsing.
    ///
    /// A token is found only through the verifier that accepted it, with that verifier's checks
    /// (times, key still published), and only while the full path would choose that verifier: a
    /// pattern issuer the registry has evicted or failed is refused here (the index holds it
    /// weakly, and it is marked), and so is one negatively cached. A hit counts as a use of the
    /// issuer for eviction. Entries that no longer answer are left to be replaced or to age out.
    fn cached_shared<T>(&self, token: &[u8]) -> Option<Arc<T>>
    where
        T: Send + Sync + 'static,
    {
        if token.len() > self.inner.max_token_bytes {
            return None;
        }
        let key = crate::cache::TokenKey::new(token)?;
        match self.inner.recent.get(&key.digest)? {
            Recent::Exact(verifier) => verifier.upgrade()?.cached_key(&key),
            Recent::Pattern(live) => {
                let live = live.upgrade()?;
                let now = millis(self.inner.clock.now());
                if now < live.refuse_until.load(Ordering::Acquire) {
                    return None;
                }
                let claims = live.verifier.cached_key(&key)?;
                live.last_used.store(now, Ordering::Relaxed);
                Some(claims)
            }
        }
    }

    /// The verifier for the token's issuer.
    fn select<'p>(&self, parsed: &'p Parsed<'_>) -> Result<(&'p str, Selected), VerifyError> {
        if let Some(iss) = parsed.claims.issuer() {
            return Ok((iss, self.lookup(iss, &parsed.header.alg)?));
        }
        match &parsed.claims.iss {
            ClaimValue::Absent => Err(VerifyError::UntrustedIssuer { found: None }),
            _ => Err(VerifyError::InvalidClaim {
                claim: "iss",
                reason: "must be a single string (RFC 7519 §4.1.1)",
            }),
        }
    }

    /// What the outcome of a verification changes: a pattern issuer on probation is proven when its
    /// keys loaded, and a pattern issuer whose keys could not be had is negatively cached (and leaves
    /// probation).
    fn settle(&self, iss: &str, selected: &Selected, error: Option<&VerifyError>) {
        match (selected, error) {
            (Selected::Exact(_), _) => {}
            (Selected::Proven(_), Some(VerifyError::KeysUnavailable { source })) => {
                self.remember_failure(iss, backoff(source.clone()));
            }
            (Selected::Proven(_), _) => {}
            (Selected::Pending(trial), Some(VerifyError::KeysUnavailable { source })) => {
                self.withdraw(trial, backoff(source.clone()));
            }
            (Selected::Pending(trial), error) if keys_were_loaded(error) => self.promote(trial),
            // Refused before its keys were needed: says nothing about the issuer. The trial's drop
            // releases the slot if no other verification is trying the issuer.
            (Selected::Pending(_), _) => {}
        }
    }

    /// How many issuers built on demand are kept now: exact issuers built so far, proven pattern
    /// issuers and pattern issuers on probation (exact [`Verifier`]s given ready-built are not
    /// counted).
    pub fn live_issuers(&self) -> usize {
        let state = self.inner.read();
        state.exact_built.len() + state.proven.len() + state.pending.len()
    }

    /// How many pattern issuers are on probation now (built, keys not loaded yet).
    pub fn pending_issuers(&self) -> usize {
        self.inner.read().pending.len()
    }

    /// The token-cache counters of the issuers built on demand that are live now, added up (an issuer
    /// with aliases is counted once), for metrics and to watch the per-issuer bounds.
    pub fn token_cache_stats(&self) -> TokenCacheStats {
        let state = self.inner.read();
        let mut total = TokenCacheStats::default();
        let verifiers = state.exact_built.iter().chain(
            state
                .proven
                .values()
                .chain(state.pending.values())
                .map(|live| &live.verifier),
        );
        for verifier in verifiers {
            if let Some(stats) = verifier.token_cache_stats() {
                total.add(&stats);
            }
        }
        total
    }

    /// How many issuers are listed exactly (aliases not counted).
    pub fn exact_issuers(&self) -> usize {
        self.inner.exact_count
    }

    /// The verifier for `iss` (a token whose header names `alg`).
    fn lookup(&self, iss: &str, alg: &str) -> Result<Selected, VerifyError> {
        let inner = &*self.inner;
        if let Some(entry) = inner.exact.get(iss) {
            return match &**entry {
                ExactEntry::Built(verifier) => Ok(Selected::Exact(verifier.clone())),
                ExactEntry::Lazy(lazy) => self.exact_lazy(iss, lazy).map(Selected::Exact),
            };
        }
        let now = inner.clock.now();
        if let Some(known) = self.known(&inner.read(), iss, now) {
            return known;
        }
        let untrusted = || VerifyError::UntrustedIssuer {
            found: Some(iss.to_owned()),
        };
        let Some(builder) = inner.patterns.iter().find_map(|p| p.verifier_for(iss)) else {
            return Err(untrusted());
        };
        if !builder.accepted_issuers().any(|name| name == iss) {
            // The pattern is wrong; its verifier would refuse every token anyway.
            tracing::error!(iss = ?Excerpt(iss), builder = ?builder, "issuer pattern returned a verifier for another issuer");
            return Err(untrusted());
        }
        // The verifier's first check (RFC 8725 §3.1), made before building one: a token with `alg`
        // `none` or an unknown name costs no build and no rate-limit token.
        if Algorithm::from_header(alg).is_none() {
            return Err(VerifyError::UnsupportedAlgorithm {
                alg: alg.to_owned(),
            });
        }
        self.admit(iss, builder, now)
    }

    /// A pattern issuer the registry knows (negatively cached, proven or on probation).
    fn known(
        &self,
        state: &State,
        iss: &str,
        now: Duration,
    ) -> Option<Result<Selected, VerifyError>> {
        if let Some(negative) = state.negative.get(iss)
            && now < negative.until
        {
            return Some(Err(negative.error.clone()));
        }
        if let Some(live) = state.proven.get(iss) {
            live.last_used.store(millis(now), Ordering::Relaxed);
            return Some(Ok(Selected::Proven(live.clone())));
        }
        let live = state.pending.get(iss)?;
        Some(Ok(Selected::Pending(Trial::join(&self.inner, iss, live))))
    }

    /// An exact issuer, built on its first use.
    fn exact_lazy(&self, iss: &str, lazy: &LazyExact) -> Result<Verifier, VerifyError> {
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

    /// Puts a new pattern issuer on probation, if a slot and the rate limit allow.
    ///
    /// Our own hardening, not from a standard (go-oidc has no registry and so no such limit): the
    /// `iss` that leads here is unverified, so without these limits every made-up name would cost a
    /// verifier build and an outbound fetch.
    fn admit(
        &self,
        iss: &str,
        builder: VerifierBuilder,
        now: Duration,
    ) -> Result<Selected, VerifyError> {
        let inner = &*self.inner;
        let refuse = |limit: &'static str| {
            tracing::debug!(iss = ?Excerpt(iss), limit, "new issuer refused: too many new issuers");
            VerifyError::KeysUnavailable {
                source: KeysError::TooManyNewIssuers { limit },
            }
        };
        let gate = Arc::new(Mutex::new(()));
        let building = gate.lock().unwrap_or_else(PoisonError::into_inner);
        let reservation = {
            let mut state = inner.write();
            // Another request may have admitted it meanwhile.
            if let Some(known) = self.known(&state, iss, now) {
                return known;
            }
            if let Some(other) = state.building.get(iss).cloned() {
                // Another request is building this issuer: wait for it (milliseconds, once per
                // issuer) instead of taking a second slot and rate-limit token for the same name.
                drop(state);
                drop(other.lock().unwrap_or_else(PoisonError::into_inner));
                if let Some(known) = self.known(&inner.read(), iss, now) {
                    return known;
                }
                // Its build failed without a negative entry: try again as a first request.
                return self.admit(iss, builder, now);
            }
            if state.pending.len() + state.building.len() >= inner.max_pending {
                return Err(refuse("max_pending_issuers"));
            }
            if !state.bucket.take(now, inner.rate) {
                return Err(refuse("new_issuer_rate"));
            }
            state.building.insert(iss.to_owned(), gate.clone());
            Reservation { inner, iss }
        };
        // Outside the lock: a build takes milliseconds (an HTTP client, TLS roots).
        let verifier = self.build(iss, builder)?;
        let mut state = inner.write();
        reservation.fill(&mut state);
        if let Some(known) = self.known(&state, iss, now) {
            return known;
        }
        let live = Arc::new(Live {
            verifier,
            last_used: AtomicU64::new(millis(now)),
            refuse_until: AtomicU64::new(0),
            trials: AtomicUsize::new(0),
        });
        state.pending.insert(iss.to_owned(), live.clone());
        let trial = Trial::join(&self.inner, iss, &live);
        tracing::debug!(
            iss = ?Excerpt(iss),
            pending = state.pending.len(),
            "issuer on probation"
        );
        drop(state);
        // Waiting first requests for this issuer now find it on probation.
        drop(building);
        Ok(Selected::Pending(trial))
    }

    /// Builds an issuer's verifier with the registry's clock and token-cache defaults.
    fn build(&self, iss: &str, builder: VerifierBuilder) -> Result<Verifier, VerifyError> {
        let inner = &*self.inner;
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
        builder.build().map_err(|error| {
            // Not a token problem: the configuration of a trusted issuer is wrong. Said loudly,
            // remembered so that the builder is not retried on every request.
            tracing::error!(iss = ?Excerpt(iss), code = error.code(), %error, "cannot build the verifier of a trusted issuer");
            let untrusted = VerifyError::UntrustedIssuer {
                found: Some(iss.to_owned()),
            };
            self.remember_failure(iss, untrusted.clone());
            untrusted
        })
    }

    /// Moves an issuer from probation to the proven set, making room by evicting the proven issuer
    /// used least recently.
    fn promote(&self, trial: &Trial) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut state = inner.write();
        if !is_pending(&state, &trial.issuer, &trial.live) {
            return; // proven or failed by a concurrent verification
        }
        state.pending.remove(&trial.issuer);
        while state.proven.len() >= inner.max_live {
            evict_least_recently_used(&mut state.proven);
        }
        trial.live.last_used.store(millis(now), Ordering::Relaxed);
        // Negatively cached meanwhile (by a verification on an earlier, evicted verifier of this
        // issuer): the full path refuses it until then, so the fast path must too.
        if let Some(negative) = state.negative.get(&trial.issuer) {
            trial
                .live
                .refuse_until
                .fetch_max(millis_ceil(negative.until), Ordering::AcqRel);
        }
        state
            .proven
            .insert(trial.issuer.clone(), trial.live.clone());
        tracing::debug!(iss = ?Excerpt(&trial.issuer), "issuer proven: keys loaded");
    }

    /// Takes an issuer whose keys could not be had off probation and negatively caches it, in one
    /// step, so that no request finds it in neither place and builds it again.
    fn withdraw(&self, trial: &Trial, error: VerifyError) {
        let mut state = self.inner.write();
        if is_pending(&state, &trial.issuer, &trial.live) {
            state.pending.remove(&trial.issuer);
        }
        // Off probation for good, unless a concurrent trial already proved this very issuer: then it
        // stays in use, and only the negative period below holds its fast path back.
        let proven = state
            .proven
            .get(&trial.issuer)
            .is_some_and(|p| Arc::ptr_eq(p, &trial.live));
        if !proven {
            trial.live.refuse_until.store(u64::MAX, Ordering::Release);
        }
        self.remember_failure_in(&mut state, &trial.issuer, error);
    }

    fn remember_failure(&self, iss: &str, error: VerifyError) {
        self.remember_failure_in(&mut self.inner.write(), iss, error);
    }

    fn remember_failure_in(&self, state: &mut State, iss: &str, error: VerifyError) {
        let inner = &*self.inner;
        if inner.negative_ttl.is_zero() {
            return;
        }
        let now = inner.clock.now();
        // Bounded like the live set: expired entries go first, then the one expiring soonest. The scan
        // is paid only by failures of new issuers, which the rate limit paces.
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
            iss = ?Excerpt(iss),
            ttl_secs = inner.negative_ttl.as_secs(),
            code = error.code(),
            "issuer negatively cached"
        );
        let until = now.saturating_add(inner.negative_ttl);
        // A proven issuer stays in `proven` while negatively cached (and one on probation may be
        // proven meanwhile): its fast path must wait too.
        for live in [state.proven.get(iss), state.pending.get(iss)]
            .into_iter()
            .flatten()
        {
            live.refuse_until
                .fetch_max(millis_ceil(until), Ordering::AcqRel);
        }
        state
            .negative
            .insert(iss.to_owned(), Negative { until, error });
    }
}

/// A probation slot held while its issuer is built; given back if the build fails (or panics).
struct Reservation<'a> {
    inner: &'a Inner,
    iss: &'a str,
}

impl Reservation<'_> {
    /// Gives the slot back as its issuer is inserted, under the caller's lock.
    fn fill(self, state: &mut State) {
        state.building.remove(self.iss);
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.inner.write().building.remove(self.iss);
    }
}

/// Whether a verification that ended this way had the issuer's keys: it succeeded, or failed at or
/// after the key lookup or the signature. Errors found before the keys are needed (size, `alg`,
/// `typ`) say nothing about the issuer; so does any variant added later, until listed here.
fn keys_were_loaded(error: Option<&VerifyError>) -> bool {
    matches!(
        error,
        None | Some(
            VerifyError::UnknownKey { .. }
                | VerifyError::UnknownKeyRetry { .. }
                | VerifyError::AmbiguousKey { .. }
                | VerifyError::AlgorithmKeyMismatch { .. }
                | VerifyError::InvalidSignature
                | VerifyError::IssuerMismatch { .. }
                | VerifyError::AudienceMismatch { .. }
                | VerifyError::MissingClaim { .. }
                | VerifyError::InvalidClaim { .. }
                | VerifyError::Expired { .. }
                | VerifyError::NotYetValid { .. }
                | VerifyError::IssuedInFuture { .. }
                | VerifyError::ClaimsDecode { .. }
        )
    )
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the proven issuer used least recently. O(proven issuers): a scan rather than an LRU list, so
/// that a hit stays a read-locked hash lookup. Paid only when an issuer on probation is proven while
/// the proven set is full, which takes keys that really loaded from a trusted issuer and is paced by
/// the new-issuer rate limit; a flood of made-up issuers never gets here.
fn evict_least_recently_used(proven: &mut HashMap<String, Arc<Live>>) {
    let Some(oldest) = proven
        .iter()
        .min_by_key(|(_, live)| live.last_used.load(Ordering::Relaxed))
        .map(|(iss, _)| iss.clone())
    else {
        return;
    };
    tracing::debug!(iss = ?Excerpt(&oldest), "evicting idle issuer");
    if let Some(live) = proven.remove(&oldest) {
        live.refuse_until.store(u64::MAX, Ordering::Release);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// [`millis`] rounded up: a deadline in milliseconds that is never before the exact one.
fn millis_ceil(d: Duration) -> u64 {
    millis(d).saturating_add(u64::from(!d.subsec_nanos().is_multiple_of(1_000_000)))
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

    fn verify_token_cached<T>(&self, token: &[u8]) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.cached_shared(token)
    }
}

impl fmt::Debug for IssuerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRegistry")
            .field("exact_issuers", &self.inner.exact_count)
            .field("patterns", &self.inner.patterns.len())
            .field("live_issuers", &self.live_issuers())
            .field("pending_issuers", &self.pending_issuers())
            .field("max_live_issuers", &self.inner.max_live)
            .field("max_pending_issuers", &self.inner.max_pending)
            .field("new_issuer_burst", &self.inner.rate.burst)
            .field("new_issuer_interval", &self.inner.rate.interval)
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
    max_pending: usize,
    rate: Rate,
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
            max_pending: DEFAULT_MAX_PENDING_ISSUERS,
            rate: Rate {
                burst: DEFAULT_NEW_ISSUER_BURST,
                interval: DEFAULT_NEW_ISSUER_INTERVAL,
            },
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
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
        self.max_live = max;
        self
    }

    /// The most pattern issuers on probation — built, keys not loaded yet — at once (default 64, at
    /// least 1). While that many are, a token naming another new pattern issuer is refused with
    /// [`VerifyError::KeysUnavailable`] ([`KeysError::TooManyNewIssuers`]) without building or
    /// fetching anything. An issuer leaves probation when a verification loads its keys (it is then
    /// kept, see [`with_max_live_issuers`](Self::with_max_live_issuers)) or fails to (it is then
    /// negatively cached).
    pub fn with_max_pending_issuers(mut self, max: usize) -> Self {
        self.max_pending = max;
        self
    }

    /// How fast new pattern issuers may be built: `burst` at once, then one more per `interval`
    /// (default 100, then one per 100 ms, 10 per second), timed by the registry's
    /// [clock](Self::with_clock). Beyond it, a token naming a new pattern issuer is refused like when
    /// probation is full. Known issuers and exact ones are not limited. `burst` must be at least 1 and
    /// `interval` positive.
    pub fn with_new_issuer_rate(mut self, burst: u32, interval: Duration) -> Self {
        self.rate = Rate { burst, interval };
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
    /// bounded by (exact issuers + `max_live_issuers` + `max_pending_issuers`) × this, about 1 GiB at
    /// most with the defaults and no exact issuers — and only tokens that verified are ever cached). A
    /// builder configured with its own cache settings keeps them.
    pub fn with_issuer_token_cache(mut self, settings: TokenCacheSettings) -> Self {
        self.issuer_token_cache = settings;
        self
    }

    /// The largest token parsed to find its issuer (default 8 KiB); each issuer's own cap applies too.
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
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
    /// error log and [`VerifyError::UntrustedIssuer`]).
    pub fn build(self) -> Result<IssuerRegistry, ConfigError> {
        let invalid = |name, reason: &str| ConfigError::InvalidSetting {
            name,
            reason: reason.to_owned(),
        };
        if self.max_live == 0 {
            return Err(invalid("max_live_issuers", "must be positive"));
        }
        if self.max_pending == 0 {
            return Err(invalid("max_pending_issuers", "must be positive"));
        }
        if self.rate.burst == 0 {
            return Err(invalid("new_issuer_burst", "must be positive"));
        }
        if self.rate.interval.is_zero() {
            return Err(invalid("new_issuer_interval", "must be positive"));
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
            bucket: Bucket::full(self.rate),
            negative: HashMap::new(),
            exact_built: Vec::new(),
        };
        Ok(IssuerRegistry {
            inner: Arc::new(Inner {
                exact,
                exact_count,
                patterns: self.patterns,
                max_live: self.max_live,
                max_pending: self.max_pending,
                rate: self.rate,
                negative_ttl: self.negative_ttl,
                max_token_bytes: self.max_token_bytes,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                share_clock,
                issuer_token_cache: self.issuer_token_cache,
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
            .field("max_live_issuers", &self.max_live)
            .field("max_pending_issuers", &self.max_pending)
            .field("new_issuer_burst", &self.rate.burst)
            .field("new_issuer_interval", &self.rate.interval)
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

    fn example_pattern(iss: &str) -> Option<VerifierBuilder> {
        iss.ends_with(".example").then(|| static_builder(iss))
    }

    /// Looks `iss` up and, if it is on probation, proves it as a verification that loaded its keys
    /// would.
    fn use_(registry: &IssuerRegistry, iss: &str) -> Selected {
        let selected = registry.lookup(iss, "RS256").unwrap();
        if let Selected::Pending(trial) = &selected {
            registry.promote(trial);
        }
        selected
    }

    fn proven(registry: &IssuerRegistry) -> Vec<String> {
        let state = registry.inner.read();
        let mut names: Vec<String> = state.proven.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn invalid_settings_are_configuration_errors() {
        let err = IssuerRegistry::builder()
            .with_issuer(static_builder("https://a.example"))
            .with_issuer(static_builder("https://b.example").with_issuer_alias("https://a.example"))
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

    #[test]
    fn exact_issuers_are_built_once_under_all_their_names_and_never_evicted() {
        let clock = ManualClock::at_unix(1_000);
        let registry = IssuerRegistry::builder()
            .with_issuer(static_builder("https://a.example").with_issuer_alias("a.example"))
            .with_issuer(static_builder("https://b.example"))
            .with_issuer(static_builder("https://c.example"))
            .with_pattern(example_pattern)
            .with_max_live_issuers(1)
            .with_clock(clock.clone())
            .build()
            .unwrap();
        let exact = [
            "a.example",
            "https://a.example",
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
        // Three issuers, built once each (the alias shares a's verifier).
        assert_eq!(registry.inner.read().exact_built.len(), 3);
        assert_eq!(registry.live_issuers(), 4);
    }

    #[test]
    fn the_least_recently_used_proven_issuer_makes_room() {
        let clock = ManualClock::at_unix(1_000);
        let registry = IssuerRegistry::builder()
            .with_pattern(example_pattern)
            .with_max_live_issuers(2)
            .with_clock(clock.clone())
            .build()
            .unwrap();
        let step = || clock.advance(Duration::from_secs(1));
        for iss in [
            "https://a.example",
            "https://b.example",
            "https://a.example",
        ] {
            use_(&registry, iss); // a is now the most recent
            step();
        }
        // On probation: evicts nothing, even with the proven set full.
        let c = registry.lookup("https://c.example", "RS256").unwrap();
        assert_eq!(
            proven(&registry),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(registry.pending_issuers(), 1);
        let Selected::Pending(trial) = &c else {
            panic!("c should be on probation")
        };
        registry.promote(trial); // evicts b
        assert_eq!(
            proven(&registry),
            ["https://a.example", "https://c.example"]
        );
        assert_eq!(registry.pending_issuers(), 0);
    }

    #[test]
    fn an_issuer_whose_trials_all_end_undecided_leaves_probation() {
        let registry = IssuerRegistry::builder()
            .with_pattern(example_pattern)
            .build()
            .unwrap();
        let first = registry.lookup("https://a.example", "RS256").unwrap();
        let second = registry.lookup("https://a.example", "RS256").unwrap();
        assert_eq!(registry.pending_issuers(), 1);
        drop(first);
        assert_eq!(registry.pending_issuers(), 1, "one trial still runs");
        drop(second);
        assert_eq!(registry.pending_issuers(), 0);
        // `alg: none` is refused before anything is built.
        let err = registry.lookup("https://b.example", "none").err().unwrap();
        assert_eq!(err.code(), "unsupported_algorithm");
        assert_eq!(registry.pending_issuers(), 0);
    }

    #[test]
    fn the_bucket_refills_one_token_per_interval_up_to_the_burst() {
        let rate = Rate {
            burst: 3,
            interval: Duration::from_secs(10),
        };
        let mut bucket = Bucket::full(rate);
        let t = Duration::from_secs(1_000);
        let taken = |bucket: &mut Bucket, now| (0..5).filter(|_| bucket.take(now, rate)).count();
        assert_eq!(taken(&mut bucket, t), 3);
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(9)), 0);
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(25)), 2);
        // The half period left over from the 25 s counts.
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(30)), 1);
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(3_600)), 3);
        // A clock moved backwards adds nothing.
        assert_eq!(taken(&mut bucket, t), 0);
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
