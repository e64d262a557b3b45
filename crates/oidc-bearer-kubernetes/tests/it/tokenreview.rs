//! The TokenReview verifier against the testing crate's API-server stand-in on 127.0.0.1: every
//! answer mapping, the answer cache (hits, TTLs, the `exp` bound, bounds), single flight, the
//! concurrency cap, cancellation, and the HTTP layer's statuses.

use std::sync::Arc;
use std::time::Duration;

use crate::support::cluster::{AUD, Cluster};
use crate::support::{code, layer_status};
use axum::Router;
use axum::routing::get;
use oidc_bearer::clock::{Clock as _, ManualClock};
use oidc_bearer::policy::{self, AuthorizeLayer};
use oidc_bearer::{BearerAuthLayer, Claims, FetchError, FlightError, VerifyError, VerifyToken};
use oidc_bearer_kubernetes::ReviewError;
use oidc_bearer_kubernetes::{
    TokenReview, TokenReviewBuilder, TokenReviewClaims, TokenReviewSettings,
};
use serde_json::json;

impl Cluster {
    fn review_builder(&self) -> TokenReviewBuilder {
        TokenReview::builder(self.in_cluster().api_server().unwrap(), AUD)
    }

    fn review(&self) -> TokenReview {
        self.review_builder().build().unwrap()
    }

    /// A verifier on `clock` that keeps acceptances 30 s and refusals 5 s.
    fn review_with_ttls(&self, clock: &ManualClock) -> TokenReview {
        self.review_builder()
            .with_clock(clock.clone())
            .with_settings({
                let mut settings = TokenReviewSettings::default();
                settings.cache_ttl = Duration::from_secs(30);
                settings.negative_ttl = Duration::from_secs(5);
                settings
            })
            .build()
            .unwrap()
    }
}

fn source(result: Result<TokenReviewClaims, VerifyError>) -> ReviewError {
    match result {
        Err(error @ VerifyError::ReviewUnavailable { .. }) => {
            ReviewError::of(&error).cloned().expect("a ReviewError")
        }
        other => panic!("expected ReviewUnavailable, got {other:?}"),
    }
}

/// Runs each future once, here, then as a task of its own. A verification's first poll does all
/// that precedes its first wait (the cache lookup, then joining a review in flight or starting one,
/// which takes a review slot or counts as waiting for one), so that the counters of
/// [`TokenReview::stats`] are exact when this returns: no polling, no sleep.
async fn started<F>(futures: Vec<F>) -> Vec<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            assert!(
                future.as_mut().poll(cx).is_pending(),
                "held by the API server"
            );
        }
        std::task::Poll::Ready(())
    })
    .await;
    futures.into_iter().map(tokio::spawn).collect()
}

#[tokio::test]
async fn an_accepted_token_gives_typed_claims_and_is_reviewed_once() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let builder = cluster.token();
    let claims = builder.claims();
    let token = builder.sign();
    let got = review.verify(&token).await.unwrap();
    let k8s = &claims["kubernetes.io"];
    let sa = got.service_account().unwrap();
    assert_eq!((sa.namespace, sa.name), ("prod", "billing"));
    assert_eq!(sa.uid, k8s["serviceaccount"]["uid"]);
    assert_eq!(got.pod_name(), k8s["pod"]["name"].as_str());
    assert_eq!(got.pod_uid(), k8s["pod"]["uid"].as_str());
    assert_eq!(got.node_name(), Some("node-1"));
    assert_eq!(
        got.credential_id().unwrap(),
        format!("JTI={}", claims["jti"].as_str().unwrap())
    );
    assert_eq!(got.audiences, [AUD]);
    assert!(
        got.groups
            .contains(&"system:serviceaccounts:prod".to_owned())
    );
    // What was sent: the token and our audiences.
    let spec = cluster.reviews.last_spec().unwrap();
    assert_eq!(spec, json!({"token": token, "audiences": [AUD]}));

    // Cached: no second review, the same `Arc`, through the HTTP layer too.
    let a = review
        .verify_token::<TokenReviewClaims>(&token)
        .await
        .unwrap();
    let b = review
        .verify_token::<TokenReviewClaims>(&token)
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1);
    assert_eq!(review.stats().reviews, 1);
    // Other claim types are decoded from the claims' JSON.
    let value: Arc<serde_json::Value> = review.verify_token(&token).await.unwrap();
    assert_eq!(value["username"], "system:serviceaccount:prod:billing");
    assert_eq!(
        layer_status::<serde_json::Value>(&review, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1);
}

