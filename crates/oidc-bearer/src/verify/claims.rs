//! The registered claims of a token whose signature holds: `iss`, then the rules that need no key
//! (`aud`, `exp`, `nbf`, `iat`: see `rules`), then the required claims.

use super::Verifier;
use crate::cache::Times;
use crate::error::VerifyError;
use crate::token::{ClaimValue, RawClaims};

impl Verifier {
    /// The registered claims of a token whose signature holds (`claims`, read from its validated
    /// `payload`); its validity window on success.
    pub(super) fn check_claims(
        &self,
        claims: &RawClaims,
        payload: &[u8],
        now: std::time::Duration,
    ) -> Result<Times, VerifyError> {
        let policy = &self.inner.policy;
        // RFC 7519 §4.1.1: `iss` is a single StringOrURI. jsonwebtoken accepts an array; we must not.
        match &claims.iss {
            ClaimValue::Str(iss)
                if *iss == policy.issuer || policy.issuer_aliases.contains(iss) => {}
            ClaimValue::Str(iss) => {
                return Err(VerifyError::IssuerMismatch {
                    expected: policy.issuer.clone(),
                    found: Some(iss.clone()),
                });
            }
            ClaimValue::Absent => {
                return Err(VerifyError::IssuerMismatch {
                    expected: policy.issuer.clone(),
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
        let rules = self.rules();
        rules.check_audience(&claims.aud)?;
        let times = rules.times(claims)?;
        rules.check_times(&times, now)?;
        if !policy.required_claims.is_empty() {
            // Only read when configured: the payload was checked to be a JSON object when parsed.
            let payload: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(payload).unwrap_or_default();
            if let Some(claim) = policy
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
}
