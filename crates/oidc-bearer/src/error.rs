//! Errors, one type per phase: configuring a verifier ([`ConfigError`]), fetching an issuer's keys
//! ([`KeysError`]) and verifying a token ([`VerifyError`]).
//!
//! Each error carries the data a report needs and has a stable, machine-readable [`code`] for logs and
//! metrics. No third-party error type appears in the public API (the model is rustls' `Error`; go-oidc's
//! `TokenExpiredError` carries the expiry the same way).
//!
//! [`code`]: VerifyError::code

use std::fmt;
use std::time::Duration;

/// A verifier could not be built from the configuration it was given.
///
/// These are programmer or deployment errors, reported at construction instead of at the first request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an absolute `https` URL (or loopback `http`), or not a recognised special issuer.
    InvalidIssuer {
        /// The configured value.
        issuer: String,
        /// Why it was refused.
        reason: String,
    },
    /// A URL (discovery or JWKS override) could not be parsed.
    InvalidUrl {
        /// The configured value.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A plain-`http` URL that is not on a loopback address, without the insecure switch.
    InsecureUrl {
        /// The configured value.
        url: String,
    },
    /// No audience was configured (and the audience check was not explicitly skipped).
    NoAudience,
    /// The allowed-algorithm list is empty, or names an algorithm this key source cannot verify.
    InvalidAlgorithms {
        /// Why it was refused.
        reason: String,
    },
    /// A key given for a static key set could not be used.
    InvalidKey {
        /// Why it was refused.
        reason: String,
    },
    /// An extra root certificate could not be parsed.
    InvalidCertificate {
        /// Why it was refused.
        reason: String,
    },
    /// A setting is out of its allowed range.
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP client could not be built.
    HttpClient {
        /// The underlying message.
        message: String,
    },
}

