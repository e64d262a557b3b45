//! The remote key set: rotation, removal, forged-kid floods, outages, single flight, Cache-Control.

use crate::support::code;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::keys::KeyCacheSettings;
use oidc_bearer::{FetchError, KeysError, Verifier, VerifyError};
use oidc_bearer_testing::{KeyAlg, TestIssuer};
use serde_json::json;
use std::time::Duration;

const AUD: &str = "my-service";

fn verifier(issuer: &TestIssuer, clock: &ManualClock) -> Verifier {
    Verifier::builder(issuer.issuer(), AUD)
        .with_clock(clock.clone())
        .build()
        .unwrap()
}

async fn check(verifier: &Verifier, token: &str) -> Result<DefaultClaims, VerifyError> {
    verifier.verify(token).await
}

#[tokio::test]
async fn rotation_is_picked_up_without_restart() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    assert_eq!(code(check(&v, &issuer.token().aud(AUD).sign()).await), "ok");
    assert_eq!(issuer.jwks_fetches(), 1);
    let new_kid = issuer.rotate();
    // A token with the new kid arrives after the cooldown: one refresh, then accepted.
    clock.advance(Duration::from_secs(31));
    let token = issuer.token().aud(AUD).sign();
    assert!(token.contains('.'));
    assert_eq!(code(check(&v, &token).await), "ok", "new key {new_kid}");
    assert_eq!(issuer.jwks_fetches(), 2);
    // Old-key tokens still verify: the old key is still published.
    let old = issuer.token().aud(AUD).sign_with("key-1").sign();
    assert_eq!(code(check(&v, &old).await), "ok");
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn removed_key_is_refused_after_refresh() {
    let issuer = TestIssuer::start().await;
    let second = issuer.add_key(KeyAlg::ES256);
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    let old = issuer.token().aud(AUD).sign_with("key-1").sign();
    assert_eq!(code(check(&v, &old).await), "ok");
    issuer.remove_key("key-1");
    // Published after the first load: a token of this key can only verify once the refresh has
    // landed, so verifying one is the notification that the key set was swapped.
    let third = issuer.add_key(KeyAlg::ES256);
    // The set expires (default lifetime 10 min); the next read refreshes in the background.
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        code(check(&v, &old).await),
        "ok",
        "stale keys serve while refreshing"
    );
    issuer.wait_for_jwks_fetches(2).await;
    // An unknown kid joins the refresh in flight instead of starting another.
    let newest = issuer.token().aud(AUD).sign_with(&third).sign();
    assert_eq!(code(check(&v, &newest).await), "ok");
    assert_eq!(issuer.jwks_fetches(), 2);
    // The refresh has landed: the removed key is gone, the remaining one still verifies.
    assert_eq!(code(check(&v, &old).await), "unknown_key");
    let fresh = issuer.token().aud(AUD).sign_with(&second).sign();
    assert_eq!(code(check(&v, &fresh).await), "ok");
}

#[tokio::test]
async fn forged_kid_flood_fetches_at_most_once_per_cooldown() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    assert_eq!(code(check(&v, &issuer.token().aud(AUD).sign()).await), "ok");
    clock.advance(Duration::from_secs(31));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let v = v.clone();
        let token = issuer.token().aud(AUD).kid(&format!("forged-{i}")).sign();
        tasks.push(tokio::spawn(async move { code(check(&v, &token).await) }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "unknown_key");
    }
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "one initial fetch, one refresh for the whole flood"
    );
    // Within the cooldown, more forged kids cause no fetch. Their key could have been published
    // since the last fetch, so they are told to retry when the next fetch is allowed (503), unless
    // they say they were issued before that fetch began (then the key was not published for them).
    for i in 0..50 {
        let token = issuer.token().aud(AUD).kid(&format!("again-{i}")).sign();
        let err = check(&v, &token).await.unwrap_err();
        assert_eq!(err.code(), "unknown_key_retry");
        assert!(err.is_unavailable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    }
    let issued_before_the_fetch = issuer
        .token()
        .aud(AUD)
        .kid("old")
        .iat(oidc_bearer_testing::now() - 3600)
        .sign();
    assert_eq!(
        code(check(&v, &issued_before_the_fetch).await),
        "unknown_key"
    );
    assert_eq!(issuer.jwks_fetches(), 2);
    clock.advance(Duration::from_secs(31));
    let token = issuer.token().aud(AUD).kid("late").sign();
    assert_eq!(code(check(&v, &token).await), "unknown_key");
    assert_eq!(issuer.jwks_fetches(), 3);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    let hold = issuer.hold_jwks();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let v = v.clone();
        let token = issuer.token().aud(AUD).sign();
        tasks.push(tokio::spawn(async move { code(check(&v, &token).await) }));
    }
    issuer.wait_for_jwks_fetches(1).await;
    drop(hold);
    for t in tasks {
        assert_eq!(t.await.unwrap(), "ok");
    }
    assert_eq!(issuer.jwks_fetches(), 1);
    assert_eq!(issuer.discovery_fetches(), 1);
}

