//! Issuers' public keys: parsing a JWKS (RFC 7517), selecting the key for a token, and the key sources
//! a verifier reads from — a [`StaticKeySet`] for offline use and a [`RemoteKeySet`] that follows an
//! issuer's published keys with a cache.

mod jwks;
mod remote;
mod skipped;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use jwks::{Jwks, KeyKind, PublicKey};
pub use remote::{KeyCacheSettings, RemoteKeySet};
pub use skipped::{MAX_SKIPPED_KEYS_KEPT, SkippedKey};

use crate::error::{ConfigError, KeysError};

/// A source of an issuer's verification keys.
///
/// The verifier first asks for the [`current`](KeySet::current) keys, which must never wait on the
/// network. Only when the token names a key that is not there (or no keys are loaded yet) does it call
/// [`refresh`](KeySet::refresh); implementations decide whether to fetch (single flight, cooldown) and
/// return the newest keys they have.
///
/// Keys belong to one issuer: a key set is never shared between issuers (RFC 8725 §3.8).
///
/// ```
/// use std::sync::Arc;
/// use oidc_bearer::KeysError;
/// use oidc_bearer::keys::{Jwks, KeySet, Refresh};
///
/// /// Keys that some other part of the service loads.
/// struct Loaded(Arc<Jwks>);
///
/// impl KeySet for Loaded {
///     fn current(&self) -> Option<Arc<Jwks>> {
///         Some(self.0.clone())
///     }
///
///     async fn refresh(&self) -> Result<Refresh, KeysError> {
///         Ok(Refresh::fresh(self.0.clone()))
///     }
/// }
/// # let _ = Loaded(Arc::new(Jwks::from_json(br#"{"keys": []}"#).unwrap())).current();
/// ```
pub trait KeySet: Send + Sync + 'static {
    /// The keys available now, without waiting. `None` when none are loaded (or they are too stale to
    /// use).
    fn current(&self) -> Option<Arc<Jwks>>;

    /// Asks for newer keys because a token named a key that `current` did not have. Returns the newest
    /// keys available (possibly unchanged) and whether a later call could bring newer ones, or why
    /// there are none.
    fn refresh(&self) -> impl Future<Output = Result<Refresh, KeysError>> + Send;
}

/// [`KeySet`] with its future boxed, so that a verifier holds any key set as `Arc<dyn DynKeySet>`
/// (a trait whose method returns `impl Future` cannot be a trait object). Implemented for every
/// `KeySet`; a refresh (an unknown `kid`, no keys yet) pays one allocation, a read none.
pub(crate) trait DynKeySet: Send + Sync + 'static {
    /// [`KeySet::current`].
    fn current(&self) -> Option<Arc<Jwks>>;

    /// [`KeySet::refresh`], boxed.
    fn refresh(&self) -> Pin<Box<dyn Future<Output = Result<Refresh, KeysError>> + Send + '_>>;
}

impl<K: KeySet> DynKeySet for K {
    fn current(&self) -> Option<Arc<Jwks>> {
        KeySet::current(self)
    }

    fn refresh(&self) -> Pin<Box<dyn Future<Output = Result<Refresh, KeysError>> + Send + '_>> {
        Box::pin(KeySet::refresh(self))
    }
}

/// What [`KeySet::refresh`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Refresh {
    /// The newest keys available.
    pub keys: Arc<Jwks>,
    /// `None` when `keys` are as new as the source can give for this call (they were fetched after
    /// it began, or the source never changes): a key missing from them is unknown, and the token is
    /// refused. `Some(wait)` when no fetch could be made for this call (the refresh cooldown
    /// forbids it, or the fetch it joined had started earlier): a key missing from them may have
    /// been published since, and a fetch is allowed again after `wait`, so the verifier answers
    /// 503 with `Retry-After` rather than a final 401 (see [`VerifyError::UnknownKeyRetry`]).
    ///
    /// [`VerifyError::UnknownKeyRetry`]: crate::VerifyError::UnknownKeyRetry
    pub retry_after: Option<std::time::Duration>,
    /// When the fetch that brought `keys` started, on the key set's clock (`None` if unknown). A
    /// token issued (`iat`) before then, whose key they lack, was signed by a key that was not
    /// published when they were fetched: it is refused at once, even with `retry_after`.
    pub keys_as_of: Option<std::time::Duration>,
}