impl ConfigError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidIssuer { .. } => "invalid_issuer",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::InsecureUrl { .. } => "insecure_url",
            Self::NoAudience => "no_audience",
            Self::InvalidAlgorithms { .. } => "invalid_algorithms",
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidCertificate { .. } => "invalid_certificate",
            Self::InvalidSetting { .. } => "invalid_setting",
            Self::HttpClient { .. } => "http_client",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIssuer { issuer, reason } => {
                write!(f, "invalid issuer {issuer:?}: {reason}")
            }
            Self::InvalidUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Self::InsecureUrl { url } => write!(
                f,
                "refusing plain-http URL {url:?}: https is required off loopback \
                 (use `dangerous_allow_insecure_http` only if you really mean it)"
            ),
            Self::NoAudience => write!(
                f,
                "no audience configured: an audience is required so that tokens meant for another \
                 service are refused (RFC 7519 §4.1.3)"
            ),
            Self::InvalidAlgorithms { reason } => write!(f, "invalid algorithm list: {reason}"),
            Self::InvalidKey { reason } => write!(f, "invalid key: {reason}"),
            Self::InvalidCertificate { reason } => write!(f, "invalid root certificate: {reason}"),
            Self::InvalidSetting { name, reason } => {
                write!(f, "invalid setting `{name}`: {reason}")
            }
            Self::HttpClient { message } => write!(f, "could not build the HTTP client: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// An issuer's discovery document or key set could not be fetched or used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeysError {
    /// The server answered with a non-success status (redirects are not followed, so 3xx lands here).
    Status {
        /// The URL fetched.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed or was reset.
    Transport {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The fetch did not complete within its timeout.
    Timeout {
        /// The URL fetched.
        url: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The response body exceeded the size cap.
    TooLarge {
        /// The URL fetched.
        url: String,
        /// The cap, in bytes.
        max_bytes: usize,
    },
    /// The document is not valid JSON of the expected shape.
    InvalidDocument {
        /// The URL fetched.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The discovery document names another issuer (OpenID Connect Discovery 1.0 §4.3).
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `issuer` of the document.
        found: String,
    },
    /// A URL from the discovery document is not acceptable (plain http off loopback, or unparsable).
    InsecureUrl {
        /// The offending URL.
        url: String,
    },
    /// The key set holds no key this library can use.
    NoUsableKeys {
        /// The URL fetched.
        url: String,
        /// How many keys the set held (all skipped).
        skipped: usize,
    },
    /// Cached keys exist but are older than the maximum staleness and could not be refreshed.
    Stale {
        /// How old the cached keys are.
        age: Duration,
    },
    /// No fetch has succeeded yet and the next attempt is waiting for its backoff.
    Backoff {
        /// The error of the last attempt.
        last: Box<KeysError>,
    },
    /// Keys had to be fetched, but the caller is not running on a Tokio runtime, on which fetches
    /// run as spawned tasks (so that no caller owns them). Keys already loaded keep working.
    NoRuntime,
}

impl KeysError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Status { .. } => "http_status",
            Self::Transport { .. } => "transport",
            Self::Timeout { .. } => "timeout",
            Self::TooLarge { .. } => "response_too_large",
            Self::InvalidDocument { .. } => "invalid_document",
            Self::IssuerMismatch { .. } => "discovery_issuer_mismatch",
            Self::InsecureUrl { .. } => "insecure_url",
            Self::NoUsableKeys { .. } => "no_usable_keys",
            Self::Stale { .. } => "keys_stale",
            Self::Backoff { .. } => "backoff",
            Self::NoRuntime => "no_runtime",
        }
    }

    /// Whether the failure is a configuration mistake that retrying will not fix until someone
    /// changes a setting or the issuer: a discovery document naming another issuer, a 4xx other than
    /// 408 and 429 (a wrong URL), a redirect (never followed), a body that is not a discovery
    /// document or a JWKS, a JWKS with no usable key, an insecure URL, a body over the size cap, no
    /// Tokio runtime. The rest — connection failures, timeouts, 5xx, 408, 429 — are outages that end
    /// on their own ([`is_transient`](Self::is_transient)).
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Status { status, .. } => !matches!(status, 408 | 429 | 500..),
            Self::InvalidDocument { .. }
            | Self::IssuerMismatch { .. }
            | Self::InsecureUrl { .. }
            | Self::NoUsableKeys { .. }
            | Self::TooLarge { .. }
            | Self::NoRuntime => true,
            Self::Backoff { last } => last.is_configuration(),
            Self::Transport { .. } | Self::Timeout { .. } | Self::Stale { .. } => false,
        }
    }

    /// Whether the failure is an outage expected to end on its own (the opposite of
    /// [`is_configuration`](Self::is_configuration)).
    pub fn is_transient(&self) -> bool {
        !self.is_configuration()
    }

    /// What to change, for a configuration error: one sentence for the operator's log.
    /// `issuer` is the configured issuer, when discovery is used.
    pub fn hint(&self, issuer: Option<&str>) -> String {
        match self {
            Self::IssuerMismatch { found, .. } => format!(
                "the discovery document names issuer {found:?}; configure exactly that string, \
                 including any trailing slash (OpenID Connect Discovery 1.0 §4.3 requires an exact match)"
            ),
            Self::Status {
                url,
                status: 404 | 410,
            } => match issuer {
                Some(issuer) => format!(
                    "nothing is published at {url}: check the issuer URL {issuer:?} (the discovery \
                     document is read from <issuer>/.well-known/openid-configuration), or set the \
                     discovery or JWKS URL explicitly"
                ),
                None => format!("nothing is published at {url}: check the JWKS URL"),
            },
            Self::Status {
                url,
                status: 401 | 403,
            } => format!(
                "{url} refuses us: the issuer requires credentials (configure a fetch bearer token) \
                 or a network policy blocks it"
            ),
            Self::Status { url, status } if (300..400).contains(status) => format!(
                "{url} redirects, and redirects are never followed: configure the final URL"
            ),
            Self::Status { url, .. } => format!("check the URL {url}"),
            Self::InvalidDocument { url, .. } => format!(
                "{url} does not serve the expected JSON document: check that the issuer (or JWKS) \
                 URL points at an OpenID provider"
            ),
            Self::NoUsableKeys { url, .. } => format!(
                "the key set at {url} holds no key this library can use: check the algorithms the \
                 issuer signs with (the skipped keys and why are logged at WARN)"
            ),
            Self::InsecureUrl { url } => format!(
                "{url:?} is not https: serve the issuer over https, or (never in production) allow \
                 plain http"
            ),
            Self::TooLarge { max_bytes, .. } => format!(
                "the response exceeds {max_bytes} bytes: check the URL, or raise the maximum \
                 response size"
            ),
            Self::NoRuntime => "verify from inside a Tokio runtime (keys are fetched by spawned \
                                tasks), or load the keys once from one with `ready()`"
                .to_owned(),
            Self::Backoff { last } => last.hint(issuer),
            _ => "retrying with backoff".to_owned(),
        }
    }
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { url, status } => write!(f, "GET {url} answered HTTP {status}"),
            Self::Transport { url, message } => write!(f, "GET {url} failed: {message}"),
            Self::Timeout { url, timeout } => write!(f, "GET {url} timed out after {timeout:?}"),
            Self::TooLarge { url, max_bytes } => {
                write!(f, "GET {url}: response larger than {max_bytes} bytes")
            }
            Self::InvalidDocument { url, message } => {
                write!(f, "invalid document at {url}: {message}")
            }
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "discovery document names issuer {found:?}, expected {expected:?} \
                 (OpenID Connect Discovery 1.0 §4.3)"
            ),
            Self::InsecureUrl { url } => write!(f, "refusing insecure or invalid URL {url:?}"),
            Self::NoUsableKeys { url, skipped } => {
                write!(f, "key set at {url} has no usable key ({skipped} skipped)")
            }
            Self::Stale { age } => write!(
                f,
                "cached keys are {}s old, past the maximum staleness, and could not be refreshed",
                age.as_secs()
            ),
            Self::Backoff { last } => write!(f, "waiting to retry after: {last}"),
            Self::NoRuntime => write!(
                f,
                "keys must be fetched but there is no Tokio runtime to fetch them on"
            ),
        }
    }
}

