//! The rules of a policy that need no key: the token's size, the header's `alg` and `typ`, the
//! audience and times of its claims. Stated once, here: a [`Verifier`](super::Verifier) applies
//! them around its signature check, and an issuer registry applies the same rules, from the
//! pattern's [`VerifierBuilder`](super::VerifierBuilder), to an unverified token before it admits a
//! new issuer, so that a token they refuse costs no admission.

use std::time::Duration;

use crate::Algorithm;
use crate::cache::Times;
use crate::error::VerifyError;
use crate::token::{ClaimValue, Header, Parsed, RawClaims};
use oidc_bearer_shared::clock::numeric_date;

/// A policy's rules that need no key, borrowed from a verifier or from a builder.
pub(crate) struct Rules<'a> {
    pub(super) max_token_bytes: usize,
    pub(super) algorithms: &'a [Algorithm],
    pub(super) required_typ: Option<&'a str>,
    /// The accepted audiences (a builder's may hold empty names, which match nothing).
    pub(super) audiences: &'a [String],
    pub(super) skip_audience: bool,
    pub(super) leeway: Duration,
    pub(super) require_exp: bool,
}

/// One issuer's policy, as a [`VerifierBuilder`](super::VerifierBuilder) configures it and the
/// [`Verifier`](super::Verifier) built from it applies it: the issuer and its other spellings, the
/// claims required, and the rules that need no key.
#[derive(Clone)]
pub(super) struct IssuerPolicy {
    pub(super) issuer: String,
    pub(super) issuer_aliases: Vec<String>,
    pub(super) audiences: Vec<String>,
    pub(super) skip_audience: bool,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) leeway: Duration,
    pub(super) require_exp: bool,
    pub(super) required_typ: Option<String>,
    pub(super) max_token_bytes: usize,
    pub(super) required_claims: Vec<&'static str>,
}

impl IssuerPolicy {
    /// The rules of this policy that need no key.
    #[inline]
    pub(super) fn rules(&self) -> Rules<'_> {
        Rules {
            max_token_bytes: self.max_token_bytes,
            algorithms: &self.algorithms,
            required_typ: self.required_typ.as_deref(),
            audiences: &self.audiences,
            skip_audience: self.skip_audience,
            leeway: self.leeway,
            require_exp: self.require_exp,
        }
    }

    /// The `iss` values accepted: the issuer, then its aliases.
    pub(super) fn accepted_issuers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.issuer.as_str()).chain(self.issuer_aliases.iter().map(String::as_str))
    }
}

impl Rules<'static> {
    /// The rules TokenReview's pre-check applies before a token costs a review: the size cap, an
    /// asymmetric `alg` (the API server signs with keys; RFC 8725 §3.1) and an `exp` that is a
    /// NumericDate not yet past, with the default leeway. The rest — signature, audience, `nbf`, a
    /// missing `exp` (legacy service-account tokens have none) — is the API server's to judge.
    fn review(max_token_bytes: usize) -> Self {
        Rules {
            max_token_bytes,
            algorithms: Algorithm::ASYMMETRIC,
            required_typ: None,
            audiences: &[],
            skip_audience: true,
            leeway: super::DEFAULT_LEEWAY,
            require_exp: false,
        }
    }
}

impl<'a> Rules<'a> {
    /// The header rules alone — `alg` on `algorithms`, `typ` equal to `typ` — for a JWS that is
    /// no access token: a DPoP proof (RFC 9449 §4.3 checks 4 and 5).
    pub(crate) fn header_only(algorithms: &'a [Algorithm], typ: &'a str) -> Self {
        Rules {
            max_token_bytes: usize::MAX,
            algorithms,
            required_typ: Some(typ),
            audiences: &[],
            skip_audience: true,
            leeway: Duration::ZERO,
            require_exp: false,
        }
    }
}

