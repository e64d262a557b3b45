//! Checking a DPoP proof against the request it came with (RFC 9449 §4.3), before the access
//! token is looked at: structure, `typ`, `alg`, `jwk`, signature, then the claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::DpopCheck;
use super::replay::Replay;
use super::thumbprint::{ProofKey, encode_sha256};
use super::uri::normalise_htu;
use crate::crypto::{Sha256, constant_time_eq};
use crate::error::{DpopError, VerifyError};
use crate::token::{ClaimValue, Parsed};
use crate::verify::{Rules, check_key_signature, time_claim};

/// The largest proof read: a proof with an RSA 4096 key is under 2 KiB.
const MAX_PROOF_BYTES: usize = 8 * 1024;

/// A proof that passed every rule that needs no token: what remains is the binding (its key's
/// thumbprint against the token's `cnf.jkt`) and the replay check.
#[derive(Debug)]
pub(crate) struct CheckedProof {
    /// The RFC 7638 thumbprint of the proof's `jwk`.
    pub(crate) thumbprint: String,
    /// The proof's key in the replay map.
    pub(super) replay_key: Sha256,
    /// When the proof leaves the `iat` window (seconds since the epoch).
    pub(super) expires: f64,
}

/// The proof's claims besides `iat` (read by the parser with the registered claims), kept as
/// found so that a wrong type is told apart from absence.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ProofClaims {
    jti: ClaimValue,
    htm: ClaimValue,
    htu: ClaimValue,
    ath: ClaimValue,
    nonce: ClaimValue,
}

/// The only `jwk` member of the header we read (the parser read `alg`, `typ` and `crit`).
#[derive(Deserialize)]
struct JwkHeader {
    jwk: Option<serde_json::Value>,
}

/// A string claim: `Ok(None)` when absent, an error for another type.
fn string<'a>(value: &'a ClaimValue, claim: &'static str) -> Result<Option<&'a str>, DpopError> {
    match value {
        ClaimValue::Absent => Ok(None),
        ClaimValue::Str(s) => Ok(Some(s)),
        _ => Err(DpopError::Malformed {
            reason: match claim {
                "jti" => "jti must be a string",
                "htm" => "htm must be a string",
                "htu" => "htu must be a string",
                "ath" => "ath must be a string",
                _ => "nonce must be a string",
            },
        }),
    }
}

/// A string claim that must be there and not be empty (§4.3 check 3).
fn required<'a>(value: &'a ClaimValue, claim: &'static str) -> Result<&'a str, DpopError> {
    string(value, claim)?
        .filter(|s| !s.is_empty())
        .ok_or(DpopError::MissingClaim { claim })
}

impl DpopCheck {
    /// Checks `proof` (the `DPoP` header's value) against the request — `method`, `path` — and
    /// the access token it came with, in the order of RFC 9449 §4.3; on success, the proof's key
    /// thumbprint and replay key. `now` is this server's clock in seconds.
    pub(crate) fn check_proof(
        &self,
        proof: &str,
        method: &http::Method,
        path: &str,
        access_token: &str,
        now: std::time::Duration,
    ) -> Result<CheckedProof, DpopError> {
        // Check 2: one well-formed JWT (segments, base64url, JSON objects, no repeated member
        // names, no `crit` we do not understand): the token parser's own rules.
        let jws = Parsed::new(proof, MAX_PROOF_BYTES).map_err(|e| match e {
            VerifyError::Malformed { reason } => DpopError::Malformed { reason },
            VerifyError::TooLarge { .. } => DpopError::Malformed {
                reason: "the proof is too large",
            },
            _ => DpopError::Malformed {
                reason: "the proof has critical header parameters",
            },
        })?;
        // Checks 4 and 5: `typ` and an asymmetric `alg` from the accepted list (`none` is never
        // parsed, and the list never holds HMAC: see `Dpop::with_algorithms`), by the rules that
        // check an access token's header.
        let alg = Rules::header_only(&self.algorithms, "dpop+jwt")
            .check_header(&jws.header)
            .map_err(|e| match e {
                VerifyError::InvalidType { found, .. } => DpopError::InvalidType { found },
                _ => DpopError::AlgorithmNotAllowed {
                    alg: jws.header.alg.clone(),
                },
            })?;
        // Checks 7 and 6: the header's public key, then the signature with it.
        let header = proof.split('.').next().unwrap_or_default();
        let header: JwkHeader = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(DpopError::Malformed {
                reason: "header is not a JSON object",
            })?;
        let key = ProofKey::new(header.jwk.as_ref(), alg)?;
        check_key_signature(&jws, &key.key, alg).map_err(|_| DpopError::InvalidSignature)?;

        // Check 3 and 8–12, on signed claims.
        let claims: ProofClaims =
            serde_json::from_slice(&jws.payload).map_err(|_| DpopError::Malformed {
                reason: "payload is not a JSON object",
            })?;
        let jti = required(&claims.jti, "jti")?;
        let htm = required(&claims.htm, "htm")?;
        let htu = required(&claims.htu, "htu")?;
        let iat = time_claim(&jws.claims.iat, "iat")
            .map_err(|_| DpopError::Malformed {
                reason: "iat must be a number of seconds (RFC 7519 §2 NumericDate)",
            })?
            .ok_or(DpopError::MissingClaim { claim: "iat" })?;
        // Check 8: methods are case-sensitive (RFC 9110 §9.1).
        if htm != method.as_str() {
            return Err(DpopError::MethodMismatch {
                expected: method.as_str().to_owned(),
                found: htm.to_owned(),
            });
        }
        // Check 9: the URI, both sides normalised, without query and fragment.
        let expected = self.base.request_uri(path);
        let found = normalise_htu(htu);
        let htu_normal = match (&expected, &found) {
            (Some(expected), Some(found)) if expected == found => found,
            _ => {
                return Err(DpopError::UriMismatch {
                    expected: expected.unwrap_or_else(|| path.to_owned()),
                    found: htu.to_owned(),
                });
            }
        };
        // Check 11: `iat` within the window on either side of now (§11.1 leaves the window to
        // the server; clocks differ both ways).
        let now_secs = now.as_secs_f64();
        if (now_secs - iat).abs() > self.iat_window {
            return Err(DpopError::IssuedAtOutOfWindow {
                iat: iat.floor() as i64,
                now: now_secs.floor() as i64,
            });
        }
        // Check 10: the server's nonce, when it provides them (§9).
        if let Some(nonces) = &self.nonces {
            let accepted = string(&claims.nonce, "nonce")?.is_some_and(|n| nonces.accepts(n, now));
            if !accepted {
                return Err(DpopError::UseNonce {
                    nonce: nonces.current(now),
                });
            }
        }
        // Check 12, first half: `ath` is base64url(SHA-256(the ASCII access token)) (§4.2).
        let ath = required(&claims.ath, "ath")?;
        if !constant_time_eq(
            ath.as_bytes(),
            encode_sha256(access_token.as_bytes()).as_bytes(),
        ) {
            return Err(DpopError::AccessTokenHashMismatch);
        }
        Ok(CheckedProof {
            replay_key: Replay::key(&key.thumbprint, htu_normal, jti),
            thumbprint: key.thumbprint,
            expires: iat + self.iat_window,
        })
    }
}