impl std::error::Error for KeysError {}

/// A token was refused.
///
/// The [`Display`](fmt::Display) text never contains the token itself, only the facts that explain the
/// refusal ("expected audience X, got Y").
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    test,
    derive(strum::EnumDiscriminants),
    strum_discriminants(name(VerifyErrorKind), vis(pub(crate)), derive(strum::EnumIter))
)]
pub enum VerifyError {
    /// The token is longer than the configured cap.
    TooLarge {
        /// The token's length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The token is not a compact JWS (segments, base64url, JSON).
    Malformed {
        /// What is wrong, without the token's contents.
        reason: &'static str,
    },
    /// The header names an algorithm that is never accepted here (`none`, HMAC with public keys,
    /// unknown names).
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
    },
    /// The algorithm is supported but not on this issuer's allowed list.
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// The key named by `kid` cannot be used with the header's `alg` (RFC 8725 §3.1).
    AlgorithmKeyMismatch {
        /// The header's `alg`.
        alg: String,
        /// The key's id.
        kid: Option<String>,
    },
    /// No key with this `kid` is published by the issuer (after a refresh, when one was allowed).
    UnknownKey {
        /// The header's `kid`, if any.
        kid: Option<String>,
    },
    /// The token names a key that the issuer's keys lack, and no fetch that could have brought it has
    /// been made since the request arrived: the refresh cooldown forbids one for `retry_after`. A
    /// server answers 503 with `Retry-After` (not a final 401), so that a client that retries sees
    /// no failure across a key rotation that was not pre-published; once a fetch has shown the key
    /// unknown, the answer is [`UnknownKey`](Self::UnknownKey). Its own code, so that a flood of
    /// forged `kid`s is told apart from an outage in logs and metrics.
    UnknownKeyRetry {
        /// The header's `kid`, if any.
        kid: Option<String>,
        /// When a fetch is allowed again.
        retry_after: Duration,
    },
    /// The token has no `kid` and more than one key fits its algorithm.
    AmbiguousKey {
        /// How many keys fit.
        candidates: usize,
    },
    /// The header's `crit` names extensions this library does not understand (RFC 7515 §4.1.11).
    UnsupportedCritical {
        /// The names listed.
        names: Vec<String>,
    },
    /// The header's `typ` is not the required one.
    InvalidType {
        /// The required `typ`.
        expected: String,
        /// The header's `typ`, if any.
        found: Option<String>,
    },
    /// The signature does not verify.
    InvalidSignature,
    /// The `iss` claim is not the configured issuer.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`, if any.
        found: Option<String>,
    },
    /// None of the token's audiences is accepted.
    AudienceMismatch {
        /// The accepted audiences.
        expected: Vec<String>,
        /// The token's audiences (empty when `aud` is missing).
        found: Vec<String>,
    },
    /// A required claim is missing.
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim has the wrong type or value.
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token has expired (`exp`, with leeway).
    Expired {
        /// The token's `exp`, in seconds since the epoch.
        exp: i64,
        /// The verifier's clock, in seconds since the epoch.
        now: i64,
    },
    /// The token is not valid yet (`nbf`, with leeway).
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// The token claims to have been issued in the future (`iat`, with leeway).
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// The verified payload could not be decoded into the caller's claims type.
    ClaimsDecode {
        /// What did not fit: a missing field's name, or the position of a wrong type or value (never
        /// the value itself).
        message: String,
    },
    /// The issuer's keys have never been fetched successfully (or are past their maximum staleness).
    /// A server answers 503 rather than 401: the token may well be valid.
    KeysUnavailable {
        /// Why the keys are unavailable.
        source: KeysError,
    },
    /// The token's issuer is not trusted by this registry of issuers.
    UntrustedIssuer {
        /// The token's (unverified) `iss`, if any.
        found: Option<String>,
    },
    /// A registry of issuers did not try the token's (pattern) issuer: it is already trying as
    /// many new issuers as it allows, or new issuers arrive faster than its rate limit. Nothing
    /// was built or fetched; a server answers 503 with `Retry-After`, and a later retry may
    /// succeed.
    TooManyNewIssuers {
        /// The limit reached: `"max_pending_issuers"` or `"new_issuer_rate"`.
        limit: &'static str,
    },
    /// The Kubernetes API server's TokenReview refused the token (`status.authenticated` false):
    /// its bound pod or secret was deleted, it expired, its signature or audience is wrong.
    ReviewRefused {
        /// The API server's `status.error`, if any (kept here and in logs, never sent to the client).
        error: Option<String>,
    },
    /// The token could not be reviewed by the Kubernetes API server (unreachable, overloaded, or
    /// refusing our own credentials). A server answers 503 rather than 401.
    ReviewUnavailable {
        /// Why the review could not be done.
        source: crate::tokenreview::ReviewError,
    },
}

