//! What only this crate can make: the seal of [`TokenExtractor`]'s unchecked read ([`Internal`]),
//! and the token [`VerifyToken`]'s performance hooks take ([`Presented`]).
//!
//! [`Internal`] is a value only this crate can make, taken as a hook's last argument, so that
//! outside the crate the hook can be neither called nor overridden (a sealed method); other
//! extractors keep its default, which is always correct.
//!
//! [`Presented`] carries a token's bytes with the token cache key's digest of those bytes (the
//! SHA-256 of its signature segment, see [`TokenKey`]) when the HTTP layer has computed it, so
//! that a request hashes its token once: for the layer's cache lookup and, on a miss, for the
//! verifier's. Bytes and digest come in one value, made here from the bytes themselves, so a
//! digest can never be paired with other bytes. That pairing would file a token under another
//! token's signature: a cache entry found by that digest would then match the other bytes by their
//! signing input alone, a forgery (see [`TokenKey`]). With the pairing impossible to express, the
//! hooks can be overridden outside the crate (`oidc-bearer-kubernetes`'s `TokenReview`).
//!
//! [`VerifyToken`]: crate::VerifyToken
//! [`TokenExtractor`]: crate::bearer::TokenExtractor

use std::fmt;

use crate::cache::TokenKey;
use crate::crypto::Sha256;

/// Proof that the caller is this crate. Public in a private module: nameable in a public trait's
/// signature, but neither nameable nor constructible outside the crate.
#[derive(Debug, Clone, Copy)]
pub struct Internal(());

/// The seal.
pub(crate) const INTERNAL: Internal = Internal(());

/// A token as the HTTP layer presents it to a [`VerifyToken`](crate::VerifyToken)'s hooks, and as
/// [`Confirmed`](crate::confirm::Confirmed) hands it to a [`Confirm`](crate::confirm::Confirm): the
/// token ([`get`](Self::get): its bytes, `B = [u8]`, before any syntax check; its text, `B = str`,
/// once checked), and the digest of its token cache key if computed (by the hooks' `hash_token`).
///
/// Made only inside `oidc-bearer`, from the bytes it carries: the digest, when there is one, is
/// always the digest of these bytes, so [`key`](Self::key) is always these bytes' key.
///
/// Outside the crate a `Presented` cannot be built, neither by its fields:
///
/// ```compile_fail,E0451
/// let token = oidc_bearer::Presented::<[u8]> { token: &b"a.b.c"[..], digest: None };
/// ```
///
/// nor by its constructors:
///
/// ```compile_fail,E0624
/// let token = oidc_bearer::Presented::<[u8]>::new(&b"a.b.c"[..]).hashed();
/// ```
///
/// nor by `Default`, nor by struct update syntax from one a hook was handed (review R2):
///
/// ```compile_fail,E0599
/// let token = oidc_bearer::Presented::<[u8]>::default();
/// ```
///
/// ```compile_fail,E0451
/// fn other<'a>(token: oidc_bearer::Presented<'a>, bytes: &'a [u8]) -> oidc_bearer::Presented<'a> {
///     oidc_bearer::Presented { token: bytes, ..token }
/// }
/// ```
///
/// The owned copy the HTTP layer's miss path keeps is not reachable either (so neither are its
/// fields, for `mem::swap`):
///
/// ```compile_fail,E0432
/// use oidc_bearer::PresentedBuf;
/// ```
///
/// A hook cannot keep the `Presented` it is handed past its call, to give it back later for
/// another request's bytes (review R2). An override that gives back the one it was handed compiles:
///
/// ```
/// use std::sync::Arc;
/// use oidc_bearer::{Presented, VerifyError, VerifyToken};
///
/// #[derive(Clone)]
/// struct GivesBack;
///
/// impl VerifyToken for GivesBack {
///     async fn verify_token<T>(&self, _: &str) -> Result<Arc<T>, VerifyError>
///     where
///         T: serde::de::DeserializeOwned + Send + Sync + 'static,
///     {
///         Err(VerifyError::Malformed { reason: "a test" })
///     }
///
///     fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
///         token
///     }
/// }
/// ```
///
/// and the same override keeping it for later does not:
///
/// ```compile_fail,E0521
/// use std::sync::{Arc, Mutex};
/// use oidc_bearer::{Presented, VerifyError, VerifyToken};
///
/// static KEPT: Mutex<Option<Presented<'static>>> = Mutex::new(None);
///
/// #[derive(Clone)]
/// struct Keeps;
///
/// impl VerifyToken for Keeps {
///     async fn verify_token<T>(&self, _: &str) -> Result<Arc<T>, VerifyError>
///     where
///         T: serde::de::DeserializeOwned + Send + Sync + 'static,
///     {
///         Err(VerifyError::Malformed { reason: "a test" })
///     }
///
///     fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
///         *KEPT.lock().unwrap().get_or_insert(token)
///     }
/// }
/// ```
pub struct Presented<'a, B: ?Sized = [u8]> {
    token: &'a B,
    /// The SHA-256 of the signature segment of `token` and the position of the `.` before it.
    digest: Option<(Sha256, usize)>,
}

impl<'a, B: ?Sized> Presented<'a, B> {
    /// The token: its bytes (`&[u8]`), or its text once checked (`&str`).
    #[inline]
    pub fn get(self) -> &'a B {
        self.token
    }
}

impl<'a, B: ?Sized + AsRef<[u8]>> Presented<'a, B> {
    /// `token`, without a digest.
    #[inline]
    pub(crate) fn new(token: &'a B) -> Self {
        Self {
            token,
            digest: None,
        }
    }

