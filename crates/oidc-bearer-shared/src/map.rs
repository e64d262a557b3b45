//! The one sharded, bounded map keyed by a token's SHA-256 digest: the token cache's, the
//! TokenReview answers' and an issuer registry's index of recent tokens.
//!
//! - Sharded: independent locks, the one for a digest chosen by the digest itself; shards are
//!   halved until each holds at least [`MIN_ENTRIES_PER_SHARD`] entries and
//!   64 KiB, so that small maps keep their bounds nearly exactly.
//! - Bounded per shard by entries and by the bytes each value says it costs ([`Value::size`]); a
//!   value larger than a shard's byte bound is not kept.
//! - Eviction by second chance (CLOCK): entries queue oldest first; the one at the head is evicted
//!   unless it was used ([`Slot::touch`]) since it last passed the head and has not expired
//!   ([`Value::expires`]), in which case it goes to the back, unmarked. An expired entry never gets
//!   a second chance; a map whose user never touches its entries evicts the oldest first.
//! - A value may keep its token's signing input ([`Value::kept_input`]): a lookup then finds it
//!   only for the same bytes (see `oidc_bearer::cache`'s `TokenKey`).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A SHA-256 digest.
type Sha256 = [u8; 32];

/// At most this many shards (independent locks).
const MAX_SHARDS: usize = 16;
/// Shards are halved until each holds at least this many entries (unless the caller asks for
/// another minimum) and bytes.
pub const MIN_ENTRIES_PER_SHARD: usize = 64;
const MIN_BYTES_PER_SHARD: usize = 64 * 1024;
/// No slot: the ends of the queue. Shards hold fewer entries than this.
const NIL: u32 = u32::MAX;

/// The default bound on a map's entries (the token cache's, the TokenReview answers').
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The default bound on a map's approximate size: 16 MiB.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Counters of a verifier's token cache, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheStats {
    /// Tokens held now.
    pub entries: usize,
    /// Their approximate size in bytes.
    pub bytes: usize,
    /// Lookups that found a valid entry (no signature check).
    pub hits: u64,
    /// Lookups that found nothing usable (a full verification followed).
    pub misses: u64,
    /// Full verifications that ended in the cache (a concurrent first use of a token may verify
    /// it more than once; the first entry is kept).
    pub insertions: u64,
    /// Entries evicted to respect the bounds.
    pub evictions: u64,
    /// Entries dropped on a hit because the token had expired or its key had left the key set.
    pub invalidations: u64,
}

impl TokenCacheStats {
    /// Adds `other`'s counts to these: totals over a cache's shards, or over a registry's issuers.
    #[doc(hidden)]
    pub fn add(&mut self, other: &Self) {
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.hits += other.hits;
        self.misses += other.misses;
        self.insertions += other.insertions;
        self.evictions += other.evictions;
        self.invalidations += other.invalidations;
    }
}

/// What a map holds per digest.
pub trait Value {
    /// What the value counts against the byte bound (the map's own overhead included, if the
    /// user bounds bytes at all).
    fn size(&self) -> usize;

    /// When the value stops being of use (by the user's clock): past it, it is evicted without a
    /// second chance. Never, by default.
    fn expires(&self) -> Duration {
        Duration::MAX
    }

    /// The token's signing input, kept to be compared on every lookup; `None` when the digest
    /// alone is the key (the token was verified elsewhere, or the value is only a hint).
    fn kept_input(&self) -> Option<&[u8]> {
        None
    }
}

/// The sharded map: `V` per digest, hashed by `H` (by default the digest's first bytes, see
/// [`Digest`]).
pub struct DigestMap<V, H = DigestHasher> {
    shards: Box<[Mutex<Shard<V, H>>]>,
    /// Each shard's byte bound (also in each shard, read here without a lock).
    max_bytes: usize,
}