/// An answer that does not fit the caller's claims type is a decoding error that names a missing
/// field and never quotes a value, as the local verifier's.
#[tokio::test]
async fn answers_that_do_not_fit_the_claims_type_name_no_value() {
    #[derive(Debug, serde::Deserialize)]
    struct NeedsEmail {
        #[allow(dead_code)]
        email: String,
    }
    #[derive(Debug, serde::Deserialize)]
    struct UsernameIsANumber {
        #[allow(dead_code)]
        username: u64,
    }
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let token = cluster.token().sign();
    let message = |result: Result<_, VerifyError>| match result {
        Err(VerifyError::ClaimsDecode { message }) => message,
        other => panic!("expected ClaimsDecode, got {other:?}"),
    };
    let missing = review.verify_token::<NeedsEmail>(&token).await;
    assert_eq!(message(missing.map(drop)), "missing field `email`");
    let wrong = review.verify_token::<UsernameIsANumber>(&token).await;
    let wrong = message(wrong.map(drop));
    assert_eq!(wrong, "a claim has the wrong type or value");
    assert!(!wrong.contains("billing"), "{wrong}");
}

#[tokio::test]
async fn refusals_are_401_with_the_api_servers_error_kept() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    let result = review.verify(&revoked).await;
    assert_eq!(
        result,
        Err(VerifyError::ReviewRefused {
            error: Some(
                "[invalid bearer token, service account token has been invalidated]".into()
            )
        })
    );
    assert!(!result.unwrap_err().is_unavailable());
    let other_audience = cluster
        .issuer
        .token()
        .kubernetes("prod", "billing")
        .aud("other")
        .sign();
    let Err(VerifyError::ReviewRefused { error: Some(error) }) =
        review.verify(&other_audience).await
    else {
        panic!("refusal expected")
    };
    assert!(
        error.contains("is invalid for the target audiences"),
        "{error}"
    );
}

#[tokio::test]
async fn authenticated_answers_must_name_one_of_our_audiences() {
    let cluster = Cluster::start().await;
    let review = cluster
        .review_builder()
        .with_audience("second")
        .build()
        .unwrap();
    let user = json!({"username": "system:serviceaccount:prod:billing"});
    let rows = [
        (json!(["second", "x"]), "ok"),
        (json!(["x"]), "audience_mismatch"),
        (json!([]), "audience_mismatch"),
        (json!(null), "audience_mismatch"),
    ];
    for (audiences, expected) in rows {
        cluster.reviews.answer_with(Some(json!({
            "authenticated": true, "user": user, "audiences": audiences,
        })));
        let result = review.verify(&cluster.token().sign()).await;
        if let Ok(claims) = &result {
            assert_eq!(claims.audiences, ["second"]);
        }
        assert_eq!(code(result), expected, "{audiences}");
    }
    // Authenticated without a user: not trusted, 503.
    cluster
        .reviews
        .answer_with(Some(json!({"authenticated": true, "audiences": [AUD]})));
    let error = source(review.verify(&cluster.token().sign()).await);
    assert_eq!(error.code(), "review_invalid_response");
}

#[tokio::test]
async fn api_server_failures_are_503_and_never_an_acceptance() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    for status in [500, 503, 429] {
        cluster.reviews.fail_with(Some(status));
        let error = source(review.verify(&cluster.token().sign()).await);
        assert_eq!(error, ReviewError::Fetch(FetchError::Status { status }));
        assert!(!error.is_configuration());
    }
    cluster.reviews.fail_with(Some(404));
    let error = source(review.verify(&cluster.token().sign()).await);
    assert!(
        error.is_configuration(),
        "a wrong URL is a configuration mistake"
    );
    cluster.reviews.fail_with(None);

    // Our own credentials refused: a configuration error.
    cluster.reviews.forbid_callers(true);
    let error = source(review.verify(&cluster.token().sign()).await);
    assert_eq!(error, ReviewError::Unauthorized { status: 403 });
    assert!(error.is_configuration());
    cluster.reviews.forbid_callers(false);
    std::fs::write(&cluster.token_path, cluster.token().sign()).unwrap();
    let error = source(review.verify(&cluster.token().sign()).await);
    assert_eq!(error, ReviewError::Unauthorized { status: 401 });
    // The rotated credential is read at the next review.
    std::fs::write(&cluster.token_path, cluster.reviews.caller_token()).unwrap();
    assert!(review.verify(&cluster.token().sign()).await.is_ok());

    cluster.issuer.stop_listening().await;
    let error = source(review.verify(&cluster.token().sign()).await);
    assert_eq!(error.code(), "review_transport");
}

#[tokio::test]
async fn malformed_or_expired_tokens_are_refused_without_a_review() {
    let cluster = Cluster::start().await;
    let review = cluster
        .review_builder()
        .with_max_token_bytes(4096)
        .build()
        .unwrap();
    let rows = [
        ("garbage".to_owned(), "malformed"),
        ("a.b.c".to_owned(), "malformed"),
        (cluster.token().sign_none(), "malformed"),
        (
            cluster.token().header("alg", json!("none")).sign(),
            "unsupported_algorithm",
        ),
        (
            cluster.token().sign_hmac("HS256", &[7; 32]),
            "unsupported_algorithm",
        ),
        (cluster.token().expires_in(-120).sign(), "expired"),
        (
            cluster.token().claim("exp", json!("soon")).sign(),
            "invalid_claim",
        ),
        (
            cluster.token().claim("pad", json!("x".repeat(5000))).sign(),
            "token_too_large",
        ),
    ];
    for (token, expected) in rows {
        assert_eq!(code(review.verify(&token).await), expected);
    }
    assert_eq!(cluster.reviews.calls(), 0);
}

