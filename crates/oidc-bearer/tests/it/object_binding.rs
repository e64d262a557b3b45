//! The object-binding check on a local verifier: a deleted pod's token is refused within the
//! interval, at most one review per token per interval, the grace period when the API server
//! cannot answer, and the same through a registry.

use std::convert::Infallible;
use std::task::Poll;
use std::time::Duration;

use crate::support::cluster::{AUD, Cluster};
use crate::support::code;
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::tokenreview::{ObjectBindingCheck, ReviewError, TokenReviewSettings};
use oidc_bearer::{
    BearerAuthLayer, FetchError, FlightError, IssuerRegistry, Verifier, VerifierBuilder,
    VerifyError, VerifyToken,
};
use tower::{ServiceBuilder, ServiceExt as _, service_fn};

impl Cluster {
    fn builder(&self, clock: &ManualClock) -> VerifierBuilder {
        self.in_cluster()
            .verifier_builder(self.issuer.issuer(), AUD)
            .unwrap()
            .with_clock(clock.clone())
    }

    /// A cluster, a manual clock, and a verifier of its tokens with the object-binding check
    /// every [`INTERVAL`].
    async fn with_binding() -> (Self, ManualClock, Verifier) {
        let cluster = Self::start().await;
        let clock = ManualClock::new();
        let verifier = cluster
            .builder(&clock)
            .with_object_binding_check(INTERVAL)
            .build()
            .unwrap();
        (cluster, clock, verifier)
    }
}

/// A verifier of `cluster`'s tokens whose object-binding check has these limits.
fn limited(cluster: &Cluster, clock: &ManualClock, settings: TokenReviewSettings) -> Verifier {
    cluster
        .builder(clock)
        .with_object_binding(ObjectBindingCheck::new(INTERVAL).with_settings(settings))
        .build()
        .unwrap()
}

const INTERVAL: Duration = Duration::from_secs(30);

async fn verify(verifier: &impl VerifyToken, token: &str) -> Result<(), VerifyError> {
    verifier
        .verify_token::<KubernetesClaims>(token)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_deleted_pods_token_is_refused_within_the_interval() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let token = cluster.token().sign();
    verify(&verifier, &token).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 1);
    assert!(
        verifier
            .verify_token_cached::<KubernetesClaims>(token.as_bytes())
            .is_some()
    );

    cluster.reviews.delete_bound_object(&token);
    clock.advance(INTERVAL - Duration::from_secs(1));
    // Still within the interval of the last confirmation: a local cache hit, no review.
    assert!(
        verifier
            .verify_token_cached::<KubernetesClaims>(token.as_bytes())
            .is_some()
    );
    verify(&verifier, &token).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 1);

    clock.advance(Duration::from_secs(1));
    assert!(
        verifier
            .verify_token_cached::<KubernetesClaims>(token.as_bytes())
            .is_none(),
        "the fast path no longer answers once the interval is over"
    );
    let refused = verifier.verify_token::<KubernetesClaims>(&token).await;
    assert_eq!(
        refused.unwrap_err(),
        VerifyError::ReviewRefused {
            error: Some(
                "[invalid bearer token, service account token has been invalidated]".into()
            )
        }
    );
    // Another pod's token is unaffected.
    verify(&verifier, &cluster.token().sign()).await.unwrap();
}

#[tokio::test]
async fn at_most_one_review_per_token_per_interval() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let (a, b) = (cluster.token().sign(), cluster.token().sign());
    // Three intervals, ten requests per interval per token.
    for _ in 0..30 {
        verify(&verifier, &a).await.unwrap();
        verify(&verifier, &b).await.unwrap();
        clock.advance(INTERVAL / 10);
    }
    assert_eq!(cluster.reviews.calls(), 6);
    assert_eq!(verifier.object_binding_stats().unwrap().reviews, 6);
}

