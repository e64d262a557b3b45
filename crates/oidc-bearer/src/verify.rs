//! [`Verifier`]: one issuer's policy — where its keys are, which audiences and algorithms are
//! accepted, how much clock skew is tolerated — and the verification of a token against it.

use std::any::TypeId;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::Algorithm;
use crate::cache::{
    Entry, KeyRef, Lookup, SharedClaims, Times, TokenCache, TokenCacheSettings, TokenCacheStats,
    TokenKey,
};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{ConfigError, KeysError, VerifyError};
use crate::fetch::HttpSettings;
use crate::keys::{CacheSettings, Jwks, KeySet, PublicKey, RemoteKeySet};
use crate::token::{ClaimValue, Jws, Parsed, RawClaims};

/// The default token size cap: 8 KiB, far above real workload tokens (about 1 KiB).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The longest wait for which an unknown `kid` is answered "retry later" (503) rather than refused
/// (401): a client will not wait longer, and a key set configured never to refetch (an endless
/// cooldown) gives final answers.
const MAX_UNKNOWN_KEY_RETRY: Duration = Duration::from_secs(300);
/// The default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Verifies tokens of one issuer.
///
/// Cheap to clone (an `Arc` inside); clones share the key cache. Construction never contacts the
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
/// println!("hello {}", claims.subject());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// A [`Verifier`] that may have been dropped.
#[derive(Clone)]
pub(crate) struct WeakVerifier(std::sync::Weak<Inner>);