/// The pre-check's rules, row by row: what it refuses (the local verifier's `alg` and `exp` rules)
/// and what it leaves to the API server (no `exp`, an `exp` within the leeway, `nbf`).
#[tokio::test]
async fn the_pre_check_refuses_by_alg_and_exp_and_leaves_the_rest_to_the_api_server() {
    const REVIEWED: &str = "sent to the API server";
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let now = oidc_bearer_testing::now();
    let rows = [
        // RFC 8725 §3.1: never `none`, in any case, even with a signature segment.
        (
            cluster.token().header("alg", json!("none")).sign(),
            "unsupported_algorithm",
        ),
        (
            cluster.token().header("alg", json!("None")).sign(),
            "unsupported_algorithm",
        ),
        (
            cluster.token().header("alg", json!("NONE")).sign(),
            "unsupported_algorithm",
        ),
        // The API server signs with keys: HMAC is refused (RFC 8725 §2.1).
        (
            cluster.token().sign_hmac("HS256", &[7; 32]),
            "unsupported_algorithm",
        ),
        (
            cluster.token().sign_hmac("HS384", &[7; 48]),
            "unsupported_algorithm",
        ),
        (
            cluster.token().sign_hmac("HS512", &[7; 64]),
            "unsupported_algorithm",
        ),
        (cluster.token().header("alg", json!(7)).sign(), "malformed"),
        // RFC 7519 §4.1.4, with the verifier's 60 s leeway.
        (cluster.token().exp(now - 61).sign(), "expired"),
        (
            cluster
                .token()
                .claim("exp", json!(now as f64 - 90.5))
                .sign(),
            "expired",
        ),
        (cluster.token().exp(0).sign(), "expired"),
        (cluster.token().exp(-1).sign(), "expired"),
        // RFC 7519 §2: a NumericDate is a JSON number.
        (
            cluster.token().claim("exp", json!("soon")).sign(),
            "invalid_claim",
        ),
        (
            cluster.token().claim("exp", json!(now.to_string())).sign(),
            "invalid_claim",
        ),
        (
            cluster.token().claim("exp", json!(true)).sign(),
            "invalid_claim",
        ),
        (
            cluster.token().claim("exp", json!(null)).sign(),
            "invalid_claim",
        ),
        (
            cluster.token().claim("exp", json!([now + 60])).sign(),
            "invalid_claim",
        ),
        (
            cluster.token().claim("exp", json!({"t": now + 60})).sign(),
            "invalid_claim",
        ),
        // The API server's to judge: legacy service-account tokens have no `exp`; an `exp` within
        // the leeway; `nbf` (which the pre-check never reads).
        (cluster.token().no_exp().sign(), REVIEWED),
        (cluster.token().exp(now - 30).sign(), REVIEWED),
        (cluster.token().exp(now + 3600).sign(), REVIEWED),
        (cluster.token().nbf(now + 3600).sign(), REVIEWED),
        (
            cluster.token().claim("nbf", json!("later")).sign(),
            REVIEWED,
        ),
    ];
    for (i, (token, expected)) in rows.into_iter().enumerate() {
        let before = cluster.reviews.calls();
        let result = code(review.verify(&token).await);
        let reviews = cluster.reviews.calls() - before;
        if expected == REVIEWED {
            assert_eq!(reviews, 1, "row {i}: sent to the API server ({result})");
        } else {
            assert_eq!((result, reviews), (expected, 0), "row {i}");
        }
    }
}

/// An `alg` this library does not know is refused before a review, as the local verifier
/// refuses it (JOSE names are case-sensitive, RFC 7515 §4.1.1).
#[tokio::test]
async fn the_pre_check_refuses_an_unknown_alg() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    for alg in ["rs256", "ES256K", "HS1", "XYZ"] {
        let token = cluster.token().header("alg", json!(alg)).sign();
        assert_eq!(
            code(review.verify(&token).await),
            "unsupported_algorithm",
            "{alg}"
        );
    }
    assert_eq!(cluster.reviews.calls(), 0);
}

