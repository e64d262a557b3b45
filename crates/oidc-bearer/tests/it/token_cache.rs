//! The verified-token cache: what a hit may and may not skip. Correctness only; the speed is in
//! `benches/verify/`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::support::{jwks_of, verifiable_algs};
use oidc_bearer::cache::TokenCacheSettings;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::keys::{Jwks, KeySet, Refresh};
use oidc_bearer::{KeysError, Verifier, VerifyError, VerifyToken};
use oidc_bearer_testing::{KeyAlg, TestIssuer};

const AUD: &str = "my-service";

/// A key set whose keys the test swaps, as a refresh would.
#[derive(Clone)]
struct Swappable(Arc<RwLock<Arc<Jwks>>>);

impl Swappable {
    fn new(issuer: &TestIssuer) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(jwks_of(issuer)))))
    }

    fn set(&self, jwks: Jwks) {
        *self.0.write().unwrap() = Arc::new(jwks);
    }
}

impl KeySet for Swappable {
    fn current(&self) -> Option<Arc<Jwks>> {
        Some(self.0.read().unwrap().clone())
    }

    async fn refresh(&self) -> Result<Refresh, KeysError> {
        Ok(Refresh::fresh(self.0.read().unwrap().clone()))
    }
}

fn verifier(issuer: &TestIssuer, keys: &Swappable, clock: &ManualClock) -> Verifier {
    Verifier::builder(issuer.issuer(), AUD)
        .with_key_set(keys.clone())
        .with_clock(clock.clone())
        .build()
        .unwrap()
}

async fn shared(v: &Verifier, token: &str) -> Result<Arc<DefaultClaims>, VerifyError> {
    v.verify_token::<DefaultClaims>(token).await
}

fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    result.map_or_else(|e| e.code(), |_| "ok")
}

#[tokio::test]
async fn hits_return_the_same_claims() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let v = verifier(&issuer, &keys, &ManualClock::new());
    let token = issuer.token().aud(AUD).sub("alice").sign();
    let first = shared(&v, &token).await.unwrap();
    let second = shared(&v, &token).await.unwrap();
    // A clone shares the cache.
    let third = shared(&v.clone(), &token).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second) && Arc::ptr_eq(&first, &third));
    assert_eq!(second.subject(), Some("alice"));
    let stats = v.token_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.insertions, stats.entries), (2, 1, 1));

    // `verify` (owned claims) uses the same entries: no second signature check.
    let owned: DefaultClaims = v.verify(&token).await.unwrap();
    assert_eq!(owned, *first);
    assert_eq!(v.token_cache_stats().unwrap().insertions, 1);
}

#[tokio::test]
async fn another_claims_type_is_decoded_once_then_shared() {
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: String,
    }
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let v = verifier(&issuer, &keys, &ManualClock::new());
    let token = issuer.token().aud(AUD).sub("bob").sign();
    // Verified through `verify` first: the entry holds no decoded claims yet.
    let _: DefaultClaims = v.verify(&token).await.unwrap();
    let a = v.verify_token::<Sub>(&token).await.unwrap();
    let b = v.verify_token::<Sub>(&token).await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.sub, "bob");
    let stats = v.token_cache_stats().unwrap();
    assert_eq!((stats.insertions, stats.hits), (1, 2));
}

#[tokio::test]
async fn an_expired_token_is_refused_on_a_hit() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let clock = ManualClock::new();
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_key_set(keys.clone())
        .with_clock(clock.clone())
        .with_leeway(Duration::from_secs(5))
        .build()
        .unwrap();
    let token = issuer.token().aud(AUD).expires_in(100).sign();
    assert_eq!(code(shared(&v, &token).await), "ok");
    clock.advance(Duration::from_secs(104));
    assert_eq!(code(shared(&v, &token).await), "ok", "within the leeway");
    clock.advance(Duration::from_secs(2));
    match shared(&v, &token).await {
        Err(VerifyError::Expired { .. }) => {}
        other => panic!("expected Expired, got {other:?}"),
    }
    let stats = v.token_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.invalidations, stats.entries), (1, 1, 0));
    // The rejection was not cached as an acceptance.
    assert_eq!(code(shared(&v, &token).await), "expired");
    assert_eq!(v.token_cache_stats().unwrap().insertions, 1);
}

#[tokio::test]
async fn a_clock_moved_back_before_nbf_refuses_a_hit() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let clock = ManualClock::new();
    let v = verifier(&issuer, &keys, &clock);
    let now = oidc_bearer_testing::now();
    let token = issuer.token().aud(AUD).nbf(now).sign();
    assert_eq!(code(shared(&v, &token).await), "ok");
    clock.set(Duration::from_secs((now - 3600) as u64));
    assert_eq!(code(shared(&v, &token).await), "not_yet_valid");
}