impl VerifyError {
    /// A stable, machine-readable code for this kind of error, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "token_too_large",
            Self::Malformed { .. } => "malformed",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            Self::AlgorithmKeyMismatch { .. } => "algorithm_key_mismatch",
            Self::UnknownKey { .. } => "unknown_key",
            Self::UnknownKeyRetry { .. } => "unknown_key_retry",
            Self::AmbiguousKey { .. } => "ambiguous_key",
            Self::UnsupportedCritical { .. } => "unsupported_crit",
            Self::InvalidType { .. } => "invalid_typ",
            Self::InvalidSignature => "invalid_signature",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::AudienceMismatch { .. } => "audience_mismatch",
            Self::MissingClaim { .. } => "missing_claim",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::ClaimsDecode { .. } => "claims_decode",
            Self::KeysUnavailable { .. } => "keys_unavailable",
            Self::UntrustedIssuer { .. } => "untrusted_issuer",
            Self::TooManyNewIssuers { .. } => "too_many_new_issuers",
            Self::ReviewRefused { .. } => "review_refused",
            Self::ReviewUnavailable { .. } => "review_unavailable",
        }
    }

    /// Whether the failure is on the server's side (the issuer's keys are unavailable, a registry
    /// is not trying new issuers now, or a TokenReview could not be done) rather than the token's:
    /// an HTTP server answers 503 for these instead of 401.
    pub fn is_unavailable(&self) -> bool {
        // No `_` arm: a new variant must be placed on one side or the other.
        match self {
            Self::KeysUnavailable { .. }
            | Self::UnknownKeyRetry { .. }
            | Self::TooManyNewIssuers { .. }
            | Self::ReviewUnavailable { .. } => true,
            Self::TooLarge { .. }
            | Self::Malformed { .. }
            | Self::UnsupportedAlgorithm { .. }
            | Self::AlgorithmNotAllowed { .. }
            | Self::UnsupportedCritical { .. }
            | Self::InvalidType { .. }
            | Self::UntrustedIssuer { .. }
            | Self::AlgorithmKeyMismatch { .. }
            | Self::UnknownKey { .. }
            | Self::AmbiguousKey { .. }
            | Self::InvalidSignature
            | Self::IssuerMismatch { .. }
            | Self::AudienceMismatch { .. }
            | Self::MissingClaim { .. }
            | Self::InvalidClaim { .. }
            | Self::Expired { .. }
            | Self::NotYetValid { .. }
            | Self::IssuedInFuture { .. }
            | Self::ClaimsDecode { .. }
            | Self::ReviewRefused { .. } => false,
        }
    }

    /// For an [unavailable](Self::is_unavailable) failure, when trying again may succeed, if known
    /// (it becomes a 503's `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::UnknownKeyRetry { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl VerifyError {
    /// The stage of verification that refused the token. Written as one `match` with no `_` arm, so
    /// that a new variant is a compile error here instead of a wrong answer wherever phases are used.
    pub fn phase(&self) -> Phase {
        match self {
            Self::TooLarge { .. } | Self::Malformed { .. } => Phase::Structure,
            Self::UnsupportedAlgorithm { .. }
            | Self::AlgorithmNotAllowed { .. }
            | Self::UnsupportedCritical { .. }
            | Self::InvalidType { .. } => Phase::Header,
            Self::UntrustedIssuer { .. } | Self::TooManyNewIssuers { .. } => Phase::Issuer,
            Self::KeysUnavailable { .. } => Phase::Keys,
            Self::AlgorithmKeyMismatch { .. }
            | Self::UnknownKey { .. }
            | Self::UnknownKeyRetry { .. }
            | Self::AmbiguousKey { .. } => Phase::KeySelection,
            Self::InvalidSignature => Phase::Signature,
            Self::IssuerMismatch { .. }
            | Self::AudienceMismatch { .. }
            | Self::MissingClaim { .. }
            | Self::InvalidClaim { .. }
            | Self::Expired { .. }
            | Self::NotYetValid { .. }
            | Self::IssuedInFuture { .. } => Phase::Claims,
            Self::ClaimsDecode { .. } => Phase::Decode,
            Self::ReviewRefused { .. } | Self::ReviewUnavailable { .. } => Phase::Review,
        }
    }
}

