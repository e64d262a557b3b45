//! [`Verifier`]: one issuer's policy — where its keys are, which audiences and algorithms are
//! accepted, how much clock skew is tolerated — and the verification of a token against it.

//!
//! One stage per file: [`builder`](VerifierBuilder) (configuration), `rules` (the rules that need
//! no key: size, `alg`, `typ`, audience, times), `keys` (the key set holding the token's key,
//! unknown `kid`s included), `claims` (the registered claims).

use std::any::TypeId;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::cache::{Entry, KeyRef, Lookup, SharedClaims, TokenCache, TokenCacheStats, TokenKey};
use crate::clock::SharedClock;
use crate::error::{ConfigError, KeysError, VerifyError};
use crate::keys::{DynKeySet, Jwks};
use crate::sealed::Presented;
use crate::token::{Jws, Unverified, validate_payload};

pub(crate) mod access;
pub(crate) mod builder;
mod claims;
mod keys;
pub(crate) mod read;
pub(crate) mod rules;

use access::VerifierAccess;
pub(crate) use builder::VerifierBuilder;
pub(crate) use keys::check_key_signature;
use keys::check_signature;
use read::IssuerRead;
use rules::IssuerPolicy;
pub(crate) use rules::{Rules, time_claim};

/// The default token size cap: 8 KiB, far above real workload tokens (about 1 KiB).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The default clock-skew leeway for `exp`, `nbf` and `iat`.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Verifies tokens of one issuer.
///
/// Cheap to clone (an `Arc` inside); clones share the key cache and the HTTP client (a verifier built
/// on its own has one of its own, about 110 KiB; an `IssuerRegistry` (crate `oidc-bearer-registry`) lends one
/// to all the verifiers it builds). Construction never contacts the
/// issuer: keys are fetched on first use (or by [`ready`](Verifier::ready)), so a service starts even
/// when its issuer is down.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use oidc_bearer::{Verifier, claims::DefaultClaims};
///
/// let verifier = Verifier::new(
///     "https://container.googleapis.com/v1/projects/p/locations/europe-west1/clusters/c",
///     "my-service",
/// )?;
/// # let token = "";
/// let claims: DefaultClaims = verifier.verify(token).await?;
/// println!("hello {}", claims.subject().unwrap_or_default());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// A [`Verifier`] that may have been dropped.
#[derive(Clone)]
#[doc(hidden)]
pub struct WeakVerifier(std::sync::Weak<Inner>);

impl WeakVerifier {
    /// The verifier, if it is still alive.
    pub fn upgrade(&self) -> Option<Verifier> {
        self.0.upgrade().map(|inner| Verifier { inner })
    }
}

struct Inner {
    policy: IssuerPolicy,
    keys: Arc<dyn DynKeySet>,
    clock: SharedClock,
    /// Tokens this verifier (and its clones) accepted: per verifier, so per policy.
    token_cache: Option<TokenCache>,
}

