//! The registered claims of a token whose signature holds: `iss`, `aud`, `exp`, `nbf`, `iat`,
//! required claims, and the header's `typ`.

use super::Verifier;
use crate::cache::Times;
use crate::error::VerifyError;
use crate::token::{ClaimValue, Jws, RawClaims};

impl Verifier {
    /// The registered claims of a token whose signature holds; its validity window on success.
    pub(super) fn check_claims(
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
    pub(super) fn check_times(&self, times: &Times, now: f64) -> Result<(), VerifyError> {
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

/// A NumericDate claim: a JSON number (RFC 7519 §2), never a string (CVE-2026-25537).
pub(super) fn time_claim(
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
pub(super) fn check_typ(expected: &str, found: Option<&str>) -> Result<(), VerifyError> {
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
