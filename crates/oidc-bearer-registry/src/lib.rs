//! Many OpenID Connect issuers behind one [`oidc_bearer`] verifier: [`IssuerRegistry`] picks each
//! token's verifier by its (unverified) `iss`, and only that issuer's keys can accept it (RFC 8725
//! §3.8). Issuers are listed exactly, or admitted by an
//! [`oidc_bearer::issuers::IssuerPattern`] (the presets
//! `oidc_bearer::issuers::gke::GkeClusters` and `oidc_bearer::issuers::google::ServiceAccounts`,
//! or a closure) under bounds on new issuers.
//!
//! An [`IssuerRegistry`] trusts many issuers at once, each token checked by its own issuer's
//! verifier (and keys); it goes wherever an `oidc_bearer::Verifier` goes, the layer included:
//!
//! ```
//! use oidc_bearer::claims::DefaultClaims;
//! use oidc_bearer::{BearerAuthLayer, Verifier};
//! use oidc_bearer_registry::IssuerRegistry;
//! use oidc_bearer_testing::TestIssuer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (a, b) = (TestIssuer::start().await, TestIssuer::start().await);
//! let registry = IssuerRegistry::builder()
//!     .with_issuer(Verifier::builder(a.issuer(), "my-service"))
//!     .with_issuer(Verifier::builder(b.issuer(), "my-service"))
//!     .build()
//!     .unwrap();
//! for issuer in [&a, &b] {
//!     let token = issuer.token().aud("my-service").sign();
//!     let claims: DefaultClaims = registry.verify(&token).await.unwrap();
//!     assert_eq!(claims.registered.iss, issuer.issuer());
//! }
//! let layer = BearerAuthLayer::new(registry);
//! # let _ = layer;
//! # }
//! ```
//!
//! One concern per file: `builder` ([`IssuerRegistryBuilder`], defaults and checks), `exact`
//! (issuers listed exactly, built once on first use), `admission` (probation, the new-issuer rate
//! bucket, build reservations, least-recently-used eviction), `negative` (the negative cache),
//! `fast_path` (the index of recent tokens). This file holds the registry itself: selecting the
//! verifier by `iss`, and what a verification's outcome changes.
//!
//! The verifier internals it uses (`oidc_bearer::__private`: `VerifierAccess`, `BuilderAccess`, `IssuerRead`) come from
//! the core of the same version; none of them lets this crate accept bytes a verifier did not
//! verify (see their contracts there).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod builder;
mod exact;
mod fast_path;
mod negative;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oidc_bearer_shared::clock::AtomicTime;
use serde::de::DeserializeOwned;

use oidc_bearer::__private::{
    BuilderAccess as _, Excerpt, IssuerRead, SharedClients, VerifierAccess as _,
};
use oidc_bearer::cache::{TokenCacheSettings, TokenCacheStats};
use oidc_bearer::clock::Clock;
use oidc_bearer::issuers::IssuerPattern;
use oidc_bearer::{
    ConfigError, Phase, Presented, Verifier, VerifierBuilder, VerifyError, VerifyToken,
};

/// The registry's clock, shared with the verifiers it builds.
type SharedClock = Arc<dyn Clock>;

use admission::{Bucket, Building, Trial};
pub use builder::IssuerRegistryBuilder;
use builder::Limits;
use exact::{ExactEntry, LazyExact};
use fast_path::{DigestIndex, Recent};
use negative::{Negative, backoff};

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
///   one in every token. A token naming a new pattern issuer must first pass every rule of the
///   pattern's policy that needs no key (size, algorithms, `typ`, audience, times), or it is
///   refused as the issuer's verifier would refuse it, at no cost. A pattern issuer whose keys have
///   not loaded yet is *on probation*: per pattern, at most
///   [`with_max_pending_issuers`](IssuerRegistryBuilder::with_max_pending_issuers) (default 64) are
///   at once, and new ones are built at most at
///   [`with_new_issuer_rate`](IssuerRegistryBuilder::with_new_issuer_rate) (default a burst of 100,
///   then 10 per second), so one pattern's made-up issuers never starve another's. Beyond either
///   limit a token naming a new pattern issuer is refused with
///   [`VerifyError::TooManyNewIssuers`] (the HTTP layer answers 503 with `Retry-After`) without
///   building anything or fetching. The first verification that loads
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
/// use oidc_bearer_registry::IssuerRegistry;
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
    limits: Limits,
    clock: SharedClock,
    /// Whether the registry's clock is given to the verifiers it builds.
    share_clock: bool,
    /// The token cache of verifiers built on demand whose builders keep the default.
    issuer_token_cache: TokenCacheSettings,
    /// The HTTP clients of the verifiers the registry builds: one per connection setting, instead
    /// of one (about 110 KiB) per verifier.
    clients: SharedClients,
    /// Which verifier last accepted a token with each recent signature, so that the HTTP layer's
    /// fast path finds a token it has seen in its issuer's token cache without parsing it (that
    /// cache compares the rest of the token). Weak: an issuer the registry drops is not kept
    /// alive, and its tokens are no longer found here.
    recent: DigestIndex<Recent>,
    state: RwLock<State>,
}