impl Verifier {
    /// A verifier for `issuer`'s tokens meant for `audience`, with keys found by OpenID Connect
    /// Discovery and every default.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        Self::builder(issuer, audience).build()
    }

    /// Starts configuring a verifier for `issuer`'s tokens meant for `audience`. The audience is
    /// required: it is what stops a token sent to service A from being replayed to service B.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into(), audience.into())
    }

    /// Starts configuring a verifier for an issuer that signs its own tokens with a shared HMAC secret
    /// (HS256/384/512), such as an internal auth service. Only these algorithms and this secret are
    /// accepted; the secret must be at least 32 bytes (RFC 7518 §3.2). Never mixed with published
    /// public keys (RFC 8725 §2.1).
    pub fn shared_secret_builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        secret: &[u8],
    ) -> Result<VerifierBuilder, ConfigError> {
        let keys = crate::keys::StaticKeySet::new(crate::keys::Jwks::from_secret(secret, None)?);
        Ok(Self::builder(issuer, audience).hmac_issuer(keys))
    }

    /// The issuer this verifier accepts.
    pub fn issuer(&self) -> &str {
        &self.inner.policy.issuer
    }

    /// The audiences this verifier accepts.
    pub fn audiences(&self) -> &[String] {
        &self.inner.policy.audiences
    }

    /// Fetches the keys now if none are loaded, and says whether they loaded: to refuse to start
    /// while the issuer is unreachable. Not required: the first verification fetches them, and a
    /// failure is retried by later requests. To load them without waiting, see
    /// [`warm_up`](Self::warm_up).
    pub async fn ready(&self) -> Result<(), KeysError> {
        match self.inner.keys.current() {
            Some(_) => Ok(()),
            None => self.inner.keys.refresh().await.map(|_| ()),
        }
    }

    /// Starts loading the issuer's keys in the background and returns at once, so that the first
    /// requests find them: one fetch now, then, while it fails, one each time the key cache's
    /// backoff allows (1 s doubling to 60 s by default), until they are loaded. Each attempt is the
    /// key cache's own fetch, shared with any request arriving meanwhile (answered 503 until the
    /// keys are there), and logged once by the library: ERROR naming the fix for a configuration
    /// mistake, WARN for an outage, INFO `issuer keys loaded` when they arrive.
    ///
    /// Call it from within the Tokio runtime that serves requests (outside one it loads nothing
    /// and logs an ERROR). A key source that needs no loading ignores it. The background task ends
    /// when the keys are loaded or the verifier is dropped.
    ///
    /// ```
    /// use oidc_bearer::Verifier;
    /// use oidc_bearer_testing::TestIssuer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let issuer = TestIssuer::start().await;
    /// let verifier = Verifier::new(issuer.issuer(), "my-service").unwrap();
    /// verifier.warm_up(); // the server starts now, whether the issuer answers or not
    /// issuer.wait_for_jwks_fetches(1).await; // fetched without any request
    /// # }
    /// ```
    pub fn warm_up(&self) {
        self.inner.keys.warm_up();
    }

    /// Verifies `token` and decodes its payload into `T`.
    ///
    /// Order: structure (before any crypto), algorithm and key, signature, then the claims — go-oidc
    /// checks the signature before the claims since v3.15 (CVE-2025-27144) and so do we.
    ///
    /// With the [token cache](crate::cache) on (the default), a token this verifier has accepted
    /// before is not checked again: its `exp`, `nbf` and `iat` are, and that its key is still
    /// published; the payload is then decoded into a new `T`. Prefer
    /// [`verify_token`](VerifyToken::verify_token), which hands out the cached claims themselves.
    ///
    /// ```
    /// use oidc_bearer::claims::DefaultClaims;
    /// use oidc_bearer::{Verifier, VerifyToken};
    /// use oidc_bearer_testing::TestIssuer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let issuer = TestIssuer::start().await;
    /// let verifier = Verifier::new(issuer.issuer(), "my-service").unwrap();
    /// let token = issuer.token().sub("alice").aud("my-service").sign();
    ///
    /// let owned: DefaultClaims = verifier.verify(&token).await.unwrap();
    /// // Shared: the second call is a token-cache hit handing out the same `Arc`.
    /// let shared = verifier.verify_token::<DefaultClaims>(&token).await.unwrap();
    /// let again = verifier.verify_token::<DefaultClaims>(&token).await.unwrap();
    /// assert!(std::sync::Arc::ptr_eq(&shared, &again));
    /// assert_eq!(shared.subject(), owned.subject());
    /// # }
    /// ```
    pub async fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        self.verify_cached::<Owned<T>>(Presented::new(token), None)
            .await
            .map(|(Owned(claims), _)| claims)
    }

    /// The clock this verifier reads (a check wrapped around it reads the same one).
    pub fn clock(&self) -> SharedClock {
        self.inner.clock.clone()
    }

    /// Counters of this verifier's token cache (shared by its clones), or `None` when the cache is
    /// off.
    pub fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.inner.token_cache.as_ref().map(TokenCache::stats)
    }

    /// This verifier's rules that need no key.
    #[inline]
    pub(crate) fn rules(&self) -> Rules<'_> {
        self.inner.policy.rules()
    }

    /// The verification behind every `verify*` method.
    ///
    /// A miss runs as close to the bare signature check as we can make it: the header is parsed
    /// once, the key found by `kid` in O(1) and already prepared (see `crypto`), garbage in the
    /// header refused before any crypto, and the payload not even decoded before the signature
    /// holds (go-oidc's order since v3.15, CVE-2025-27144): a forged token costs its signature
    /// check and no JSON. Then the payload is validated (a signed payload that is not one JSON
    /// object without repeated names is refused as malformed), its registered claims checked, and
    /// it is decoded once into the caller's type.
    ///
    /// `parsed`: a token an issuer registry took apart to read its `iss` (its payload decoded,
    /// nothing else read). `presented` may carry the token's cache key digest, computed by the HTTP
    /// layer for its own lookup, so that a request hashes its token once.
    ///
    /// With the token cache on, a hit returns before any parsing. `R` (see [`Decoded`]) says what
    /// the caller gets: shared claims are cached per type, so a hit hands out the same `Arc`.
    ///
    /// Concurrent first uses of one token may each verify it, but only as many as run at once: the
    /// miss path awaits nothing once the keys are loaded, and after any await (a key fetch) it looks
    /// in the cache again, so the tasks that queued behind one fetch find the token verified by the
    /// first of them.
    async fn verify_cached<R: Decoded>(
        &self,
        presented: Presented<'_, str>,
        parsed: Option<&Unverified<'_>>,
    ) -> Result<(R, Option<crate::crypto::Sha256>), VerifyError> {
        let inner = &*self.inner;
        let token = presented.get();
        // Before hashing.
        self.rules().check_size(token.len())?;
        let cache = inner.token_cache.as_ref();
        // No key for bytes without a `.`: no JWS, refused below.
        let cache_key = cache.and_then(|_| presented.key());
        let digest = cache_key.as_ref().map(|key| key.digest);
        // One reading of the clock per verification (another after waiting for keys).
        let mut now = self.now();
        let lookup = |keys: &Arc<Jwks>, now| match (cache, &cache_key) {
            (Some(cache), Some(cache_key)) => {
                self.cached::<R>(cache, cache_key, keys, now, token, parsed)
            }
            _ => Ok(None),
        };
        // The current keys, never waiting: a hit must still find its key there (and reading them
        // lets a remote key set schedule its background refresh, as a full verification would).
        let current = inner.keys.current();
        if let Some(keys) = &current
            && let Some(hit) = lookup(keys, now)?
        {
            return Ok((hit, digest));
        }

        // The miss path, timed to its end (feature `metrics`).
        let _timer = crate::metrics::VerifyTimer::start();
        let owned;
        let jws: &Jws<'_> = match parsed {
            Some(parsed) => &parsed.jws,
            None => {
                owned = Jws::new(token, inner.policy.max_token_bytes)?;
                &owned
            }
        };
        let (keys, alg, waited) = self.resolve_keys(jws, current).await?;
        if waited {
            now = self.now();
            if let Some(hit) = lookup(&keys, now)? {
                return Ok((hit, digest));
            }
        }
        let key = check_signature(jws, &keys, alg)?;

        // The signature holds: now the payload is read.
        let decoded;
        let payload: &[u8] = match parsed {
            Some(parsed) => &parsed.payload,
            None => {
                decoded = jws.decode_payload()?;
                &decoded
            }
        };
        let claims = validate_payload(payload)?;
        let value = R::decode(payload);
        // A claim error comes before a decoding error.
        let times = self.check_claims(&claims, payload, now)?;
        let value = value?;
        if let (Some(cache), Some(cache_key)) = (cache, &cache_key) {
            let entry = Entry::new(
                cache_key,
                times,
                inner.policy.leeway,
                KeyRef::new(&keys, jws.header.kid.as_deref(), alg, key.fingerprint()),
                R::type_id().zip(value.to_shared()),
                payload.len(),
            );
            cache.insert(cache_key, entry, now);
        }
        Ok((value, digest))
    }

    /// The cache lookup: `Some` when the token was verified before and still holds.
    fn cached<R: Decoded>(
        &self,
        cache: &TokenCache,
        cache_key: &TokenKey<'_>,
        keys: &Arc<Jwks>,
        now: Duration,
        token: &str,
        parsed: Option<&Unverified<'_>>,
    ) -> Result<Option<R>, VerifyError> {
        let lookup = cache.get(cache_key, R::type_id(), keys, |times| {
            self.rules().check_times(times, now).is_ok()
        });
        match lookup {
            Lookup::Miss => Ok(None),
            Lookup::Typed(shared) => Ok(R::from_shared(shared)),
            Lookup::Verified => {
                let payload = match parsed {
                    Some(parsed) => Cow::Borrowed(&parsed.payload[..]),
                    None => Cow::Owned(crate::token::decode_payload(token)?),
                };
                let claims = R::decode(&payload)?;
                if let Some((type_id, shared)) = R::type_id().zip(claims.to_shared()) {
                    cache.attach(cache_key, type_id, shared, now);
                }
                Ok(Some(claims))
            }
        }
    }

    pub(super) fn now(&self) -> Duration {
        self.inner.clock.now()
    }
}