#[tokio::test]
async fn answers_are_kept_for_their_ttl_never_past_exp_and_refusals_shorter() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let review = cluster.review_with_ttls(&clock);
    let calls = || cluster.reviews.calls();

    let token = cluster.token().sign();
    review.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(29));
    review.verify(&token).await.unwrap();
    assert_eq!(calls(), 1, "within the TTL: cached");
    clock.advance(Duration::from_secs(2));
    review.verify(&token).await.unwrap();
    assert_eq!(calls(), 2, "past the TTL: reviewed again");

    // A token expiring in 10 s (by the verifier's clock) is kept 10 s, not 30.
    let now = clock.now().as_secs() as i64;
    let short = cluster.token().exp(now + 10).sign();
    review.verify(&short).await.unwrap();
    clock.advance(Duration::from_secs(9));
    review.verify(&short).await.unwrap();
    assert_eq!(calls(), 3);
    clock.advance(Duration::from_secs(2));
    // Through the HTTP layer, whose synchronous cache lookup answers first.
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &short).await,
        200
    );
    assert_eq!(calls(), 4, "past exp: not served from the cache");

    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    assert_eq!(code(review.verify(&revoked).await), "review_refused");
    clock.advance(Duration::from_secs(4));
    assert_eq!(code(review.verify(&revoked).await), "review_refused");
    assert_eq!(calls(), 5, "within the negative TTL: cached");
    clock.advance(Duration::from_secs(2));
    assert_eq!(code(review.verify(&revoked).await), "review_refused");
    assert_eq!(calls(), 6);
}

