//! Many issuers at once: selection by `iss`, laziness, eviction, negative caching, the limits on new
//! pattern issuers (probation, rate), and the rule that one issuer's keys never vouch for another's
//! tokens. Real issuers on 127.0.0.1, keys per test.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use crate::support::fetches;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::issuers::gke::{GkeClusters, gke_issuer};
use oidc_bearer::rejection::AuthRejection;
use oidc_bearer::{BearerAuthLayer, Claims, Verifier, VerifierBuilder, VerifyError};
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::TestIssuer;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const AUD: &str = "my-service";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

async fn verify(registry: &IssuerRegistry, token: &str) -> Result<DefaultClaims, VerifyError> {
    registry.verify::<DefaultClaims>(token).await
}

fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// Trusts every issuer on loopback http, as a pattern: each is built on demand, on probation until
/// its keys load. Made-up issuers are paths under a real `TestIssuer`'s address.
fn loopback_pattern(iss: &str) -> Option<VerifierBuilder> {
    iss.starts_with("http://127.0.0.1:")
        .then(|| Verifier::builder(iss, AUD))
}

/// The limit a refusal of a new issuer names, if it is one.
fn refused_by(result: Result<DefaultClaims, VerifyError>) -> Option<&'static str> {
    match result {
        Err(VerifyError::TooManyNewIssuers { limit }) => Some(limit),
        _ => None,
    }
}

#[tokio::test]
async fn tokens_of_one_issuer_signed_with_anothers_key_are_refused() {
    let a = TestIssuer::start().await;
    let b = TestIssuer::builder().kid("b-key").start().await;
    let c = TestIssuer::start().await; // same kid as a ("key-1"), another key
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(a.issuer(), AUD))
        .with_issuer(Verifier::builder(b.issuer(), AUD))
        .with_issuer(Verifier::builder(c.issuer(), AUD))
        .build()
        .unwrap();
    assert_eq!(
        code(verify(&registry, &a.token().aud(AUD).sign()).await),
        "ok"
    );
    assert_eq!(
        code(verify(&registry, &b.token().aud(AUD).sign()).await),
        "ok"
    );
    assert_eq!(
        code(verify(&registry, &c.token().aud(AUD).sign()).await),
        "ok"
    );

    // `iss` says a, signed with b's key and kid: a's keys have no such kid. Within the refresh
    // cooldown of a's keys, "not known yet, retry" (503); never accepted.
    let forged = b.token().iss(&a.issuer()).aud(AUD).sign();
    assert_eq!(code(verify(&registry, &forged).await), "unknown_key_retry");
    // `iss` says a, signed with c's key under the kid both use: a's key does not verify it.
    let forged = c.token().iss(&a.issuer()).aud(AUD).sign();
    assert_eq!(code(verify(&registry, &forged).await), "invalid_signature");
    // And the other way round.
    let forged = a.token().iss(&c.issuer()).aud(AUD).sign();
    assert_eq!(code(verify(&registry, &forged).await), "invalid_signature");
}

#[tokio::test]
async fn untrusted_or_missing_issuers_are_refused_without_any_fetch() {
    let trusted = TestIssuer::start().await;
    let stranger = TestIssuer::start().await;
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(trusted.issuer(), AUD))
        .with_pattern(|iss: &str| {
            iss.starts_with("https://never.example/")
                .then(|| Verifier::builder(iss, AUD))
        })
        .build()
        .unwrap();
    let rows = [
        (
            "stranger",
            stranger.token().aud(AUD).sign(),
            "untrusted_issuer",
        ),
        (
            "no iss",
            trusted.token().no_iss().aud(AUD).sign(),
            "untrusted_issuer",
        ),
        (
            "iss array",
            trusted
                .token()
                .claim("iss", json!([trusted.issuer()]))
                .aud(AUD)
                .sign(),
            "invalid_claim",
        ),
        ("garbage", "not.a.token".to_owned(), "malformed"),
    ];
    for (name, token, expected) in rows {
        assert_eq!(code(verify(&registry, &token).await), expected, "{name}");
    }
    assert_eq!(stranger.discovery_fetches() + stranger.jwks_fetches(), 0);
    assert_eq!(trusted.discovery_fetches() + trusted.jwks_fetches(), 0);
    assert_eq!(registry.built_issuers(), 0);
}