impl WeakVerifier {
    pub(crate) fn upgrade(&self) -> Option<Verifier> {
        self.0.upgrade().map(|inner| Verifier { inner })
    }
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    skip_audience: bool,
    algorithms: Vec<Algorithm>,
    leeway: f64,
    require_exp: bool,
    required_typ: Option<String>,
    max_token_bytes: usize,
    keys: Arc<dyn KeySet>,
    clock: SharedClock,
    /// Tokens this verifier (and its clones) accepted: per verifier, so per policy.
    token_cache: Option<TokenCache>,
    issuer_aliases: Vec<String>,
    required_claims: Vec<&'static str>,
    /// The object-binding check: TokenReview confirmations of locally verified tokens.
    binding: Option<crate::tokenreview::ObjectBinding>,
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
        &self.inner.issuer
    }

    /// The audiences this verifier accepts.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// Fetches the keys now if none are loaded (a warm-up). Not required: the first verification does
    /// it, and a failure is retried by later requests.
    pub async fn ready(&self) -> Result<(), KeysError> {
        match self.inner.keys.current() {
            Some(_) => Ok(()),
            None => self.inner.keys.refresh().await.map(|_| ()),
        }
    }

    /// Verifies `token` and decodes its payload into `T`.
    ///
    /// Order: structure (before any crypto), algorithm and key, signature, then the claims — go-oidc
    /// checks the signature before the claims since v3.15 (CVE-2025-27144) and so do we.
    ///
    /// With the [token cache](crate::cache) on (the default), a token this verifier has accepted
    /// before is not checked again: its `exp`, `nbf` and `iat` are, and that its key is still
    /// published; the payload is then decoded into a new `T`. Prefer
    /// [`verify_shared`](Self::verify_shared), which hands out the cached claims themselves.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        self.verify_cached::<Owned<T>>(token, None)
            .await
            .map(|(Owned(claims), _)| claims)
    }

    /// Verifies `token` and decodes its payload into a shared `T`: what the HTTP layer uses.
    ///
    /// With the [token cache](crate::cache) on (the default), a token seen before costs a SHA-256 of
    /// its signature and a lookup, and every request with it gets the same `Arc<T>` (no decoding,
    /// no deep copy).
    pub async fn verify_shared<T>(&self, token: &str) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_cached::<Arc<T>>(token, None)
            .await
            .map(|(claims, _)| claims)
    }

    /// The shared claims of `token` if this verifier's token cache already holds them for `T`, still
    /// valid (times re-checked against the clock, key still published); `None` otherwise, and the
    /// token must go through [`verify_shared`](Self::verify_shared). Never waits, never verifies:
    /// the HTTP layer answers cache hits with it without allocating a future.
    pub(crate) fn cached_shared<T>(&self, token: &[u8]) -> Option<Arc<T>>
    where
        T: Send + Sync + 'static,
    {
        let inner = &*self.inner;
        if inner.token_cache.is_none() || token.len() > inner.max_token_bytes {
            return None;
        }
        self.cached_key(&TokenKey::new(token)?)
    }

    /// [`cached_shared`](Self::cached_shared) for a token whose cache key the caller has computed.
    /// No size check: a key found in the cache is that of a token this verifier accepted, so within
    /// its cap.
    pub(crate) fn cached_key<T>(&self, token: &TokenKey<'_>) -> Option<Arc<T>>
    where
        T: Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let cache = inner.token_cache.as_ref()?;
        let keys = inner.keys.current()?;
        let now = self.now();
        let claims = cache
            .get_typed(token, TypeId::of::<T>(), &keys, |times| {
                self.check_times(times, now).is_ok()
            })?
            .downcast::<T>()
            .ok()?;
        // With the object-binding check, only while a review within the interval confirmed it.
        match &inner.binding {
            Some(binding) if !binding.confirmed(&token.digest) => None,
            _ => Some(claims),
        }
    }

    /// A reference to this verifier that does not keep it alive (an issuer registry's index of
    /// recent tokens holds these, so that it never outlives the registry's own choice of issuers).
    pub(crate) fn downgrade(&self) -> WeakVerifier {
        WeakVerifier(Arc::downgrade(&self.inner))
    }

    /// Counters of this verifier's object-binding check (TokenReviews sent, answers cached), or
    /// `None` without one.
    pub fn object_binding_stats(&self) -> Option<crate::tokenreview::TokenReviewStats> {
        self.inner.binding.as_ref().map(|b| b.stats())
    }

    /// Counters of this verifier's token cache (shared by its clones), or `None` when the cache is
    /// off.
    pub fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.inner.token_cache.as_ref().map(TokenCache::stats)
    }

    /// Verifies a token the caller has already parsed (an issuer registry parses once to pick the
    /// verifier): the same checks as [`verify`](Self::verify), this verifier's size cap included.
    pub(crate) async fn verify_parsed<T: DeserializeOwned>(
        &self,
        token: &str,
        parsed: &Parsed<'_>,
    ) -> Result<T, VerifyError> {
        self.verify_cached::<Owned<T>>(token, Some(parsed))
            .await
            .map(|(Owned(claims), _)| claims)
    }

    /// [`verify_parsed`](Self::verify_parsed) into a shared `T`, cached like
    /// [`verify_shared`](Self::verify_shared); with the digest of its token cache key (the SHA-256
    /// of its signature, see [`TokenKey`]) when the token cache is on (an issuer registry indexes
    /// it).
    pub(crate) async fn verify_parsed_shared<T>(
        &self,
        token: &str,
        parsed: &Parsed<'_>,
    ) -> Result<(Arc<T>, Option<crate::crypto::Sha256>), VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_cached::<Arc<T>>(token, Some(parsed)).await
    }

    /// The `iss` values accepted: the issuer, then its aliases.
    pub(crate) fn accepted_issuers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.inner.issuer.as_str())
            .chain(self.inner.issuer_aliases.iter().map(String::as_str))
    }

    /// The verification behind every `verify*` method.
    ///
    /// A miss runs as close to the bare signature check as we can make it: the header is parsed
    /// once, the key found by `kid` in O(1) and already prepared (see `crypto`), garbage refused
    /// before any crypto, and the payload parsed once, after the signature, into the caller's type
    /// with the registered claims read in the same pass (`token::capture`).
    ///
    /// With the token cache on, a hit returns before any parsing. `R` (see [`Decoded`]) says what
    /// the caller gets: shared claims are cached per type, so a hit hands out the same `Arc`.
    ///
    /// Concurrent first uses of one token may each verify it, but only as many as run at once: the
    /// miss path awaits nothing once the keys are loaded, and after any await (a key fetch) it looks
    /// in the cache again, so the tasks that queued behind one fetch find the token verified by the
    /// first of them.
    ///
    /// With the object-binding check, a locally accepted token is then confirmed by TokenReview
    /// (at most once per interval, keyed by the token cache's key).
    async fn verify_cached<R: Decoded>(
        &self,
        token: &str,
        parsed: Option<&Parsed<'_>>,
    ) -> Result<(R, Option<crate::crypto::Sha256>), VerifyError> {
        let (value, digest) = self.verify_local::<R>(token, parsed).await?;
        if let Some(binding) = &self.inner.binding {
            // A token accepted locally is a JWS, so it has a key.
            let key = digest
                .or_else(|| TokenKey::new(token.as_bytes()).map(|key| key.digest))
                .ok_or(VerifyError::Malformed {
                    reason: "a JWS has three dot-separated parts",
                })?;
            binding.check(token, key).await?;
        }
        Ok((value, digest))
    }

    /// The local verification behind [`verify_cached`](Self::verify_cached).
    async fn verify_local<R: Decoded>(
        &self,
        token: &str,
        parsed: Option<&Parsed<'_>>,
    ) -> Result<(R, Option<crate::crypto::Sha256>), VerifyError> {
        let inner = &*self.inner;
        // Before hashing: an oversized token costs nothing but this comparison.
        if token.len() > inner.max_token_bytes {
            return Err(VerifyError::TooLarge {
                len: token.len(),
                max: inner.max_token_bytes,
            });
        }
        let cache = inner.token_cache.as_ref();
        // No key for bytes without a `.`: no JWS, refused below.
        let cache_key = cache.and_then(|_| TokenKey::new(token.as_bytes()));
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
            Some(parsed) => parsed,
            None => {
                owned = Jws::new(token, inner.max_token_bytes)?;
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

        let capture = parsed.is_none() && crate::token::capture_on();
        let (decoded, captured) = if capture {
            R::decode(&jws.payload)
        } else {
            (R::decode_serde(&jws.payload), None)
        };
        let separate;
        let claims = match (parsed, &captured) {
            (Some(parsed), _) => &parsed.claims,
            (None, Some(captured)) => captured,
            // Not readable in the same pass (or the caller's type failed): parse them on their own,
            // so that a claim error still comes before a decoding error.
            (None, None) => {
                separate = jws.claims()?;
                &*separate
            }
        };
        let times = self.check_claims(jws, claims, now)?;
        let value = decoded?;
        if let (Some(cache), Some(cache_key)) = (cache, &cache_key) {
            let entry = Entry::new(
                cache_key,
                times,
                inner.leeway,
                KeyRef::new(&keys, jws.header.kid.as_deref(), alg, key.fingerprint()),
                R::type_id().zip(value.to_shared()),
                jws.payload.len(),
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
        now: f64,
        token: &str,
        parsed: Option<&Parsed<'_>>,
    ) -> Result<Option<R>, VerifyError> {
        let lookup = cache.get(cache_key, R::type_id(), keys, |times| {
            self.check_times(times, now).is_ok()
        });
        match lookup {
            Lookup::Miss => Ok(None),
            Lookup::Typed(shared) => Ok(R::from_shared(shared)),
            Lookup::Verified => {
                let payload = match parsed {
                    Some(parsed) => Cow::Borrowed(&parsed.payload[..]),
                    None => Cow::Owned(crate::token::decode_payload(token)?),
                };
                let claims = R::decode(&payload).0?;
                if let Some((type_id, shared)) = R::type_id().zip(claims.to_shared()) {
                    cache.attach(cache_key, type_id, shared, now);
                }
                Ok(Some(claims))
            }
        }
    }

    fn now(&self) -> f64 {
        self.inner.clock.now().as_secs_f64()
    }

    /// The header's algorithm, checked against the policy, and the key set holding the token's key
    /// (refreshed once for an unknown `kid`); and whether a fetch was awaited. `current` is what
    /// the key set gave without waiting, if the caller already asked.
    async fn resolve_keys(
        &self,
        jws: &Jws<'_>,
        current: Option<Arc<Jwks>>,
    ) -> Result<(Arc<Jwks>, Algorithm, bool), VerifyError> {
        let inner = &*self.inner;
        let header = &jws.header;
        // RFC 8725 §3.1: `none` and unknown names never pass; names are case-sensitive.
        let alg = Algorithm::from_header(&header.alg).ok_or_else(|| {
            VerifyError::UnsupportedAlgorithm {
                alg: header.alg.clone(),
            }
        })?;
        if !inner.algorithms.contains(&alg) {
            // HMAC is refused here for public-key issuers, whose allowed lists never hold it, so a
            // public key can never be used as an HMAC secret (RFC 8725 §2.1).
            return Err(if alg.is_hmac() {
                VerifyError::UnsupportedAlgorithm {
                    alg: header.alg.clone(),
                }
            } else {
                VerifyError::AlgorithmNotAllowed {
                    alg: header.alg.clone(),
                }
            });
        }
        if let Some(expected) = &inner.required_typ {
            check_typ(expected, header.typ.as_deref())?;
        }

        let kid = header.kid.as_deref();
        let mut waited = false;
        // Whether the keys come from a fetch made for this request (the first load): then a key
        // they lack is unknown, with no second refresh.
        let mut fetched_for_this = false;
        let keys = match current.or_else(|| inner.keys.current()) {
            Some(keys) => keys,
            None => {
                waited = true;
                let loaded = inner
                    .keys
                    .refresh()
                    .await
                    .map_err(|source| VerifyError::KeysUnavailable { source })?;
                fetched_for_this = loaded.retry_after.is_none();
                loaded.keys
            }
        };
        let keys = match keys.select(kid, alg) {
            Err(e @ VerifyError::UnknownKey { .. }) if fetched_for_this => return Err(e),
            Err(VerifyError::UnknownKey { .. }) => {
                // An unknown kid may be a rotation we have not seen: ask for fresh keys. The key set
                // decides whether to fetch (single flight, cooldown), so a flood of forged kids
                // costs no crypto and at most one fetch per cooldown.
                let fresh = inner
                    .keys
                    .refresh()
                    .await
                    .map_err(|source| VerifyError::KeysUnavailable { source })?;
                waited = true;
                match (fresh.keys.select(kid, alg), fresh.retry_after) {
                    (Ok(_), _) => {}
                    // No fetch could be made since this request arrived, so the key may have been
                    // published meanwhile: 503 with `Retry-After` until the next allowed fetch,
                    // not a final 401 (a key rotation that was not pre-published must not fail
                    // the clients that retry). After a fetch that still lacks it, 401.
                    (Err(VerifyError::UnknownKey { kid }), Some(retry_after))
                        if retry_after <= MAX_UNKNOWN_KEY_RETRY
                            && !published_but_skipped(&fresh.keys, kid.as_deref())
                            && !self.issued_before(jws, fresh.keys_as_of) =>
                    {
                        return Err(VerifyError::UnknownKeyRetry { kid, retry_after });
                    }
                    (Err(e), _) => return Err(e),
                }
                fresh.keys
            }
            Err(e) => return Err(e),
            Ok(_) => keys,
        };
        Ok((keys, alg, waited))
    }

    /// Whether the (unverified) token says it was issued, leeway included, before `keys_as_of`, when
    /// the fetch of the keys that lack its key started. Then its key was not published at that
    /// fetch, and waiting for another cannot help: the refusal is final (401). A token without a
    /// readable `iat` is not. Read only on this path (an unknown `kid` inside the cooldown), so a
    /// known key never pays for it; a forger who sets `iat` gains nothing from it but a 503.
    fn issued_before(&self, jws: &Jws<'_>, keys_as_of: Option<Duration>) -> bool {
        let Some(as_of) = keys_as_of else {
            return false;
        };
        let iat = jws
            .claims()
            .ok()
            .and_then(|claims| time_claim(&claims.iat, "iat").ok().flatten());
        iat.is_some_and(|iat| iat + self.inner.leeway < as_of.as_secs_f64())
    }

    /// The registered claims of a token whose signature holds; its validity window on success.
    fn check_claims(
        &self,
        parsed: &Jws<'_>,
        claims: &RawClaims,
        now: f64,
    ) -> Result<Times, VerifyError> {
        let inner = &*self.inner;
        // RFC 7519 §4.1.1: `iss` is a single StringOrURI. jsonwebtoken accepts an array; we must not.
        match &claims.iss {
            ClaimValue::Str(iss) if *iss == inner.issuer || inner.issuer_aliases.contains(iss) => {}
            ClaimValue::Str(iss) => {
                return Err(VerifyError::IssuerMismatch {
                    expected: inner.issuer.clone(),
                    found: Some(iss.clone()),
                });
            }
            ClaimValue::Absent => {
                return Err(VerifyError::IssuerMismatch {
                    expected: inner.issuer.clone(),
                    found: None,
                });
            }
            _ => {
                return Err(VerifyError::InvalidClaim {
                    claim: "iss",
                    reason: "must be a single string (RFC 7519 §4.1.1)",
                });
            }
        }
        // RFC 7519 §4.1.3: a string or an array of strings; the token is accepted when any of its
        // audiences is accepted. A missing `aud` is refused unless explicitly allowed.
        if !inner.skip_audience {
            let found: &[String] = match &claims.aud {
                ClaimValue::Str(one) => std::slice::from_ref(one),
                ClaimValue::StrArray(many) => many,
                ClaimValue::Absent => &[],
                _ => {
                    return Err(VerifyError::InvalidClaim {
                        claim: "aud",
                        reason: "must be a string or an array of strings (RFC 7519 §4.1.3)",
                    });
                }
            };
            if !found.iter().any(|a| inner.audiences.contains(a)) {
                return Err(VerifyError::AudienceMismatch {
                    expected: inner.audiences.clone(),
                    found: found.to_vec(),
                });
            }
        }
        let times = Times {
            exp: time_claim(&claims.exp, "exp")?,
            nbf: time_claim(&claims.nbf, "nbf")?,
            iat: time_claim(&claims.iat, "iat")?,
        };
        if times.exp.is_none() && inner.require_exp {
            return Err(VerifyError::MissingClaim { claim: "exp" });
        }
        self.check_times(&times, now)?;
        if !inner.required_claims.is_empty() {
            // Only read when configured: the payload was checked to be a JSON object when parsed.
            let payload: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&parsed.payload).unwrap_or_default();
            if let Some(claim) = inner
                .required_claims
                .iter()
                .copied()
                .find(|c| payload.get(*c).is_none_or(serde_json::Value::is_null))
            {
                return Err(VerifyError::MissingClaim { claim });
            }
        }
        Ok(times)
    }

    /// `exp`, `nbf` and `iat` against the clock, with leeway: at verification and on every cache hit.
    fn check_times(&self, times: &Times, now: f64) -> Result<(), VerifyError> {
        let leeway = self.inner.leeway;
        // RFC 7519 §4.1.4: the current time MUST be before `exp`.
        if let Some(exp) = times.exp
            && now >= exp + leeway
        {
            return Err(VerifyError::Expired {
                exp: exp.floor() as i64,
                now: now.floor() as i64,
            });
        }
        // RFC 7519 §4.1.5: the current time MUST be after or equal to `nbf`.
        if let Some(nbf) = times.nbf
            && now + leeway < nbf
        {
            return Err(VerifyError::NotYetValid {
                nbf: nbf.floor() as i64,
                now: now.floor() as i64,
            });
        }
        // A token issued in the future is as suspect as one not yet valid (go-oidc does not check
        // `iat`; we do, with the same leeway).
        if let Some(iat) = times.iat
            && now + leeway < iat
        {
            return Err(VerifyError::IssuedInFuture {
                iat: iat.floor() as i64,
                now: now.floor() as i64,
            });
        }
        Ok(())
    }
}

/// The signature of `jws` with the key its header selects; the key on success.
fn check_signature<'k>(
    jws: &Jws<'_>,
    keys: &'k Jwks,
    alg: Algorithm,
) -> Result<&'k PublicKey, VerifyError> {
    let key = keys.select(jws.header.kid.as_deref(), alg)?;
    // A signature of the wrong length is refused without any crypto.
    if key
        .signature_len(alg)
        .is_some_and(|len| len != jws.signature.len())
    {
        return Err(VerifyError::InvalidSignature);
    }
    if !key.verify(alg, jws.signing_input, &jws.signature) {
        return Err(VerifyError::InvalidSignature);
    }
    Ok(key)
}

