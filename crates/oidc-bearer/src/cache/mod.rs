//! The verified-token cache: a token that one [`Verifier`](crate::Verifier) has accepted is
//! accepted again without a second signature check, until it expires or its key leaves the key set.
//!
//! Workloads send the same token for many requests (a Kubernetes bound token lives up to an hour),
//! and an RS256 signature check costs about twice what answering a small request does. A hit costs
//! a SHA-256 of the token's signature, a map lookup and a comparison of bytes instead.
//!
//! The rules:
//! - a hit means the token presented equals, byte for byte, one that verified: entries are found
//!   by the SHA-256 of the token's signature segment, never a shorter or non-cryptographic hash,
//!   and the entry keeps the token's signing input (header and payload, RFC 7515 §5.2), which the
//!   hit compares exactly. So one token can stand for another only through a SHA-256
//!   collision, as with a hash of the whole token, at a third of the hashing (an RS256 signature
//!   is 342 of a Kubernetes token's ~1,000 characters). The signature itself is never kept, so the
//!   cache holds nothing a caller could present: header and payload can be read by anyone who sees
//!   the token, and are no credential without the signature. (The Kubernetes API server's cached
//!   token authenticator keeps no part of the token: it keys by an HMAC-SHA-256 of the whole token.
//!   We keep the signing input, counted in the byte bound, to hash a third as much);
//! - one cache per verifier (clones share it), so a token accepted for one issuer, audience or
//!   algorithm policy is never found by a verifier with another;
//! - only accepted tokens are stored; a rejection always goes through the whole check again;
//! - every hit re-checks `exp`, `nbf` and `iat` against the verifier's clock (with its leeway), and
//!   that the key which verified the token is still in the current key set with the same material;
//!   an entry that fails either is dropped and the token verified afresh;
//! - bounded by entries and by approximate bytes (signing input plus decoded payload per claims
//!   type);
//!   expired entries and entries not used since the clock hand last passed (CLOCK, a cheap
//!   approximation of least-recently-used) are evicted first.
//!
//! The map under it (`oidc_bearer_shared::map`: shards, bounds, eviction, the exact comparison of
//! the signing input) also holds TokenReview's answers and an issuer registry's index of recent
//! tokens.
//!
//! Tokens without `exp` (accepted only with
//! [`dangerous_allow_missing_exp`](crate::VerifierBuilder::dangerous_allow_missing_exp)) stay until
//! evicted or until their key leaves the set.

mod entry;
mod key;

use std::any::TypeId;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

pub use oidc_bearer_shared::map::TokenCacheStats;
pub(crate) use oidc_bearer_shared::map::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};
use oidc_bearer_shared::map::{DigestMap, MIN_ENTRIES_PER_SHARD, Shard, Slot};

use crate::error::ConfigError;
use crate::keys::Jwks;

pub(crate) use self::entry::{Entry, SharedClaims};
pub use self::key::TokenKey;
pub(crate) use self::key::{KeyRef, Times};

/// What an entry costs besides the signing input and the payload: its slot, its index entry, its
/// claims list and the key's `kid`, with the allocator's and the hash table's slack, rounded up (a
/// test checks that the fixed part fits with room to spare).
const ENTRY_OVERHEAD: usize = 416;
/// At most this many claims types are kept per token (a service rarely decodes more than one).
const MAX_TYPES_PER_ENTRY: usize = 4;

/// How a [`Verifier`](crate::Verifier) caches the tokens it has accepted.
///
/// On by default with these bounds; [`VerifierBuilder::with_token_cache`] changes them and
/// [`VerifierBuilder::without_token_cache`] turns the cache off.
///
/// ```
/// use oidc_bearer::cache::TokenCacheSettings;
///
/// let mut settings = TokenCacheSettings::default();
/// settings.max_entries = 50_000;
/// assert_eq!(settings.max_bytes, 16 * 1024 * 1024);
/// ```
///
/// [`VerifierBuilder::with_token_cache`]: crate::VerifierBuilder::with_token_cache
/// [`VerifierBuilder::without_token_cache`]: crate::VerifierBuilder::without_token_cache
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheSettings {
    /// The most tokens kept. Default 10,000.
    pub max_entries: usize,
    /// The most bytes kept, counted as each token's signing input (all but its signature) plus its
    /// decoded payload's length per claims type, plus a fixed overhead per entry. Default 16 MiB.
    pub max_bytes: usize,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl TokenCacheSettings {
    #[doc(hidden)]
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, reason: &str| {
            Err(ConfigError::InvalidSetting {
                name,
                reason: reason.to_owned(),
            })
        };
        if self.max_entries == 0 {
            return bad(
                "token_cache.max_entries",
                "must be positive (use `without_token_cache` to turn the cache off)",
            );
        }
        if self.max_bytes < ENTRY_OVERHEAD * 2 {
            return bad(
                "token_cache.max_bytes",
                "is too small to hold a token (use `without_token_cache` to turn the cache off)",
            );
        }
        Ok(())
    }
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A valid entry with claims of the requested type.
    Typed(SharedClaims),
    /// A valid entry without claims of the requested type: the token is verified, its payload still
    /// has to be decoded (no crypto).
    Verified,
    /// Nothing usable: verify the token.
    Miss,
}