#[tokio::test]
async fn when_the_api_server_cannot_answer_tokens_pass_for_the_grace_period_then_503() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let grace = Duration::from_secs(60);
    let verifier = cluster
        .builder(&clock)
        .with_object_binding(ObjectBindingCheck::new(INTERVAL).with_grace_period(grace))
        .build()
        .unwrap();
    let token = cluster.token().sign();
    let revoked = cluster.token().sign();
    verify(&verifier, &token).await.unwrap();
    verify(&verifier, &revoked).await.unwrap();
    cluster.reviews.delete_bound_object(&revoked);
    clock.advance(INTERVAL);
    assert_eq!(code(verify(&verifier, &revoked).await), "review_refused");

    cluster.reviews.set_down(true);
    // The outage begins: accepted, and a new token (never confirmed) too.
    verify(&verifier, &token).await.unwrap();
    verify(&verifier, &cluster.token().sign()).await.unwrap();
    // A refusal is never overridden by the grace period.
    assert_eq!(code(verify(&verifier, &revoked).await), "review_refused");
    clock.advance(grace - Duration::from_secs(1));
    verify(&verifier, &token).await.unwrap();
    clock.advance(Duration::from_secs(2));
    let result = verify(&verifier, &token).await;
    assert!(
        matches!(
            &result,
            Err(VerifyError::ReviewUnavailable {
                source: ReviewError::Fetch(FetchError::Status { status: 503 })
            })
        ),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_unavailable());

    // Back: the next review (after the retry interval) answers and the token passes again.
    cluster.reviews.set_down(false);
    clock.advance(Duration::from_secs(2));
    verify(&verifier, &token).await.unwrap();
}

#[tokio::test]
async fn without_a_grace_period_an_outage_is_503_at_once() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let verifier = cluster
        .builder(&clock)
        .with_object_binding(ObjectBindingCheck::new(INTERVAL).with_grace_period(Duration::ZERO))
        .build()
        .unwrap();
    cluster.issuer.token_reviews().forbid_callers(true);
    let token = cluster.token().sign();
    // The keys load (GET, allowed), the review is refused with 403: our RBAC is wrong.
    let result = verify(&verifier, &token).await;
    assert_eq!(
        result,
        Err(VerifyError::ReviewUnavailable {
            source: ReviewError::Unauthorized { status: 403 }
        })
    );
}

/// 401/403 to our own review is our RBAC or credential, not an outage: the API server is up and
/// would refuse a deleted pod's token, so no grace period opens.
#[tokio::test]
async fn our_own_credentials_refused_opens_no_grace_period() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    verify(&verifier, &cluster.token().sign()).await.unwrap();
    cluster.reviews.forbid_callers(true);
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    assert_eq!(
        verify(&verifier, &revoked).await,
        Err(VerifyError::ReviewUnavailable {
            source: ReviewError::Unauthorized { status: 403 }
        })
    );
    assert_eq!(
        code(verify(&verifier, &cluster.token().sign()).await),
        "review_unavailable"
    );
}

#[tokio::test]
async fn a_registry_of_bound_verifiers_checks_the_binding_too() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let registry = IssuerRegistry::builder()
        .with_verifier(verifier)
        .build()
        .unwrap();
    let token = cluster.token().sign();
    verify(&registry, &token).await.unwrap();
    cluster.reviews.delete_bound_object(&token);
    verify(&registry, &token).await.unwrap();
    clock.advance(INTERVAL);
    assert!(
        registry
            .verify_token_cached::<KubernetesClaims>(token.as_bytes())
            .is_none()
    );
    assert_eq!(code(verify(&registry, &token).await), "review_refused");
}

#[tokio::test]
async fn object_binding_needs_an_api_server_an_interval_and_an_audience() {
    let cluster = Cluster::start().await;
    let no_api = Verifier::builder("https://issuer.example", AUD)
        .with_object_binding_check(INTERVAL)
        .build()
        .unwrap_err();
    assert!(no_api.to_string().contains("with_api_server"), "{no_api}");
    let api = cluster.in_cluster().api_server().unwrap();
    assert!(
        Verifier::builder("https://issuer.example", AUD)
            .with_object_binding(ObjectBindingCheck::new(INTERVAL).with_api_server(api.clone()))
            .build()
            .is_ok()
    );
    let zero = Verifier::builder("https://issuer.example", AUD)
        .with_object_binding(ObjectBindingCheck::new(Duration::ZERO).with_api_server(api))
        .build()
        .unwrap_err();
    assert_eq!(zero.code(), "invalid_setting");
}