/// What a verification hands back: the caller's type by value ([`Owned`]) or shared (`Arc<T>`,
/// which the token cache keeps per type, so that a hit hands out the same `Arc`). One decode path
/// serves both.
trait Decoded: Sized {
    /// The type the token cache keeps these claims under; `None` when it does not keep them.
    fn type_id() -> Option<TypeId>;
    /// Decodes a verified payload.
    fn decode(payload: &[u8]) -> Result<Self, VerifyError>;
    /// The claims the token cache kept for [`type_id`](Self::type_id).
    fn from_shared(shared: SharedClaims) -> Option<Self>;
    /// What the token cache keeps for [`type_id`](Self::type_id).
    fn to_shared(&self) -> Option<SharedClaims>;
}

/// Claims handed out by value ([`Verifier::verify`]): decoded anew on every cache hit.
struct Owned<T>(T);

impl<T: DeserializeOwned> Decoded for Owned<T> {
    fn type_id() -> Option<TypeId> {
        None
    }

    fn decode(payload: &[u8]) -> Result<Self, VerifyError> {
        serde_json::from_slice(payload)
            .map(Owned)
            .map_err(claims_decode_error)
    }

    fn from_shared(_: SharedClaims) -> Option<Self> {
        None
    }

    fn to_shared(&self) -> Option<SharedClaims> {
        None
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Decoded for Arc<T> {
    fn type_id() -> Option<TypeId> {
        Some(TypeId::of::<T>())
    }

    fn decode(payload: &[u8]) -> Result<Self, VerifyError> {
        serde_json::from_slice(payload)
            .map(Arc::new)
            .map_err(claims_decode_error)
    }

    fn from_shared(shared: SharedClaims) -> Option<Self> {
        shared.downcast::<T>().ok()
    }

    fn to_shared(&self) -> Option<SharedClaims> {
        Some(self.clone() as SharedClaims)
    }
}

/// The error of claims that do not decode into the caller's type, here and for TokenReview's
/// answers (decoded from a JSON value: no position).
pub fn claims_decode_error(e: serde_json::Error) -> VerifyError {
    // serde_json's messages can quote claim values (`invalid type: string "alice@example.com"`,
    // and a custom `Deserialize` may say anything): keep only a missing field's name and the
    // position, so that claims never reach logs through this error.
    let text = e.to_string();
    let message = match text
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
    {
        Some((field, _)) if field.len() <= 64 => format!("missing field `{field}`"),
        _ if e.line() == 0 => "a claim has the wrong type or value".to_owned(),
        _ => format!(
            "a claim has the wrong type or value (line {}, column {})",
            e.line(),
            e.column()
        ),
    };
    VerifyError::ClaimsDecode { message }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.policy.issuer)
            .field("audiences", &self.inner.policy.audiences)
            .field("algorithms", &self.inner.policy.algorithms)
            .field("leeway", &self.inner.policy.leeway)
            .finish_non_exhaustive()
    }
}