/// The token cache of one verifier.
pub(crate) struct TokenCache {
    map: DigestMap<Entry>,
}

impl TokenCache {
    pub(crate) fn new(settings: &TokenCacheSettings) -> Self {
        Self {
            map: DigestMap::new(
                settings.max_entries,
                settings.max_bytes,
                MIN_ENTRIES_PER_SHARD,
            ),
        }
    }

    /// Looks `token` up, for claims of type `type_id` if given, with the current key set and the
    /// verifier's judgement of the entry's times. An entry failing either check is dropped.
    pub(crate) fn get(
        &self,
        token: &TokenKey<'_>,
        type_id: Option<TypeId>,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
    ) -> Lookup {
        let (mut shard, found) = self.valid(token, keys, times_ok, |slot| {
            slot.touch();
            type_id.and_then(|type_id| slot.value.claims_of(type_id))
        });
        let Some(claims) = found else {
            shard.stats.misses += 1;
            crate::metrics::token_cache_miss();
            return Lookup::Miss;
        };
        shard.stats.hits += 1;
        crate::metrics::token_cache_hit();
        match claims {
            Some(claims) => Lookup::Typed(claims),
            None => Lookup::Verified,
        }
    }

    /// The claims of type `type_id` cached for `token`, if the entry holds them and is still valid:
    /// the synchronous fast path of the HTTP layer. Counts only hits, so that a miss here, followed
    /// by [`get`](Self::get) on the full path, is counted once. An invalid entry is dropped.
    pub(crate) fn get_typed(
        &self,
        token: &TokenKey<'_>,
        type_id: TypeId,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
    ) -> Option<SharedClaims> {
        let (mut shard, found) = self.valid(token, keys, times_ok, |slot| {
            let claims = slot.value.claims_of(type_id)?;
            slot.touch();
            Some(claims)
        });
        let claims = found.flatten()?;
        shard.stats.hits += 1;
        crate::metrics::token_cache_hit();
        Some(claims)
    }

    /// `hit` applied to the entry of `token` if it still holds: its times pass `times_ok` and its
    /// key is still in `keys`, with the shard, still locked. An entry failing either is dropped
    /// (and counted); one whose signing input differs is left alone (the token presented is not
    /// the one cached).
    fn valid<R>(
        &self,
        token: &TokenKey<'_>,
        keys: &Arc<Jwks>,
        times_ok: impl FnOnce(&Times) -> bool,
        hit: impl FnOnce(&mut Slot<Entry>) -> R,
    ) -> (MutexGuard<'_, Shard<Entry>>, Option<R>) {
        let mut shard = self.map.lock(&token.digest);
        let found = match shard.find(&token.digest, token.signing_input) {
            None => return (shard, None),
            Some(slot) => {
                let entry = &mut slot.value;
                (times_ok(&entry.times) && entry.key.still_in(keys)).then(|| hit(slot))
            }
        };
        if found.is_none() {
            shard.remove(&token.digest);
            shard.stats.invalidations += 1;
        }
        (shard, found)
    }

    /// Stores a verified token (keeping the entry already there for the same signature).
    pub(crate) fn insert(&self, token: &TokenKey<'_>, entry: Entry, now: Duration) {
        if entry.size > self.map.max_bytes_per_shard() {
            return;
        }
        let mut shard = self.map.lock(&token.digest);
        shard.stats.insertions += 1;
        if shard.contains(&token.digest) {
            // A concurrent first use verified it too: keep the entry already shared. Another token
            // with the same signature can verify only under a key chosen for it (ECDSA allows one
            // to be computed for a given signature and message: duplicate-signature key selection),
            // so it needs a key in this verifier's set; it then misses here and is verified on
            // every request, but never hits this entry (the signing inputs differ).
            return;
        }
        evicted(shard.insert(&token.digest, entry, now));
    }

    /// Adds claims of another type to a verified token's entry, when it is still there and the
    /// bounds allow.
    pub(crate) fn attach(
        &self,
        token: &TokenKey<'_>,
        type_id: TypeId,
        claims: SharedClaims,
        now: Duration,
    ) {
        let max_bytes = self.map.max_bytes_per_shard();
        let mut shard = self.map.lock(&token.digest);
        let Some(slot) = shard.find(&token.digest, token.signing_input) else {
            return;
        };
        let entry = &mut slot.value;
        let grows = entry.payload_len;
        if entry.claims.len() >= MAX_TYPES_PER_ENTRY
            || entry.claims.iter().any(|(t, _)| *t == type_id)
            || entry.size + grows > max_bytes
        {
            return;
        }
        entry.claims.push((type_id, claims));
        entry.size += grows;
        // Make room without evicting the entry just grown: touched, it goes after every untouched
        // entry.
        slot.touch();
        evicted(shard.grown(grows, now));
    }

