//! [`VerifyError`] and the [`Phase`] of verification that refused a token.

use std::fmt;
use std::time::Duration;

use super::{Excerpt, KeysError};

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
        /// Why the review could not be done (the reviewer's error: read it with
        /// [`ReviewSource::downcast_ref`](super::source::ReviewSource::downcast_ref)).
        source: super::source::ReviewSource,
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
                super::Truncated(error)
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
            Self::ReviewUnavailable { source } => Some(source.get_ref()),
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
