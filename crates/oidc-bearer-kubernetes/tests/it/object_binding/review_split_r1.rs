//! Review R1 of split A (branch `split-a`): object binding as `Confirmed<Verifier, BindingCheck>`
//! in the core, its check in this crate, `ReviewUnavailable`'s source read by downcast, and
//! the public API a user holds. Each test drives the real layer (`layer_status`) or that API.
//! (`TokenReview` without its synchronous hook: tokenreview.rs,
//! `through_the_layer_answers_expire_and_refusals_stay_cached`.)

use super::*;
use oidc_bearer::ReviewSource;

/// `Confirm::confirm` took the token and its key as two arguments, and `BindingCheck` implements
/// it publicly (`binding.check().confirm(..)`): a caller could hand it one token with another
/// token's key, the review then sent for the first token and its acceptance filed under the
/// second's key — a deleted pod's token accepted for a whole interval without ever being
/// reviewed. `confirm` now takes one `Presented` (the bytes and their key together), which only
/// the core makes (compile_fail doctest on `Confirm::confirm`); review_confirm_r4.rs checks that
/// a token sharing half of another's parts is reviewed on its own. Here: through the layer,
/// another token's review confirms nothing.
#[tokio::test]
async fn a_review_of_one_token_never_confirms_another_tokens_key() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    let genuine = cluster.token().sign();
    let deleted = cluster.token().sign();
    cluster.reviews.delete_bound_object(&deleted);

    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &genuine).await,
        200
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &deleted).await,
        401,
        "a deleted pod's token accepted on the review of another token"
    );
    assert_eq!(code(verify(&verifier, &deleted).await), "review_refused");
}

/// `Confirm`'s contract (confirm.rs), which `impl Confirm for BindingCheck` says it meets: a
/// confirmation's `expires_at` is never later than the token's `exp`. The binding reviews with no
/// `exp` (`reviewer.review(key, token, None)`), so a confirmation lasts the whole interval; past
/// `exp`, within the inner verifier's leeway, the token is still answered from it without a
/// review (TokenReview as a verifier bounds its answers by `exp`:
/// `answers_are_kept_for_their_ttl_never_past_exp_and_refusals_shorter`).
#[tokio::test]
async fn a_confirmation_never_outlives_the_tokens_exp() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let now = clock.now().as_secs() as i64;
    let token = cluster.token().exp(now + 10).sign();
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1);
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1, "before exp: confirmed");

    // Past `exp` by the verifier's clock (the inner verifier still accepts within its leeway).
    clock.advance(Duration::from_secs(2));
    let status = layer_status::<KubernetesClaims>(&verifier, &token).await;
    assert_eq!(
        (status, cluster.reviews.calls()),
        (200, 2),
        "past the token's exp, answered from a confirmation made before it"
    );
}

/// `VerifyError`'s equality compares `ReviewUnavailable`'s source by `Debug` text, and a derived
/// `Debug` of an enum prints the variant, not the type: another crate's error (another version
/// of this one, a wrapper) then equals a `ReviewError` it is not — and which `ReviewError::of`
/// (so the grace period) does not read. The tests that moved assert the exact error with `==`
/// (`Err(VerifyError::from(ReviewError::Unauthorized { status: 403 }))`): they would pass with a
/// source the grace logic cannot read.
#[test]
fn a_foreign_source_never_equals_a_review_error() {
    #[derive(Debug)]
    enum Foreign {
        Unauthorized {
            #[allow(dead_code)]
            status: u16,
        },
    }
    impl std::fmt::Display for Foreign {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("foreign")
        }
    }
    impl std::error::Error for Foreign {}

    let foreign = VerifyError::ReviewUnavailable {
        source: ReviewSource::new(Foreign::Unauthorized { status: 403 }),
    };
    assert!(ReviewError::of(&foreign).is_none());
    assert_ne!(
        foreign,
        VerifyError::from(ReviewError::Unauthorized { status: 403 }),
        "an unreadable source equals a ReviewError"
    );
}

/// `Confirm::confirmed` is an acceptance only: a refusal the check keeps (for the negative TTL) or
/// an outage it keeps (for the retry interval) is no confirmation, and the layer's fast path,
/// which asks it on every answer while the inner verifier's cache still holds the token, must not
/// read one as such. (No moved test sends a second request through the layer once a refusal or
/// an outage is cached: with `confirmed` answering `cached(..).is_some()`, every one passed.)
#[tokio::test]
async fn a_refusal_or_an_outage_the_check_keeps_is_never_a_confirmation() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let verifier = cluster.bound(&clock, cluster.check().with_grace_period(Duration::ZERO));
    let (revoked, other) = (cluster.token().sign(), cluster.token().sign());
    for token in [&revoked, &other] {
        assert_eq!(
            layer_status::<KubernetesClaims>(&verifier, token).await,
            200
        );
    }
    cluster.reviews.delete_bound_object(&revoked);
    clock.advance(INTERVAL);
    for attempt in ["reviewed", "the refusal, kept"] {
        assert_eq!(
            layer_status::<KubernetesClaims>(&verifier, &revoked).await,
            401,
            "{attempt}"
        );
    }
    cluster.reviews.set_down(true);
    for attempt in ["reviewed", "the outage, kept"] {
        assert_eq!(
            layer_status::<KubernetesClaims>(&verifier, &other).await,
            503,
            "{attempt}"
        );
    }
    assert_eq!(
        cluster.reviews.calls(),
        4,
        "one review each, then the answer kept"
    );
}

/// `Confirm`'s contract: the grace period is never answered by `confirmed` (the layer's fast
/// path), only by `confirm`, which retries a review in the background. Through the layer, during
/// an outage: a request after the retry interval is accepted *and* sends a review; past the window,
/// 503. (The moved grace tests go through `verify_token` only, which never asks `confirmed`.)
#[tokio::test]
async fn the_grace_period_is_never_answered_on_the_layers_fast_path() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let verifier = cluster.bound(&clock, cluster.check());
    let token = cluster.token().sign();
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    clock.advance(INTERVAL);
    cluster.reviews.set_down(true);
    // The outage begins with this token's review: accepted in the grace period.
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 2);

    // Past the retry interval (1 s), inside the window: accepted, and reviewed again.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    // A bound on a failure (the review is sent at once when it is sent at all), not a wait.
    tokio::time::timeout(Duration::from_secs(10), cluster.reviews.wait_for_calls(3))
        .await
        .expect("accepted in the grace period without a review: answered by the fast path");

    clock.advance(DEFAULT_GRACE_PERIOD);
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        503,
        "accepted past the grace period"
    );
}
