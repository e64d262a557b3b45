//! The keys of a JWK Set that were skipped as unusable, with why, kept within a fixed bound.

use std::fmt;

/// How many skipped keys a set remembers with their reasons; [`Jwks::skipped`](super::Jwks::skipped) counts them all, so a
/// document with thousands of junk keys costs no more than this many short records.
pub(crate) const MAX_SKIPPED_KEYS_KEPT: usize = 16;
/// A skipped key's `kid` is kept up to this many characters.
const MAX_SKIPPED_KID_CHARS: usize = 64;
/// A skip reason is kept up to this many characters (reasons quote the odd value they found).
const MAX_SKIP_REASON_CHARS: usize = 160;

/// A JWK that a key set skipped as unusable, and why: for the log line that tells an operator which
/// of the issuer's keys this library will never accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkippedKey {
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
    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
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
impl SkippedKey {
    /// Why the key was skipped, in a few words (at most 160 characters).
    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }

    /// The key's position in the `keys` array of the document it came from, for keys without `kid`.
    pub(crate) fn index(&self) -> usize {
        self.index
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

    /// A key set with thousands of junk keys counts them all but keeps only a few short records.
    #[test]
    fn skipped_key_records_are_bounded() {
        use serde_json::{Value, json};

        use super::super::Jwks;

        let parse = |keys: Value| {
            Jwks::from_json(&serde_json::to_vec(&json!({ "keys": keys })).unwrap()).unwrap()
        };
        let long = "k".repeat(10_000);
        let junk: Vec<Value> = (0..5_000)
            .map(|i| json!({"kty": format!("junk-{i}-{long}"), "kid": format!("{i}-{long}")}))
            .collect();
        let jwks = parse(Value::Array(junk));
        assert_eq!(jwks.skipped(), 5_000);
        assert_eq!(jwks.skipped_keys().len(), MAX_SKIPPED_KEYS_KEPT);
        for (i, skipped) in jwks.skipped_keys().iter().enumerate() {
            let kid = skipped.kid().unwrap();
            assert!(kid.starts_with(&format!("{i}-kkk")), "{kid:.20}");
            assert!(kid.chars().count() <= 65, "kid cut to 64 characters and …");
            assert!(skipped.reason().chars().count() <= 161, "reason cut");
            assert!(skipped.reason().starts_with("unsupported kty"));
            assert_eq!(skipped.index(), i, "its place in the document");
        }
        // Merging keeps the bound too.
        let merged = parse(json!([{"kty": "x"}])).merge(jwks);
        assert_eq!(merged.skipped(), 5_001);
        assert_eq!(merged.skipped_keys().len(), MAX_SKIPPED_KEYS_KEPT);
        assert_eq!(merged.skipped_keys()[0].reason(), r#"unsupported kty "x""#);
        assert_eq!(
            merged.skipped_keys()[0].to_string(),
            r#"key #0 (no kid): unsupported kty "x""#
        );
    }
}
