//! [`DpopError`]: why a request to a resource that takes DPoP-bound tokens (RFC 9449) was refused.

use std::fmt;

use super::Excerpt;

/// Why a request was refused by the DPoP rules of RFC 9449 (the layer's
/// [`with_dpop`](crate::BearerAuthLayer::with_dpop)): its proof (§4.3), the binding of its token
/// to the proof's key (§7.1), or the scheme it used (§7.2).
///
/// It reaches responses as [`AuthRejection::Dpop`](crate::rejection::AuthRejection::Dpop): 401 with
/// `WWW-Authenticate: DPoP error="invalid_dpop_proof"` for the proof's rules, `use_dpop_nonce`
/// (and a `DPoP-Nonce` header) for a missing or stale server nonce, `invalid_token` for the
/// token's binding and scheme, and 400 `invalid_request` for two `DPoP` headers. Its
/// [`code`](crate::rejection::AuthRejection::code) names the exact rule, for logs and metrics.
/// The [`Display`](fmt::Display) text quotes request values only as short escaped excerpts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DpopError {
    /// `Authorization: DPoP` without a `DPoP` proof header (§4.3 check 1).
    MissingProof,
    /// More than one `DPoP` header (§4.3 check 1): a malformed request (400).
    MultipleProofs,
    /// The proof is not one well-formed JWT (§4.3 check 2), or a claim has the wrong type.
    Malformed {
        /// What is wrong, without the proof's contents.
        reason: &'static str,
    },
    /// The proof's `typ` is not `dpop+jwt` (§4.3 check 4).
    InvalidType {
        /// The header's `typ`, if any.
        found: Option<String>,
    },
    /// The proof's `alg` is `none`, HMAC, unknown, or not on the accepted list (§4.3 check 5).
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// The proof's `jwk` header is missing or is not a usable public key for its `alg`.
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The proof's `jwk` holds private key members (§4.3 check 7).
    PrivateKey,
    /// The proof's signature does not verify with its `jwk` (§4.3 check 6).
    InvalidSignature,
    /// A required claim of the proof is missing (§4.3 check 3): `jti`, `htm`, `htu`, `iat` or
    /// `ath`.
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// The proof's `htm` is not the request's method (§4.3 check 8).
    MethodMismatch {
        /// The request's method.
        expected: String,
        /// The proof's `htm`.
        found: String,
    },
    /// The proof's `htu` is not the request's URI (§4.3 check 9, after RFC 3986 §6 normalisation).
    UriMismatch {
        /// The request's URI, as this server knows it (its external base URL and the path).
        expected: String,
        /// The proof's `htu`.
        found: String,
    },
    /// The proof's `iat` is outside the accepted window around now (§4.3 check 11).
    IssuedAtOutOfWindow {
        /// The proof's `iat`, in seconds since the epoch.
        iat: i64,
        /// The server's clock.
        now: i64,
    },
    /// The proof's `ath` is not the hash of the access token sent with it (§4.3 check 12).
    AccessTokenHashMismatch,
    /// The proof's key is not the key the token is bound to: the RFC 7638 thumbprint of `jwk`
    /// differs from the token's `cnf.jkt` (§4.3 check 12, §6.1).
    KeyMismatch,
    /// The proof was seen before (its `jti`, within its `iat` window, §11.1).
    Replayed,
    /// The proof cannot be remembered: the replay memory is full of proofs still in their `iat`
    /// window, none of which may be forgotten (§11.1). A new proof succeeds once some leave it;
    /// see [`Dpop::with_max_replay_entries`](crate::Dpop::with_max_replay_entries).
    ReplayMemoryFull,
    /// The server requires a nonce of its own in proofs (§9) and this proof has none, or a stale
    /// or foreign one: the client retries with `nonce`, which the response carries in a
    /// `DPoP-Nonce` header.
    UseNonce {
        /// The nonce to use.
        nonce: String,
    },
    /// A token without `cnf.jkt` was sent with the `DPoP` scheme: it is bound to no key.
    UnboundToken,
    /// A DPoP-bound token (with `cnf.jkt`) was sent with the `Bearer` scheme (§7.2).
    BoundTokenAsBearer,
    /// The resource accepts DPoP-bound tokens only, and the request used the `Bearer` scheme.
    DpopRequired,
}

/// Which error of RFC 9449 §7.1 / RFC 6750 §3.1 a [`DpopError`] is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DpopChallengeError {
    InvalidRequest,
    InvalidDpopProof,
    UseDpopNonce,
    InvalidToken,
}