#[tokio::test]
async fn a_token_verified_for_one_audience_is_not_accepted_for_another() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let clock = ManualClock::new();
    let for_a = Verifier::builder(issuer.issuer(), "service-a")
        .with_key_set(keys.clone())
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let for_b = Verifier::builder(issuer.issuer(), "service-b")
        .with_key_set(keys.clone())
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let token = issuer.token().aud("service-a").sign();
    assert_eq!(code(shared(&for_a, &token).await), "ok");
    assert_eq!(code(shared(&for_a, &token).await), "ok");
    for _ in 0..2 {
        assert_eq!(code(shared(&for_b, &token).await), "audience_mismatch");
    }
    assert_eq!(for_b.token_cache_stats().unwrap().entries, 0);
    // Likewise another issuer's policy over the same keys.
    let other_issuer = Verifier::builder("https://other.example", "service-a")
        .with_key_set(keys.clone())
        .build()
        .unwrap();
    assert_eq!(code(shared(&other_issuer, &token).await), "issuer_mismatch");
}

#[tokio::test]
async fn a_key_that_leaves_the_set_invalidates_its_entries() {
    let issuer = TestIssuer::start().await;
    let second = issuer.add_key(KeyAlg::ES256);
    let keys = Swappable::new(&issuer);
    let v = verifier(&issuer, &keys, &ManualClock::new());
    let old = issuer.token().aud(AUD).sign_with("key-1").sign();
    let other = issuer.token().aud(AUD).sign_with(&second).sign();
    assert_eq!(code(shared(&v, &old).await), "ok");
    assert_eq!(code(shared(&v, &other).await), "ok");

    // A refresh that publishes the same keys (a new key set, same material): still hits.
    keys.set(jwks_of(&issuer));
    assert_eq!(code(shared(&v, &old).await), "ok");
    assert_eq!(v.token_cache_stats().unwrap().hits, 1);

    // key-1 is removed: its token is refused, the other key's still hits.
    issuer.remove_key("key-1");
    keys.set(jwks_of(&issuer));
    assert_eq!(code(shared(&v, &old).await), "unknown_key");
    assert_eq!(code(shared(&v, &other).await), "ok");
    let stats = v.token_cache_stats().unwrap();
    assert_eq!((stats.invalidations, stats.hits, stats.entries), (1, 2, 1));
}

#[tokio::test]
async fn a_kid_reused_for_another_key_invalidates_its_entries() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let v = verifier(&issuer, &keys, &ManualClock::new());
    let token = issuer.token().aud(AUD).sign();
    assert_eq!(code(shared(&v, &token).await), "ok");
    // Same kid, other key material.
    let impostor = TestIssuer::builder()
        .kid(&issuer.signing_kid())
        .start()
        .await;
    keys.set(jwks_of(&impostor));
    assert_eq!(code(shared(&v, &token).await), "invalid_signature");
    assert_eq!(v.token_cache_stats().unwrap().invalidations, 1);
}

#[tokio::test]
async fn the_bounds_hold_under_a_stream_of_distinct_tokens() {
    let issuer = TestIssuer::builder().key(KeyAlg::ES256).start().await;
    let keys = Swappable::new(&issuer);
    let mut settings = TokenCacheSettings::default();
    settings.max_entries = 40;
    settings.max_bytes = 64 * 1024;
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_key_set(keys)
        .with_token_cache(settings)
        .build()
        .unwrap();
    let hot = issuer.token().aud(AUD).sign();
    for i in 0..300 {
        let token = issuer
            .token()
            .aud(AUD)
            .claim("pad", serde_json::json!("x".repeat(i % 700)))
            .sign();
        assert_eq!(code(shared(&v, &token).await), "ok");
        // A token in constant use stays cached through the churn.
        assert_eq!(code(shared(&v, &hot).await), "ok");
        let stats = v.token_cache_stats().unwrap();
        assert!(stats.entries <= 40 && stats.bytes <= 64 * 1024, "{stats:?}");
    }
    let stats = v.token_cache_stats().unwrap();
    assert!(stats.evictions >= 250, "{stats:?}");
    assert!(stats.hits >= 290, "the hot token was evicted: {stats:?}");
}