/// Through the layer, whose synchronous hook (`verify_token_cached`, answering cached acceptances
/// only) asks first and `verify_token` next, the cache answers as `verify_token` alone does: an
/// acceptance for its TTL and no longer, a refusal for the negative TTL (401, no new review) and no
/// longer, never an acceptance of a token refused since. (Review R1 of split A wrote it for the
/// asynchronous path alone; an override reading a clock one second late fails it.)
#[tokio::test]
async fn through_the_layer_answers_expire_and_refusals_stay_cached() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let review = cluster.review_with_ttls(&clock);
    let status = async |token: &str| layer_status::<TokenReviewClaims>(&review, token).await;
    let calls = || cluster.reviews.calls();

    let token = cluster.token().sign();
    assert_eq!(status(&token).await, 200);
    clock.advance(Duration::from_secs(29));
    cluster.reviews.delete_bound_object(&token);
    assert_eq!(status(&token).await, 200, "within the TTL: cached");
    assert_eq!(calls(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(status(&token).await, 401, "past the TTL: reviewed, refused");
    assert_eq!(calls(), 2);
    clock.advance(Duration::from_secs(4));
    assert_eq!(status(&token).await, 401, "the refusal, cached");
    assert_eq!(calls(), 2, "within the negative TTL: cached");
    clock.advance(Duration::from_secs(1));
    assert_eq!(status(&token).await, 401);
    assert_eq!(calls(), 3, "past the negative TTL: reviewed again");
}

/// A cached acceptance is answered on the layer's synchronous path (`verify_token_cached`, no
/// future, no copy of the token): the inner service is called by `call` itself, before the
/// response future is polled. A refusal, another claims type, or an answer not yet cached goes
/// through the verification future, which calls it only when polled.
#[tokio::test]
async fn a_cached_acceptance_is_answered_before_the_future_is_polled() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let called = Arc::new(AtomicUsize::new(0));
    // Whether `call` alone (the future left unpolled) reached the inner service.
    let answered_in_call = async |claims_type: &str, token: &str| {
        let inner = service_fn({
            let called = called.clone();
            move |_: http::Request<String>| {
                called.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
            }
        });
        let request = http::Request::builder()
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        let before = called.load(Ordering::SeqCst);
        // Each future is dropped unpolled.
        match claims_type {
            "TokenReviewClaims" => {
                let layer = BearerAuthLayer::new(review.clone()).claims::<TokenReviewClaims>();
                let mut service = layer.layer(inner);
                drop(service.ready().await.unwrap().call(request));
            }
            _ => {
                let layer = BearerAuthLayer::new(review.clone()).claims::<serde_json::Value>();
                let mut service = layer.layer(inner);
                drop(service.ready().await.unwrap().call(request));
            }
        }
        called.load(Ordering::SeqCst) > before
    };
    let token = cluster.token().sign();
    assert!(
        !answered_in_call("TokenReviewClaims", &token).await,
        "not reviewed yet"
    );
    review.verify(&token).await.unwrap();
    assert!(
        answered_in_call("TokenReviewClaims", &token).await,
        "cached"
    );
    assert!(
        !answered_in_call("serde_json::Value", &token).await,
        "another claims type: converted by verify_token"
    );
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    assert_eq!(code(review.verify(&revoked).await), "review_refused");
    assert!(
        !answered_in_call("TokenReviewClaims", &revoked).await,
        "a cached refusal"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_in_entries_and_bytes() {
    let cluster = Cluster::start().await;
    let mut settings = TokenReviewSettings::default();
    settings.max_entries = 2;
    let review = cluster
        .review_builder()
        .with_settings(settings)
        .build()
        .unwrap();
    let tokens: Vec<String> = (0..3).map(|_| cluster.token().sign()).collect();
    for token in &tokens {
        review.verify(token).await.unwrap();
    }
    assert_eq!(review.stats().cached_answers, 2);
    review.verify(&tokens[2]).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 3, "the newest is kept");
    review.verify(&tokens[0]).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 4, "the oldest was evicted");

    // Bytes: each answer here weighs about 3 KiB (a 2,000-byte user name and the token's signing
    // input), so 8 KiB keeps two.
    let mut settings = TokenReviewSettings::default();
    settings.max_bytes = 8192;
    let review = cluster
        .review_builder()
        .with_settings(settings)
        .build()
        .unwrap();
    let long = format!("system:serviceaccount:prod:{}", "n".repeat(2000));
    cluster.reviews.answer_with(Some(json!({
        "authenticated": true, "user": {"username": long}, "audiences": [AUD],
    })));
    for _ in 0..5 {
        review.verify(&cluster.token().sign()).await.unwrap();
    }
    assert_eq!(review.stats().cached_answers, 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_token_share_one_review() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let token = cluster.token().sign();
    let hold = cluster.reviews.hold();
    let tasks = started(
        (0..20)
            .map(|_| {
                let (review, token) = (review.clone(), token.clone());
                async move { review.verify(&token).await }
            })
            .collect(),
    )
    .await;
    assert_eq!(
        review.stats().joined,
        19,
        "all but the first joined its review"
    );
    cluster.reviews.wait_for_calls(1).await;
    drop(hold);
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(cluster.reviews.calls(), 1);
}

#[tokio::test]
async fn reviews_beyond_the_cap_wait_for_a_slot() {
    let cluster = Cluster::start().await;
    let mut settings = TokenReviewSettings::default();
    settings.max_concurrent_reviews = 2;
    let review = cluster
        .review_builder()
        .with_settings(settings)
        .build()
        .unwrap();
    let hold = cluster.reviews.hold();
    let tasks = started(
        (0..5)
            .map(|_| {
                let (review, token) = (review.clone(), cluster.token().sign());
                async move { review.verify(&token).await }
            })
            .collect(),
    )
    .await;
    assert_eq!(
        review.stats().waiting_for_slot,
        3,
        "two slots, five reviews"
    );
    cluster.reviews.wait_for_calls(2).await;
    assert_eq!(cluster.reviews.calls(), 2, "only two reviews in flight");
    drop(hold);
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(cluster.reviews.calls(), 5);
    // Each review leaves its place before publishing its answer.
    let stats = review.stats();
    assert_eq!((stats.waiting_for_slot, stats.pending), (0, 0));
}

#[tokio::test]
async fn a_review_that_waits_for_a_slot_past_its_timeout_leaves_the_queue() {
    let cluster = Cluster::start().await;
    let mut settings = TokenReviewSettings::default();
    settings.max_concurrent_reviews = 1;
    settings.timeout = Duration::from_millis(300);
    let review = cluster
        .review_builder()
        .with_settings(settings)
        .build()
        .unwrap();
    let hold = cluster.reviews.hold();
    let mut tasks = started(
        (0..2)
            .map(|_| {
                let (review, token) = (review.clone(), cluster.token().sign());
                async move { review.verify(&token).await }
            })
            .collect(),
    )
    .await;
    assert_eq!(review.stats().waiting_for_slot, 1, "one slot, two reviews");
    let waiting = tasks.pop().unwrap();
    let error = source(waiting.await.unwrap());
    // Both reviews started within a tick, so the first one's request times out as this one's wait
    // for its slot does: it either timed out in the queue (a local limit, never sent) or got the
    // slot then and timed out at the held API server. Either way it is no longer counted as
    // waiting. (`tokenreview::binding`'s unit tests time out a queued review deterministically.)
    assert!(
        matches!(
            error,
            ReviewError::QueueTimeout { .. } | ReviewError::Fetch(FetchError::Timeout { .. })
        ),
        "{error:?}"
    );
    assert_eq!(
        error.is_api_server_failure(),
        error.code() == "review_timeout"
    );
    assert_eq!(review.stats().waiting_for_slot, 0);
    drop(hold);
    tasks.pop().unwrap().await.unwrap().ok();
}

#[tokio::test]
async fn a_review_outlives_the_requests_that_wait_for_it() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let token = cluster.token().sign();
    let hold = cluster.reviews.hold();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (review, token) = (review.clone(), token.clone());
            tokio::spawn(async move { review.verify(&token).await })
        })
        .collect();
    cluster.reviews.wait_for_calls(1).await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    drop(hold);
    // The review went on: this call joins it or finds the answer it cached when it ended, and
    // nothing was sent again.
    review.verify(&token).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 1);
    assert_eq!(review.stats().reviews, 1);
}

