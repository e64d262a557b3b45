//! The cache's shards: independent locks, one chosen by a token's digest, each holding its entries
//! in a vector scanned by a CLOCK hand.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::key::{Digest, DigestHasher, KeyRef, Times, TokenKey};
use super::{ENTRY_OVERHEAD, TokenCacheStats};
use crate::crypto::Sha256;
use crate::keys::Jwks;

/// Independent locks, the one for a digest chosen by the digest itself: the token cache's shards
/// and the digest index's.
pub(crate) struct Shards<T> {
    locks: Box<[Mutex<T>]>,
}

impl<T> Shards<T> {
    /// `count` shards (at least one), each made by `make`.
    pub(crate) fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        Self {
            locks: (0..count.max(1)).map(|_| Mutex::new(make())).collect(),
        }
    }

    /// How many shards there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.locks.len()
    }

    /// The shard of `digest`, locked.
    pub(crate) fn of(&self, digest: &Sha256) -> MutexGuard<'_, T> {
        // The digest is uniform: its last byte picks the shard, its first eight the bucket
        // (see `Digest`).
        lock(&self.locks[usize::from(digest[31]) % self.locks.len()])
    }

    /// Every shard, locked one after the other.
    pub(crate) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, T>> {
        self.locks.iter().map(lock)
    }
}

/// Locks a shard, recovering it from a poisoned lock. A panic while holding the lock cannot leave a
/// shard half-written: every mutation completes before anything that can panic. Keep serving.
fn lock<T>(shard: &Mutex<T>) -> MutexGuard<'_, T> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Decoded claims, shared with every request that presents the token.
pub(crate) type SharedClaims = Arc<dyn Any + Send + Sync>;

/// A verified token.
pub(crate) struct Entry {
    /// The token's signing input, compared on every hit (see [`TokenKey`]).
    pub(super) signing_input: Box<[u8]>,
    pub(super) times: Times,
    /// `exp + leeway`: past it the entry is useless and evicted first.
    pub(super) stale_after: f64,
    pub(super) key: KeyRef,
    /// The claims decoded per type, so a hit hands out the same `Arc` without decoding.
    pub(super) claims: Vec<(TypeId, SharedClaims)>,
    /// The payload's length: what each further claims type adds to `size`.
    pub(super) payload_len: usize,
    pub(super) size: usize,
    /// CLOCK's reference bit: set by a hit, cleared by the passing hand.
    pub(super) referenced: bool,
}

impl Entry {
    pub(crate) fn new(
        token: &TokenKey<'_>,
        times: Times,
        leeway: f64,
        key: KeyRef,
        claims: Option<(TypeId, SharedClaims)>,
        payload_len: usize,
    ) -> Self {
        let typed = usize::from(claims.is_some());
        let signing_input: Box<[u8]> = token.signing_input.into();
        Self {
            size: ENTRY_OVERHEAD + signing_input.len() + typed * payload_len,
            signing_input,
            times,
            stale_after: times.exp.map_or(f64::INFINITY, |exp| exp + leeway),
            key,
            claims: claims.into_iter().collect(),
            payload_len,
            referenced: false,
        }
    }

    pub(super) fn claims_of(&self, type_id: TypeId) -> Option<SharedClaims> {
        self.claims
            .iter()
            .find(|(t, _)| *t == type_id)
            .map(|(_, claims)| claims.clone())
    }
}

/// An entry and the digest it is found by.
pub(super) struct Slot {
    pub(super) digest: Sha256,
    pub(super) entry: Entry,
}

/// One lock's worth of entries: a vector scanned by the CLOCK hand, and an index into it.
#[derive(Default)]
pub(super) struct Shard {
    pub(super) index: HashMap<Digest, usize, DigestHasher>,
    pub(super) slots: Vec<Slot>,
    hand: usize,
    pub(super) bytes: usize,
    /// The counters (its `entries` and `bytes` stay 0: `stats` reads them off the shard itself).
    pub(super) stats: TokenCacheStats,
}

impl Shard {
    /// The slot of `token`: its signature's digest found, and its signing input the same bytes.
    pub(super) fn find(&self, token: &TokenKey<'_>) -> Option<usize> {
        let &i = self.index.get(&Digest(token.digest))?;
        // Not constant-time, and need not be: reaching this comparison takes the signature of a
        // token that verified (its one secret part), and what it compares is no secret.
        (*self.slots[i].entry.signing_input == *token.signing_input).then_some(i)
    }

    /// The slot of `token` if its entry still holds: its times pass `times_ok` and its key is still
    /// in `keys`. An entry failing either is dropped (and counted); one whose signing input differs
    /// is left alone (the token presented is not the one cached).
    pub(super) fn valid(
        &mut self,
        token: &TokenKey<'_>,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
    ) -> Option<usize> {
        let i = self.find(token)?;
        let entry = &mut self.slots[i].entry;
        if times_ok(&entry.times) && entry.key.still_in(keys) {
            return Some(i);
        }
        self.remove_at(i);
        self.stats.invalidations += 1;
        None
    }

    fn remove_at(&mut self, i: usize) {
        let slot = self.slots.swap_remove(i);
        self.index.remove(&Digest(slot.digest));
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(Digest(moved.digest), i);
        }
        self.bytes -= slot.entry.size;
    }

    /// Evicts one entry: the first under the hand that is stale or was not used since the hand last
    /// passed (second chance).
    pub(super) fn evict_one(&mut self, now: f64) {
        // Two turns clear every reference bit, so this always finds one.
        for _ in 0..=2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let entry = &mut self.slots[self.hand].entry;
            if entry.referenced && now < entry.stale_after {
                entry.referenced = false;
                self.hand += 1;
            } else {
                self.remove_at(self.hand);
                self.stats.evictions += 1;
                crate::metrics::token_cache_eviction();
                return;
            }
        }
    }
}