/// A review that cannot even be started because the queue is full is a local limit, not an
/// API-server outage: 503, never the grace period's acceptance, however long the queue stays full.
#[tokio::test]
async fn a_full_review_queue_is_503_never_an_acceptance() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let mut settings = TokenReviewSettings::default();
    settings.max_pending_reviews = 1;
    let verifier = limited(&cluster, &clock, settings);
    // The keys load and one review answers: the API server is up.
    verify(&verifier, &cluster.token().sign()).await.unwrap();
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);

    let hold = cluster.reviews.hold();
    let held = tokio::spawn({
        let (verifier, token) = (verifier.clone(), cluster.token().sign());
        async move { verify(&verifier, &token).await }
    });
    cluster.reviews.wait_for_calls(2).await;
    for _ in 0..2 {
        let result = verify(&verifier, &revoked).await;
        assert_eq!(
            result,
            Err(VerifyError::ReviewUnavailable {
                source: ReviewError::Flight(FlightError::Full { max: 1 })
            })
        );
        clock.advance(Duration::from_secs(600));
    }
    drop(hold);
    held.await.unwrap().unwrap();
    // With the queue free, the revoked token is reviewed, and refused.
    assert_eq!(code(verify(&verifier, &revoked).await), "review_refused");
}

/// The field report in process: an API server that answers every review correctly but
/// slowly (here: held), more distinct tokens than the review queue takes, and every token's pod
/// deleted. Through the HTTP layer, every answer is 401 or 503 (with `Retry-After`), none 200.
#[tokio::test]
async fn a_burst_of_deleted_pods_tokens_against_a_slow_api_server_is_never_accepted() {
    const TOKENS: usize = 100;
    const PENDING: usize = 16;
    const CONCURRENT: usize = 2;
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let mut settings = TokenReviewSettings::default();
    settings.max_pending_reviews = PENDING;
    settings.max_concurrent_reviews = CONCURRENT;
    // Longer than the test holds the reviews: no review times out, so no outage is recorded.
    settings.timeout = Duration::from_secs(120);
    let verifier = limited(&cluster, &clock, settings);
    verify(&verifier, &cluster.token().sign()).await.unwrap();
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier.clone()))
        .service(service_fn(|_: http::Request<String>| async {
            Ok::<_, Infallible>(http::Response::new(String::from("welcome")))
        }));
    let tokens: Vec<String> = (0..TOKENS).map(|_| cluster.token().sign()).collect();
    for token in &tokens {
        cluster.reviews.delete_bound_object(token);
    }

    let hold = cluster.reviews.hold();
    let mut calls: Vec<_> = tokens
        .iter()
        .map(|token| {
            let request = http::Request::builder()
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap();
            Some(Box::pin(service.clone().oneshot(request)))
        })
        .collect();
    // Each request polled once, here: those the queue does not take are answered at once.
    let mut responses = Vec::new();
    std::future::poll_fn(|cx| {
        for call in &mut calls {
            if let Poll::Ready(response) = call.as_mut().unwrap().as_mut().poll(cx) {
                responses.push(response.unwrap());
                *call = None;
            }
        }
        Poll::Ready(())
    })
    .await;
    let stats = verifier.object_binding_stats().unwrap();
    assert_eq!(stats.pending, PENDING, "{stats:?}");
    assert_eq!(responses.len(), TOKENS - PENDING);
    // The API server holds the reviews it was sent (one before, `CONCURRENT` now).
    cluster.reviews.wait_for_calls(1 + CONCURRENT).await;
    drop(hold);
    for call in calls.into_iter().flatten() {
        responses.push(call.await.unwrap());
    }
    let status = |code: u16| responses.iter().filter(|r| r.status() == code).count();
    assert_eq!(status(200), 0, "a deleted pod's token was accepted");
    assert_eq!((status(401), status(503)), (PENDING, TOKENS - PENDING));
    for response in responses.iter().filter(|r| r.status() == 503) {
        assert!(response.headers().contains_key("retry-after"));
    }
}