impl<V: Value, H: BuildHasher + Default> DigestMap<V, H> {
    /// A map of at most `max_entries` values and `max_bytes` bytes, with shards of at least
    /// `min_entries_per_shard` entries (normally [`MIN_ENTRIES_PER_SHARD`]) and 64 KiB.
    pub fn new(max_entries: usize, max_bytes: usize, min_entries_per_shard: usize) -> Self {
        let mut count = MAX_SHARDS;
        while count > 1
            && (max_entries / count < min_entries_per_shard
                || max_bytes / count < MIN_BYTES_PER_SHARD)
        {
            count /= 2;
        }
        let max_entries = (max_entries / count).clamp(1, NIL as usize - 1);
        let max_bytes = max_bytes / count;
        let shards = (0..count)
            .map(|_| {
                Mutex::new(Shard {
                    index: HashMap::default(),
                    slots: Vec::new(),
                    head: NIL,
                    tail: NIL,
                    bytes: 0,
                    max_entries,
                    max_bytes,
                    stats: TokenCacheStats::default(),
                })
            })
            .collect();
        Self { shards, max_bytes }
    }
}

impl<V: Value, H: BuildHasher> DigestMap<V, H> {
    /// The shard of `digest`, locked.
    pub fn lock(&self, digest: &Sha256) -> MutexGuard<'_, Shard<V, H>> {
        // The digest is uniform: its last byte picks the shard, its first eight the bucket.
        lock(&self.shards[usize::from(digest[31]) % self.shards.len()])
    }

    /// The byte bound of each shard.
    pub fn max_bytes_per_shard(&self) -> usize {
        self.max_bytes
    }

    /// The shards' counters added up, with the entries and bytes held now.
    pub fn stats(&self) -> TokenCacheStats {
        let mut total = TokenCacheStats::default();
        for shard in self.shards.iter().map(lock) {
            total.add(&TokenCacheStats {
                entries: shard.slots.len(),
                bytes: shard.bytes,
                ..shard.stats
            });
        }
        total
    }

    /// How many shards there are (for tests of the maps' users).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The entry bound of each shard (for tests of the maps' users).
    pub fn max_entries_per_shard(&self) -> usize {
        lock(&self.shards[0]).max_entries
    }

    /// Checks every shard's bounds, and its index, queue and byte count against its slots; panics
    /// on a mismatch. For tests (here and in the maps' users).
    #[doc(hidden)]
    pub fn check(&self) {
        for shard in self.shards.iter().map(lock) {
            assert!(shard.slots.len() <= shard.max_entries && shard.bytes <= shard.max_bytes);
            assert_eq!(shard.index.len(), shard.slots.len());
            let (mut at, mut last, mut seen) = (shard.head, NIL, 0);
            while at != NIL {
                let slot = &shard.slots[at as usize];
                assert_eq!((slot.prev, shard.index[&Digest(slot.digest)]), (last, at));
                (last, at, seen) = (at, slot.next, seen + 1);
            }
            assert_eq!((last, seen), (shard.tail, shard.slots.len()));
            let bytes: usize = shard.slots.iter().map(|s| s.value.size()).sum();
            assert_eq!(bytes, shard.bytes);
        }
    }
}

/// Locks a shard, recovering it from a poisoned lock. A panic while holding the lock cannot leave a
/// shard half-written: every mutation completes before anything that can panic (a value is
/// dropped only once it is out of the shard). Keep serving.
fn lock<T>(shard: &Mutex<T>) -> MutexGuard<'_, T> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One lock's worth of entries: slots in a vector, an index into it, and the eviction queue linked
/// through the slots.
pub struct Shard<V, H = DigestHasher> {
    index: HashMap<Digest, u32, H>,
    slots: Vec<Slot<V>>,
    /// The oldest entry (next to be looked at for eviction) and the newest.
    head: u32,
    tail: u32,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// The user's counters, and the evictions (its `entries` and `bytes` stay 0: `stats` reads
    /// them off the shard itself).
    pub stats: TokenCacheStats,
}

/// An entry: its value and its place in the queue.
pub struct Slot<V> {
    digest: Sha256,
    /// What the entry holds.
    pub value: V,
    /// CLOCK's reference bit: set by a use, cleared when the entry passes the head.
    referenced: bool,
    prev: u32,
    next: u32,
}

