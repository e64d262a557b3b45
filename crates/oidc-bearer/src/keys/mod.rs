//! Issuers' public keys: parsing a JWKS (RFC 7517), selecting the key for a token, and the key sources
//! a verifier reads from — a [`StaticKeySet`] for offline use, your own [`KeySet`], or (by default)
//! the issuer's published keys followed with a cache whose [`KeyCacheSettings`] a
//! [`VerifierBuilder`](crate::VerifierBuilder) takes.

mod jwks;
mod remote;
mod skipped;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::jwks::{PublicKey, parse_jwk};
pub use self::{super::fetch::FetchedDocument, jwks::Jwks, remote::KeyCacheSettings};
pub(crate) use remote::RemoteKeySet;

use crate::Algorithm;
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

    /// Starts loading the keys in the background, retried until they are loaded, and returns at
    /// once (a warm-up at start: see [`Verifier::warm_up`](crate::Verifier::warm_up)). The default
    /// does nothing, for sources that need no loading or load on their own.
    fn warm_up(&self) {}
}

/// [`KeySet`] with its future boxed, so that a verifier holds any key set as `Arc<dyn DynKeySet>`
/// (a trait whose method returns `impl Future` cannot be a trait object). Implemented for every
/// `KeySet`; a refresh (an unknown `kid`, no keys yet) pays one allocation, a read none.
pub(crate) trait DynKeySet: Send + Sync + 'static {
    /// [`KeySet::current`].
    fn current(&self) -> Option<Arc<Jwks>>;

    /// [`KeySet::refresh`], boxed.
    fn refresh(&self) -> Pin<Box<dyn Future<Output = Result<Refresh, KeysError>> + Send + '_>>;

    /// [`KeySet::warm_up`].
    fn warm_up(&self);
}

impl<K: KeySet> DynKeySet for K {
    fn current(&self) -> Option<Arc<Jwks>> {
        KeySet::current(self)
    }

    fn refresh(&self) -> Pin<Box<dyn Future<Output = Result<Refresh, KeysError>> + Send + '_>> {
        Box::pin(KeySet::refresh(self))
    }

    fn warm_up(&self) {
        KeySet::warm_up(self);
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

    fn warm_up(&self) {
        KeySet::warm_up(&**self);
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

/// What a verifier's key cache makes of a JWK Set document: for tools that inspect an issuer the
/// way a verifier would, such as the `oidc-bearer discover` command. Made by [`explain_key_set`].
#[derive(Debug)]
#[non_exhaustive]
pub struct KeySetReport {
    /// Each key of the document, in its order: a key a verifier uses, or why it skips it (the
    /// rules of [`Jwks::from_json`], which keeps only the usable keys).
    pub keys: Vec<Result<UsableKey, String>>,
    /// How long the keys are used after a fetch before they are refreshed: the response's
    /// `Cache-Control: max-age` (`no-store` and `no-cache` count as zero) clamped to
    /// [`min_ttl`](KeyCacheSettings::min_ttl)..=[`max_ttl`](KeyCacheSettings::max_ttl), or
    /// [`default_ttl`](KeyCacheSettings::default_ttl) without one.
    pub lifetime: Duration,
}

/// A key of a JWK Set that a verifier uses, as [`explain_key_set`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsableKey {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// The algorithm its JWK `alg` binds it to, if any (otherwise every algorithm that fits it).
    pub algorithm: Option<Algorithm>,
    /// Its type as people say it: `RSA 2048 bits`, `EC P-256`, `OKP Ed25519`.
    pub key_type: String,
}

/// Diagnostics: explains a JWK Set document (RFC 7517 §5) served with the `Cache-Control` value
/// `cache_control`, as a key cache with `settings` would take it — each key used or skipped and why,
/// and how long the set lives. An error only when the document is not a JSON object with a `keys`
/// array.
///
/// ```
/// use std::time::Duration;
/// use oidc_bearer::keys::{KeyCacheSettings, explain_key_set};
///
/// let settings = KeyCacheSettings::default();
/// let report = explain_key_set(
///     br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
///     Some("public, max-age=300"),
///     &settings,
/// ).unwrap();
/// assert!(report.keys[0].as_ref().unwrap_err().contains("RFC 8725"));
/// assert_eq!(report.lifetime, Duration::from_secs(300));
///
/// let report = explain_key_set(br#"{"keys": []}"#, Some("no-store"), &settings).unwrap();
/// assert_eq!(report.lifetime, settings.min_ttl);
/// let report = explain_key_set(br#"{"keys": []}"#, None, &settings).unwrap();
/// assert_eq!(report.lifetime, settings.default_ttl);
/// ```
pub fn explain_key_set(
    document: &[u8],
    cache_control: Option<&str>,
    settings: &KeyCacheSettings,
) -> Result<KeySetReport, ConfigError> {
    #[derive(serde::Deserialize)]
    struct RawJwkSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawJwkSet = serde_json::from_slice(document).map_err(|e| ConfigError::InvalidKey {
        reason: format!("not a JWK Set (a JSON object with a `keys` array): {e}"),
    })?;
    Ok(KeySetReport {
        keys: set
            .keys
            .into_iter()
            .map(|jwk| {
                jwks::parse_jwk(jwk).map(|key| UsableKey {
                    kid: key.kid().map(str::to_owned),
                    algorithm: key.algorithm(),
                    key_type: key.kind().to_string(),
                })
            })
            .collect(),
        lifetime: settings.ttl(cache_control.and_then(crate::fetch::parse_max_age)),
    })
}
