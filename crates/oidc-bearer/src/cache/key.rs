//! How the cache knows a token ([`TokenKey`]) and what it re-checks on a hit ([`Times`], [`KeyRef`]).

use std::sync::{Arc, Weak};

use crate::Algorithm;
use crate::crypto::{Sha256, sha256};
use crate::keys::Jwks;

/// How the token cache knows a token: the SHA-256 of its signature segment, and its signing input.
///
/// A compact JWS is `header '.' payload '.' signature` (RFC 7515 §7.1), and its signing input is
/// everything before the last `.` (§5.2). The signature is the one part a caller must hold to
/// present the token: it is hashed and never kept. The signing input is kept in the entry and
/// compared byte for byte on a hit, so a hit means the same bytes as a token that verified, and a
/// different token can match only through a SHA-256 collision on its signature segment.
///
/// The bytes may be unchecked (the HTTP layer looks a token up before its syntax check): a hit
/// equals a token that passed every check, and anything else is a miss.
///
/// Opaque: a key made by [`new`](Self::new) always belongs to the bytes it borrows, so a digest
/// can never be paired with another token's signing input outside this crate (see
/// [`Confirm`](crate::confirm::Confirm)).
#[derive(Clone, Copy)]
pub struct TokenKey<'a> {
    /// SHA-256 of the signature segment: the map key.
    pub(crate) digest: Sha256,
    /// Header and payload, as sent.
    pub(crate) signing_input: &'a [u8],
}

impl<'a> TokenKey<'a> {
    /// The key of `token`; `None` for bytes without a `.`, which are no JWS and cannot be cached.
    #[inline]
    pub fn new(token: &'a [u8]) -> Option<Self> {
        let dot = memchr::memrchr(b'.', token)?;
        Some(Self {
            digest: sha256(&token[dot + 1..]),
            signing_input: &token[..dot],
        })
    }

    /// The key of `token` with `digest` and the position of its last `.` found before, by
    /// [`new`](Self::new) over the same bytes
    /// (the HTTP layer's lookup, handed on to the verifier in a `Presented`: one hash per request).
    /// It must be `token`'s: with the digest of another token's signature, an entry filed under
    /// that signature would match these bytes by their signing input alone (the rule above needs
    /// both). Its one caller, `Presented::key`, holds a digest made from the bytes it comes with;
    /// debug builds (every test) recompute and compare.
    #[inline]
    pub(crate) fn prehashed(token: &'a [u8], digest: Sha256, dot: usize) -> Option<Self> {
        if token.get(dot) != Some(&b'.') {
            return None;
        }
        debug_assert_eq!(
            (digest, Some(dot)),
            (sha256(&token[dot + 1..]), memchr::memrchr(b'.', token)),
            "a digest reused for other bytes"
        );
        Some(Self {
            digest,
            signing_input: &token[..dot],
        })
    }
}

impl<'a> TokenKey<'a> {
    /// The SHA-256 of the token's signature segment (the map key).
    #[inline]
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The token's signing input (header and payload, as sent), to compare byte for byte.
    #[inline]
    pub fn signing_input(&self) -> &'a [u8] {
        self.signing_input
    }
}

impl std::fmt::Debug for TokenKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("signing_input_len", &self.signing_input.len())
            .finish_non_exhaustive()
    }
}

/// The validity window of a verified token, in seconds since the epoch, re-checked on every hit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Times {
    pub(crate) exp: Option<f64>,
    pub(crate) nbf: Option<f64>,
    pub(crate) iat: Option<f64>,
}

/// The key a token was verified with: the key set it was found in and the key's material.
pub(crate) struct KeyRef {
    /// A `Weak`, not a pointer: while it lives the allocation is not reused, so pointer equality with
    /// the current set means the same set; it does not keep the set's keys alive.
    jwks: Weak<Jwks>,
    kid: Option<Box<str>>,
    alg: Algorithm,
    fingerprint: Sha256,
}

impl KeyRef {
    pub(crate) fn new(
        jwks: &Arc<Jwks>,
        kid: Option<&str>,
        alg: Algorithm,
        fingerprint: &Sha256,
    ) -> Self {
        Self {
            jwks: Arc::downgrade(jwks),
            kid: kid.map(Into::into),
            alg,
            fingerprint: *fingerprint,
        }
    }

    /// Whether `current` still selects the same key for this token. The common case (the key set
    /// has not changed) is one pointer comparison; after a refresh, one `kid` lookup, and the entry
    /// then follows the new set.
    pub(super) fn still_in(&mut self, current: &Arc<Jwks>) -> bool {
        if std::ptr::eq(self.jwks.as_ptr(), Arc::as_ptr(current)) {
            return true;
        }
        match current.select(self.kid.as_deref(), self.alg) {
            Ok(key) if *key.fingerprint() == self.fingerprint => {
                self.jwks = Arc::downgrade(current);
                true
            }
            _ => false,
        }
    }
}
