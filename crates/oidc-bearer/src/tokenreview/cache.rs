//! The answer cache: TokenReview answers by a SHA-256 (never the token itself), each until its own
//! deadline, bounded in entries and bytes (oldest out first).
//!
//! The key is the SHA-256 of the token's signature segment, as the token cache's is; for tokens
//! verified nowhere else (the `TokenReview` verifier) an entry also keeps the signing input
//! (header and payload, which is no credential without the signature) and a hit must match it
//! byte for byte, so that a hit is the same token up to a SHA-256 collision, for a third of the
//! hashing of the whole token.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::claims::TokenReviewClaims;
use crate::crypto::Sha256;
use crate::error::VerifyError;

/// An answer: the claims of an accepted token, or why it was refused or could not be reviewed.
pub(crate) type Answer = Result<Arc<TokenReviewClaims>, VerifyError>;

/// What an entry costs beyond its strings: the map slot, the queue slot, the `Arc`, the digest.
const ENTRY_OVERHEAD: usize = 192;
/// Shards hold at least this many entries and bytes, so that small bounds stay (nearly) exact.
const MIN_ENTRIES_PER_SHARD: usize = 128;
const MIN_BYTES_PER_SHARD: usize = 64 * 1024;
const MAX_SHARDS: usize = 8;

pub(crate) struct AnswerCache {
    shards: Box<[Mutex<Shard>]>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Sha256, Slot>,
    /// Insertion order for eviction; entries replaced since are skipped by their `seq`.
    order: VecDeque<(Sha256, u64)>,
    bytes: usize,
    seq: u64,
}

struct Slot {
    /// The signing input the answer is for, when it must be compared.
    input: Option<Box<[u8]>>,
    answer: Answer,
    /// Seconds since the epoch, by the verifier's clock: when the answer was kept, and until when.
    stored_at: f64,
    expires_at: f64,
    bytes: usize,
    seq: u64,
}

impl AnswerCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        let mut shards = MAX_SHARDS;
        while shards > 1
            && (max_entries / shards < MIN_ENTRIES_PER_SHARD
                || max_bytes / shards < MIN_BYTES_PER_SHARD)
        {
            shards /= 2;
        }
        Self {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            max_entries: (max_entries / shards).max(1),
            max_bytes: max_bytes / shards,
        }
    }

    fn shard(&self, key: &Sha256) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[usize::from(key[31]) % self.shards.len()];
        // Every mutation completes before anything that can panic: keep serving.
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer for `key` (and `input`, if the entry keeps one) if it is still current at
    /// `now`; an expired one is dropped. So is one kept after `now`: the clock was set back, and
    /// the answer's age is unknown — kept, it would outlive its TTL by as much as the clock went
    /// back (an acceptance is what bounds how long a deleted pod's token works).
    pub(crate) fn get(&self, key: &Sha256, input: &[u8], now: f64) -> Option<Answer> {
        let mut shard = self.shard(key);
        let slot = shard.map.get(key)?;
        if slot.input.as_deref().is_some_and(|kept| kept != input) {
            return None;
        }
        if slot.stored_at <= now && now < slot.expires_at {
            return Some(slot.answer.clone());
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
        expires_at: f64,
        now: f64,
    ) {
        if expires_at <= now {
            self.shard(&key).remove(&key);
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
        if bytes > self.max_bytes {
            return;
        }
        let mut shard = self.shard(&key);
        shard.remove(&key);
        shard.seq += 1;
        let seq = shard.seq;
        shard.bytes += bytes;
        shard.map.insert(
            key,
            Slot {
                input,
                answer,
                stored_at: now,
                expires_at,
                bytes,
                seq,
            },
        );
        shard.order.push_back((key, seq));
        while shard.map.len() > self.max_entries || shard.bytes > self.max_bytes {
            let Some((old, old_seq)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&old).is_some_and(|s| s.seq == old_seq) {
                shard.remove(&old);
            }
        }
        // Replaced keys leave stale queue entries: compact when they outnumber the live ones.
        if shard.order.len() > 2 * shard.map.len() + 16 {
            let Shard { map, order, .. } = &mut *shard;
            order.retain(|(k, s)| map.get(k).is_some_and(|slot| slot.seq == *s));
        }
    }

    /// How many answers are kept, and their bytes as counted for the bound.
    pub(crate) fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), shard| {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            (n + shard.map.len(), b + shard.bytes)
        })
    }
}