impl Refresh {
    /// Keys that are final for this call: a key they lack is unknown.
    pub fn fresh(keys: Arc<Jwks>) -> Self {
        Self {
            keys,
            retry_after: None,
            keys_as_of: None,
        }
    }
}

impl<K: KeySet> KeySet for Arc<K> {
    fn current(&self) -> Option<Arc<Jwks>> {
        KeySet::current(&**self)
    }

    fn refresh(&self) -> impl Future<Output = Result<Refresh, KeysError>> + Send {
        KeySet::refresh(&**self)
    }
}

/// A fixed set of keys: for offline use, tests, and issuers without discovery (legacy Kubernetes
/// tokens, where the cluster's service-account public key is configured by hand).
///
/// ```
/// use oidc_bearer::keys::{Jwks, KeySet, StaticKeySet};
///
/// let keys = StaticKeySet::new(Jwks::from_json(br#"{"keys": []}"#).unwrap());
/// assert!(keys.current().unwrap().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct StaticKeySet {
    keys: Arc<Jwks>,
}

impl StaticKeySet {
    /// Serves `keys` forever.
    pub fn new(keys: Jwks) -> Self {
        Self {
            keys: Arc::new(keys),
        }
    }
}

impl KeySet for StaticKeySet {
    fn current(&self) -> Option<Arc<Jwks>> {
        Some(self.keys.clone())
    }

    async fn refresh(&self) -> Result<Refresh, KeysError> {
        Ok(Refresh::fresh(self.keys.clone()))
    }
}

impl KeyCacheSettings {
    /// How long a [`RemoteKeySet`] uses a key set served with this `Cache-Control` value before it
    /// must refresh it: `max-age` (`no-store` and `no-cache` count as zero) clamped to
    /// [`min_ttl`](Self::min_ttl)..=[`max_ttl`](Self::max_ttl), or [`default_ttl`](Self::default_ttl)
    /// without one.
    ///
    /// ```
    /// use oidc_bearer::keys::KeyCacheSettings;
    /// use std::time::Duration;
    ///
    /// let settings = KeyCacheSettings::default();
    /// assert_eq!(settings.key_set_lifetime(Some("public, max-age=300")), Duration::from_secs(300));
    /// assert_eq!(settings.key_set_lifetime(Some("no-store")), settings.min_ttl);
    /// assert_eq!(settings.key_set_lifetime(None), settings.default_ttl);
    /// ```
    pub fn key_set_lifetime(&self, cache_control: Option<&str>) -> std::time::Duration {
        cache_control
            .and_then(crate::fetch::parse_max_age)
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }
}

/// Each key of a JWK Set document as a key set would take it, in the document's order: the parsed key,
/// or why it is skipped (the same rules as [`Jwks::from_json`], which keeps only the usable keys and
/// traces the rest). For diagnostics, such as the `oidc-bearer discover` command; an error only when
/// the document is not a JSON object with a `keys` array.
///
/// ```
/// let keys = oidc_bearer::keys::explain_jwks(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap();
/// assert!(keys[0].as_ref().unwrap_err().contains("RFC 8725"));
/// ```
pub fn explain_jwks(json: &[u8]) -> Result<Vec<Result<PublicKey, String>>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct RawJwkSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawJwkSet = serde_json::from_slice(json).map_err(|e| ConfigError::InvalidKey {
        reason: format!("not a JWK Set (a JSON object with a `keys` array): {e}"),
    })?;
    Ok(set.keys.into_iter().map(jwks::parse_jwk).collect())
}
