//! The object-binding check on a local verifier: a deleted pod's token is refused within the
//! interval, at most one review per token per interval, the grace period when the API server
//! cannot answer, and the same through a registry.

mod support;

use std::time::Duration;

use oidc_bearer::IssuerRegistry;
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::tokenreview::{ObjectBindingCheck, ReviewError};
use oidc_bearer::{Verifier, VerifierBuilder, VerifyError, VerifyToken};
use support::cluster::{AUD, Cluster};
use support::{code, layer_status};

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
            .with_object_binding(ObjectBindingCheck::new(INTERVAL))
            .build()
            .unwrap();
        (cluster, clock, verifier)
    }
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
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );

    cluster.reviews.delete_bound_object(&token);
    clock.advance(INTERVAL - Duration::from_secs(1));
    // Still within the interval of the last confirmation: a local cache hit, no review.
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    verify(&verifier, &token).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 1);

    clock.advance(Duration::from_secs(1));
    // The token is still in the token cache: the HTTP layer's cache lookup must not answer it now.
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        401,
        "the cache no longer answers once the interval is over"
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
                source: ReviewError::Status { status: 503 }
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
    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, &token).await,
        401
    );
    assert_eq!(code(verify(&registry, &token).await), "review_refused");
}

#[tokio::test]
async fn object_binding_needs_an_api_server_an_interval_and_an_audience() {
    let cluster = Cluster::start().await;
    let no_api = Verifier::builder("https://issuer.example", AUD)
        .with_object_binding(ObjectBindingCheck::new(INTERVAL))
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