/// Decodes a verified payload into `T`, reading the registered claims in the same pass.
fn decode_capturing<T: DeserializeOwned>(
    payload: &[u8],
) -> (Result<T, VerifyError>, Option<RawClaims>) {
    let (result, claims) = crate::token::decode_with_claims::<T>(payload);
    (result.map_err(claims_decode_error), claims)
}

/// What a verification hands back: the caller's type by value ([`Owned`]) or shared (`Arc<T>`,
/// which the token cache keeps per type, so that a hit hands out the same `Arc`). One decode path
/// serves both.
trait Decoded: Sized {
    /// The type the token cache keeps these claims under; `None` when it does not keep them.
    fn type_id() -> Option<TypeId>;
    /// Decodes a verified payload, with the registered claims when they were read in the same pass.
    fn decode(payload: &[u8]) -> (Result<Self, VerifyError>, Option<RawClaims>);
    /// Decodes a verified payload the serde way.
    fn decode_serde(payload: &[u8]) -> Result<Self, VerifyError>;
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

    fn decode(payload: &[u8]) -> (Result<Self, VerifyError>, Option<RawClaims>) {
        let (result, claims) = decode_capturing::<T>(payload);
        (result.map(Owned), claims)
    }

    fn decode_serde(payload: &[u8]) -> Result<Self, VerifyError> {
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

    fn decode(payload: &[u8]) -> (Result<Self, VerifyError>, Option<RawClaims>) {
        let (result, claims) = decode_capturing::<T>(payload);
        (result.map(Arc::new), claims)
    }

    fn decode_serde(payload: &[u8]) -> Result<Self, VerifyError> {
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

fn claims_decode_error(e: serde_json::Error) -> VerifyError {
    // serde_json's messages can quote claim values (`invalid type: string "alice@example.com"`,
    // and a custom `Deserialize` may say anything): keep only a missing field's name and the
    // position, so that claims never reach logs through this error.
    let text = e.to_string();
    let message = match text
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
    {
        Some((field, _)) if field.len() <= 64 => format!("missing field `{field}`"),
        _ => format!(
            "a claim has the wrong type or value (line {}, column {})",
            e.line(),
            e.column()
        ),
    };
    VerifyError::ClaimsDecode { message }
}

/// Whether the issuer publishes `kid` but the key was skipped as unusable: no later fetch will make it
/// usable, so the refusal is final.
fn published_but_skipped(keys: &Jwks, kid: Option<&str>) -> bool {
    kid.is_some_and(|kid| keys.skipped_keys().iter().any(|k| k.kid() == Some(kid)))
}

/// A NumericDate claim: a JSON number (RFC 7519 §2), never a string (CVE-2026-25537).
fn time_claim(value: &ClaimValue, claim: &'static str) -> Result<Option<f64>, VerifyError> {
    match value {
        ClaimValue::Absent => Ok(None),
        ClaimValue::Num(n) if n.is_finite() => Ok(Some(*n)),
        _ => Err(VerifyError::InvalidClaim {
            claim,
            reason: "must be a number of seconds since the epoch (RFC 7519 §2 NumericDate)",
        }),
    }
}

/// RFC 7515 §4.1.9 / RFC 9068 §4: `typ` compares case-insensitively, with the `application/`
/// prefix optional.
fn check_typ(expected: &str, found: Option<&str>) -> Result<(), VerifyError> {
    let strip = |t: &str| {
        let lower = t.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    match found {
        Some(typ) if strip(typ) == strip(expected) => Ok(()),
        _ => Err(VerifyError::InvalidType {
            expected: expected.to_owned(),
            found: found.map(str::to_owned),
        }),
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field("leeway", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

/// Something that verifies bearer tokens: a single-issuer [`Verifier`], or a registry of many issuers.
///
/// The HTTP layer is generic over it.
pub trait VerifyToken: Clone + Send + Sync + 'static {
    /// Verifies `token` and decodes its claims into a shared `T`.
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
    /// [`TokenSource::token_unchecked`](crate::bearer::TokenSource::token_unchecked)), so the
    /// bytes may be anything. The default answers `None`. An implementation must only return claims
    /// that [`verify_token`](Self::verify_token) would return for the same token at this moment
    /// (and so never for bytes that are not a token it accepts).
    fn verify_token_cached<T>(&self, token: &[u8]) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let _ = token;
        None
    }
}

impl VerifyToken for Verifier {
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

#[derive(Clone)]
enum KeySource {
    Discovery,
    JwksUrl(String),
    Custom(Arc<dyn KeySet>),
}

/// Configures a [`Verifier`]. Every setting has a safe default; settings that weaken a check are named
/// `dangerous_*`.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    skip_audience: bool,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    require_exp: bool,
    required_typ: Option<String>,
    max_token_bytes: usize,
    clock: SharedClock,
    source: KeySource,
    discovery_url: Option<String>,
    http: HttpSettings,
    cache: CacheSettings,
    token_cache: Option<TokenCacheSettings>,
    hmac: bool,
    issuer_aliases: Vec<String>,
    required_claims: Vec<&'static str>,
    discovery_jwks_uri: Option<String>,
    object_binding: Option<crate::tokenreview::ObjectBindingCheck>,
    /// The cluster whose API server the object-binding check asks by default.
    in_cluster: Option<crate::issuers::kubernetes::InCluster>,
}

impl VerifierBuilder {
    fn new(issuer: String, audience: String) -> Self {
        Self {
            issuer,
            audiences: vec![audience],
            skip_audience: false,
            algorithms: Algorithm::ASYMMETRIC.to_vec(),
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            required_typ: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            clock: Arc::new(SystemClock),
            source: KeySource::Discovery,
            discovery_url: None,
            http: HttpSettings::default(),
            cache: CacheSettings::default(),
            token_cache: Some(TokenCacheSettings::default()),
            hmac: false,
            issuer_aliases: Vec::new(),
            required_claims: Vec::new(),
            discovery_jwks_uri: None,
            object_binding: None,
            in_cluster: None,
        }
    }

    /// Accepts another audience too (a token is accepted when any of its audiences is accepted).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The algorithms accepted (default: every asymmetric algorithm supported). The key's type and
    /// JWK `alg` narrow this further per key.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The clock-skew leeway for `exp`, `nbf` and `iat` (default 60 s, like go-jose's default
    /// `DefaultLeeway`; go-oidc itself allows none for `exp`).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the header's `typ` (e.g. `at+jwt` for RFC 9068 access tokens). Off by default:
    /// Kubernetes and Google tokens are plain `JWT`s.
    pub fn with_required_typ(mut self, typ: impl Into<String>) -> Self {
        self.required_typ = Some(typ.into());
        self
    }

    /// The largest token accepted, in bytes (default 8 KiB).
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// The clock for token and cache lifetimes (default: the system clock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Fetches discovery from this URL instead of `{issuer}/.well-known/openid-configuration` (inside a
    /// cluster the API server is reached at another address than the issuer). The document's `issuer`
    /// must still equal the configured issuer.
    pub fn with_discovery_url(mut self, url: impl Into<String>) -> Self {
        self.discovery_url = Some(url.into());
        self
    }

    /// Fetches the JWKS from this URL instead of the discovery document's `jwks_uri` (discovery is then
    /// skipped).
    pub fn with_jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.source = KeySource::JwksUrl(url.into());
        self
    }

    /// Accepts this `iss` value too, as another spelling of the same issuer: Google's ID tokens say
    /// `accounts.google.com` or `https://accounts.google.com` (go-oidc accepts both the same way).
    /// Discovery still uses the configured issuer. Never give another issuer's name here: its tokens
    /// would be checked with this issuer's keys, so this is only for one issuer's spellings.
    pub fn with_issuer_alias(mut self, iss: impl Into<String>) -> Self {
        self.issuer_aliases.push(iss.into());
        self
    }

    /// Requires this claim in every token (present and not `null`), e.g. to accept only tokens of a
    /// given shape. A token without it is refused with [`VerifyError::MissingClaim`].
    pub fn with_required_claim(mut self, claim: &'static str) -> Self {
        self.required_claims.push(claim);
        self
    }

    /// Fetches discovery as usual (and checks its `issuer`), but the keys from this URL instead of the
    /// document's `jwks_uri`.
    pub(crate) fn with_discovery_jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.discovery_jwks_uri = Some(url.into());
        self
    }

    /// The issuer and its aliases.
    pub(crate) fn accepted_issuers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.issuer.as_str()).chain(self.issuer_aliases.iter().map(String::as_str))
    }

    /// Uses these keys instead of fetching any (a [`StaticKeySet`](crate::keys::StaticKeySet), or your
    /// own [`KeySet`]).
    pub fn with_key_set(mut self, keys: impl KeySet) -> Self {
        self.source = KeySource::Custom(Arc::new(keys));
        self
    }

    /// Trusts these extra root certificates (PEM, one or more) for discovery and JWKS fetches.
    pub fn with_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.http.root_certificates.push(pem.into());
        self
    }