impl<V> Slot<V> {
    /// Marks the entry used: it gets a second chance at eviction.
    pub fn touch(&mut self) {
        self.referenced = true;
    }
}

impl<V: Value, H: BuildHasher> Shard<V, H> {
    /// The entry of `digest` if its kept signing input, if any, is `input`, byte for byte.
    pub fn find(&mut self, digest: &Sha256, input: &[u8]) -> Option<&mut Slot<V>> {
        let &i = self.index.get(&Digest(*digest))?;
        let slot = &mut self.slots[i as usize];
        // Not constant-time, and need not be: reaching this comparison takes the signature of a
        // token that was inserted (its one secret part), and what it compares is no secret.
        if slot.value.kept_input().is_some_and(|kept| kept != input) {
            return None;
        }
        Some(slot)
    }

    /// Whether an entry for `digest` is there (whatever its kept input).
    pub fn contains(&self, digest: &Sha256) -> bool {
        self.index.contains_key(&Digest(*digest))
    }

    /// Removes the entry of `digest`, if any.
    pub fn remove(&mut self, digest: &Sha256) -> Option<V> {
        let i = *self.index.get(&Digest(*digest))?;
        Some(self.remove_at(i))
    }

    /// Whether a value of `size` bytes fits without evicting an entry.
    pub fn has_room(&self, size: usize) -> bool {
        self.slots.len() < self.max_entries && self.bytes + size <= self.max_bytes
    }

    /// Removes every entry expired at `now` (whose [`Value::expires`] is before it), wherever it
    /// is in the queue. Returns how many were removed (counted as evictions). Linear in the
    /// shard's entries: for a user that must not evict a live entry (the DPoP replay memory).
    pub fn remove_expired(&mut self, now: Duration) -> u64 {
        let mut removed = 0;
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].value.expires() < now {
                // The last slot moves into `i`: look at `i` again.
                drop(self.remove_at(i as u32));
                removed += 1;
            } else {
                i += 1;
            }
        }
        self.stats.evictions += removed;
        removed
    }

    /// Stores `value` for `digest` as the newest entry, replacing the entry there, and evicts
    /// others as the bounds require; a value larger than the byte bound is not kept (and the entry
    /// there stays). Returns how many entries were evicted.
    pub fn insert(&mut self, digest: &Sha256, value: V, now: Duration) -> u64 {
        let size = value.size();
        if size > self.max_bytes {
            return 0;
        }
        let _replaced = self.remove(digest); // dropped last, with the shard whole again
        let mut evicted = 0;
        while !self.slots.is_empty()
            && (self.slots.len() >= self.max_entries || self.bytes + size > self.max_bytes)
        {
            evicted += self.evict_one(now);
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            digest: *digest,
            value,
            referenced: false,
            prev: NIL,
            next: NIL,
        });
        self.index.insert(Digest(*digest), i);
        self.link_back(i);
        self.bytes += size;
        evicted
    }

    /// Counts `by` more bytes for a value that grew by as much through [`find`](Self::find), and
    /// evicts others while the byte bound is exceeded (never the last entry). A grown entry that
    /// was touched goes last: the queue takes every untouched entry first. Returns how many
    /// entries were evicted.
    pub fn grown(&mut self, by: usize, now: Duration) -> u64 {
        self.bytes += by;
        let mut evicted = 0;
        while self.bytes > self.max_bytes && self.slots.len() > 1 {
            evicted += self.evict_one(now);
        }
        evicted
    }

    /// Evicts one entry (there is one): the first from the head that is expired or untouched since
    /// it last passed the head. Returns 1.
    fn evict_one(&mut self, now: Duration) -> u64 {
        // Each pass clears one reference bit, so this ends within `len + 1` passes.
        loop {
            let i = self.head;
            let slot = &mut self.slots[i as usize];
            if slot.referenced && now < slot.value.expires() {
                slot.referenced = false;
                self.unlink(i);
                self.link_back(i);
                continue;
            }
            drop(self.remove_at(i));
            self.stats.evictions += 1;
            return 1;
        }
    }

    /// Takes slot `i` out: the last slot moves into its place.
    fn remove_at(&mut self, i: u32) -> V {
        self.unlink(i);
        let slot = self.slots.swap_remove(i as usize);
        self.index.remove(&Digest(slot.digest));
        if let Some(&Slot {
            digest, prev, next, ..
        }) = self.slots.get(i as usize)
        {
            self.link(prev, i);
            self.link(i, next);
            self.index.insert(Digest(digest), i);
        }
        self.bytes -= slot.value.size();
        slot.value
    }

    /// Links slot `i` at the back of the queue (as the newest).
    fn link_back(&mut self, i: u32) {
        self.link(self.tail, i);
        self.link(i, NIL);
    }

    /// Unlinks slot `i` from the queue.
    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        self.link(prev, next);
    }

    /// Makes `b` follow `a` in the queue (`NIL` stands for either end).
    fn link(&mut self, a: u32, b: u32) {
        match a {
            NIL => self.head = b,
            _ => self.slots[a as usize].next = b,
        }
        match b {
            NIL => self.tail = a,
            _ => self.slots[b as usize].prev = a,
        }
    }
}

