//! The HTTP layer's fast path through a registry: an index from recent tokens' signature digests to
//! the verifier that accepted them, so that a token seen before is found in its issuer's token cache
//! without being parsed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oidc_bearer_shared::map::{DigestMap, MIN_ENTRIES_PER_SHARD, Value};

use super::{IssuerRegistry, Live, Selected};
use oidc_bearer::__private::{VerifierAccess as _, WeakVerifier};
use oidc_bearer::Presented;

/// How many recent tokens the registry remembers the verifier of (about 100 bytes each).
pub(super) const RECENT_TOKENS: usize = 65_536;

/// The issuer that accepted a recent token, held weakly.
#[derive(Clone)]
pub(super) enum Recent {
    /// An exact issuer: never evicted or negatively cached once built.
    Exact(WeakVerifier),
    /// A pattern issuer: answered for only while it is proven and not negatively cached.
    Pattern(std::sync::Weak<Live>),
}

impl IssuerRegistry {
    /// Remembers which verifier accepted the token with this signature digest.
    pub(super) fn remember_recent(&self, digest: &[u8; 32], selected: &Selected) {
        let recent = match selected {
            Selected::Exact(verifier) => Recent::Exact(verifier.downgrade()),
            Selected::Proven(live) => Recent::Pattern(Arc::downgrade(live)),
            Selected::Pending(trial) => Recent::Pattern(Arc::downgrade(&trial.live)),
        };
        self.inner.recent.insert(digest, recent);
    }

    /// The shared claims of a token accepted before, from its issuer's token cache (see
    /// [`VerifyToken::verify_token_cached`](oidc_bearer::VerifyToken::verify_token_cached)): a SHA-256 of its signature and two lookups, no
    /// parsing.
    ///
    /// A token is found only through the verifier that accepted it, with that verifier's checks
    /// (times, key still published), and only while the full path would choose that verifier: a
    /// pattern issuer the registry has evicted or failed is refused here (the index holds it
    /// weakly, and it is marked), and so is one negatively cached. A hit counts as a use of the
    /// issuer for eviction. Entries that no longer answer are left to be replaced or to age out.
    pub(super) fn cached_shared<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: Send + Sync + 'static,
    {
        if token.get().len() > self.inner.limits.max_token_bytes {
            return None;
        }
        let key = token.key()?;
        match self.inner.recent.get(key.digest())? {
            Recent::Exact(verifier) => verifier.upgrade()?.cached_key(&key),
            Recent::Pattern(live) => {
                let live = live.upgrade()?;
                let now = self.inner.clock.now();
                if now < live.refuse_until.load(Ordering::Acquire) {
                    return None;
                }
                let claims = live.verifier.cached_key(&key)?;
                live.last_used.store(now, Ordering::Relaxed);
                Some(claims)
            }
        }
    }
}

/// A bounded map from token digests (of the signature segment, see `cache::TokenKey`) to values (an
/// issuer registry's "which verifier last accepted a token with this signature"): the digest map
/// of the token cache, the oldest entry evicted first. Like the token cache, it is only written for
/// tokens that verified; a value found here is only a hint, the token cache it leads to decides.
pub(super) struct DigestIndex<V> {
    map: DigestMap<Hint<V>>,
}

/// A value of the index: no byte bound, no expiry, no kept input (the token cache compares it).
struct Hint<V>(V);

impl<V> Value for Hint<V> {
    fn size(&self) -> usize {
        0
    }
}

impl<V: Clone> DigestIndex<V> {
    /// An index of at most `max_entries` (at least one per shard).
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            // Finer shards than the token cache's: entries are small and only ever inserted.
            map: DigestMap::new(max_entries, usize::MAX, MIN_ENTRIES_PER_SHARD / 2),
        }
    }

    pub(super) fn get(&self, digest: &[u8; 32]) -> Option<V> {
        let mut shard = self.map.lock(digest);
        shard.find(digest, b"").map(|slot| slot.value.0.clone())
    }

    /// Stores `value` for `digest` (replacing the value already there, which keeps its age).
    pub(super) fn insert(&self, digest: &[u8; 32], value: V) {
        let mut shard = self.map.lock(digest);
        match shard.find(digest, b"") {
            Some(slot) => slot.value = Hint(value),
            None => drop(shard.insert(digest, Hint(value), Duration::ZERO)),
        }
    }
}

