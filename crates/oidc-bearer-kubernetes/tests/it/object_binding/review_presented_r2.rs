//! Review R2 of branch `presented` (the `VerifyToken` hooks take a `Presented`, TokenReview
//! overrides the synchronous one again) and of R1's fixes (3f6e6a7). Each test drives the real
//! layer (`layer_status`) or the public API, against the API-server stand-in on 127.0.0.1.

use super::*;
use oidc_bearer_kubernetes::{TokenReview, TokenReviewClaims};

/// `Confirm`'s contract (confirm.rs), which `impl Confirm for BindingCheck` says it meets: a
/// confirmation's `expires_at` is never later than the token's `exp`. The bound comes from
/// `review_precheck`, which refuses an `exp` past by more than its own leeway (60 s) although an
/// inner verifier with a longer leeway still accepts the token. Such a token must not be confirmed
/// for the whole interval (it was, before the fix: R2's finding), nor may a token that expired
/// more recently (inside the pre-check's leeway): both are reviewed on every request.
#[tokio::test]
async fn a_confirmation_is_never_kept_past_exp_even_when_the_precheck_refuses_the_token() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let verifier = cluster
        .check()
        .wrap(
            cluster
                .builder(&clock)
                .with_leeway(Duration::from_secs(300))
                .build()
                .unwrap(),
        )
        .unwrap();
    let now = clock.now().as_secs() as i64;
    // The stand-in judges `exp` by the system clock, which does not move here: it accepts both.
    let recent = cluster.token().exp(now + 70).sign();
    let older = cluster.token().exp(now + 10).sign();
    // 30 s past `recent`'s exp and 90 s past `older`'s, by the verifier's clock: both inside the
    // inner verifier's leeway (300 s); only `recent` inside the pre-check's (60 s).
    clock.advance(Duration::from_secs(100));

    for attempt in 1..=2 {
        assert_eq!(
            layer_status::<KubernetesClaims>(&verifier, &recent).await,
            200
        );
        assert_eq!(
            cluster.reviews.calls(),
            attempt,
            "expired 30 s ago: nothing kept past exp, each request reviewed"
        );
    }
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &older).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 3);
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &older).await,
        200
    );
    assert_eq!(
        cluster.reviews.calls(),
        4,
        "expired 90 s ago: answered from a confirmation kept past the token's exp"
    );
}

impl Cluster {
    fn review_for(&self, clock: &ManualClock, audience: &str) -> TokenReview {
        TokenReview::builder(self.in_cluster().api_server().unwrap(), audience)
            .with_clock(clock.clone())
            .build()
            .unwrap()
    }
}

/// TokenReview's restored synchronous hook reads only its own verifier's answers: two verifiers
/// built on the same API server (so sharing its client) for different audiences never share an
/// acceptance, through the layer's synchronous path or the full one.
#[tokio::test]
async fn the_synchronous_hook_never_answers_for_another_audience() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let mine = cluster.review_for(&clock, AUD);
    let theirs = cluster.review_for(&clock, "another-service");
    let token = cluster.token().sign();
    assert_eq!(layer_status::<TokenReviewClaims>(&mine, &token).await, 200);
    assert_eq!(layer_status::<TokenReviewClaims>(&mine, &token).await, 200);
    assert_eq!(cluster.reviews.calls(), 1);
    assert_eq!(
        layer_status::<TokenReviewClaims>(&theirs, &token).await,
        401,
        "an acceptance for one audience answered for another"
    );
    assert_eq!(cluster.reviews.calls(), 2);
}

/// TokenReview's synchronous hook after the clock is set back before the answer was kept (an NTP
/// step): the answer's age is unknown, so it is not answered (on either path): the token is
/// reviewed again, and a pod deleted meanwhile is refused.
#[tokio::test]
async fn the_synchronous_hook_never_answers_after_the_clock_is_set_back() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let review = cluster.review_for(&clock, AUD);
    let token = cluster.token().sign();
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &token).await,
        200
    );
    cluster.reviews.delete_bound_object(&token);
    clock.set(clock.now() - Duration::from_secs(1));
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &token).await,
        401,
        "answered from an acceptance kept after now"
    );
    assert_eq!(cluster.reviews.calls(), 2);
}

/// TokenReview's synchronous hook and the pre-check: an answer is kept only for a token the
/// pre-check let through, and no longer than its `exp`. A token reviewed just before its `exp` is
/// answered until then, and after it neither path accepts it (the pre-check's leeway aside, the
/// stand-in judges `exp` by the system clock, which does not move here: its refusal is what keeps
/// 401 honest, so the count of reviews is what is asserted).
#[tokio::test]
async fn the_synchronous_hook_never_answers_past_exp() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let review = cluster.review_for(&clock, AUD);
    let now = clock.now().as_secs() as i64;
    let token = cluster.token().exp(now + 5).sign();
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &token).await,
        200
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1, "before exp: the kept answer");
    clock.advance(Duration::from_secs(1));
    let _ = layer_status::<TokenReviewClaims>(&review, &token).await;
    assert_eq!(
        cluster.reviews.calls(),
        2,
        "at exp: answered from an acceptance kept past the token's exp"
    );
    // Past the pre-check's leeway: refused before any review, never answered from the cache.
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        layer_status::<TokenReviewClaims>(&review, &token).await,
        401
    );
    assert_eq!(cluster.reviews.calls(), 2);
}