/// The stages of verifying a token, in the order they run; [`VerifyError::phase`] says which one
/// refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Reading the compact JWS before any check: its size, segments, base64url and JSON.
    Structure,
    /// The protected header against this verifier's policy: `alg` (RFC 8725 §3.1), `crit` (RFC 7515
    /// §4.1.11), `typ` (RFC 8725 §3.11).
    Header,
    /// Choosing the issuer from the token's unverified `iss` (an issuer registry: an untrusted
    /// issuer, or a new one refused by the admission limits).
    Issuer,
    /// Obtaining the issuer's keys (a fetch failed, or the keys are too stale): the token may be
    /// valid.
    Keys,
    /// Choosing, from the issuer's keys, the one the token names (`kid`) and that fits its `alg`.
    KeySelection,
    /// Checking the signature with that key.
    Signature,
    /// The signed claims: `iss`, `aud`, `exp`, `nbf`, `iat` and the required ones (RFC 7519 §4.1).
    Claims,
    /// Decoding the verified payload into the caller's claims type.
    Decode,
    /// A Kubernetes TokenReview, where the API server makes every check of its own.
    Review,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "token is {len} bytes, more than the {max} allowed")
            }
            Self::Malformed { reason } => write!(f, "malformed token: {reason}"),
            Self::UnsupportedAlgorithm { alg } => {
                write!(f, "algorithm {:?} is not accepted", Excerpt(alg))
            }
            Self::AlgorithmNotAllowed { alg } => {
                write!(f, "algorithm {alg:?} is not allowed for this issuer")
            }
            Self::AlgorithmKeyMismatch { alg, kid } => match kid {
                Some(kid) => write!(
                    f,
                    "key {:?} cannot be used with algorithm {alg:?}",
                    Excerpt(kid)
                ),
                None => write!(f, "no key fits algorithm {alg:?}"),
            },
            Self::UnknownKey { kid: Some(kid) } => write!(f, "unknown key id {:?}", Excerpt(kid)),
            Self::UnknownKey { kid: None } => write!(f, "no key fits the token"),
            Self::UnknownKeyRetry { kid, retry_after } => write!(
                f,
                "unknown key id {:?}; the issuer's keys may be fetched again in {} s",
                Excerpt(kid.as_deref().unwrap_or("")),
                retry_after.as_secs_f64().ceil()
            ),
            Self::AmbiguousKey { candidates } => write!(
                f,
                "token has no key id and {candidates} keys fit its algorithm"
            ),
            Self::UnsupportedCritical { names } => {
                write!(f, "unsupported critical header parameters {}", list(names))
            }
            Self::InvalidType { expected, found } => match found {
                Some(found) => write!(f, "expected typ {expected:?}, got {:?}", Excerpt(found)),
                None => write!(f, "expected typ {expected:?}, got none"),
            },
            Self::InvalidSignature => write!(f, "invalid signature"),
            Self::IssuerMismatch { expected, found } => match found {
                Some(found) => {
                    write!(f, "expected issuer {expected:?}, got {:?}", Excerpt(found))
                }
                None => write!(f, "expected issuer {expected:?}, got no iss claim"),
            },
            Self::AudienceMismatch { expected, found } => {
                if found.is_empty() {
                    write!(f, "expected audience {}, got no aud claim", list(expected))
                } else {
                    write!(
                        f,
                        "expected audience {}, got {}",
                        list(expected),
                        list(found)
                    )
                }
            }
            Self::MissingClaim { claim } => write!(f, "missing required claim {claim:?}"),
            Self::InvalidClaim { claim, reason } => write!(f, "invalid claim {claim:?}: {reason}"),
            Self::Expired { exp, now } => write!(f, "token expired at {exp} (now {now})"),
            Self::NotYetValid { nbf, now } => write!(f, "token not valid before {nbf} (now {now})"),
            Self::IssuedInFuture { iat, now } => {
                write!(f, "token issued in the future at {iat} (now {now})")
            }
            Self::ClaimsDecode { message } => {
                write!(f, "claims do not match the expected type: {message}")
            }
            Self::KeysUnavailable { source } => write!(f, "issuer keys unavailable: {source}"),
            Self::UntrustedIssuer { found: Some(iss) } => {
                write!(f, "issuer {:?} is not trusted", Excerpt(iss))
            }
            Self::UntrustedIssuer { found: None } => write!(f, "token has no issuer"),
            Self::TooManyNewIssuers { limit } => write!(
                f,
                "too many new issuers at once (`{limit}` reached): this one was not tried, \
                 try again later"
            ),
            Self::ReviewRefused { error: Some(error) } => write!(
                f,
                "the API server refused the token: {:?}",
                crate::tokenreview::Truncated(error)
            ),
            Self::ReviewRefused { error: None } => write!(f, "the API server refused the token"),
            Self::ReviewUnavailable { source } => write!(f, "cannot review the token: {source}"),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::KeysUnavailable { source } => Some(source),
            Self::ReviewUnavailable { source } => Some(source),
            _ => None,
        }
    }
}