#[tokio::test]
async fn rejections_are_not_cached() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let v = verifier(&issuer, &keys, &ManualClock::new());
    let token = issuer.token().aud(AUD).sign();
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{rest}.{flipped}{}", &signature[1..]);
    for _ in 0..3 {
        assert_eq!(code(shared(&v, &forged).await), "invalid_signature");
        assert_eq!(code(shared(&v, "not.a.token").await), "malformed");
        let wrong_aud = issuer.token().aud("other").sign();
        assert_eq!(code(shared(&v, &wrong_aud).await), "audience_mismatch");
    }
    let stats = v.token_cache_stats().unwrap();
    assert_eq!((stats.entries, stats.insertions, stats.hits), (0, 0, 0));
    // The real token after its forgery: accepted, then cached.
    assert_eq!(code(shared(&v, &token).await), "ok");
    assert_eq!(code(shared(&v, &forged).await), "invalid_signature");
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let issuer = TestIssuer::start().await;
    let keys = Swappable::new(&issuer);
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_key_set(keys)
        .without_token_cache()
        .build()
        .unwrap();
    let token = issuer.token().aud(AUD).sign();
    let a = shared(&v, &token).await.unwrap();
    let b = shared(&v, &token).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert!(v.token_cache_stats().is_none());
    let mut zero = TokenCacheSettings::default();
    zero.max_entries = 0;
    let err = Verifier::builder(issuer.issuer(), AUD)
        .with_token_cache(zero)
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_setting");
}

/// 64 first uses of one token, all waiting for the one JWKS fetch and then racing: returns the
/// cache's counters and how many distinct claims `Arc`s the requests got.
async fn first_uses_race() -> (oidc_bearer::cache::TokenCacheStats, usize) {
    let issuer = TestIssuer::start().await;
    let v = Verifier::builder(issuer.issuer(), AUD).build().unwrap();
    let token = issuer.token().aud(AUD).sign();
    // Every request arrives before the keys: all wait for the one fetch, then race.
    let hold = issuer.hold_jwks();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { shared(&v, &token).await })
        })
        .collect();
    issuer.wait_for_jwks_fetches(1).await;
    drop(hold);
    let mut claims = Vec::new();
    for task in tasks {
        claims.push(task.await.unwrap().unwrap());
    }
    let stats = v.token_cache_stats().unwrap();
    assert_eq!(stats.insertions + stats.hits, 64, "{stats:?}");
    assert_eq!(stats.entries, 1);
    assert_eq!(issuer.jwks_fetches(), 1);
    let mut distinct: Vec<&Arc<DefaultClaims>> = Vec::new();
    for c in &claims {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, c)) {
            distinct.push(c);
        }
    }
    (stats, distinct.len())
}

/// On any schedule, concurrent first uses keep one entry, and every hit shares the cached `Arc`:
/// only the verifications (at most one per request) made their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_uses_of_one_token_keep_one_entry() {
    let (stats, distinct) = first_uses_race().await;
    assert!(stats.insertions >= 1, "{stats:?}");
    assert!(
        distinct as u64 <= stats.insertions,
        "{distinct} distinct, {stats:?}"
    );
}

/// A lookup, the verification and the insertion run without a suspension point: on one thread, the
/// first request to resume verifies and caches the token before any other runs, so the other 63
/// hit and share its claims.
#[tokio::test(flavor = "current_thread")]
async fn first_uses_on_one_thread_verify_the_token_once() {
    let (stats, distinct) = first_uses_race().await;
    assert_eq!((stats.insertions, stats.hits), (1, 63), "{stats:?}");
    assert_eq!(distinct, 1);
}

/// A tampered token is refused on the miss path for every algorithm: the cache key (a digest of the
/// signature segment) never stands in for the signature check.
#[tokio::test]
async fn tampered_tokens_are_refused_on_the_miss_path() {
    for alg in verifiable_algs() {
        let issuer = TestIssuer::builder().key(alg).start().await;
        let keys = Swappable::new(&issuer);
        let v = verifier(&issuer, &keys, &ManualClock::new());
        let good = issuer.token().aud(AUD).sub("alice").sign();
        let evil = issuer.token().aud(AUD).sub("admin").sign();
        let parts: Vec<&str> = good.split('.').collect();
        let evil_payload = evil.split('.').nth(1).unwrap();
        let swapped = format!("{}.{evil_payload}.{}", parts[0], parts[2]);
        let mut signature = parts[2].as_bytes().to_vec();
        signature[5] = if signature[5] == b'A' { b'B' } else { b'A' };
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            String::from_utf8(signature).unwrap()
        );
        for (what, token) in [("payload", &swapped), ("signature", &flipped)] {
            assert_eq!(
                code(shared(&v, token).await),
                "invalid_signature",
                "{alg} {what}"
            );
        }
        assert_eq!(code(shared(&v, &good).await), "ok", "{alg}");
        assert_eq!(v.token_cache_stats().unwrap().insertions, 1, "{alg}");
    }
}