/// A map key: a SHA-256 digest, hashed by taking its first eight bytes (it is uniform already).
///
/// With the default [`DigestHasher`] that `u64` is the hash itself, which suits maps written only
/// for tokens that verified: an attacker cannot fill a bucket with chosen digests. A map that keeps
/// anything an attacker can make it insert takes a keyed hasher instead.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub Sha256);

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes a [`Digest`]'s `u64` through unchanged.
#[derive(Default)]
pub struct PassThrough(u64);

// `#[inline]`: a lookup hashes through these from the user's crate (the token cache's hit).
impl Hasher for PassThrough {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Digest`; fold anything else in for safety.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The hasher of maps keyed by [`Digest`] that only verified tokens write.
pub type DigestHasher = BuildHasherDefault<PassThrough>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of `size` bytes, expiring at `expires`, keeping `input` if given.
    struct V {
        n: u32,
        size: usize,
        expires: f64,
        input: Option<Vec<u8>>,
    }

    impl Value for V {
        fn size(&self) -> usize {
            self.size
        }
        fn expires(&self) -> Duration {
            crate::clock::numeric_date(self.expires)
        }
        fn kept_input(&self) -> Option<&[u8]> {
            self.input.as_deref()
        }
    }

    fn v(n: u32) -> V {
        V {
            n,
            size: 100,
            expires: f64::INFINITY,
            input: None,
        }
    }

    fn digest(n: u32) -> Sha256 {
        use sha2::Digest as _;
        sha2::Sha256::digest(format!("token-{n}").as_bytes()).into()
    }

    fn map(max_entries: usize, max_bytes: usize) -> DigestMap<V> {
        DigestMap::new(max_entries, max_bytes, MIN_ENTRIES_PER_SHARD)
    }

    fn get(map: &DigestMap<V>, n: u32) -> Option<u32> {
        map.lock(&digest(n))
            .find(&digest(n), b"")
            .map(|slot| slot.value.n)
    }

    fn insert(map: &DigestMap<V>, value: V, now: f64) {
        let d = digest(value.n);
        map.lock(&d).insert(&d, value, Duration::from_secs_f64(now));
        map.check();
    }

    /// Shards are halved until each holds the minimum of entries and of bytes.
    #[test]
    fn shards_are_halved_until_each_holds_the_minimum() {
        let shards = |entries, bytes, min| DigestMap::<V>::new(entries, bytes, min).shard_count();
        assert_eq!(shards(10_000, 16 << 20, 64), 16);
        assert_eq!(shards(10, 1 << 20, 64), 1);
        assert_eq!(shards(10_000, 100 << 10, 64), 1);
        assert_eq!(shards(256, 16 << 20, 64), 4);
        assert_eq!(shards(100, usize::MAX, 32), 2);
        assert_eq!(shards(65_536, usize::MAX, 32), 16);
    }

    /// Untouched entries go oldest first; replacing an entry makes it the newest.
    #[test]
    fn untouched_entries_are_evicted_oldest_first() {
        let map = map(3, 1 << 20);
        for n in 0..3 {
            insert(&map, v(n), 0.0);
        }
        insert(&map, v(0), 0.0);
        insert(&map, v(3), 0.0);
        assert_eq!(
            (0..4).map(|n| get(&map, n)).collect::<Vec<_>>(),
            [Some(0), None, Some(2), Some(3)]
        );
        assert_eq!(map.stats().evictions, 1);
    }

    /// A touched entry gets a second chance, an expired one none.
    #[test]
    fn touched_entries_get_a_second_chance_unless_expired() {
        let map = map(3, 1 << 20);
        insert(&map, v(0), 0.0);
        insert(
            &map,
            V {
                expires: 50.0,
                ..v(1)
            },
            0.0,
        );
        insert(&map, v(2), 0.0);
        for n in 0..3 {
            map.lock(&digest(n)).find(&digest(n), b"").unwrap().touch();
        }
        insert(&map, v(3), 100.0);
        assert_eq!(get(&map, 1), None, "the expired entry goes first");
        insert(&map, v(4), 100.0);
        assert_eq!(
            get(&map, 0),
            None,
            "then the first passed over: its mark is spent"
        );
        assert!(get(&map, 2).is_some() && get(&map, 3).is_some() && get(&map, 4).is_some());
    }

    /// Both bounds hold; a value larger than the byte bound is not kept, and leaves the entry it
    /// would have replaced; a grown value makes room by evicting others.
    #[test]
    fn both_bounds_hold() {
        let map = map(1000, 1000);
        for n in 0..50 {
            insert(&map, v(n), 0.0);
            assert!(map.stats().bytes <= 1000);
        }
        assert_eq!(map.stats().entries, 10);
        insert(
            &map,
            V {
                size: 1001,
                ..v(49)
            },
            0.0,
        );
        assert_eq!(get(&map, 49), Some(49));
        let d = digest(49);
        let mut shard = map.lock(&d);
        let slot = shard.find(&d, b"").unwrap();
        slot.value.size += 250;
        slot.touch();
        assert_eq!(shard.grown(250, Duration::ZERO), 3);
        drop(shard);
        map.check();
        assert_eq!(get(&map, 49), Some(49));
    }

    /// A kept signing input must match byte for byte; a mismatch leaves the entry alone.
    #[test]
    fn expired_entries_are_removed_wherever_they_are() {
        let map = map(4, usize::MAX);
        let at = |n: u32, expires: f64| V { expires, ..v(n) };
        for (n, expires) in [(1, 50.0), (2, 200.0), (3, 80.0), (4, 100.0)] {
            insert(&map, at(n, expires), 0.0);
        }
        let digest = digest(9);
        let mut shard = map.lock(&digest);
        assert!(!shard.has_room(1));
        // An entry is kept up to its expiry, inclusive.
        assert_eq!(shard.remove_expired(Duration::from_secs(80)), 1);
        assert!(shard.has_room(1));
        assert_eq!(shard.remove_expired(Duration::from_secs(150)), 2);
        drop(shard);
        map.check();
        assert_eq!(
            (get(&map, 1), get(&map, 3), get(&map, 4)),
            (None, None, None)
        );
        assert_eq!(get(&map, 2), Some(2));
    }

    #[test]
    fn a_kept_input_must_match() {
        let map = map(10, 1 << 20);
        let input = Some(b"header.payload".to_vec());
        insert(&map, V { input, ..v(0) }, 0.0);
        let d = digest(0);
        for other in [
            &b"header.payloaX"[..],
            b"header.payload.",
            b"",
            b"header.payloa",
        ] {
            assert!(map.lock(&d).find(&d, other).is_none());
        }
        assert!(map.lock(&d).find(&d, b"header.payload").is_some());
        assert!(map.lock(&d).contains(&d));
    }
}