#[tokio::test]
async fn issuer_down_after_start_keeps_cached_keys_working() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    let token = issuer.token().aud(AUD).expires_in(48 * 3600).sign();
    v.ready().await.unwrap();
    issuer.stop_listening().await;
    assert_eq!(code(check(&v, &token).await), "ok");
    // Past the lifetime, refreshes fail, the stale keys are still served...
    clock.advance(Duration::from_secs(3600));
    assert_eq!(code(check(&v, &token).await), "ok");
    // ...until the maximum staleness (24 h past expiry by default).
    clock.advance(Duration::from_secs(25 * 3600));
    let err = check(&v, &token).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    // The issuer comes back: the next attempt after backoff recovers.
    issuer.resume_listening().await;
    clock.advance(Duration::from_secs(120));
    assert_eq!(code(check(&v, &token).await), "ok");
}

#[tokio::test]
async fn issuer_down_at_start_is_a_distinct_error_then_recovers() {
    let issuer = TestIssuer::start().await;
    issuer.set_down(true);
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    let token = issuer.token().aud(AUD).sign();
    let err = check(&v, &token).await.unwrap_err();
    match &err {
        VerifyError::KeysUnavailable {
            source:
                KeysError::Fetch {
                    source: FetchError::Status { status: 503 },
                    ..
                },
        } => {}
        other => panic!("expected KeysUnavailable(503), got {other:?}"),
    }
    assert_eq!(err.code(), "keys_unavailable");
    // During the backoff no new fetch is made.
    let fetches = issuer.discovery_fetches();
    let err = check(&v, &token).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::KeysUnavailable {
                source: KeysError::Backoff { .. }
            }
        ),
        "{err:?}"
    );
    assert_eq!(issuer.discovery_fetches(), fetches);
    issuer.set_down(false);
    clock.advance(Duration::from_secs(2));
    assert_eq!(code(check(&v, &token).await), "ok");
    assert!(v.ready().await.is_ok());
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_reported() {
    let issuer = TestIssuer::start().await;
    issuer.set_discovery_issuer("https://someone-else.example");
    let v = Verifier::new(issuer.issuer(), AUD).unwrap();
    let err = v.ready().await.unwrap_err();
    assert_eq!(
        err,
        KeysError::IssuerMismatch {
            expected: issuer.issuer(),
            found: "https://someone-else.example".into()
        }
    );
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "keys of a mismatched issuer are never fetched"
    );
}