/// The mutable part of the registry: pattern issuers (proven and on probation), the negative cache.
struct State {
    /// Pattern issuers whose keys have loaded, by `iss`; at most `max_live`, evicted LRU.
    proven: HashMap<String, Arc<Live>>,
    /// Pattern issuers on probation (built, keys never loaded yet), by `iss`. With `building`, at most
    /// `max_pending` per pattern; never evicts anything.
    pending: HashMap<String, Arc<Live>>,
    /// Pattern issuers being built (outside the lock), each holding a probation slot of its
    /// pattern; the gate is locked by the building request, and other first requests for the same
    /// issuer wait on it.
    building: HashMap<String, Building>,
    /// Paces the building of new pattern issuers: one bucket per pattern, by index, so that one
    /// pattern's flood leaves the others' new issuers alone.
    buckets: Vec<Bucket>,
    /// Issuers refused without an attempt until `until`.
    negative: HashMap<String, Negative>,
    /// The exact issuers built so far (for counts and cache statistics).
    exact_built: Vec<Verifier>,
}

struct Live {
    verifier: Verifier,
    /// The index of the pattern that trusted it, whose admission limits it counts against.
    pattern: usize,
    /// Clock time of the last use (for eviction).
    last_used: AtomicTime,
    /// Clock time until which the fast path (the index of recent tokens) must not answer for this
    /// issuer: the end of its negative caching, or [`AtomicTime::NEVER`] once it is evicted or
    /// leaves probation failed. Only ever makes the fast path defer to the full one.
    refuse_until: AtomicTime,
    /// Verifications running while the issuer is on probation (see [`Trial`]).
    trials: AtomicUsize,
    /// Whether a verification of the issuer on probation may have asked for its keys (one that
    /// was refused before is known not to have): when none did, leaving probation gives the
    /// admission back.
    asked_keys: AtomicBool,
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

impl IssuerRegistry {
    /// Starts configuring a registry.
    pub fn builder() -> IssuerRegistryBuilder {
        IssuerRegistryBuilder::default()
    }

    /// Verifies `token` with the policy of the issuer its `iss` names, and decodes its payload into
    /// `T`.
    ///
    /// The token is parsed once; its unverified `iss` only selects the policy, which then checks
    /// everything (`iss` included) with that issuer's keys. Only `iss` is read before the
    /// signature check (and, for a new issuer of a pattern, the claims its rules check).
    pub async fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        let read = IssuerRead::parse(token, self.inner.limits.max_token_bytes)?;
        let (iss, selected) = self.select(&read)?;
        let result = selected.verifier().verify_parsed(&read).await;
        self.settle(iss, &selected, result.as_ref().err());
        result
    }