#[tokio::test]
async fn reviews_time_out_and_pending_reviews_are_capped() {
    let cluster = Cluster::start().await;
    let mut settings = TokenReviewSettings::default();
    settings.timeout = Duration::from_millis(300);
    settings.max_pending_reviews = 1;
    let review = cluster
        .review_builder()
        .with_settings(settings)
        .build()
        .unwrap();
    let hold = cluster.reviews.hold();
    let first = tokio::spawn({
        let (review, token) = (review.clone(), cluster.token().sign());
        async move { review.verify(&token).await }
    });
    cluster.reviews.wait_for_calls(1).await;
    let error = source(review.verify(&cluster.token().sign()).await);
    assert_eq!(error, ReviewError::Flight(FlightError::Full { max: 1 }));
    let error = source(first.await.unwrap());
    assert_eq!(error.code(), "review_timeout");
    drop(hold);
}

async fn whoami(Claims(claims): Claims<TokenReviewClaims>) -> String {
    claims.username.clone()
}

#[tokio::test]
async fn through_the_layer_200_401_403_and_503_with_retry_after() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let app: Router = Router::new()
        .route("/whoami", get(whoami))
        .route_layer(
            AuthorizeLayer::new(policy::namespaces(["prod"])).claims::<TokenReviewClaims>(),
        )
        .route_layer(BearerAuthLayer::new(review).claims::<TokenReviewClaims>());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let get = |token: String| client.get(&url).bearer_auth(token).send();

    let ok = get(cluster.token().sign()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.text().await.unwrap(),
        "system:serviceaccount:prod:billing"
    );
    let other_ns = cluster
        .issuer
        .token()
        .kubernetes("dev", "billing")
        .aud(AUD)
        .sign();
    assert_eq!(get(other_ns).await.unwrap().status(), 403);
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    let refused = get(revoked).await.unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("refused by the cluster"), "{challenge}");
    assert!(
        !refused.text().await.unwrap().contains("invalidated"),
        "the API server's error stays in the logs"
    );
    cluster.reviews.set_down(true);
    let down = get(cluster.token().sign()).await.unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
}

/// A valid token's signature over another payload: the cache and the single flight are keyed by
/// the signature's SHA-256, and must still never answer it with the valid token's answer.
#[tokio::test]
async fn another_payload_under_a_valid_signature_never_shares_its_answer() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    let valid = cluster.token().sign();
    let other = cluster
        .issuer
        .token()
        .kubernetes("kube-system", "admin")
        .aud(AUD)
        .sign();
    let (v, o): (Vec<&str>, Vec<&str>) = (valid.split('.').collect(), other.split('.').collect());
    let forged = format!("{}.{}.{}", v[0], o[1], v[2]);

    // In flight together: the forged token is reviewed on its own.
    let hold = cluster.reviews.hold();
    let first = tokio::spawn({
        let (review, valid) = (review.clone(), valid.clone());
        async move { review.verify(&valid).await }
    });
    cluster.reviews.wait_for_calls(1).await;
    let second = tokio::spawn({
        let (review, forged) = (review.clone(), forged.clone());
        async move { review.verify(&forged).await }
    });
    cluster.reviews.wait_for_calls(2).await;
    drop(hold);
    assert!(first.await.unwrap().is_ok());
    assert_eq!(code(second.await.unwrap()), "review_refused");

    // Cached: the valid token's answer is not the forged one's, and the other way round.
    review.verify(&valid).await.unwrap();
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &forged).await,
        401
    );
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &valid).await,
        200
    );
    assert_eq!(code(review.verify(&forged).await), "review_refused");
}

/// Variants of a valid token under review (its signature over other payloads) are reviewed on
/// their own, never with its answer; each such review counts against `max_pending_reviews` like any
/// other, so that a flood of them gets 503 at once instead of queueing without bound.
#[tokio::test]
async fn reviews_of_variants_under_one_signature_count_against_the_pending_cap() {
    const VARIANTS: usize = 200;
    let cluster = Cluster::start().await;
    let mut settings = TokenReviewSettings::default();
    settings.max_pending_reviews = 2;
    let review = cluster
        .review_builder()
        .with_settings(settings)
        .build()
        .unwrap();
    let valid = cluster.token().sign();
    let (header, signature) = {
        let parts: Vec<&str> = valid.split('.').collect();
        (parts[0].to_owned(), parts[2].to_owned())
    };
    let hold = cluster.reviews.hold();
    let first = tokio::spawn({
        let (review, valid) = (review.clone(), valid.clone());
        async move { review.verify(&valid).await }
    });
    cluster.reviews.wait_for_calls(1).await;

    let mut variants: Vec<_> = (0..VARIANTS)
        .map(|_| {
            let other = cluster.token().sign();
            let payload = other.split('.').nth(1).unwrap();
            let forged = format!("{header}.{payload}.{signature}");
            let review = review.clone();
            Some(Box::pin(async move { review.verify(&forged).await }))
        })
        .collect();
    // Each polled once: the cap takes one more review; every other variant is answered at once.
    let mut answered = Vec::new();
    std::future::poll_fn(|cx| {
        for variant in &mut variants {
            if let std::task::Poll::Ready(result) = variant.as_mut().unwrap().as_mut().poll(cx) {
                answered.push(result);
                *variant = None;
            }
        }
        std::task::Poll::Ready(())
    })
    .await;
    let stats = review.stats();
    assert!(
        stats.pending <= 2 && stats.waiting_for_slot <= 2,
        "{stats:?}"
    );
    assert_eq!(answered.len(), VARIANTS - 1);
    for result in answered {
        assert_eq!(
            source(result),
            ReviewError::Flight(FlightError::Full { max: 2 })
        );
    }
    drop(hold);
    assert!(first.await.unwrap().is_ok());
    for variant in variants.into_iter().flatten() {
        assert_eq!(code(variant.await), "review_refused");
    }
    assert_eq!(review.stats().pending, 0);
}