impl Shard {
    fn remove(&mut self, key: &Sha256) {
        if let Some(slot) = self.map.remove(key) {
            self.bytes -= slot.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(name: &str) -> Answer {
        Ok(Arc::new(
            serde_json::from_value(serde_json::json!({ "username": name })).unwrap(),
        ))
    }

    #[test]
    fn answers_last_until_their_deadline() {
        let cache = AnswerCache::new(10, 1 << 20);
        cache.insert([1; 32], None, claims("a"), 110.0, 100.0);
        assert!(cache.get(&[1; 32], b"", 109.9).is_some());
        assert!(cache.get(&[1; 32], b"", 110.0).is_none());
        assert_eq!(cache.size().0, 0, "an expired answer is dropped when found");
        cache.insert([2; 32], None, claims("b"), 100.0, 100.0);
        assert!(
            cache.get(&[2; 32], b"", 99.0).is_none(),
            "never kept past its deadline"
        );
        // The clock set back before an answer was kept: it is not current, and is dropped.
        cache.insert([3; 32], None, claims("c"), 130.0, 100.0);
        assert!(cache.get(&[3; 32], b"", 100.0).is_some());
        assert!(cache.get(&[3; 32], b"", 99.9).is_none());
        assert!(cache.get(&[3; 32], b"", 100.0).is_none(), "dropped");
    }

    #[test]
    fn the_oldest_answers_go_first_past_either_bound() {
        let cache = AnswerCache::new(2, 1 << 20);
        for k in 1..=3u8 {
            cache.insert([k; 32], None, claims("a"), 200.0, 100.0);
        }
        assert!(cache.get(&[1; 32], b"", 100.0).is_none());
        assert!(
            cache.get(&[2; 32], b"", 100.0).is_some() && cache.get(&[3; 32], b"", 100.0).is_some()
        );
        // Replacing an answer moves it to the back of the queue.
        cache.insert([2; 32], None, claims("a"), 200.0, 100.0);
        cache.insert([4; 32], None, claims("a"), 200.0, 100.0);
        assert!(cache.get(&[3; 32], b"", 100.0).is_none());
        assert!(cache.get(&[2; 32], b"", 100.0).is_some());

        let big = "x".repeat(1000);
        let cache = AnswerCache::new(100, 2 * (ENTRY_OVERHEAD + 1000) + 10);
        for k in 1..=3u8 {
            cache.insert([k; 32], None, claims(&big), 200.0, 100.0);
        }
        let (entries, bytes) = cache.size();
        assert_eq!(entries, 2);
        assert!(bytes <= 2 * (ENTRY_OVERHEAD + 1000) + 10);
        assert!(cache.get(&[1; 32], b"", 100.0).is_none());
        // One answer larger than the whole bound is not kept at all.
        cache.insert([9; 32], None, claims(&"y".repeat(10_000)), 200.0, 100.0);
        assert!(cache.get(&[9; 32], b"", 100.0).is_none());
        assert_eq!(cache.size().0, 2);
    }

    #[test]
    fn a_kept_signing_input_must_match() {
        let cache = AnswerCache::new(10, 1 << 20);
        cache.insert(
            [1; 32],
            Some(b"header.payload".as_slice().into()),
            claims("a"),
            200.0,
            100.0,
        );
        assert!(cache.get(&[1; 32], b"header.payload", 100.0).is_some());
        assert!(cache.get(&[1; 32], b"header.other", 100.0).is_none());
        assert!(
            cache.get(&[1; 32], b"header.payload", 100.0).is_some(),
            "a mismatch evicts nothing"
        );
    }
}