/// Something that verifies bearer tokens: a single-issuer [`Verifier`], a registry of many issuers
/// (crate `oidc-bearer-registry`'s `IssuerRegistry`), or the Kubernetes API server
/// (`oidc_bearer_kubernetes::TokenReview`).
///
/// The HTTP layer is generic over it, and [`verify_token`](Self::verify_token) is how to verify a
/// token into shared claims outside it (bring the trait into scope with `use oidc_bearer::VerifyToken`); each verifier's
/// inherent `verify` hands out the claims by value instead.
pub trait VerifyToken: Clone + Send + Sync + 'static {
    /// Verifies `token` and decodes its claims into a shared `T`: what the HTTP layer uses.
    ///
    /// With a token cache (a [`Verifier`]'s is on by default), a token seen before costs a SHA-256
    /// of its signature and a lookup, and every request with it gets the same `Arc<T>` (no
    /// decoding, no deep copy).
    fn verify_token<T>(
        &self,
        token: &str,
    ) -> impl std::future::Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static;

    /// The claims of a token verified before and still valid, answered synchronously from a cache
    /// of verified tokens; `None` sends the token through [`verify_token`](Self::verify_token).
    ///
    /// The HTTP layer asks this first, so that a cache hit costs no allocated future. It asks with
    /// the token's bytes before their syntax (or even their encoding) is checked (see
    /// [`TokenExtractor::token_unchecked`](crate::bearer::TokenExtractor::token_unchecked)), so the
    /// bytes may be anything. The default answers `None`. An implementation must only return claims
    /// that [`verify_token`](Self::verify_token) would return for the same token at this moment
    /// (and so never for bytes that are not a token it accepts).
    ///
    /// Hidden (the contract above is subtle, and the three hooks exist for speed alone), but
    /// overridable: a [`Presented`] is made only by this crate, from the bytes it carries, so its
    /// [`key`](Presented::key) is always the key of [`get`](Presented::get) (a digest paired
    /// with other bytes would be a forgery, see [`TokenKey`]). Implementations that keep the
    /// default are always correct (every token then goes through [`verify_token`](Self::verify_token)).
    #[doc(hidden)]
    fn verify_token_cached<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let _ = token;
        None
    }

    /// `token`, with the digest of its cache key where this verifier looks tokens up in a cache and
    /// `token` is within its size cap (a token over the cap is refused before it is hashed), for
    /// [`verify_token_cached`](Self::verify_token_cached) and
    /// [`verify_token_hashed`](Self::verify_token_hashed): so that a request hashes its token once.
    /// The default returns `token` as it came (each hook then hashes for itself, if it needs to).
    /// Only this crate's verifiers compute a digest; a verifier wrapping one hands `token` to it.
    ///
    /// Hidden, as above.
    #[doc(hidden)]
    fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
        token
    }

    /// [`verify_token`](Self::verify_token), with the digest [`hash_token`](Self::hash_token) put
    /// in `token`, if any: what the HTTP layer calls after a miss. The default ignores the digest.
    ///
    /// Hidden, as above.
    #[doc(hidden)]
    fn verify_token_hashed<T>(
        &self,
        token: Presented<'_, str>,
    ) -> impl std::future::Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_token(token.get())
    }
}

