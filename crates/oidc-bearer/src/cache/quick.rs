//! TRIAL (issue 18): the token cache on `quick_cache`, behind the same crate-internal API as the
//! hand-written shards, for the benchmark to decide between them.
//!
//! Differences: eviction is quick_cache's (S3-FIFO-like CLOCK), which does not know about `exp`,
//! so expired entries are not evicted first; the entry bound is kept by weighing every entry at
//! least `max_bytes / max_entries`; a key-set change is re-checked on every hit instead of being
//! remembered in the entry.

use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};

use super::key::{Digest, DigestHasher, Times, TokenKey};
use super::shard::{Entry, SharedClaims};
use super::{
    Lookup, MAX_SHARDS, MAX_TYPES_PER_ENTRY, MIN_BYTES_PER_SHARD, MIN_ENTRIES_PER_SHARD,
    TokenCacheSettings, TokenCacheStats,
};
use crate::keys::Jwks;

type Map = Cache<Digest, Arc<Entry>, EntryWeight, DigestHasher, Counting>;

#[derive(Default)]
struct Counts {
    bytes: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    insertions: AtomicU64,
    evictions: AtomicU64,
    invalidations: AtomicU64,
}

/// An entry's weight: its size, and at least `floor`, so that the weight bound also bounds entries.
#[derive(Clone)]
struct EntryWeight {
    floor: u64,
}

impl Weighter<Digest, Arc<Entry>> for EntryWeight {
    fn weight(&self, _: &Digest, entry: &Arc<Entry>) -> u64 {
        (entry.size as u64).max(self.floor)
    }
}

/// Counts evictions and keeps the byte count.
#[derive(Clone)]
struct Counting(Arc<Counts>);

impl Lifecycle<Digest, Arc<Entry>> for Counting {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: Digest, entry: Arc<Entry>) {
        self.0.bytes.fetch_sub(entry.size, Relaxed);
        self.0.evictions.fetch_add(1, Relaxed);
        crate::metrics::token_cache_eviction();
    }
}

/// The token cache of one verifier.
pub(crate) struct TokenCache {
    map: Map,
    counts: Arc<Counts>,
    max_bytes_per_shard: usize,
}

impl TokenCache {
    pub(crate) fn new(settings: &TokenCacheSettings) -> Self {
        let mut shards = MAX_SHARDS;
        while shards > 1
            && (settings.max_entries / shards < MIN_ENTRIES_PER_SHARD
                || settings.max_bytes / shards < MIN_BYTES_PER_SHARD)
        {
            shards /= 2;
        }
        let counts = Arc::new(Counts::default());
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(settings.max_entries)
            .weight_capacity(settings.max_bytes as u64)
            .build()
            .expect("valid quick_cache options");
        let map = Map::with_options(
            options,
            EntryWeight {
                floor: (settings.max_bytes / settings.max_entries) as u64,
            },
            DigestHasher::default(),
            Counting(counts.clone()),
        );
        let max_bytes_per_shard = usize::try_from(map.shard_capacity()).unwrap_or(usize::MAX);
        Self {
            map,
            counts,
            max_bytes_per_shard,
        }
    }

    /// The entry of `token` (its signing input the same bytes), if it still holds; an entry whose
    /// times or key fail is dropped.
    fn valid(
        &self,
        token: &TokenKey<'_>,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
    ) -> Option<Arc<Entry>> {
        let key = Digest(token.digest);
        let entry = self
            .map
            .get(&key)
            .filter(|entry| *entry.signing_input == *token.signing_input)?;
        if times_ok(&entry.times) && entry.key.still_selected(keys) {
            return Some(entry);
        }
        if let Some((_, gone)) = self.map.remove_if(&key, |e| Arc::ptr_eq(e, &entry)) {
            self.counts.bytes.fetch_sub(gone.size, Relaxed);
            self.counts.invalidations.fetch_add(1, Relaxed);
        }
        None
    }

    pub(crate) fn get(
        &self,
        token: &TokenKey<'_>,
        type_id: Option<TypeId>,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
    ) -> Lookup {
        let Some(entry) = self.valid(token, keys, times_ok) else {
            self.counts.misses.fetch_add(1, Relaxed);
            crate::metrics::token_cache_miss();
            return Lookup::Miss;
        };
        self.counts.hits.fetch_add(1, Relaxed);
        crate::metrics::token_cache_hit();
        match type_id.and_then(|type_id| entry.claims_of(type_id)) {
            Some(claims) => Lookup::Typed(claims),
            None => Lookup::Verified,
        }
    }

    pub(crate) fn get_typed(
        &self,
        token: &TokenKey<'_>,
        type_id: TypeId,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
    ) -> Option<SharedClaims> {
        let claims = self.valid(token, keys, times_ok)?.claims_of(type_id)?;
        self.counts.hits.fetch_add(1, Relaxed);
        crate::metrics::token_cache_hit();
        Some(claims)
    }

    pub(crate) fn insert(&self, token: &TokenKey<'_>, entry: Entry, _now: f64) {
        if entry.size > self.max_bytes_per_shard {
            return;
        }
        self.counts.insertions.fetch_add(1, Relaxed);
        // Keep the entry already there (a concurrent first use verified it too).
        if let EntryResult::Vacant(guard) =
            self.map
                .entry(&Digest(token.digest), None, |_, _| EntryAction::Retain(()))
        {
            let size = entry.size;
            self.counts.bytes.fetch_add(size, Relaxed);
            if guard.insert(Arc::new(entry)).is_err() {
                self.counts.bytes.fetch_sub(size, Relaxed);
            }
        }
    }

    pub(crate) fn attach(
        &self,
        token: &TokenKey<'_>,
        type_id: TypeId,
        claims: SharedClaims,
        _now: f64,
    ) {
        let max = self.max_bytes_per_shard;
        let counts = &self.counts;
        let _ = self.map.entry(&Digest(token.digest), None, |_, entry| {
            let grows = entry.payload_len;
            if *entry.signing_input == *token.signing_input
                && entry.claims.len() < MAX_TYPES_PER_ENTRY
                && !entry.claims.iter().any(|(t, _)| *t == type_id)
                && entry.size + grows <= max
            {
                let mut grown = Entry::clone(entry);
                grown.claims.push((type_id, claims));
                grown.size += grows;
                counts.bytes.fetch_add(grows, Relaxed);
                *entry = Arc::new(grown);
            }
            EntryAction::Retain(())
        });
    }

    pub(crate) fn stats(&self) -> TokenCacheStats {
        let c = &*self.counts;
        TokenCacheStats {
            entries: self.map.len(),
            bytes: c.bytes.load(Relaxed),
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            insertions: c.insertions.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
        }
    }
}
