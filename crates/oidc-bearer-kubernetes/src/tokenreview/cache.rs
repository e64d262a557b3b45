//! The answer cache: TokenReview answers by a SHA-256 (never the token itself), each until its own
//! deadline, bounded in entries and bytes (oldest out first), in the digest map of the token cache.
//!
//! The key is the SHA-256 of the token's signature segment, as the token cache's is; an entry
//! also keeps the signing input (header and payload, which is no credential without the
//! signature) and a hit must match it byte for byte, so that a hit is the same token up to a
//! SHA-256 collision, for a third of the hashing of the whole token.

use std::hash::RandomState;
use std::sync::Arc;
use std::time::Duration;

use oidc_bearer_shared::map::{DigestMap, MIN_ENTRIES_PER_SHARD, Value};

use super::claims::TokenReviewClaims;
use crate::Sha256;
use oidc_bearer::VerifyError;

/// An answer: the claims of an accepted token, or why it was refused or could not be reviewed.
pub(crate) type Answer = Result<Arc<TokenReviewClaims>, VerifyError>;

/// What an entry costs beyond its strings: the map slot, the queue slot, the `Arc`, the digest.
const ENTRY_OVERHEAD: usize = 192;

/// The answers, hashed with a keyed hasher: refusals of any well-formed token are kept, so an
/// attacker chooses digests here.
pub(crate) struct AnswerCache {
    map: DigestMap<Kept, RandomState>,
}

struct Kept {
    /// The signing input the answer is for, when it must be compared.
    input: Option<Box<[u8]>>,
    answer: Answer,
    /// By the verifier's clock: when the answer was kept, and until when.
    stored_at: Duration,
    expires_at: Duration,
    bytes: usize,
}

impl Value for Kept {
    fn size(&self) -> usize {
        self.bytes
    }

    fn expires(&self) -> Duration {
        self.expires_at
    }

    fn kept_input(&self) -> Option<&[u8]> {
        self.input.as_deref()
    }
}

impl AnswerCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            map: DigestMap::new(max_entries, max_bytes, MIN_ENTRIES_PER_SHARD),
        }
    }

    /// The answer for `key` (and `input`, if the entry keeps one) if it is still current at
    /// `now`; an expired one is dropped. So is one kept after `now`: the clock was set back, and
    /// the answer's age is unknown — kept, it would outlive its TTL by as much as the clock went
    /// back (an acceptance is what bounds how long a deleted pod's token works).
    pub(crate) fn get(&self, key: &Sha256, input: &[u8], now: Duration) -> Option<Answer> {
        let mut shard = self.map.lock(key);
        let kept = &shard.find(key, input)?.value;
        if kept.stored_at <= now && now < kept.expires_at {
            return Some(kept.answer.clone());
        }
        shard.remove(key);
        None
    }

    /// Keeps `answer` for `key` until `expires_at` (nothing when that is not after `now`), evicting
    /// the oldest entries past the bounds.
    pub(crate) fn insert(
        &self,
        key: Sha256,
        input: Option<Box<[u8]>>,
        answer: Answer,
        expires_at: Duration,
        now: Duration,
    ) {
        if expires_at <= now {
            self.map.lock(&key).remove(&key);
            return;
        }
        let bytes = ENTRY_OVERHEAD
            + input.as_ref().map_or(0, |i| i.len())
            + match &answer {
                Ok(claims) => claims.weight(),
                Err(error) => match error {
                    VerifyError::ReviewRefused { error } => error.as_ref().map_or(0, String::len),
                    _ => 64,
                },
            };
        let kept = Kept {
            input,
            answer,
            stored_at: now,
            expires_at,
            bytes,
        };
        self.map.lock(&key).insert(&key, kept, now);
    }

    /// How many answers are kept, and their bytes as counted for the bound.
    pub(crate) fn size(&self) -> (usize, usize) {
        let stats = self.map.stats();
        (stats.entries, stats.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch.
    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn claims(name: &str) -> Answer {
        Ok(Arc::new(
            serde_json::from_value(serde_json::json!({ "username": name })).unwrap(),
        ))
    }

    #[test]
    fn answers_last_until_their_deadline() {
        let cache = AnswerCache::new(10, 1 << 20);
        cache.insert([1; 32], None, claims("a"), s(110.0), s(100.0));
        assert!(cache.get(&[1; 32], b"", s(109.9)).is_some());
        assert!(cache.get(&[1; 32], b"", s(110.0)).is_none());
        assert_eq!(cache.size().0, 0, "an expired answer is dropped when found");
        cache.insert([2; 32], None, claims("b"), s(100.0), s(100.0));
        assert!(
            cache.get(&[2; 32], b"", s(99.0)).is_none(),
            "never kept past its deadline"
        );
        // The clock set back before an answer was kept: it is not current, and is dropped.
        cache.insert([3; 32], None, claims("c"), s(130.0), s(100.0));
        assert!(cache.get(&[3; 32], b"", s(100.0)).is_some());
        assert!(cache.get(&[3; 32], b"", s(99.9)).is_none());
        assert!(cache.get(&[3; 32], b"", s(100.0)).is_none(), "dropped");
    }

    #[test]
    fn the_oldest_answers_go_first_past_either_bound() {
        let cache = AnswerCache::new(2, 1 << 20);
        for k in 1..=3u8 {
            cache.insert([k; 32], None, claims("a"), s(200.0), s(100.0));
        }
        assert!(cache.get(&[1; 32], b"", s(100.0)).is_none());
        assert!(
            cache.get(&[2; 32], b"", s(100.0)).is_some()
                && cache.get(&[3; 32], b"", s(100.0)).is_some()
        );
        // Replacing an answer moves it to the back of the queue.
        cache.insert([2; 32], None, claims("a"), s(200.0), s(100.0));
        cache.insert([4; 32], None, claims("a"), s(200.0), s(100.0));
        assert!(cache.get(&[3; 32], b"", s(100.0)).is_none());
        assert!(cache.get(&[2; 32], b"", s(100.0)).is_some());

        let big = "x".repeat(1000);
        let cache = AnswerCache::new(100, 2 * (ENTRY_OVERHEAD + 1000) + 10);
        for k in 1..=3u8 {
            cache.insert([k; 32], None, claims(&big), s(200.0), s(100.0));
        }
        let (entries, bytes) = cache.size();
        assert_eq!(entries, 2);
        assert!(bytes <= 2 * (ENTRY_OVERHEAD + 1000) + 10);
        assert!(cache.get(&[1; 32], b"", s(100.0)).is_none());
        // One answer larger than the whole bound is not kept at all.
        cache.insert(
            [9; 32],
            None,
            claims(&"y".repeat(10_000)),
            s(200.0),
            s(100.0),
        );
        assert!(cache.get(&[9; 32], b"", s(100.0)).is_none());
        assert_eq!(cache.size().0, 2);
    }

    #[test]
    fn a_kept_signing_input_must_match() {
        let cache = AnswerCache::new(10, 1 << 20);
        cache.insert(
            [1; 32],
            Some(b"header.payload".as_slice().into()),
            claims("a"),
            s(200.0),
            s(100.0),
        );
        assert!(cache.get(&[1; 32], b"header.payload", s(100.0)).is_some());
        assert!(cache.get(&[1; 32], b"header.other", s(100.0)).is_none());
        assert!(
            cache.get(&[1; 32], b"header.payload", s(100.0)).is_some(),
            "a mismatch evicts nothing"
        );
    }
}