/// Outside a Tokio runtime a review cannot be spawned: a typed 503, never a panic.
#[test]
fn without_a_runtime_a_review_is_unavailable_not_a_panic() {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};
    let api = oidc_bearer_kubernetes::ApiServer::builder("http://127.0.0.1:1")
        .with_bearer_token(|| Some("caller".into()))
        .build()
        .unwrap();
    let review = TokenReview::builder(api, AUD).build().unwrap();
    // {"alg":"RS256"}.{"sub":"x"}.sig
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let mut future = std::pin::pin!(review.verify(token));
    let Poll::Ready(result) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("the review waited")
    };
    assert_eq!(source(result), ReviewError::Flight(FlightError::NoRuntime));
}

/// The pod's own token is read per review (a `stat`, and a read when it changed): a FIFO put in
/// its place is refused without waiting for a writer, and the reviews go on with the last good
/// token instead of hanging a runtime worker, and every review behind it, on the read.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_place_of_the_pod_token_neither_hangs_reviews_nor_replaces_the_last_token() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    review.verify(&cluster.token().sign()).await.unwrap();

    std::fs::remove_file(&cluster.token_path).unwrap();
    crate::support::mkfifo(&cluster.token_path);
    // Far above any read of a local file, far below forever.
    let bound = Duration::from_secs(20);
    let token = cluster.token().claim("jti", "second").sign();
    let verified = tokio::time::timeout(bound, review.verify(&token)).await;
    crate::support::release_fifo_readers(&cluster.token_path);
    let claims = verified.expect("the review waited on the FIFO");
    assert!(claims.is_ok(), "{claims:?}");
    assert_eq!(cluster.reviews.calls(), 2);
}

/// The pod's token file rotated to something that is no token (a line break inside: it cannot be
/// sent as a header) is a failed read like an empty file, and leaves the last good token in use,
/// as the client's `FileTokenSource` does with the same file (`InvalidToken::InvalidCharacter`).
///
/// Review finding (s3-review-file): `TokenFile` checks only "non-empty UTF-8", caches such
/// content as the last good token, and every review then fails with `NoCredentials` until the
/// next rotation.
#[tokio::test]
async fn a_token_file_rotated_to_no_token_leaves_the_last_good_token_in_use() {
    let cluster = Cluster::start().await;
    let review = cluster.review();
    review.verify(&cluster.token().sign()).await.unwrap();

    // Replaced the way the kubelet does it: written aside, renamed over.
    let next = cluster.token_path.with_file_name("token.next");
    std::fs::write(&next, "two\ntokens").unwrap();
    std::fs::rename(&next, &cluster.token_path).unwrap();
    let token = cluster.token().claim("jti", "second").sign();
    let result = review.verify(&token).await;
    assert!(
        result.is_ok(),
        "the last good token was replaced by a file that holds none: {result:?}"
    );
    assert_eq!(cluster.reviews.calls(), 2);
}

