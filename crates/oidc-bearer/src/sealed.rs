//! The seal of the performance hooks inside public traits ([`VerifyToken`]'s synchronous cache
//! lookup, [`TokenExtractor`]'s unchecked read): each takes an [`Internal`] as its last argument, a
//! value only this crate can make, so that outside the crate they can be neither called nor
//! overridden (a sealed method). The traits stay implementable; implementations elsewhere keep the
//! hooks' defaults, which are always correct (the HTTP layer then takes its ordinary path).
//!
//! From the HTTP layer, the seal also carries the token cache key's digest of the token it comes
//! with (the SHA-256 of its signature segment, see [`TokenKey`]), so that a request hashes its
//! token once: for the layer's cache lookup and, on a miss, for the verifier's.
//!
//! [`VerifyToken`]: crate::VerifyToken
//! [`TokenExtractor`]: crate::bearer::TokenExtractor

use crate::cache::TokenKey;
use crate::crypto::Sha256;

/// Proof that the caller is this crate. Public in a private module: nameable in a public trait's
/// signature, but neither nameable nor constructible outside the crate.
#[derive(Debug, Clone, Copy)]
pub struct Internal {
    /// The SHA-256 of the signature segment of the token passed with this value, if computed, and
    /// the position of the `.` before that segment.
    signature_sha256: Option<(Sha256, usize)>,
}

/// The seal without a digest.
pub(crate) const INTERNAL: Internal = Internal {
    signature_sha256: None,
};

impl Internal {
    /// The seal for `token`, with its cache key's digest: pass it only with these same bytes (the
    /// HTTP layer hashes the bytes it then hands to the verifier, or the copy it made of them).
    #[inline]
    pub(crate) fn hashed(token: &[u8]) -> Self {
        Self {
            signature_sha256: TokenKey::new(token).map(|key| (key.digest, key.signing_input.len())),
        }
    }

    /// The cache key of `token`, the bytes this seal was made for: its digest reused if it carries
    /// one, else computed now. `None` for bytes without a `.` (no JWS).
    #[inline]
    pub(crate) fn key(self, token: &[u8]) -> Option<TokenKey<'_>> {
        match self.signature_sha256 {
            Some((digest, dot)) => TokenKey::prehashed(token, digest, dot),
            None => TokenKey::new(token),
        }
    }
}

#[cfg(test)]
impl Internal {
    /// Whether this seal carries a digest (tests only).
    pub(crate) fn carries_digest(self) -> bool {
        self.signature_sha256.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::INTERNAL;
    use crate::{IssuerRegistry, Verifier, VerifyToken};

    /// Bytes over the size cap are refused before anything is hashed (`Rules::check_size`: "an
    /// oversized token costs nothing"): the seal the HTTP layer asks for must not hash them either,
    /// or a request of a header's full size (hyper takes ~400 KiB) costs a SHA-256 over all of it.
    #[test]
    fn an_oversized_token_is_not_hashed_for_the_seal() {
        let verifier = Verifier::shared_secret_builder(
            "https://auth.internal",
            "aud",
            b"0123456789abcdef0123456789abcdef",
        )
        .unwrap()
        .with_max_token_bytes(64)
        .build()
        .unwrap();
        let registry = IssuerRegistry::builder()
            .with_verifier(verifier.clone())
            .with_max_token_bytes(64)
            .build()
            .unwrap();
        let token = format!("a.b.{}", "s".repeat(1000));
        assert!(verifier.hash_token(b"a.b.c", INTERNAL).carries_digest());
        assert!(
            !verifier
                .hash_token(token.as_bytes(), INTERNAL)
                .carries_digest(),
            "verifier: hashed a token over its cap"
        );
        assert!(
            !registry
                .hash_token(token.as_bytes(), INTERNAL)
                .carries_digest(),
            "registry: hashed a token over its cap"
        );
        // A confirmed verifier (object binding) hands the seal of its inner verifier on: one digest
        // per request, for the inner cache and the confirmation's key alike.
        struct Never;
        impl crate::confirm::Confirm for Never {
            fn confirmed(&self, _: &crate::cache::TokenKey<'_>) -> bool {
                false
            }
            async fn confirm(
                &self,
                _: &str,
                _: &crate::cache::TokenKey<'_>,
            ) -> Result<(), crate::VerifyError> {
                Err(crate::VerifyError::ReviewRefused { error: None })
            }
        }
        let bound = crate::confirm::Confirmed::new(verifier, Never);
        assert!(
            bound.hash_token(b"a.b.c", INTERNAL).carries_digest(),
            "object binding: the token hashed again for its confirmation"
        );
        assert!(
            !bound
                .hash_token(token.as_bytes(), INTERNAL)
                .carries_digest(),
            "object binding: hashed a token over its cap"
        );
    }
}