#[cfg(test)]
impl<V: Clone> DigestIndex<V> {
    fn len(&self) -> usize {
        self.map.stats().entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> [u8; 32] {
        let token = format!("h.p.token-{n}");
        *oidc_bearer::cache::TokenKey::new(token.as_bytes())
            .unwrap()
            .digest()
    }

    /// The index holds at most its bound under a stream of distinct digests, forgets the oldest
    /// first, and stays exact when digests are inserted again.
    #[test]
    fn the_digest_index_is_bounded_and_forgets_the_oldest_first() {
        let index = DigestIndex::new(100);
        assert_eq!(index.map.shard_count(), 2);
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
        let kept = in_first.split_off(in_first.len() - index.map.max_entries_per_shard());
        assert!(kept.iter().all(|&n| index.get(&digest(n)) == Some(n)));
        assert!(in_first.iter().all(|&n| index.get(&digest(n)).is_none()));

        // Inserting a digest again replaces its value and keeps its age.
        for round in 0..3 {
            for n in 9_900..10_000 {
                index.insert(&digest(n), round);
                assert_eq!(index.get(&digest(n)), Some(round));
            }
            // Each shard within its bound, its queue holding each entry once.
            index.map.check();
        }
    }

    /// Whether the HTTP layer's synchronous lookup (`verify_token_cached`, this file's
    /// `cached_shared`: only the layer can call it, with a `Presented` made in the core) answers a
    /// request carrying `token`: the layer then calls the inner service inside `call`, before its
    /// future is polled (a verification would need the future polled first).
    fn fast_path_answers(registry: &IssuerRegistry, token: &str) -> bool {
        use oidc_bearer::BearerAuthLayer;
        use std::sync::atomic::AtomicBool;
        use tower::{Layer as _, Service as _};

        let called = Arc::new(AtomicBool::new(false));
        let inner = {
            let called = called.clone();
            tower::service_fn(move |_: http::Request<String>| {
                called.store(true, Ordering::SeqCst);
                std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
                    String::new(),
                )))
            })
        };
        let mut service = BearerAuthLayer::new(registry.clone())
            .claims::<oidc_bearer::claims::DefaultClaims>()
            .layer(inner);
        let request = http::Request::builder()
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        drop(service.call(request));
        called.load(Ordering::SeqCst)
    }

    /// The fast path defers to the full one whatever the clock reads: an issuer the full path
    /// refuses (here negatively cached; evicted and failed ones are marked the same way) is not
    /// answered for, not even by a clock past the year 2554, where a time in whole nanoseconds
    /// no longer fits in a `u64`.
    #[tokio::test]
    async fn the_fast_path_defers_to_a_negative_entry_whatever_the_clock_reads() {
        use oidc_bearer::VerifyError;
        use oidc_bearer::VerifyToken as _;
        use oidc_bearer::claims::DefaultClaims;

        let issuer = oidc_bearer_testing::TestIssuer::start().await;
        let name = issuer.issuer();
        for secs in [1_700_000_000u64, 20_000_000_000] {
            let clock = oidc_bearer::clock::ManualClock::at_unix(secs);
            let trusted = name.clone();
            let registry = IssuerRegistry::builder()
                .with_pattern(move |iss: &str| {
                    (iss == trusted).then(|| oidc_bearer::Verifier::builder(iss, "aud"))
                })
                .with_clock(clock.clone())
                .build()
                .unwrap();
            let now = secs as i64;
            let token = issuer
                .token()
                .aud("aud")
                .iat(now)
                .nbf(now)
                .exp(now + 3600)
                .sign();
            registry
                .verify_token::<DefaultClaims>(&token)
                .await
                .unwrap();
            assert!(fast_path_answers(&registry, &token), "{secs}: a hit before");
            registry.remember_failure(&name, VerifyError::Malformed { reason: "test" });
            assert!(
                registry
                    .verify_token::<DefaultClaims>(&token)
                    .await
                    .is_err(),
                "{secs}: the full path refuses a negatively cached issuer"
            );
            assert!(
                !fast_path_answers(&registry, &token),
                "{secs}: the fast path answered for an issuer the full path refuses"
            );
        }
    }

    /// Review R3: the fast path answers only while the full path would choose the verifier that
    /// accepted the token. Once the registry evicts that pattern issuer (the index holds it weakly,
    /// and eviction marks it), the token is not answered from the evicted verifier's cache; the
    /// full path rebuilds the issuer (a fresh key cache: one more discovery fetch).
    #[tokio::test]
    async fn the_fast_path_does_not_answer_for_an_evicted_pattern_issuer() {
        use oidc_bearer::VerifyToken as _;
        use oidc_bearer::claims::DefaultClaims;

        let b = oidc_bearer_testing::TestIssuer::start().await;
        let c = oidc_bearer_testing::TestIssuer::start().await;
        let registry = IssuerRegistry::builder()
            .with_pattern(|iss: &str| {
                iss.starts_with("http://127.0.0.1:")
                    .then(|| oidc_bearer::Verifier::builder(iss, "aud"))
            })
            .with_max_live_issuers(1)
            .build()
            .unwrap();
        let verify = |token: String| {
            let registry = registry.clone();
            async move {
                registry
                    .verify_token::<DefaultClaims>(&token)
                    .await
                    .map(drop)
            }
        };
        let token_b = b.token().aud("aud").sign();
        assert!(
            !fast_path_answers(&registry, &token_b),
            "before any verification"
        );
        verify(token_b.clone()).await.expect("b's token");
        assert!(
            fast_path_answers(&registry, &token_b),
            "a hit once verified"
        );
        verify(c.token().aud("aud").sign())
            .await
            .expect("c's token"); // evicts b
        assert_eq!(registry.built_issuers(), 1);
        assert!(
            !fast_path_answers(&registry, &token_b),
            "the fast path answered for an evicted issuer"
        );
        assert_eq!(b.discovery_fetches(), 1);
        verify(token_b.clone()).await.expect("rebuilt");
        assert_eq!(b.discovery_fetches(), 2);
    }
}