    pub(crate) fn stats(&self) -> TokenCacheStats {
        self.map.stats()
    }
}

/// Reports evictions to the metrics (the shard has counted them).
fn evicted(count: u64) {
    for _ in 0..count {
        crate::metrics::token_cache_eviction();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    fn keys() -> Arc<Jwks> {
        Arc::new(Jwks::from_secret(&[7; 32], Some("k")).unwrap())
    }

    /// Token `n`: a signing input of 100 bytes and a signature, both distinct per `n`.
    fn token(n: u32) -> String {
        format!("{n:0>100}.sig-{n}")
    }

    fn key(token: &str) -> TokenKey<'_> {
        TokenKey::new(token.as_bytes()).unwrap()
    }

    fn entry(token: &str, keys: &Arc<Jwks>, exp: f64, claims: Option<u32>) -> Entry {
        let key_ref = keys.select(Some("k"), Algorithm::HS256).unwrap();
        Entry::new(
            &key(token),
            Times {
                exp: Some(exp),
                ..Times::default()
            },
            Duration::ZERO,
            KeyRef::new(keys, Some("k"), Algorithm::HS256, key_ref.fingerprint()),
            claims.map(|c| (TypeId::of::<u32>(), Arc::new(c) as SharedClaims)),
            50,
        )
    }

    /// Caches token `n` with claims `claims`.
    fn insert(
        cache: &TokenCache,
        keys: &Arc<Jwks>,
        n: u32,
        exp: f64,
        claims: Option<u32>,
        now: f64,
    ) {
        let token = token(n);
        let now = Duration::from_secs_f64(now);
        cache.insert(&key(&token), entry(&token, keys, exp, claims), now);
    }

    fn get(cache: &TokenCache, keys: &Arc<Jwks>, token: &str) -> Lookup {
        cache.get(&key(token), Some(TypeId::of::<u32>()), keys, |_| true)
    }

    /// The key is the SHA-256 of the signature segment; the signing input is everything before
    /// the last `.`; bytes without a `.` have no key.
    #[test]
    fn a_token_key_hashes_the_signature_and_keeps_the_signing_input() {
        let key = key("aGVhZA.cGF5bG9hZA.c2ln");
        assert_eq!(key.digest, crate::crypto::sha256(b"c2ln"));
        assert_eq!(key.signing_input, b"aGVhZA.cGF5bG9hZA");
        assert!(TokenKey::new(b"no-dot-at-all").is_none());
        assert!(TokenKey::new(b"").is_none());
    }

    /// Another token with a cached token's signature (here: another payload) does not hit, and
    /// leaves the entry to the token it belongs to.
    #[test]
    fn a_cached_signature_with_another_signing_input_is_a_miss() {
        let cache = TokenCache::new(&TokenCacheSettings::default());
        let keys = keys();
        insert(&cache, &keys, 0, 1e10, Some(7), 0.0);
        let genuine = token(0);
        let (signing_input, signature) = genuine.rsplit_once('.').unwrap();
        for forged in [
            format!("{}X.{signature}", signing_input),
            format!("{}.{signature}", &signing_input[1..]),
            format!(".{signature}"),
        ] {
            assert_eq!(key(&forged).digest, key(&genuine).digest);
            assert!(matches!(get(&cache, &keys, &forged), Lookup::Miss));
            let typed = cache.get_typed(&key(&forged), TypeId::of::<u32>(), &keys, |_| true);
            assert!(typed.is_none());
        }
        let Lookup::Typed(claims) = get(&cache, &keys, &genuine) else {
            panic!("the genuine token no longer hits");
        };
        assert_eq!(claims.downcast::<u32>().ok().as_deref(), Some(&7));
        let stats = cache.stats();
        assert_eq!(
            (stats.entries, stats.hits, stats.misses, stats.invalidations),
            (1, 1, 3, 0)
        );
        // Claims of another type are never attached through a forged token either.
        cache.attach(
            &key(&format!("{}X.{signature}", signing_input)),
            TypeId::of::<String>(),
            Arc::new(String::new()),
            Duration::ZERO,
        );
        let other = cache.get(&key(&genuine), Some(TypeId::of::<String>()), &keys, |_| {
            true
        });
        assert!(matches!(other, Lookup::Verified));
    }

    #[test]
    fn small_caches_use_one_shard_and_exact_bounds() {
        let cache = TokenCache::new(&TokenCacheSettings {
            max_entries: 10,
            max_bytes: 1 << 20,
        });
        assert_eq!(cache.map.shard_count(), 1);
        let keys = keys();
        for n in 0..100 {
            insert(&cache, &keys, n, 1e10, Some(n), 0.0);
            assert!(cache.stats().entries <= 10);
        }
        let stats = cache.stats();
        assert_eq!(
            (stats.entries, stats.insertions, stats.evictions),
            (10, 100, 90)
        );
    }

    #[test]
    fn the_byte_bound_holds() {
        let max_bytes = 10 * (ENTRY_OVERHEAD + 150);
        let cache = TokenCache::new(&TokenCacheSettings {
            max_entries: 1000,
            max_bytes,
        });
        let keys = keys();
        for n in 0..100 {
            insert(&cache, &keys, n, 1e10, Some(n), 0.0);
            let stats = cache.stats();
            assert!(stats.bytes <= max_bytes, "{stats:?}");
        }
        assert_eq!(cache.stats().entries, 10);
    }

    #[test]
    fn recently_used_entries_survive_eviction() {
        let cache = TokenCache::new(&TokenCacheSettings {
            max_entries: 4,
            max_bytes: 1 << 20,
        });
        let keys = keys();
        for n in 0..4 {
            insert(&cache, &keys, n, 1e10, Some(n), 0.0);
        }
        let hot = token(0);
        for n in 4..40 {
            assert!(matches!(get(&cache, &keys, &hot), Lookup::Typed(_)));
            insert(&cache, &keys, n, 1e10, Some(n), 0.0);
        }
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let cache = TokenCache::new(&TokenCacheSettings {
            max_entries: 3,
            max_bytes: 1 << 20,
        });
        let keys = keys();
        insert(&cache, &keys, 0, 1e10, None, 0.0);
        insert(&cache, &keys, 1, 50.0, None, 0.0);
        insert(&cache, &keys, 2, 1e10, None, 0.0);
        for n in [0, 2, 1] {
            get(&cache, &keys, &token(n));
        }
        insert(&cache, &keys, 3, 1e10, None, 100.0);
        assert!(matches!(get(&cache, &keys, &token(1)), Lookup::Miss));
        assert_eq!(cache.stats().entries, 3);
    }

    #[test]
    fn a_key_with_other_material_under_the_same_kid_invalidates() {
        let cache = TokenCache::new(&TokenCacheSettings::default());
        let old = keys();
        insert(&cache, &old, 0, 1e10, Some(0), 0.0);
        // The same material in a new set (a refresh that kept the key): still valid.
        let same = keys();
        assert!(matches!(get(&cache, &same, &token(0)), Lookup::Typed(_)));
        // Other material under the same kid: dropped.
        let other = Arc::new(Jwks::from_secret(&[8; 32], Some("k")).unwrap());
        assert!(matches!(get(&cache, &other, &token(0)), Lookup::Miss));
        assert_eq!(cache.stats().invalidations, 1);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn claims_of_another_type_are_attached() {
        let cache = TokenCache::new(&TokenCacheSettings::default());
        let keys = keys();
        insert(&cache, &keys, 0, 1e10, Some(1), 0.0);
        let other = TypeId::of::<String>();
        let token = token(0);
        let get = |t| cache.get(&key(&token), t, &keys, |_| true);
        assert!(matches!(get(Some(other)), Lookup::Verified));
        assert!(matches!(get(None), Lookup::Verified));
        cache.attach(
            &key(&token),
            other,
            Arc::new(String::from("x")),
            Duration::ZERO,
        );
        assert!(matches!(get(Some(other)), Lookup::Typed(_)));
        assert_eq!(cache.stats().bytes, ENTRY_OVERHEAD + 100 + 2 * 50);
    }

    /// The fixed part of an entry fits in the overhead counted for it: its slot, its index entry
    /// (with the hash table's spare capacity at its 7/8 load), one claims type, the headers of its
    /// three allocations (signing input, claims list, `kid`), the claims' `Arc` counts and a `kid`
    /// of up to 48 bytes.
    #[test]
    fn the_counted_overhead_covers_an_entrys_fixed_size() {
        let fixed = std::mem::size_of::<Slot<Entry>>()
            + std::mem::size_of::<(oidc_bearer_shared::map::Digest, u32)>() * 8 / 7
            + std::mem::size_of::<(TypeId, SharedClaims)>();
        assert!(fixed + 3 * 16 + 16 + 48 <= ENTRY_OVERHEAD, "{fixed}");
    }

    #[test]
    fn settings_are_validated() {
        let mut s = TokenCacheSettings::default();
        assert!(s.validate().is_ok());
        s.max_entries = 0;
        assert_eq!(s.validate().unwrap_err().code(), "invalid_setting");
    }
}