#[tokio::test]
async fn odd_keys_are_skipped_and_the_set_stays_usable() {
    let issuer = TestIssuer::start().await;
    for jwk in [
        json!({"kty": "AKP", "alg": "ML-DSA-65", "kid": "pq", "pub": "AAAA"}),
        json!({"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "ops", "key_ops": ["encrypt"], "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "short", "n": "x".repeat(171), "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "no-n", "e": "AQAB"}),
        json!({"kid": "no-kty"}),
        json!("not an object"),
    ] {
        issuer.add_raw_jwk(jwk);
    }
    let v = Verifier::new(issuer.issuer(), AUD).unwrap();
    assert_eq!(code(check(&v, &issuer.token().aud(AUD).sign()).await), "ok");
    // A token naming a skipped key is refused as unknown at once: the issuer publishes it, and no
    // later fetch will make it usable.
    assert_eq!(
        code(check(&v, &issuer.token().aud(AUD).kid("short").sign()).await),
        "unknown_key"
    );
}

#[tokio::test]
async fn cache_control_sets_the_lifetime() {
    let issuer = TestIssuer::start().await;
    issuer.set_cache_control(Some("public, max-age=3600"));
    let clock = ManualClock::new();
    let v = verifier(&issuer, &clock);
    let token = issuer.token().aud(AUD).expires_in(48 * 3600).sign();
    assert_eq!(code(check(&v, &token).await), "ok");
    // Within three quarters of the hour: no refresh.
    clock.advance(Duration::from_secs(2000));
    assert_eq!(code(check(&v, &token).await), "ok");
    assert_eq!(issuer.jwks_fetches(), 1);
    // Past it: a background refresh, while the request is served from the cache.
    clock.advance(Duration::from_secs(800));
    assert_eq!(code(check(&v, &token).await), "ok");
    issuer.wait_for_jwks_fetches(2).await;
}

#[tokio::test]
async fn jwks_uri_and_discovery_url_overrides() {
    let issuer = TestIssuer::builder()
        .issuer("https://container.googleapis.com/v1/projects/p/locations/l/clusters/c")
        .start()
        .await;
    // The issuer is not where the server listens: point discovery at the server.
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_discovery_url(issuer.discovery_url())
        .build()
        .unwrap();
    assert_eq!(code(check(&v, &issuer.token().aud(AUD).sign()).await), "ok");
    assert_eq!(issuer.discovery_fetches(), 1);
    // Or skip discovery and name the JWKS.
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_jwks_uri(issuer.jwks_uri())
        .build()
        .unwrap();
    assert_eq!(code(check(&v, &issuer.token().aud(AUD).sign()).await), "ok");
    assert_eq!(issuer.discovery_fetches(), 1);
}

#[tokio::test]
async fn insecure_jwks_uri_from_discovery_is_refused() {
    let issuer = TestIssuer::start().await;
    issuer.set_jwks_uri("http://keys.example/jwks");
    let v = Verifier::new(issuer.issuer(), AUD).unwrap();
    let err = v.ready().await.unwrap_err();
    assert_eq!(err.code(), "insecure_url", "{err}");
}

#[tokio::test]
async fn custom_cache_settings_apply() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let mut settings = KeyCacheSettings::default();
    settings.cooldown = Duration::from_secs(5);
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_clock(clock.clone())
        .with_key_cache(settings)
        .build()
        .unwrap();
    v.ready().await.unwrap();
    clock.advance(Duration::from_secs(6));
    let token = issuer.token().aud(AUD).kid("unknown").sign();
    assert_eq!(code(check(&v, &token).await), "unknown_key");
    assert_eq!(issuer.jwks_fetches(), 2);
}

/// "Forever" spelled `Duration::MAX` is a setting, not a panic: every deadline saturates.
#[tokio::test]
async fn huge_cache_settings_saturate_instead_of_overflowing() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let mut settings = KeyCacheSettings::default();
    settings.cooldown = Duration::MAX;
    settings.max_ttl = Duration::MAX;
    settings.default_ttl = Duration::MAX;
    settings.max_stale = Duration::MAX;
    settings.max_backoff = Duration::MAX;
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_clock(clock.clone())
        .with_key_cache(settings)
        .build()
        .unwrap();
    let token = issuer.token().aud(AUD).sign();
    assert_eq!(code(check(&v, &token).await), "ok");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(code(check(&v, &token).await), "ok");
    let forged = issuer.token().aud(AUD).kid("unknown").sign();
    assert_eq!(code(check(&v, &forged).await), "unknown_key");
    // The cooldown never ends: no second fetch.
    assert_eq!(issuer.jwks_fetches(), 1);
}