impl DpopError {
    /// A stable code naming the rule, for logs and metrics.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::MissingProof => "dpop_proof_missing",
            Self::MultipleProofs => "dpop_multiple_proofs",
            Self::Malformed { .. } => "dpop_malformed",
            Self::InvalidType { .. } => "dpop_invalid_typ",
            Self::AlgorithmNotAllowed { .. } => "dpop_algorithm_not_allowed",
            Self::InvalidKey { .. } => "dpop_invalid_key",
            Self::PrivateKey => "dpop_private_key",
            Self::InvalidSignature => "dpop_invalid_signature",
            Self::MissingClaim { .. } => "dpop_missing_claim",
            Self::MethodMismatch { .. } => "dpop_htm_mismatch",
            Self::UriMismatch { .. } => "dpop_htu_mismatch",
            Self::IssuedAtOutOfWindow { .. } => "dpop_iat_out_of_window",
            Self::AccessTokenHashMismatch => "dpop_ath_mismatch",
            Self::KeyMismatch => "dpop_jkt_mismatch",
            Self::Replayed => "dpop_replayed",
            Self::ReplayMemoryFull => "dpop_replay_memory_full",
            Self::UseNonce { .. } => "use_dpop_nonce",
            Self::UnboundToken => "dpop_unbound_token",
            Self::BoundTokenAsBearer => "dpop_bound_token_as_bearer",
            Self::DpopRequired => "dpop_required",
        }
    }

    /// The `error` of the challenge (RFC 9449 §7.1, §12.2; RFC 6750 §3.1). No `_` arm: a new
    /// variant must choose.
    pub(crate) fn challenge_error(&self) -> DpopChallengeError {
        use DpopChallengeError as C;
        match self {
            Self::MultipleProofs => C::InvalidRequest,
            Self::UseNonce { .. } => C::UseDpopNonce,
            Self::UnboundToken | Self::BoundTokenAsBearer | Self::DpopRequired => C::InvalidToken,
            Self::MissingProof
            | Self::Malformed { .. }
            | Self::InvalidType { .. }
            | Self::AlgorithmNotAllowed { .. }
            | Self::InvalidKey { .. }
            | Self::PrivateKey
            | Self::InvalidSignature
            | Self::MissingClaim { .. }
            | Self::MethodMismatch { .. }
            | Self::UriMismatch { .. }
            | Self::IssuedAtOutOfWindow { .. }
            | Self::AccessTokenHashMismatch
            | Self::KeyMismatch
            | Self::Replayed
            | Self::ReplayMemoryFull => C::InvalidDpopProof,
        }
    }

    /// The client-facing text: fixed per rule, never the request's values.
    pub(crate) fn description(&self) -> &'static str {
        match self {
            Self::MissingProof => "a DPoP proof is required with the DPoP scheme",
            Self::MultipleProofs => "more than one DPoP header",
            Self::Malformed { .. } => "the DPoP proof is malformed",
            Self::InvalidType { .. } => "the DPoP proof's typ is not dpop+jwt",
            Self::AlgorithmNotAllowed { .. } => "the DPoP proof's algorithm is not accepted",
            Self::InvalidKey { .. } => "the DPoP proof's jwk is not an accepted public key",
            Self::PrivateKey => "the DPoP proof's jwk contains a private key",
            Self::InvalidSignature => "the DPoP proof's signature is invalid",
            Self::MissingClaim { .. } => "the DPoP proof lacks a required claim",
            Self::MethodMismatch { .. } => "the DPoP proof is for another HTTP method",
            Self::UriMismatch { .. } => "the DPoP proof is for another URI",
            Self::IssuedAtOutOfWindow { .. } => "the DPoP proof is too old or from the future",
            Self::AccessTokenHashMismatch => "the DPoP proof is for another access token",
            Self::KeyMismatch => "the DPoP proof's key is not the key the token is bound to",
            Self::Replayed => "the DPoP proof was used before",
            Self::ReplayMemoryFull => {
                "the server cannot remember more DPoP proofs now; retry later with a new proof"
            }
            Self::UseNonce { .. } => "the resource server requires a nonce in the DPoP proof",
            Self::UnboundToken => "the token is not DPoP-bound",
            Self::BoundTokenAsBearer => "a DPoP-bound token must be sent with the DPoP scheme",
            Self::DpopRequired => "this resource requires a DPoP-bound token",
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { reason } => write!(f, "malformed DPoP proof: {reason}"),
            Self::InvalidType { found: Some(typ) } => {
                write!(f, "DPoP proof typ {:?} is not dpop+jwt", Excerpt(typ))
            }
            Self::InvalidType { found: None } => write!(f, "DPoP proof has no typ"),
            Self::AlgorithmNotAllowed { alg } => {
                write!(f, "DPoP proof algorithm {:?} is not accepted", Excerpt(alg))
            }
            Self::InvalidKey { reason } => write!(f, "DPoP proof jwk: {reason}"),
            Self::MissingClaim { claim } => write!(f, "DPoP proof lacks the {claim:?} claim"),
            Self::MethodMismatch { expected, found } => write!(
                f,
                "DPoP proof htm {:?} is not the request's method {:?}",
                Excerpt(found),
                Excerpt(expected)
            ),
            Self::UriMismatch { expected, found } => write!(
                f,
                "DPoP proof htu {:?} is not the request's URI {:?}",
                Excerpt(found),
                Excerpt(expected)
            ),
            Self::IssuedAtOutOfWindow { iat, now } => write!(
                f,
                "DPoP proof issued at {iat} is outside the accepted window (now {now})"
            ),
            Self::UseNonce { .. } => write!(f, "DPoP proof without a current server nonce"),
            other => f.write_str(other.description()),
        }
    }
}

impl std::error::Error for DpopError {}