    /// The verifier for the token's issuer (`read`: the token taken apart, its `iss` read).
    fn select<'p>(&self, read: &'p IssuerRead<'_>) -> Result<(&'p str, Selected), VerifyError> {
        let iss = read.iss()?;
        Ok((iss, self.lookup(iss, read)?))
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
            // Refused before its key set was even asked (the rules checked before admission
            // leave little that can, but the verifier has the last word): no fetch was made.
            (Selected::Pending(trial), Some(error)) if before_keys(error) => {
                trial.ended_before_keys();
            }
            // Refused before its keys were needed: says nothing about the issuer. The trial's drop
            // releases the slot if no other verification is trying the issuer (and gives the
            // admission back if none of them asked for its keys).
            (Selected::Pending(_), _) => {}
        }
    }

    /// How many verifiers the registry has built and keeps now: exact issuers built so far (never
    /// evicted, not capped), proven pattern issuers (capped by
    /// [`with_max_live_issuers`](IssuerRegistryBuilder::with_max_live_issuers), see
    /// [`proven_issuers`](Self::proven_issuers)) and pattern issuers on probation (capped by
    /// [`with_max_pending_issuers`](IssuerRegistryBuilder::with_max_pending_issuers)). Exact
    /// [`Verifier`]s given ready-built are not counted.
    pub fn built_issuers(&self) -> usize {
        let state = self.inner.read();
        state.exact_built.len() + state.proven.len() + state.pending.len()
    }

    /// How many pattern issuers are proven (keys loaded) and kept now: the count that
    /// [`with_max_live_issuers`](IssuerRegistryBuilder::with_max_live_issuers) bounds.
    pub fn proven_issuers(&self) -> usize {
        self.inner.read().proven.len()
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

    /// The verifier for `iss`, the issuer of the token `read`.
    fn lookup(&self, iss: &str, read: &IssuerRead<'_>) -> Result<Selected, VerifyError> {
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
        let Some((pattern, builder)) = inner
            .patterns
            .iter()
            .enumerate()
            .find_map(|(i, p)| Some((i, p.verifier_for(iss)?)))
        else {
            return Err(untrusted());
        };
        if !builder.accepted_issuers().any(|name| name == iss) {
            // The pattern is wrong; its verifier would refuse every token anyway.
            tracing::error!(iss = ?Excerpt(iss), builder = ?builder, "issuer pattern returned a verifier for another issuer");
            return Err(untrusted());
        }
        // A wrong pattern is reported as one, before any rule of the policy it gives.
        if let Err(error) = builder.validate() {
            return Err(self.misconfigured_pattern(iss, pattern, &error, now));
        }
        // Whatever the issuer's verifier would refuse without a key (the pattern's algorithms,
        // HMAC and `none` included, `typ`, size, audience, times) is refused before the issuer is
        // admitted, by the same rules: a forgery that costs its sender nothing (`alg: HS256`, a
        // wrong audience, an expired token) must not cost an admission, nor leave a verifier that
        // an undecided trial leaves again. `crit` and the structure were checked when parsing.
        // By the clock the issuer's verifier will read (the registry's, if it gives its own).
        let builder = self.with_registry_clock(builder);
        read.check_unverified(&builder)?;
        self.admit(iss, pattern, builder, now)
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
            live.last_used.store(now, Ordering::Relaxed);
            return Some(Ok(Selected::Proven(live.clone())));
        }
        let live = state.pending.get(iss)?;
        Some(Ok(Selected::Pending(Trial::join(&self.inner, iss, live))))
    }

    /// Builds an issuer's verifier with the registry's clock, token-cache defaults and HTTP clients.
    fn build(&self, iss: &str, builder: VerifierBuilder) -> Result<Verifier, VerifyError> {
        let inner = &*self.inner;
        let builder = self.with_registry_clock(builder.with_shared_clients(inner.clients.clone()));
        let builder = if builder.has_default_token_cache() {
            builder.with_token_cache(inner.issuer_token_cache.clone())
        } else {
            builder
        };
        builder
            .build()
            .map_err(|error| self.misconfigured(iss, &error))
    }

    /// `builder` with the registry's clock, if the registry was given one; else with its own.
    fn with_registry_clock(&self, builder: VerifierBuilder) -> VerifierBuilder {
        let inner = &*self.inner;
        if inner.share_clock {
            builder.with_clock(inner.clock.clone())
        } else {
            builder
        }
    }

    /// The refusal of a trusted issuer whose verifier cannot be built. Not a token problem: the
    /// configuration is wrong. Said loudly, and remembered so that the builder is not retried on
    /// every request.
    fn misconfigured(&self, iss: &str, error: &ConfigError) -> VerifyError {
        tracing::error!(iss = ?Excerpt(iss), code = error.code(), %error, "cannot build the verifier of a trusted issuer");
        let untrusted = VerifyError::UntrustedIssuer {
            found: Some(iss.to_owned()),
        };
        self.remember_failure(iss, untrusted.clone());
        untrusted
    }
}

