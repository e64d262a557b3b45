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
    pub(crate) fn hashed(token: &[u8]) -> Self {
        Self {
            signature_sha256: TokenKey::new(token).map(|key| (key.digest, key.signing_input.len())),
        }
    }

    /// The cache key of `token`, the bytes this seal was made for: its digest reused if it carries
    /// one, else computed now. `None` for bytes without a `.` (no JWS).
    pub(crate) fn key(self, token: &[u8]) -> Option<TokenKey<'_>> {
        match self.signature_sha256 {
            Some((digest, dot)) => TokenKey::prehashed(token, digest, dot),
            None => TokenKey::new(token),
        }
    }
}