/// A registry of 10,000 exact issuers serves the few that are used, and builds only those.
#[tokio::test]
async fn ten_thousand_exact_issuers() {
    let real: Vec<TestIssuer> = vec![
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    let mut builder = IssuerRegistry::builder();
    for i in 0..10_000 - real.len() {
        builder = builder.with_issuer(Verifier::builder(
            format!("https://issuer-{i}.example/tenant/{i}"),
            AUD,
        ));
    }
    for issuer in &real {
        builder = builder.with_issuer(Verifier::builder(issuer.issuer(), AUD));
    }
    let registry = builder.build().unwrap();
    for issuer in &real {
        for _ in 0..2 {
            let claims = verify(&registry, &issuer.token().aud(AUD).sub("alice").sign())
                .await
                .unwrap();
            assert_eq!(claims.registered.iss, issuer.issuer());
        }
        assert_eq!(issuer.discovery_fetches(), 1);
    }
    // Only the issuers that were used were built; the other 9,997 cost a map entry each.
    assert_eq!(registry.built_issuers(), 3);

    // The lookup is a hash-map probe whatever the number of issuers; its cost is measured side by
    // side with a one-issuer registry in `benches/registry.rs`, not timed here.
}

#[tokio::test]
async fn idle_pattern_issuers_are_evicted_and_rebuilt_on_return() {
    let issuers = [
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    let [a, b, c] = &issuers;
    let clock = ManualClock::new();
    let registry = IssuerRegistry::builder()
        .with_pattern(loopback_pattern)
        .with_max_live_issuers(2)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let use_ = |issuer: &TestIssuer| {
        clock.advance(Duration::from_secs(1));
        let token = issuer.token().aud(AUD).sign();
        let registry = registry.clone();
        async move { verify(&registry, &token).await.unwrap() }
    };
    use_(a).await;
    use_(b).await;
    use_(a).await; // a is now the most recently used
    assert_eq!(registry.built_issuers(), 2);
    use_(c).await; // evicts b
    assert_eq!(registry.built_issuers(), 2);
    use_(a).await; // still live: no new fetch
    assert_eq!(
        [
            a.discovery_fetches(),
            b.discovery_fetches(),
            c.discovery_fetches()
        ],
        [1, 1, 1]
    );
    use_(b).await; // rebuilt (a fresh key cache: one more fetch), evicting c
    assert_eq!(b.discovery_fetches(), 2);
    use_(a).await;
    assert_eq!(a.discovery_fetches(), 1);
    use_(c).await; // rebuilt, evicting b
    assert_eq!(c.discovery_fetches(), 2);
    assert_eq!(registry.built_issuers(), 2);
}

#[tokio::test]
async fn a_flood_of_made_up_issuers_evicts_neither_exact_nor_proven_issuers() {
    let exact = TestIssuer::start().await;
    let proven = [
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    // The made-up issuers are paths under this one's address; it answers 503 to everything.
    let down = TestIssuer::start().await;
    down.set_down(true);
    let clock = ManualClock::new();
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(exact.issuer(), AUD))
        .with_pattern(loopback_pattern)
        .with_max_live_issuers(4)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    // The exact issuer, and four pattern issuers proven: the proven set is full.
    for issuer in std::iter::once(&exact).chain(&proven) {
        clock.advance(Duration::from_secs(1));
        let token = issuer.token().aud(AUD).sub("before").sign();
        assert_eq!(code(verify(&registry, &token).await), "ok");
        assert_eq!(fetches(issuer), (1, 1));
    }

    // Twenty made-up issuers, each newer than every real one: each is tried (one discovery fetch),
    // fails and is negatively cached.
    for i in 0..20 {
        clock.advance(Duration::from_secs(1));
        let token = down
            .token()
            .iss(&format!("{}/made-up-{i}", down.issuer()))
            .aud(AUD)
            .sign();
        assert_eq!(code(verify(&registry, &token).await), "keys_unavailable");
        assert_eq!(
            down.requests_to(&format!("/made-up-{i}{DISCOVERY_PATH}")),
            1,
            "made-up issuer {i} was tried"
        );
    }

    // Every real issuer is still there, with its key cache: new tokens verify without a fetch.
    for issuer in std::iter::once(&exact).chain(&proven) {
        let token = issuer.token().aud(AUD).sub("after").sign();
        assert_eq!(code(verify(&registry, &token).await), "ok");
        assert_eq!(fetches(issuer), (1, 1), "{}", issuer.issuer());
    }
    assert_eq!(registry.built_issuers(), 5);
}

#[tokio::test]
async fn a_full_probation_refuses_new_issuers_without_fetching_until_it_drains() {
    let trying = [TestIssuer::start().await, TestIssuer::start().await];
    let newcomer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let registry = IssuerRegistry::builder()
        .with_pattern(loopback_pattern)
        .with_max_pending_issuers(2)
        .with_negative_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .build()
        .unwrap();

    // Two new issuers whose key fetches hang: both on probation, which is now full.
    let holds: Vec<_> = trying.iter().map(TestIssuer::hold_jwks).collect();
    let tasks: Vec<_> = trying
        .iter()
        .map(|issuer| {
            let registry = registry.clone();
            let token = issuer.token().aud(AUD).sign();
            tokio::spawn(async move { code(verify(&registry, &token).await) })
        })
        .collect();
    for issuer in &trying {
        issuer.wait_for_jwks_fetches(1).await;
    }
    assert_eq!(registry.pending_issuers(), 2);

    // A third new issuer is refused at once, as "unavailable, try later", and not contacted.
    let token = newcomer.token().aud(AUD).sign();
    let result = verify(&registry, &token).await;
    assert!(result.as_ref().is_err_and(VerifyError::is_unavailable));
    assert_eq!(refused_by(result), Some("max_pending_issuers"));
    // Through the HTTP layer: 503 with Retry-After.
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(registry.clone()))
        .service(service_fn(|_: http::Request<String>| async {
            Ok::<_, Infallible>(http::Response::new(axum::body::Body::empty()))
        }));
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let rejection = response.extensions().get::<AuthRejection>().unwrap();
    assert_eq!(rejection.code(), "too_many_new_issuers");
    assert_eq!(fetches(&newcomer), (0, 0));

    // The two fail (their JWKS answers 503): they leave probation, negatively cached.
    for issuer in &trying {
        issuer.set_down(true);
    }
    drop(holds);
    for task in tasks {
        assert_eq!(task.await.unwrap(), "keys_unavailable");
    }
    assert_eq!(registry.pending_issuers(), 0);
    for issuer in &trying {
        let result = verify(&registry, &issuer.token().aud(AUD).sign()).await;
        assert_eq!(code(result), "keys_unavailable");
        assert_eq!(fetches(issuer), (1, 1), "refused from the negative cache");
    }

    // Room again: the newcomer is admitted, fetched once and proven.
    let claims = verify(&registry, &token).await.unwrap();
    assert_eq!(claims.registered.iss, newcomer.issuer());
    assert_eq!(fetches(&newcomer), (1, 1));
    assert_eq!(registry.pending_issuers(), 0);
    assert_eq!(registry.built_issuers(), 1);
}

#[tokio::test]
async fn new_pattern_issuers_are_rate_limited_by_the_registry_clock() {
    let [a, b, c] = [
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    let clock = ManualClock::new();
    let registry = IssuerRegistry::builder()
        .with_pattern(loopback_pattern)
        .with_new_issuer_rate(2, Duration::from_secs(10))
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let token = |issuer: &TestIssuer, sub: &str| issuer.token().aud(AUD).sub(sub).sign();

    // The burst: two new issuers.
    for issuer in [&a, &b] {
        assert_eq!(code(verify(&registry, &token(issuer, "1")).await), "ok");
    }
    // The third is refused without a fetch.
    let result = verify(&registry, &token(&c, "1")).await;
    assert_eq!(refused_by(result), Some("new_issuer_rate"));
    // Known issuers are not limited.
    for issuer in [&a, &b] {
        assert_eq!(code(verify(&registry, &token(issuer, "2")).await), "ok");
    }
    // Still refused just before the next token is due...
    clock.advance(Duration::from_millis(9_999));
    let result = verify(&registry, &token(&c, "2")).await;
    assert_eq!(refused_by(result), Some("new_issuer_rate"));
    assert_eq!(fetches(&c), (0, 0));
    // ...admitted once it is.
    clock.advance(Duration::from_millis(1));
    assert_eq!(code(verify(&registry, &token(&c, "3")).await), "ok");
    assert_eq!(fetches(&c), (1, 1));
    assert_eq!([fetches(&a), fetches(&b)], [(1, 1), (1, 1)]);
}

#[tokio::test]
async fn a_failing_issuer_is_negatively_cached_and_never_takes_a_live_slot() {
    let broken = TestIssuer::start().await;
    let healthy = TestIssuer::start().await;
    broken.set_down(true);
    let clock = ManualClock::new();
    let trusted: HashMap<String, ()> = [(broken.issuer(), ()), (healthy.issuer(), ())]
        .into_iter()
        .collect();
    let registry = IssuerRegistry::builder()
        // A pattern, so that each issuer is built on demand (and evictable).
        .with_pattern(move |iss: &str| {
            trusted
                .contains_key(iss)
                .then(|| Verifier::builder(iss, AUD))
        })
        .with_max_live_issuers(1)
        .with_negative_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let broken_token = broken.token().aud(AUD).sign();
    let attempts = || broken.requests_to(DISCOVERY_PATH);

    let err = verify(&registry, &broken_token).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(attempts(), 1);
    for _ in 0..5 {
        let err = verify(&registry, &broken_token).await.unwrap_err();
        assert_eq!(err.code(), "keys_unavailable");
        assert!(err.to_string().contains("503"), "{err}");
    }
    assert_eq!(
        attempts(),
        1,
        "refused from the negative cache, without a fetch"
    );

    // The other issuer is unaffected, and takes the only live slot (the broken one never had it)...
    let claims = verify(&registry, &healthy.token().aud(AUD).sign())
        .await
        .unwrap();
    assert_eq!(claims.registered.iss, healthy.issuer());
    // ...which does not reset the broken issuer's wait.
    assert_eq!(
        code(verify(&registry, &broken_token).await),
        "keys_unavailable"
    );
    assert_eq!(attempts(), 1);

    // After the negative period: one new attempt, still failing.
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        code(verify(&registry, &broken_token).await),
        "keys_unavailable"
    );
    assert_eq!(attempts(), 2);
    assert_eq!(
        code(verify(&registry, &broken_token).await),
        "keys_unavailable"
    );
    assert_eq!(attempts(), 2);

    // Back up: accepted after the next period.
    broken.set_down(false);
    clock.advance(Duration::from_secs(61));
    let claims = verify(&registry, &broken_token).await.unwrap();
    assert_eq!(claims.registered.iss, broken.issuer());
    assert_eq!(attempts(), 3);
}

#[tokio::test]
async fn gke_clusters_of_listed_projects_are_trusted_by_pattern() {
    let trusted_issuer = gke_issuer("prod-1", "europe-west1", "payments");
    let other_issuer = gke_issuer("someone-else", "europe-west1", "payments");
    let cluster = TestIssuer::builder().issuer(&trusted_issuer).start().await;
    let foreign = TestIssuer::builder().issuer(&other_issuer).start().await;
    // Discovery of each (https) issuer is served by its stand-in on 127.0.0.1.
    let discovery: HashMap<String, String> = [
        (trusted_issuer.clone(), cluster.discovery_url()),
        (other_issuer.clone(), foreign.discovery_url()),
    ]
    .into_iter()
    .collect();
    let pattern = GkeClusters::new(AUD)
        .project("prod-1")
        .with_configure(move |builder, iss| builder.with_discovery_url(&discovery[iss]));
    let registry = IssuerRegistry::builder()
        .with_pattern(pattern)
        .build()
        .unwrap();

    let token = cluster
        .token()
        .kubernetes("prod", "billing")
        .aud(AUD)
        .sign();
    let claims = verify(&registry, &token).await.unwrap();
    assert_eq!(claims.registered.iss, trusted_issuer);
    let token = foreign
        .token()
        .kubernetes("prod", "billing")
        .aud(AUD)
        .sign();
    assert_eq!(code(verify(&registry, &token).await), "untrusted_issuer");
    assert_eq!(foreign.discovery_fetches(), 0);
}

#[tokio::test]
async fn the_http_layer_takes_a_registry() {
    let a = TestIssuer::start().await;
    let b = TestIssuer::start().await;
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(a.issuer(), AUD))
        .with_verifier(Verifier::new(b.issuer(), AUD).unwrap())
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(registry))
        .service(service_fn(|req: http::Request<String>| async move {
            let claims = req.extensions().get::<Claims<DefaultClaims>>().unwrap();
            let response = http::Response::builder()
                .header("x-issuer", claims.registered.iss.as_str())
                .body(axum::body::Body::empty())
                .unwrap();
            Ok::<_, Infallible>(response)
        }));
    for issuer in [&a, &b] {
        let request = http::Request::builder()
            .header(
                "authorization",
                format!("Bearer {}", issuer.token().aud(AUD).sign()),
            )
            .body(String::new())
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-issuer"], issuer.issuer().as_str());
    }
    let stranger = TestIssuer::start().await;
    let request = http::Request::builder()
        .header(
            "authorization",
            format!("Bearer {}", stranger.token().aud(AUD).sign()),
        )
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn each_built_issuer_gets_the_registrys_token_cache_bounds() {
    use oidc_bearer::cache::TokenCacheSettings;

    let (a, b) = (TestIssuer::start().await, TestIssuer::start().await);
    let mut settings = TokenCacheSettings::default();
    settings.max_entries = 3;
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(a.issuer(), AUD))
        .with_issuer(Verifier::builder(b.issuer(), AUD))
        .with_issuer_token_cache(settings)
        .build()
        .unwrap();
    // Ten distinct tokens from each issuer: each issuer's cache holds at most three.
    for issuer in [&a, &b] {
        for i in 0..10 {
            let token = issuer.token().aud(AUD).sub(&format!("pod-{i}")).sign();
            assert_eq!(code(verify(&registry, &token).await), "ok");
        }
    }
    let stats = registry.token_cache_stats();
    assert_eq!(stats.entries, 6, "{stats:?}");
    assert_eq!(stats.insertions, 20);
    assert_eq!(stats.evictions, 14);
    // A repeated token is a hit, not a new verification.
    let token = a.token().aud(AUD).sub("repeat").sign();
    verify(&registry, &token).await.unwrap();
    verify(&registry, &token).await.unwrap();
    assert_eq!(registry.token_cache_stats().hits, stats.hits + 1);
    // Zero bounds are refused when the registry is built.
    let mut zero = TokenCacheSettings::default();
    zero.max_entries = 0;
    assert!(
        IssuerRegistry::builder()
            .with_issuer_token_cache(zero)
            .build()
            .is_err()
    );
}

/// Concurrent first requests for one new pattern issuer share its build: one probation slot, one
/// rate-limit token, one key cache; none is refused for a limit the issuer itself filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_for_one_new_issuer_share_one_slot() {
    let issuer = TestIssuer::start().await;
    let registry = IssuerRegistry::builder()
        .with_pattern(loopback_pattern)
        .with_max_pending_issuers(1)
        .with_new_issuer_rate(1, Duration::from_secs(3600))
        .build()
        .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (registry, barrier) = (registry.clone(), barrier.clone());
            let token = issuer.token().aud(AUD).sign();
            tokio::spawn(async move {
                barrier.wait().await;
                code(verify(&registry, &token).await)
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "ok");
    }
    assert_eq!(fetches(&issuer), (1, 1));
    assert_eq!(registry.built_issuers(), 1);
}