    /// The token's bytes.
    #[inline]
    fn bytes(self) -> &'a [u8] {
        self.token.as_ref()
    }

    /// The token's cache key: its digest reused if it carries one, else computed now. `None` for
    /// bytes without a `.` (no JWS).
    #[inline]
    pub fn key(self) -> Option<TokenKey<'a>> {
        match self.digest {
            Some((digest, dot)) => TokenKey::prehashed(self.bytes(), digest, dot),
            None => TokenKey::new(self.bytes()),
        }
    }

    /// The same token, carrying its digest (computed now unless it carries one already). Public for
    /// a verifier outside the crate (an issuer registry's `hash_token`): the digest is computed
    /// from these very bytes, so it changes nothing a reviewer must check.
    #[inline]
    pub fn hashed(self) -> Self {
        if self.digest.is_some() {
            return self;
        }
        Self {
            token: self.token,
            digest: TokenKey::new(self.bytes()).map(|key| (key.digest, key.signing_input.len())),
        }
    }

    /// Whether it carries a digest.
    #[cfg(test)]
    pub(crate) fn carries_digest(self) -> bool {
        self.digest.is_some()
    }
}

impl<'a> Presented<'a> {
    /// `token`, the checked text of these bytes, with their digest: kept only when `token` is these
    /// very bytes (the same memory), so that it is never paired with others; else none.
    #[inline]
    pub(crate) fn checked(self, token: &'a str) -> Presented<'a, str> {
        Presented {
            token,
            digest: self
                .digest
                .filter(|_| std::ptr::eq(self.token, token.as_bytes())),
        }
    }
}

// By hand: derived, they would require `B: Clone` (which `str` and `[u8]` are not).
impl<B: ?Sized> Clone for Presented<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: ?Sized> Copy for Presented<'_, B> {}

/// Never the token (a credential): its length and whether it carries a digest.
impl<B: ?Sized + AsRef<[u8]>> fmt::Debug for Presented<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("len", &self.token.as_ref().len())
            .field("hashed", &self.digest.is_some())
            .finish()
    }
}

/// A copy of a checked token with the digest of its bytes: what the HTTP layer's verification
/// future owns on a miss (the request's headers stay with the request).
pub(crate) struct PresentedBuf {
    token: Box<str>,
    digest: Option<(Sha256, usize)>,
}

impl PresentedBuf {
    /// A copy of `token`'s bytes, with their digest (the copy's: the same bytes).
    #[inline]
    pub(crate) fn new(token: Presented<'_, str>) -> Self {
        Self {
            token: token.token.into(),
            digest: token.digest,
        }
    }

    /// The copy, presented.
    #[inline]
    pub(crate) fn get(&self) -> Presented<'_, str> {
        Presented {
            token: &self.token,
            digest: self.digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Presented;
    use crate::{Verifier, VerifyToken};

    /// Bytes over the size cap are refused before anything is hashed (`Rules::check_size`: "an
    /// oversized token costs nothing"): the digest the HTTP layer asks for must not be computed for
    /// them either, or a request of a header's full size (hyper takes ~400 KiB) costs a SHA-256 over
    /// all of it. (An issuer registry's half: oidc-bearer-registry's tests/it/presented.rs.)
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
        let token = format!("a.b.{}", "s".repeat(1000));
        let oversized = Presented::new(token.as_bytes());
        let small = Presented::new(&b"a.b.c"[..]);
        assert!(verifier.hash_token(small).carries_digest());
        assert!(
            !verifier.hash_token(oversized).carries_digest(),
            "verifier: hashed a token over its cap"
        );
        // A confirmed verifier (object binding) hands the seal of its inner verifier on: one digest
        // per request, for the inner cache and the confirmation's key alike.
        struct Never;
        impl crate::confirm::Confirm for Never {
            fn confirmed(&self, _: &crate::cache::TokenKey<'_>) -> bool {
                false
            }
            async fn confirm(&self, _: Presented<'_, str>) -> Result<(), crate::VerifyError> {
                Err(crate::VerifyError::ReviewRefused { error: None })
            }
        }
        let bound = crate::confirm::Confirmed::new(verifier, Never);
        assert!(
            bound.hash_token(small).carries_digest(),
            "object binding: the token hashed again for its confirmation"
        );
        assert!(
            !bound.hash_token(oversized).carries_digest(),
            "object binding: hashed a token over its cap"
        );
    }

    /// A checked token keeps the digest of the unchecked bytes only when it is those very bytes:
    /// equal bytes elsewhere, or other bytes, get none (their own is computed where needed).
    #[test]
    fn a_digest_follows_only_the_bytes_it_was_computed_from() {
        let header = String::from("h.p.sig");
        let same = &header[..];
        let copy = header.clone();
        let hashed = Presented::new(header.as_bytes()).hashed();
        assert!(hashed.checked(same).carries_digest());
        assert!(
            !hashed.checked(&copy).carries_digest(),
            "equal bytes elsewhere"
        );
        assert!(!hashed.checked(&same[..5]).carries_digest(), "a prefix");
        assert!(!hashed.checked("x.y.sig").carries_digest(), "other bytes");
        let buf = super::PresentedBuf::new(hashed.checked(same));
        assert!(buf.get().carries_digest());
        let parts = |key: crate::cache::TokenKey<'_>| (key.digest, key.signing_input.to_vec());
        assert_eq!(
            buf.get().key().map(parts),
            crate::cache::TokenKey::new(same.as_bytes()).map(parts)
        );
    }
}
