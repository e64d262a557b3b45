//! A bounded map from token digests to values, for the issuer registry.

use std::collections::{HashMap, VecDeque};

use super::key::{Digest, DigestHasher};
use super::shard::Shards;
use super::{MAX_SHARDS, MIN_ENTRIES_PER_SHARD};
use crate::crypto::Sha256;

/// A bounded map from token digests (of the signature segment, see
/// [`TokenKey`](super::TokenKey)) to values (an issuer registry's "which verifier last accepted a
/// token with this signature"), sharded like the token cache, the oldest entry evicted first. Like
/// the token cache, it is only written for tokens that verified; a value found here is only a hint,
/// the token cache it leads to decides.
pub(crate) struct DigestIndex<V> {
    shards: Shards<IndexShard<V>>,
    max_per_shard: usize,
}

struct IndexShard<V> {
    map: HashMap<Digest, V, DigestHasher>,
    /// Insertion order, oldest first: each digest of `map` once.
    order: VecDeque<Sha256>,
}

impl<V: Clone> DigestIndex<V> {
    /// An index of at most `max_entries` (at least one per shard).
    pub(crate) fn new(max_entries: usize) -> Self {
        let shards = MAX_SHARDS.min(max_entries.div_ceil(MIN_ENTRIES_PER_SHARD));
        let shards = Shards::new(shards, || IndexShard {
            map: HashMap::default(),
            order: VecDeque::new(),
        });
        Self {
            max_per_shard: (max_entries / shards.len()).max(1),
            shards,
        }
    }

    pub(crate) fn get(&self, digest: &Sha256) -> Option<V> {
        self.shards.of(digest).map.get(&Digest(*digest)).cloned()
    }

    /// Stores `value` for `digest` (replacing the value already there, which keeps its age).
    pub(crate) fn insert(&self, digest: &Sha256, value: V) {
        let mut shard = self.shards.of(digest);
        if shard.map.insert(Digest(*digest), value).is_some() {
            return;
        }
        shard.order.push_back(*digest);
        while shard.order.len() > self.max_per_shard {
            if let Some(oldest) = shard.order.pop_front() {
                shard.map.remove(&Digest(oldest));
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.each().map(|s| s.map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> Sha256 {
        crate::crypto::sha256(format!("token-{n}").as_bytes())
    }

    /// The index holds at most its bound under a stream of distinct digests, forgets the oldest
    /// first, and stays exact when digests are inserted again.
    #[test]
    fn the_digest_index_is_bounded_and_forgets_the_oldest_first() {
        let index = DigestIndex::new(100);
        assert_eq!(index.shards.len(), 2);
        for n in 0..10_000 {
            index.insert(&digest(n), n);
            assert!(index.len() <= 100);
        }
        assert!(index.len() >= 90, "{}", index.len());
        assert_eq!(index.get(&digest(9_999)), Some(9_999));
        assert_eq!(index.get(&digest(0)), None);
        // Within one shard, exactly the newest stay.
        let mut in_first: Vec<u32> = (0..10_000)
            .filter(|&n| usize::from(digest(n)[31]) % 2 == 0)
            .collect();
        let kept = in_first.split_off(in_first.len() - index.max_per_shard);
        assert!(kept.iter().all(|&n| index.get(&digest(n)) == Some(n)));
        assert!(in_first.iter().all(|&n| index.get(&digest(n)).is_none()));

        // Inserting a digest again replaces its value and keeps its age.
        for round in 0..3 {
            for n in 9_900..10_000 {
                index.insert(&digest(n), round);
                assert_eq!(index.get(&digest(n)), Some(round));
            }
            assert!(
                index.shards.each().all(|s| {
                    s.order.len() <= index.max_per_shard && s.map.len() == s.order.len()
                })
            );
        }
    }
}
