//! [`VerifierBuilder`]: a [`Verifier`]'s configuration, checked when it is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::access::BuilderAccess;
use super::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, Inner, IssuerPolicy, Rules, Verifier};
use crate::Algorithm;
use crate::cache::{TokenCache, TokenCacheSettings};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{ConfigError, FetchError, KeysError};
use crate::fetch::{FetchedDocument, Fetcher, HttpSettings, SharedClients};
use crate::keys::{DynKeySet, KeyCacheSettings, KeySet, RemoteKeySet};

#[derive(Clone)]
enum KeySource {
    Discovery,
    JwksUrl(String),
    Custom(Arc<dyn DynKeySet>),
}

/// Configures a [`Verifier`]. Every setting has a safe default; settings that weaken a check are named
/// `dangerous_*`.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Clone)]
pub struct VerifierBuilder {
    policy: IssuerPolicy,
    clock: SharedClock,
    source: KeySource,
    discovery_url: Option<String>,
    http: HttpSettings,
    cache: KeyCacheSettings,
    token_cache: Option<TokenCacheSettings>,
    hmac: bool,
    discovery_jwks_uri: Option<String>,
}

impl VerifierBuilder {
    pub(super) fn new(issuer: String, audience: String) -> Self {
        Self {
            policy: IssuerPolicy {
                issuer,
                issuer_aliases: Vec::new(),
                audiences: vec![audience],
                skip_audience: false,
                algorithms: Algorithm::ASYMMETRIC.to_vec(),
                leeway: DEFAULT_LEEWAY,
                require_exp: true,
                required_typ: None,
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                required_claims: Vec::new(),
            },
            clock: Arc::new(SystemClock),
            source: KeySource::Discovery,
            discovery_url: None,
            http: HttpSettings::default(),
            cache: KeyCacheSettings::default(),
            token_cache: Some(TokenCacheSettings::default()),
            hmac: false,
            discovery_jwks_uri: None,
        }
    }

    /// Accepts another audience too (a token is accepted when any of its audiences is accepted).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.policy.audiences.push(audience.into());
        self
    }

    /// The algorithms accepted (default: every asymmetric algorithm supported). The key's type and
    /// JWK `alg` narrow this further per key.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.policy.algorithms = algorithms.to_vec();
        self
    }

    /// The clock-skew leeway for `exp`, `nbf` and `iat` (default 60 s, like go-jose's default
    /// `DefaultLeeway`; go-oidc itself allows none for `exp`).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.policy.leeway = leeway;
        self
    }

    /// Requires the header's `typ` (e.g. `at+jwt` for RFC 9068 access tokens). Off by default:
    /// Kubernetes and Google tokens are plain `JWT`s.
    pub fn with_required_typ(mut self, typ: impl Into<String>) -> Self {
        self.policy.required_typ = Some(typ.into());
        self
    }

    /// The largest token accepted, in bytes (default 8 KiB).
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.policy.max_token_bytes = max;
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
    pub(crate) fn with_issuer_alias(mut self, iss: impl Into<String>) -> Self {
        self.policy.issuer_aliases.push(iss.into());
        self
    }

    /// Requires this claim in every token (present and not `null`), e.g. to accept only tokens of a
    /// given shape. A token without it is refused with [`VerifyError::MissingClaim`](crate::VerifyError::MissingClaim).
    pub fn with_required_claim(mut self, claim: &'static str) -> Self {
        self.policy.required_claims.push(claim);
        self
    }

    /// Fetches discovery as usual (and checks its `issuer`), but the keys from this URL instead of the
    /// document's `jwks_uri`.
    pub fn with_discovery_jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.discovery_jwks_uri = Some(url.into());
        self
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
        self,
        token: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with_fetch_credential(crate::fetch::credential(token))
    }

    /// The connect and total timeouts of each fetch (default 5 s and 10 s).
    pub fn with_http_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.http.connect_timeout = connect;
        self.http.timeout = total;
        self
    }

    /// The key cache's settings (cooldown, lifetimes, staleness, backoff).
    pub fn with_key_cache(mut self, settings: KeyCacheSettings) -> Self {
        self.cache = settings;
        self
    }

    /// Bounds for the cache of accepted tokens (on by default: 10,000 tokens, 16 MiB). See
    /// [`cache`](crate::cache).
    pub fn with_token_cache(mut self, settings: TokenCacheSettings) -> Self {
        self.token_cache = Some(settings);
        self
    }

    /// Turns the cache of accepted tokens off: every request's token is verified in full, signature
    /// included.
    pub fn without_token_cache(mut self) -> Self {
        self.token_cache = None;
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
        self.policy.skip_audience = true;
        self
    }

    /// **Dangerous**: accepts tokens without `exp`, which never expire (legacy Kubernetes
    /// service-account tokens are like this).
    pub fn dangerous_allow_missing_exp(mut self) -> Self {
        self.policy.require_exp = false;
        self
    }

    /// Marks this as a shared-secret issuer: HMAC algorithms only, keys from the given key set only.
    pub(crate) fn hmac_issuer(mut self, keys: impl KeySet) -> Self {
        self.hmac = true;
        self.policy.algorithms = Algorithm::HMAC.to_vec();
        self.source = KeySource::Custom(Arc::new(keys));
        self
    }

    /// Diagnostics: GETs `url` as the verifier this builds fetches its discovery document and key
    /// set — the same TLS roots, timeouts and response size cap, no redirects, `https` only (plain
    /// `http` on loopback, or anywhere after
    /// [`dangerous_allow_insecure_http`](Self::dangerous_allow_insecure_http)) — and returns the
    /// response unchecked and uncached; the fetch bearer token is not sent. For tools that show
    /// what a verifier would see, such as the `oidc-bearer discover` command.
    ///
    /// A URL that is not acceptable is [`KeysError::InsecureUrl`]; a root certificate that cannot
    /// be used fails the fetch as a transport error ([`build`](Self::build) reports it as
    /// [`ConfigError::InvalidCertificate`]).
    pub async fn fetch_document(&self, url: &str) -> Result<FetchedDocument, KeysError> {
        let parsed = url::Url::parse(url).map_err(|_| KeysError::InsecureUrl {
            url: url.to_owned(),
        })?;
        let fetcher = Fetcher::new(HttpSettings {
            authorization: None,
            ..self.http.clone()
        })
        .map_err(|error| KeysError::Fetch {
            url: url.to_owned(),
            source: FetchError::Transport {
                message: error.to_string(),
            },
        })?;
        fetcher.get(&parsed).await.map(FetchedDocument::from)
    }

    /// The rules of this policy that need no key, as the verifier built from it applies them (an
    /// issuer registry checks a token against them before it admits a new issuer).
    pub(crate) fn rules(&self) -> Rules<'_> {
        self.policy.rules()
    }

    /// Now by this policy's clock: what the verifier built from it reads its token times against.
    pub(crate) fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Checks the configuration and builds the verifier. Nothing is fetched.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        self.validate()?;
        let keys: Arc<dyn DynKeySet> = match self.source {
            KeySource::Custom(keys) => keys,
            KeySource::JwksUrl(url) => Arc::new(
                RemoteKeySet::builder_jwks(&url, self.http)?.build(self.clock.clone(), self.cache),
            ),
            KeySource::Discovery => {
                let issuer_url =
                    crate::fetch::parse_url(&self.policy.issuer, self.http.allow_insecure_http)
                        .map_err(|e| ConfigError::InvalidIssuer {
                            issuer: self.policy.issuer.clone(),
                            reason: e.to_string(),
                        })?;
                if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
                    // OpenID Connect Discovery 1.0 §2: the issuer has no query or fragment.
                    return Err(ConfigError::InvalidIssuer {
                        issuer: self.policy.issuer,
                        reason: "an issuer URL has no query or fragment".into(),
                    });
                }
                Arc::new(
                    RemoteKeySet::builder_discovery(
                        &self.policy.issuer,
                        self.discovery_url.as_deref(),
                        self.discovery_jwks_uri.as_deref(),
                        self.http,
                    )?
                    .build(self.clock.clone(), self.cache),
                )
            }
        };
        let mut policy = self.policy;
        policy.audiences.retain(|a| !a.is_empty());
        Ok(Verifier {
            inner: Arc::new(Inner {
                policy,
                keys,
                clock: self.clock,
                token_cache: self.token_cache.as_ref().map(TokenCache::new),
            }),
        })
    }
}