impl Rules<'_> {
    /// Every rule here, on a token whose signature has not been checked (nor its `iss`, which
    /// selected the policy): what an issuer registry refuses before it admits a new issuer.
    ///
    /// The verifier checks the signature before any claim (go-oidc since v3.15, CVE-2025-27144),
    /// so that an unsigned token learns nothing from a claim error. Here that order cannot hold:
    /// these refusals happen before the issuer is even built. They give away no more than the
    /// verifier would answer for the same token once the issuer is known: that its audience or
    /// times are wrong (the claims checked are the sender's own).
    pub(crate) fn check_unverified(
        &self,
        header: &Header,
        claims: &RawClaims,
        token_len: usize,
        now: Duration,
    ) -> Result<(), VerifyError> {
        self.check_size(token_len)?;
        self.check_header(header)?;
        self.check_audience(&claims.aud)?;
        self.check_times(&self.times(claims)?, now)
    }

    /// The token's size against the cap, before anything else: an oversized token costs nothing
    /// but this comparison.
    pub(crate) fn check_size(&self, token_len: usize) -> Result<(), VerifyError> {
        if token_len > self.max_token_bytes {
            return Err(VerifyError::TooLarge {
                len: token_len,
                max: self.max_token_bytes,
            });
        }
        Ok(())
    }

    /// The header's algorithm, checked against the policy, and its `typ` if one is required.
    pub(crate) fn check_header(&self, header: &Header) -> Result<Algorithm, VerifyError> {
        // RFC 8725 §3.1: `none` and unknown names never pass; names are case-sensitive.
        let alg = Algorithm::from_header(&header.alg).ok_or_else(|| {
            VerifyError::UnsupportedAlgorithm {
                alg: header.alg.clone(),
            }
        })?;
        if !self.algorithms.contains(&alg) {
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
        if let Some(expected) = self.required_typ {
            check_typ(expected, header.typ.as_deref())?;
        }
        Ok(alg)
    }

    /// RFC 7519 §4.1.3: a string or an array of strings; the token is accepted when any of its
    /// audiences is accepted. A missing `aud` is refused unless explicitly allowed.
    pub(super) fn check_audience(&self, aud: &ClaimValue) -> Result<(), VerifyError> {
        if self.skip_audience {
            return Ok(());
        }
        let found: &[String] = match aud {
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
        if !found
            .iter()
            .any(|a| !a.is_empty() && self.audiences.contains(a))
        {
            return Err(VerifyError::AudienceMismatch {
                expected: self
                    .audiences
                    .iter()
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .collect(),
                found: found.to_vec(),
            });
        }
        Ok(())
    }

    /// `exp`, `nbf` and `iat` as numbers, `exp` required unless allowed missing.
    pub(super) fn times(&self, claims: &RawClaims) -> Result<Times, VerifyError> {
        let times = Times {
            exp: time_claim(&claims.exp, "exp")?,
            nbf: time_claim(&claims.nbf, "nbf")?,
            iat: time_claim(&claims.iat, "iat")?,
        };
        if times.exp.is_none() && self.require_exp {
            return Err(VerifyError::MissingClaim { claim: "exp" });
        }
        Ok(times)
    }

    /// `exp`, `nbf` and `iat` against the clock, with leeway: at verification and on every cache hit.
    pub(crate) fn check_times(&self, times: &Times, now: Duration) -> Result<(), VerifyError> {
        // The claims are NumericDates as the token carries them (JSON numbers, RFC 7519 §2).
        let (now, leeway) = (now.as_secs_f64(), self.leeway.as_secs_f64());
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

/// TokenReview's pre-check (crate `oidc-bearer-kubernetes`), by [`Rules::review`]: anything but a
/// compact JWS within `max_token_bytes`, an `alg` other than an asymmetric one, an `exp` that is no
/// NumericDate or is past, is refused before it costs a review. None of it is trusted; it only
/// spares the API server garbage. Returns the (unverified) `exp`.
#[doc(hidden)]
pub fn review_precheck(
    token: &str,
    max_token_bytes: usize,
    now: Duration,
) -> Result<Option<Duration>, VerifyError> {
    let parsed = Parsed::new(token, max_token_bytes)?;
    let rules = Rules::review(max_token_bytes);
    rules.check_header(&parsed.header)?;
    let exp = time_claim(&parsed.claims.exp, "exp")?;
    let times = Times {
        exp,
        ..Times::default()
    };
    rules.check_times(&times, now)?;
    Ok(exp.map(numeric_date))
}

/// TokenReview's size cap (the first of [`review_precheck`]'s rules), checked before a token is
/// hashed for its cached answer.
#[doc(hidden)]
pub fn review_check_size(max_token_bytes: usize, len: usize) -> Result<(), VerifyError> {
    Rules::review(max_token_bytes).check_size(len)
}

/// A NumericDate claim: a JSON number (RFC 7519 §2), never a string (CVE-2026-25537).
pub(crate) fn time_claim(
    value: &ClaimValue,
    claim: &'static str,
) -> Result<Option<f64>, VerifyError> {
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