impl VerifierAccess for Verifier {
    fn cached_key<T>(&self, token: &TokenKey<'_>) -> Option<Arc<T>>
    where
        T: Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let cache = inner.token_cache.as_ref()?;
        let keys = inner.keys.current()?;
        let now = self.now();
        cache
            .get_typed(token, TypeId::of::<T>(), &keys, |times| {
                self.rules().check_times(times, now).is_ok()
            })?
            .downcast::<T>()
            .ok()
    }

    fn downgrade(&self) -> WeakVerifier {
        WeakVerifier(Arc::downgrade(&self.inner))
    }

    async fn verify_parsed<T: DeserializeOwned>(
        &self,
        read: &IssuerRead<'_>,
    ) -> Result<T, VerifyError> {
        self.verify_cached::<Owned<T>>(read.token, Some(&read.parsed))
            .await
            .map(|(Owned(claims), _)| claims)
    }

    async fn verify_parsed_shared<T>(
        &self,
        read: &IssuerRead<'_>,
    ) -> Result<(Arc<T>, Option<crate::crypto::Sha256>), VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_cached::<Arc<T>>(read.token, Some(&read.parsed))
            .await
    }

    fn accepted_issuers(&self) -> impl Iterator<Item = &str> {
        self.inner.policy.accepted_issuers()
    }
}

impl VerifyToken for Verifier {
    // A plain function handing on `verify_token_hashed`'s future: an `async fn` here wrapped it in
    // one more state machine, moved and polled on every miss.
    fn verify_token<T>(
        &self,
        token: &str,
    ) -> impl std::future::Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_token_hashed(Presented::new(token))
    }

    async fn verify_token_hashed<T>(&self, token: Presented<'_, str>) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_cached::<Arc<T>>(token, None)
            .await
            .map(|(claims, _)| claims)
    }

    #[inline]
    fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
        // Not over the size cap: an oversized token is refused before anything is hashed
        // (`Rules::check_size`), and the lookup and the verification that take this token refuse
        // it without using the digest.
        match self.inner.token_cache {
            Some(_) if token.get().len() <= self.inner.policy.max_token_bytes => token.hashed(),
            _ => token,
        }
    }

    /// The shared claims of `token` if this verifier's token cache already holds them for `T`, still
    /// valid (times re-checked against the clock, key still published). Never waits, never
    /// verifies: the HTTP layer answers cache hits with it without allocating a future.
    fn verify_token_cached<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let inner = &*self.inner;
        if inner.token_cache.is_none() || token.get().len() > inner.policy.max_token_bytes {
            return None;
        }
        self.cached_key(&token.key()?)
    }
}