impl BuilderAccess for VerifierBuilder {
    fn accepted_issuers(&self) -> impl Iterator<Item = &str> {
        self.policy.accepted_issuers()
    }

    fn with_cluster_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.http.root_certificates.push(pem);
        self.http.system_roots = false;
        self
    }

    fn with_fetch_credential(mut self, credential: crate::fetch::Credential) -> Self {
        self.http.authorization = Some(credential);
        self
    }

    fn has_default_token_cache(&self) -> bool {
        self.token_cache == Some(TokenCacheSettings::default())
    }

    fn with_shared_clients(mut self, clients: SharedClients) -> Self {
        self.http.clients = Some(clients);
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.policy.skip_audience && self.policy.audiences.iter().all(String::is_empty) {
            return Err(ConfigError::NoAudience);
        }
        if self.policy.issuer.is_empty() {
            return Err(ConfigError::InvalidIssuer {
                issuer: self.policy.issuer.clone(),
                reason: "empty".into(),
            });
        }
        if self.policy.algorithms.is_empty() {
            return Err(ConfigError::InvalidAlgorithms {
                reason: "no algorithm allowed".into(),
            });
        }
        crate::algorithm::check_available(&self.policy.algorithms)
            .map_err(|reason| ConfigError::InvalidAlgorithms { reason })?;
        if !self.hmac && self.policy.algorithms.iter().any(|a| a.is_hmac()) {
            return Err(ConfigError::InvalidAlgorithms {
                reason: "HMAC algorithms are only for shared-secret issuers, never with published \
                         public keys (RFC 8725 §2.1)"
                    .into(),
            });
        }
        if self.policy.max_token_bytes == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_token_bytes",
                reason: "must be positive".into(),
            });
        }
        self.cache.validate()?;
        if let Some(settings) = &self.token_cache {
            settings.validate()?;
        }
        Ok(())
    }
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.policy.issuer)
            .field("audiences", &self.policy.audiences)
            .finish_non_exhaustive()
    }
}