/// Whether a verification that ended this way had the issuer's keys: it succeeded, or failed at or
/// after choosing a key from them. Errors found before the keys are needed (size, `alg`, `typ`) say
/// nothing about the issuer. `Phase` is `#[non_exhaustive]` outside the core, so a phase added
/// later falls to `_`: not proof that the keys loaded (the issuer stays on probation).
fn keys_were_loaded(error: Option<&VerifyError>) -> bool {
    let Some(error) = error else { return true };
    match error.phase() {
        Phase::KeySelection | Phase::Signature | Phase::Claims | Phase::Decode => true,
        Phase::Structure | Phase::Header | Phase::Issuer | Phase::Keys | Phase::Review => false,
        _ => false,
    }
}

/// Whether a verification that ended this way was refused before its key set was asked, so that
/// no fetch was made for it: by the token's structure or header (the verifier checks those first;
/// it never refuses by issuer). A phase added later falls to `_`: not known to be before the keys
/// (the trial's admission is not given back).
fn before_keys(error: &VerifyError) -> bool {
    match error.phase() {
        Phase::Structure | Phase::Header | Phase::Issuer => true,
        Phase::Keys
        | Phase::KeySelection
        | Phase::Signature
        | Phase::Claims
        | Phase::Decode
        | Phase::Review => false,
        _ => false,
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

impl IssuerRegistry {
    /// [`VerifyToken::verify_token`] of the token `read` (or its parse error): the claims shared,
    /// and the digest of the verified bytes remembered for the fast path.
    async fn verify_read<T>(
        &self,
        read: Result<IssuerRead<'_>, VerifyError>,
    ) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let read = read?;
        let (iss, selected) = self.select(&read)?;
        let result = selected.verifier().verify_parsed_shared(&read).await;
        self.settle(iss, &selected, result.as_ref().err());
        let (claims, digest) = result?;
        if let Some(digest) = digest {
            self.remember_recent(&digest, &selected);
        }
        Ok(claims)
    }
}

impl VerifyToken for IssuerRegistry {
    /// Like [`verify`](IssuerRegistry::verify), with the claims shared (served from the issuer's
    /// token cache when it has the token).
    // Plain functions handing on `verify_read`'s future: an `async fn` here wrapped it in one more
    // state machine, moved and polled on every miss.
    fn verify_token<T>(
        &self,
        token: &str,
    ) -> impl std::future::Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_read(IssuerRead::parse(token, self.inner.limits.max_token_bytes))
    }

    fn verify_token_hashed<T>(
        &self,
        presented: Presented<'_, str>,
    ) -> impl std::future::Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let max = self.inner.limits.max_token_bytes;
        self.verify_read(IssuerRead::parse_presented(presented, max))
    }

    fn verify_token_cached<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.cached_shared(token)
    }

    #[inline]
    fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
        // As a verifier's: a token over the cap is refused unhashed (`cached_shared`, `Jws::new`).
        if token.get().len() > self.inner.limits.max_token_bytes {
            return token;
        }
        token.hashed()
    }
}