    /// Sends `Authorization: Bearer <token>` with discovery and JWKS fetches (a Kubernetes API server
    /// requires it unless anonymous discovery is allowed). The closure is called per fetch, so a
    /// rotating token file can be re-read. The token is only sent to the origins of the URLs
    /// configured here (the issuer's discovery URL or [`with_discovery_url`](Self::with_discovery_url),
    /// and [`with_jwks_uri`](Self::with_jwks_uri)), never to a `jwks_uri` a discovery document
    /// advertises on another host (GKE and EKS clusters advertise public ones).
    pub fn with_fetch_bearer_token(
        mut self,
        token: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.http.authorization = Some(Arc::new(token));
        self
    }

    /// The connect and total timeouts of each fetch (default 5 s and 10 s).
    pub fn with_http_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.http.connect_timeout = connect;
        self.http.timeout = total;
        self
    }

    /// The largest discovery or JWKS response accepted (default 1 MiB).
    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.http.max_response_bytes = max;
        self
    }

    /// The key cache's settings (cooldown, lifetimes, staleness, backoff).
    pub fn with_cache_settings(mut self, cache: CacheSettings) -> Self {
        self.cache = cache;
        self
    }

    /// Bounds for the cache of accepted tokens (on by default: 10,000 tokens, 16 MiB). See
    /// [`cache`](crate::cache).
    pub fn with_token_cache(mut self, settings: TokenCacheSettings) -> Self {
        self.token_cache = Some(settings);
        self
    }

    /// Whether the token cache is left at its default (a registry then applies its per-issuer bounds).
    pub(crate) fn has_default_token_cache(&self) -> bool {
        self.token_cache == Some(TokenCacheSettings::default())
    }

    /// Turns the cache of accepted tokens off: every request's token is verified in full, signature
    /// included.
    pub fn without_token_cache(mut self) -> Self {
        self.token_cache = None;
        self
    }

    /// The least time between two fetches triggered by unknown `kid`s (default 30 s).
    pub fn with_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.cache.cooldown = cooldown;
        self
    }

    /// **Dangerous**: allows fetching discovery and keys over plain `http` from hosts other than
    /// loopback, where anyone on the path can replace the keys.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.http.allow_insecure_http = true;
        self
    }

    /// **Dangerous**: accepts tokens for any audience (go-oidc's `SkipClientIDCheck`). A token meant for
    /// another service is then accepted here.
    pub fn dangerous_skip_audience_check(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// **Dangerous**: accepts tokens without `exp`, which never expire (legacy Kubernetes
    /// service-account tokens are like this).
    pub fn dangerous_allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Confirms with a Kubernetes TokenReview, at most once per `interval` per token, that a
    /// locally verified token's bound pod or secret still exists: a deleted pod's token stops
    /// working within `interval`, while nearly every request costs a local cache hit. The API
    /// server asked is that of [`InCluster`](crate::issuers::kubernetes::InCluster) for a builder
    /// it made; otherwise use [`with_object_binding`](Self::with_object_binding). When the API
    /// server cannot answer, tokens are accepted for a grace period, then get 503 (see
    /// [`ObjectBindingCheck`](crate::tokenreview::ObjectBindingCheck)).
    pub fn with_object_binding_check(self, interval: Duration) -> Self {
        self.with_object_binding(crate::tokenreview::ObjectBindingCheck::new(interval))
    }

    /// The object-binding check with every setting (API server, grace period, limits).
    pub fn with_object_binding(mut self, check: crate::tokenreview::ObjectBindingCheck) -> Self {
        self.object_binding = Some(check);
        self
    }

    /// The cluster whose API server the object-binding check asks unless told otherwise.
    pub(crate) fn with_in_cluster(
        mut self,
        cluster: crate::issuers::kubernetes::InCluster,
    ) -> Self {
        self.in_cluster = Some(cluster);
        self
    }

    /// Marks this as a shared-secret issuer: HMAC algorithms only, keys from the given key set only.
    pub(crate) fn hmac_issuer(mut self, keys: impl KeySet) -> Self {
        self.hmac = true;
        self.algorithms = Algorithm::HMAC.to_vec();
        self.source = KeySource::Custom(Arc::new(keys));
        self
    }

    /// Checks the configuration and builds the verifier. Nothing is fetched.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        if !self.skip_audience && self.audiences.iter().all(String::is_empty) {
            return Err(ConfigError::NoAudience);
        }
        if self.issuer.is_empty() {
            return Err(ConfigError::InvalidIssuer {
                issuer: self.issuer,
                reason: "empty".into(),
            });
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::InvalidAlgorithms {
                reason: "no algorithm allowed".into(),
            });
        }
        crate::algorithm::check_available(&self.algorithms)
            .map_err(|reason| ConfigError::InvalidAlgorithms { reason })?;
        if !self.hmac && self.algorithms.iter().any(|a| a.is_hmac()) {
            return Err(ConfigError::InvalidAlgorithms {
                reason: "HMAC algorithms are only for shared-secret issuers, never with published \
                         public keys (RFC 8725 §2.1)"
                    .into(),
            });
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_token_bytes",
                reason: "must be positive".into(),
            });
        }
        self.cache.validate()?;
        if let Some(settings) = &self.token_cache {
            settings.validate()?;
        }
        let keys: Arc<dyn KeySet> = match self.source {
            KeySource::Custom(keys) => keys,
            KeySource::JwksUrl(url) => Arc::new(
                RemoteKeySet::builder_jwks(&url, self.http)?.build(self.clock.clone(), self.cache),
            ),
            KeySource::Discovery => {
                let issuer_url =
                    crate::fetch::parse_url(&self.issuer, self.http.allow_insecure_http).map_err(
                        |e| ConfigError::InvalidIssuer {
                            issuer: self.issuer.clone(),
                            reason: e.to_string(),
                        },
                    )?;
                if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
                    // OpenID Connect Discovery 1.0 §2: the issuer has no query or fragment.
                    return Err(ConfigError::InvalidIssuer {
                        issuer: self.issuer,
                        reason: "an issuer URL has no query or fragment".into(),
                    });
                }
                Arc::new(
                    RemoteKeySet::builder_discovery(
                        &self.issuer,
                        self.discovery_url.as_deref(),
                        self.discovery_jwks_uri.as_deref(),
                        self.http,
                    )?
                    .build(self.clock.clone(), self.cache),
                )
            }
        };
        let mut audiences = self.audiences;
        audiences.retain(|a| !a.is_empty());
        let binding = match self.object_binding {
            // Without an audience to ask for, every review would be refused.
            Some(_) if audiences.is_empty() => {
                return Err(ConfigError::InvalidSetting {
                    name: "object_binding_check",
                    reason: "needs an audience: TokenReview checks the token against it".into(),
                });
            }
            Some(check) => Some(check.build(
                self.in_cluster.as_ref().map(|c| c.api_server()),
                audiences.clone(),
                self.clock.clone(),
            )?),
            None => None,
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences,
                skip_audience: self.skip_audience,
                algorithms: self.algorithms,
                leeway: self.leeway.as_secs_f64(),
                require_exp: self.require_exp,
                required_typ: self.required_typ,
                max_token_bytes: self.max_token_bytes,
                keys,
                clock: self.clock,
                issuer_aliases: self.issuer_aliases,
                required_claims: self.required_claims,
                token_cache: self.token_cache.as_ref().map(TokenCache::new),
                binding,
            }),
        })
    }
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}