/// Values for a message: token-supplied ones are excerpted, and at most a few are listed.
fn list(values: &[String]) -> String {
    const MAX_ITEMS: usize = 5;
    match values {
        [one] => format!("{:?}", Excerpt(one)),
        many => {
            let shown: Vec<_> = many.iter().take(MAX_ITEMS).map(|v| Excerpt(v)).collect();
            let more = many.len().saturating_sub(MAX_ITEMS);
            if more == 0 {
                format!("one of {shown:?}")
            } else {
                format!("one of {shown:?} and {more} more")
            }
        }
    }
}

/// A token-supplied string in a message: at most [`Excerpt::MAX_CHARS`] characters, so that an
/// 8 KiB `iss` or `kid` cannot flood logs (the typed error keeps the whole value).
pub(crate) struct Excerpt<'a>(pub(crate) &'a str);

impl Excerpt<'_> {
    const MAX_CHARS: usize = 64;
}

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(Self::MAX_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..end], self.0.len()),
        }
    }
}

/// An error and its sources, joined by `: ` ("a: b: c"): for a log line or a message, since the
/// messages of reqwest and hyper leave out the cause ("error sending request").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
pub(crate) mod tests {
    use strum::IntoEnumIterator as _;

    use super::*;

    /// The table of every [`VerifyError`]: one error of each variant and its phase. The match is
    /// over the variant list that strum derives from the enum, with no `_` arm, so that a new variant
    /// fails to compile here until it has a row.
    fn row(kind: VerifyErrorKind) -> (VerifyError, Phase) {
        use VerifyError as E;
        use VerifyErrorKind as K;
        let text = String::new;
        match kind {
            K::TooLarge => (E::TooLarge { len: 2, max: 1 }, Phase::Structure),
            K::Malformed => (E::Malformed { reason: "" }, Phase::Structure),
            K::UnsupportedAlgorithm => (E::UnsupportedAlgorithm { alg: text() }, Phase::Header),
            K::AlgorithmNotAllowed => (E::AlgorithmNotAllowed { alg: text() }, Phase::Header),
            K::UnsupportedCritical => (E::UnsupportedCritical { names: vec![] }, Phase::Header),
            K::InvalidType => {
                let error = E::InvalidType {
                    expected: text(),
                    found: None,
                };
                (error, Phase::Header)
            }
            K::UntrustedIssuer => (E::UntrustedIssuer { found: None }, Phase::Issuer),
            K::TooManyNewIssuers => {
                let error = E::TooManyNewIssuers {
                    limit: "new_issuer_rate",
                };
                (error, Phase::Issuer)
            }
            K::KeysUnavailable => {
                let source = KeysError::Stale {
                    age: Duration::ZERO,
                };
                (E::KeysUnavailable { source }, Phase::Keys)
            }
            K::AlgorithmKeyMismatch => {
                let error = E::AlgorithmKeyMismatch {
                    alg: text(),
                    kid: None,
                };
                (error, Phase::KeySelection)
            }
            K::UnknownKey => (E::UnknownKey { kid: None }, Phase::KeySelection),
            K::UnknownKeyRetry => {
                let error = E::UnknownKeyRetry {
                    kid: None,
                    retry_after: Duration::ZERO,
                };
                (error, Phase::KeySelection)
            }
            K::AmbiguousKey => (E::AmbiguousKey { candidates: 2 }, Phase::KeySelection),
            K::InvalidSignature => (E::InvalidSignature, Phase::Signature),
            K::IssuerMismatch => {
                let error = E::IssuerMismatch {
                    expected: text(),
                    found: None,
                };
                (error, Phase::Claims)
            }
            K::AudienceMismatch => {
                let error = E::AudienceMismatch {
                    expected: vec![],
                    found: vec![],
                };
                (error, Phase::Claims)
            }
            K::MissingClaim => (E::MissingClaim { claim: "exp" }, Phase::Claims),
            K::InvalidClaim => {
                let error = E::InvalidClaim {
                    claim: "exp",
                    reason: "",
                };
                (error, Phase::Claims)
            }
            K::Expired => (E::Expired { exp: 0, now: 1 }, Phase::Claims),
            K::NotYetValid => (E::NotYetValid { nbf: 1, now: 0 }, Phase::Claims),
            K::IssuedInFuture => (E::IssuedInFuture { iat: 1, now: 0 }, Phase::Claims),
            K::ClaimsDecode => (E::ClaimsDecode { message: text() }, Phase::Decode),
            K::ReviewRefused => (E::ReviewRefused { error: None }, Phase::Review),
            K::ReviewUnavailable => {
                let source = crate::tokenreview::ReviewError::NoCredentials;
                (E::ReviewUnavailable { source }, Phase::Review)
            }
        }
    }

    /// One error of each [`VerifyError`] variant, for tests elsewhere that must cover them all.
    pub(crate) fn one_of_each() -> Vec<VerifyError> {
        VerifyErrorKind::iter().map(|kind| row(kind).0).collect()
    }

    #[test]
    fn every_verify_error_has_its_phase() {
        for kind in VerifyErrorKind::iter() {
            let (error, phase) = row(kind);
            assert_eq!(VerifyErrorKind::from(&error), kind, "the row of {kind:?}");
            assert_eq!(error.phase(), phase, "{error:?}");
        }
    }

    #[test]
    fn every_verify_error_has_a_code_of_its_own() {
        let mut codes: Vec<_> = one_of_each().iter().map(VerifyError::code).collect();
        let all = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all, "{codes:?}");
    }

    #[test]
    fn an_error_chain_names_every_cause() {
        #[derive(Debug)]
        struct Wrapped(KeysError);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let cause = KeysError::NoRuntime;
        assert_eq!(
            error_chain(&Wrapped(cause.clone())),
            format!("error sending request: {cause}")
        );
        assert_eq!(error_chain(&cause), cause.to_string());
    }
}