impl fmt::Debug for IssuerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRegistry")
            .field("exact_issuers", &self.inner.exact_count)
            .field("patterns", &self.inner.patterns.len())
            .field("built_issuers", &self.built_issuers())
            .field("pending_issuers", &self.pending_issuers())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oidc_bearer::__private::DEFAULT_MAX_TOKEN_BYTES;
    use oidc_bearer::keys::{Jwks, StaticKeySet};

    pub(super) fn static_builder(iss: &str) -> VerifierBuilder {
        let keys = StaticKeySet::new(Jwks::from_json(br#"{"keys": []}"#).unwrap());
        Verifier::builder(iss, "aud").with_key_set(keys)
    }

    /// An issuer with two names: Google's, whose preset accepts both spellings (the core's one
    /// way to give an issuer an alias), with an empty static key set.
    pub(super) fn aliased_builder() -> VerifierBuilder {
        let keys = StaticKeySet::new(Jwks::from_json(br#"{"keys": []}"#).unwrap());
        oidc_bearer::issuers::google::id_token_verifier("aud").with_key_set(keys)
    }

    pub(super) fn example_pattern(iss: &str) -> Option<VerifierBuilder> {
        iss.ends_with(".example").then(|| static_builder(iss))
    }

    /// An unsigned token naming `iss`, with `alg` in its header, that the rules of
    /// [`static_builder`] let through (audience `aud`, expiring in 2100).
    pub(super) fn token(iss: &str, alg: &str) -> String {
        use base64::Engine as _;
        let b64 = |json: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
        };
        let header = b64(serde_json::json!({ "alg": alg }));
        let payload = b64(serde_json::json!({ "iss": iss, "aud": "aud", "exp": 4_102_444_800u64 }));
        format!("{header}.{payload}.c2ln")
    }

    /// Looks up the issuer of a token naming `iss` with `alg`, as a verification would.
    pub(super) fn lookup(
        registry: &IssuerRegistry,
        iss: &str,
        alg: &str,
    ) -> Result<Selected, VerifyError> {
        let token = token(iss, alg);
        let read = IssuerRead::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        registry.lookup(iss, &read)
    }

    /// Looks `iss` up and, if it is on probation, proves it as a verification that loaded its keys
    /// would.
    pub(super) fn use_(registry: &IssuerRegistry, iss: &str) -> Selected {
        let selected = lookup(registry, iss, "RS256").unwrap();
        if let Selected::Pending(trial) = &selected {
            registry.promote(trial);
        }
        selected
    }

    #[tokio::test]
    async fn the_verifiers_a_registry_builds_share_one_http_client() {
        const ISSUERS: usize = 4;
        let mut issuers = Vec::new();
        for _ in 0..ISSUERS {
            issuers.push(oidc_bearer_testing::TestIssuer::start().await);
        }
        let names: Vec<String> = issuers.iter().map(|issuer| issuer.issuer()).collect();
        // One exact issuer, the others by a pattern: both kinds are built by the registry.
        let exact = Verifier::builder(names[0].clone(), "aud");
        let patterns = names[1..].to_vec();
        let registry = IssuerRegistry::builder()
            .with_issuer(exact)
            .with_pattern(move |iss: &str| {
                patterns
                    .iter()
                    .any(|name| name == iss)
                    .then(|| Verifier::builder(iss, "aud"))
            })
            .build()
            .unwrap();
        for issuer in &issuers {
            let token = issuer.token().aud("aud").sign();
            let claims: oidc_bearer::claims::DefaultClaims = registry.verify(&token).await.unwrap();
            assert_eq!(claims.registered.iss, issuer.issuer());
            assert_eq!(issuer.jwks_fetches(), 1, "the keys came over HTTP");
        }
        assert_eq!(registry.built_issuers(), ISSUERS);
        // One client, lent to every verifier's key fetcher.
        assert_eq!(registry.inner.clients.counts(), (1, ISSUERS));
    }

    /// A pattern whose builders cannot be built (no audience) is reported, by an ERROR and a
    /// negative entry per issuer, no faster than new issuers of that pattern may be built: made-up
    /// names must not flood the log, nor fill the negative cache (pushing out other issuers'
    /// entries) at the sender's pace.
    #[test]
    fn a_misconfigured_pattern_is_reported_no_faster_than_the_new_issuer_rate() {
        let registry = IssuerRegistry::builder()
            .with_pattern(|iss: &str| {
                // No algorithm allowed: refused by `validate`, whatever the token.
                example_pattern(iss).map(|builder| builder.with_algorithms(&[]))
            })
            .with_new_issuer_rate(2, Duration::from_secs(3600))
            .build()
            .unwrap();
        for i in 0..50 {
            let err = lookup(&registry, &format!("https://{i}.example"), "RS256")
                .err()
                .unwrap();
            assert_eq!(err.code(), "untrusted_issuer");
        }
        assert_eq!(registry.inner.read().negative.len(), 2, "one per admission");
    }

    pub(super) fn proven(registry: &IssuerRegistry) -> Vec<String> {
        let state = registry.inner.read();
        let mut names: Vec<String> = state.proven.keys().cloned().collect();
        names.sort_unstable();
        names
    }
}