/// The kubelet's projected-volume layout (`token -> ..data/token`, `..data -> ..<timestamp>`) and
/// its rotation (a new timestamped directory, `..data_tmp` renamed over `..data`, the old
/// directory removed): the next review is sent with the new token, never the old one, whose
/// bound object is gone (the API server would refuse our own credential: 401).
#[cfg(unix)]
#[tokio::test]
async fn the_kubelets_symlink_swap_is_followed_and_the_old_token_is_never_sent_again() {
    use std::os::unix::fs::symlink;

    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |timestamp: &str, token: &str| {
        std::fs::create_dir(dir.path().join(timestamp)).unwrap();
        std::fs::write(dir.path().join(timestamp).join("token"), token).unwrap();
        symlink(timestamp, dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    };
    let first = cluster.reviews.caller_token();
    write("..2026_01_01_00_00_00.1", &first);
    symlink("..data/token", dir.path().join("token")).unwrap();
    let review = TokenReview::builder(
        cluster
            .in_cluster()
            .with_token_path(dir.path().join("token"))
            .api_server()
            .unwrap(),
        AUD,
    )
    .build()
    .unwrap();
    review.verify(&cluster.token().sign()).await.unwrap();

    // Rotated: the same length (same claims), a new file behind the same path.
    let second = cluster.reviews.caller_token();
    assert_ne!(first, second);
    write("..2026_01_01_00_48_00.2", &second);
    std::fs::remove_dir_all(dir.path().join("..2026_01_01_00_00_00.1")).unwrap();
    cluster.reviews.delete_bound_object(&first);

    let result = review.verify(&cluster.token().sign()).await;
    assert!(result.is_ok(), "the old token was sent: {result:?}");
    assert_eq!(cluster.reviews.calls(), 2);
}

/// The check of the pod's token file is one task shared by every review, spawned on the runtime
/// of the review that started it. Left on a runtime that is no longer driven (a current-thread
/// runtime whose `block_on` gave up on its review: a sync wrapper with a deadline), it must not
/// hold the reviews of every other token, on a runtime that runs, until their timeout.
///
/// Review finding (s3-review-file): `State::check` keeps that flight until its task runs, so every
/// later review joins it and waits out its whole timeout, which then reads as the API server's
/// `Timeout` (an outage, for object binding's grace period).
#[test]
fn a_token_check_left_on_an_idle_runtime_does_not_hold_reviews_elsewhere() {
    let left = LeftCheck::start();
    left.release.send(()).unwrap();

    let token = left.cluster.token().claim("jti", "main").sign();
    let result = left.main.block_on(left.review.verify(&token));
    assert!(
        result.is_ok(),
        "a review on a running runtime waited on a token check left on an idle one: {result:?}"
    );
}

/// Two runtimes sharing a cluster's `TokenReview`: `main` runs throughout; `side` (a
/// current-thread runtime with one blocking thread, which the test holds until `release`) is
/// left, no longer driven, with a review whose check of the token file waits for that thread.
struct LeftCheck {
    main: tokio::runtime::Runtime,
    side: tokio::runtime::Runtime,
    cluster: Cluster,
    review: TokenReview,
    release: std::sync::mpsc::Sender<()>,
}

impl LeftCheck {
    fn start() -> Self {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let side = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cluster = main.block_on(Cluster::start());
        let review = main.block_on(async { cluster.review() });
        main.block_on(review.verify(&cluster.token().sign()))
            .unwrap();

        let (release, held) = std::sync::mpsc::channel::<()>();
        let token = cluster.token().claim("jti", "side").sign();
        side.block_on(async {
            let (started, running) = tokio::sync::oneshot::channel::<()>();
            let _blocker = tokio::task::spawn_blocking(move || {
                let _ = started.send(());
                let _ = held.recv();
            });
            running.await.unwrap();
            let mut verify = Box::pin(review.verify(&token));
            // Every task of this runtime runs until it waits: the review's, then the token
            // check's, which waits for the blocking thread. No timer, no sleep: a current-thread
            // runtime runs the ready tasks before each yield returns.
            std::future::poll_fn(|cx| {
                assert!(verify.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            for _ in 0..16 {
                tokio::task::yield_now().await;
            }
            // The caller gives up (its deadline), and `block_on` returns: `side` is no longer
            // driven.
        });
        Self {
            main,
            side,
            cluster,
            review,
            release,
        }
    }
}

/// The check of the pod's token file left queued on a runtime whose blocking threads stay busy
/// (a current-thread runtime no longer driven, whose one blocking thread is held) must not keep
/// every other runtime, whose blocking threads are free, on the token it read before: after the
/// kubelet's rotation, a review elsewhere is sent with the new token (the old one's bound object
/// gone, the API server refuses it: 401).
///
/// Review finding (s3-review-file2): `TokenFile`'s `reading` flag is set when a check is queued
/// and cleared only when its blocking closure runs (or its runtime drops it); while it is set,
/// every fetch on every runtime sends the last good token, so the file is never read again.
#[test]
fn a_token_check_queued_on_a_stuck_runtime_does_not_pin_the_old_token_elsewhere() {
    let left = LeftCheck::start();
    let cluster = &left.cluster;

    // The kubelet rotates the token; the old one's bound object is gone.
    let first = std::fs::read_to_string(&cluster.token_path).unwrap();
    let next = cluster.token_path.with_file_name("token.next");
    std::fs::write(&next, cluster.reviews.caller_token()).unwrap();
    std::fs::rename(&next, &cluster.token_path).unwrap();
    cluster.reviews.delete_bound_object(&first);

    let token = cluster.token().claim("jti", "main").sign();
    let result = left.main.block_on(left.review.verify(&token));
    left.release.send(()).unwrap();
    drop(left.side);
    assert!(
        result.is_ok(),
        "a review on a running runtime sent the rotated-out token, its check pinned by one \
         queued on a stuck runtime: {result:?}"
    );
}
