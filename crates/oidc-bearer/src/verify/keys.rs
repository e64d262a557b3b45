//! The algorithm a token names and the key that checks it: the policy's algorithms, the key set
//! (refreshed once for an unknown `kid`, with the "retry later" answer while no fetch is allowed),
//! and the signature.

use std::sync::Arc;
use std::time::Duration;

use super::Verifier;
use super::rules::time_claim;
use crate::Algorithm;
use crate::error::VerifyError;
use crate::keys::{Jwks, PublicKey};
use crate::token::{Jws, validate_payload};

/// The longest wait for which an unknown `kid` is answered "retry later" (503) rather than refused
/// (401): a client will not wait longer, and a key set configured never to refetch (an endless
/// cooldown) gives final answers.
const MAX_UNKNOWN_KEY_RETRY: Duration = Duration::from_secs(300);

impl Verifier {
    /// The header's algorithm, checked against the policy, and the key set holding the token's key
    /// (refreshed once for an unknown `kid`); and whether a fetch was awaited. `current` is what
    /// the key set gave without waiting, if the caller already asked.
    pub(super) async fn resolve_keys(
        &self,
        jws: &Jws<'_>,
        current: Option<Arc<Jwks>>,
    ) -> Result<(Arc<Jwks>, Algorithm, bool), VerifyError> {
        let inner = &*self.inner;
        let header = &jws.header;
        let alg = self.rules().check_header(header)?;

        let kid = header.kid.as_deref();
        let mut waited = false;
        // Whether the keys come from a fetch made for this request (the first load): then a key
        // they lack is unknown, with no second refresh.
        let mut fetched_for_this = false;
        let keys = match current.or_else(|| inner.keys.current()) {
            Some(keys) => keys,
            None => {
                waited = true;
                let loaded = inner
                    .keys
                    .refresh()
                    .await
                    .map_err(|source| VerifyError::KeysUnavailable { source })?;
                fetched_for_this = loaded.retry_after.is_none();
                loaded.keys
            }
        };
        let keys = match keys.select(kid, alg) {
            Err(e @ VerifyError::UnknownKey { .. }) if fetched_for_this => return Err(e),
            Err(VerifyError::UnknownKey { .. }) => {
                // An unknown kid may be a rotation we have not seen: ask for fresh keys. The key set
                // decides whether to fetch (single flight, cooldown), so a flood of forged kids
                // costs no crypto and at most one fetch per cooldown.
                let fresh = inner
                    .keys
                    .refresh()
                    .await
                    .map_err(|source| VerifyError::KeysUnavailable { source })?;
                waited = true;
                match (fresh.keys.select(kid, alg), fresh.retry_after) {
                    (Ok(_), _) => {}
                    // No fetch could be made since this request arrived, so the key may have been
                    // published meanwhile: 503 with `Retry-After` until the next allowed fetch,
                    // not a final 401 (a key rotation that was not pre-published must not fail
                    // the clients that retry). After a fetch that still lacks it, 401.
                    (Err(VerifyError::UnknownKey { kid }), Some(retry_after))
                        if retry_after <= MAX_UNKNOWN_KEY_RETRY
                            && !published_but_skipped(&fresh.keys, kid.as_deref())
                            && !self.issued_before(jws, fresh.keys_as_of) =>
                    {
                        return Err(VerifyError::UnknownKeyRetry { kid, retry_after });
                    }
                    (Err(e), _) => return Err(e),
                }
                fresh.keys
            }
            Err(e) => return Err(e),
            Ok(_) => keys,
        };
        Ok((keys, alg, waited))
    }

    /// Whether the (unverified) token says it was issued, leeway included, before `keys_as_of`, when
    /// the fetch of the keys that lack its key started. Then its key was not published at that
    /// fetch, and waiting for another cannot help: the refusal is final (401). A token whose claims
    /// have no `iat` is not. Read only on this path (an unknown `kid` inside the cooldown), so a
    /// known key never pays for it; a forger who sets `iat` gains nothing from it but a 503.
    fn issued_before(&self, jws: &Jws<'_>, keys_as_of: Option<Duration>) -> bool {
        let Some(as_of) = keys_as_of else {
            return false;
        };
        // The payload is read here, before the signature, only for this (its `iat` decides
        // between 401 and 503). One that is not a valid claims set would be refused whatever key
        // arrives: the refusal is final too.
        let Some(claims) = jws
            .decode_payload()
            .ok()
            .and_then(|payload| validate_payload(&payload).ok())
        else {
            return true;
        };
        let iat = time_claim(&claims.iat, "iat").ok().flatten();
        iat.is_some_and(|iat| iat + self.inner.policy.leeway.as_secs_f64() < as_of.as_secs_f64())
    }
}

/// The signature of `jws` with the key its header selects; the key on success.
pub(super) fn check_signature<'k>(
    jws: &Jws<'_>,
    keys: &'k Jwks,
    alg: Algorithm,
) -> Result<&'k PublicKey, VerifyError> {
    let key = keys.select(jws.header.kid.as_deref(), alg)?;
    check_key_signature(jws, key, alg)?;
    Ok(key)
}

/// The signature of `jws` with `key` for `alg` (an issuer's key, or a DPoP proof's own `jwk`).
pub(crate) fn check_key_signature(
    jws: &Jws<'_>,
    key: &PublicKey,
    alg: Algorithm,
) -> Result<(), VerifyError> {
    // A signature of the wrong length is refused without any crypto.
    if key
        .signature_len(alg)
        .is_some_and(|len| len != jws.signature.len())
    {
        return Err(VerifyError::InvalidSignature);
    }
    if !key.verify(alg, jws.signing_input, &jws.signature) {
        return Err(VerifyError::InvalidSignature);
    }
    Ok(())
}

/// Whether the issuer publishes `kid` but the key was skipped as unusable: no later fetch will make it
/// usable, so the refusal is final.
fn published_but_skipped(keys: &Jwks, kid: Option<&str>) -> bool {
    kid.is_some_and(|kid| keys.skipped_keys().iter().any(|k| k.kid() == Some(kid)))
}
