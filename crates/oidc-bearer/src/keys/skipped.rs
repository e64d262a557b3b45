//! The keys of a JWK Set that were skipped as unusable, with why, kept within a fixed bound.

use std::fmt;

/// How many skipped keys a set remembers with their reasons; [`Jwks::skipped`](super::Jwks::skipped) counts them all, so a
/// document with thousands of junk keys costs no more than this many short records.
pub const MAX_SKIPPED_KEYS_KEPT: usize = 16;
/// A skipped key's `kid` is kept up to this many characters.
const MAX_SKIPPED_KID_CHARS: usize = 64;
/// A skip reason is kept up to this many characters (reasons quote the odd value they found).
const MAX_SKIP_REASON_CHARS: usize = 160;

/// A JWK that a key set skipped as unusable, and why: for the log line that tells an operator which
/// of the issuer's keys this library will never accept.
///
/// ```
/// use oidc_bearer::keys::Jwks;
///
/// let jwks = Jwks::from_json(br#"{"keys": [{"kty": "RSA", "kid": "k1", "use": "enc"}]}"#).unwrap();
/// assert_eq!(jwks.skipped(), 1);
/// let skipped = &jwks.skipped_keys()[0];
/// assert_eq!(skipped.kid(), Some("k1"));
/// assert_eq!(skipped.reason(), r#"use "enc" is not "sig""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    index: usize,
    kid: Option<String>,
    reason: String,
}

impl SkippedKey {
    pub(super) fn new(index: usize, kid: Option<&str>, reason: &str) -> Self {
        Self {
            index,
            kid: kid.map(|kid| truncate(kid, MAX_SKIPPED_KID_CHARS)),
            reason: truncate(reason, MAX_SKIP_REASON_CHARS),
        }
    }

    /// The key's `kid`, if it had one that is a string (long ids are cut to 64 characters).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Why the key was skipped, in a few words (at most 160 characters).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The key's position in the `keys` array of the document it came from, for keys without `kid`.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {kid:?}: {}", self.reason),
            None => write!(f, "key #{} (no kid): {}", self.index, self.reason),
        }
    }
}

/// `s` cut to at most `max` characters, on a character boundary, marked with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        // Multi-byte characters are never split.
        assert_eq!(truncate("ééééé", 2), "éé…");
        let skipped = SkippedKey::new(3, Some(&"ü".repeat(100)), &"x".repeat(1000));
        assert_eq!(
            skipped.kid().unwrap().chars().count(),
            MAX_SKIPPED_KID_CHARS + 1
        );
        assert_eq!(skipped.reason().chars().count(), MAX_SKIP_REASON_CHARS + 1);
        assert_eq!(skipped.index(), 3);
    }
}
