//! The object-binding check on a local verifier: a deleted pod's token is refused within the
//! interval, at most one review per token per interval, the grace period when the API server
//! cannot answer, and the same through a registry.

use std::convert::Infallible;
use std::task::Poll;
use std::time::Duration;

use crate::support::cluster::{AUD, Cluster};
use crate::support::{code, layer_status};
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::clock::{Clock as _, ManualClock};
use oidc_bearer::{
    BearerAuthLayer, FetchError, FlightError, Verifier, VerifierBuilder, VerifyError, VerifyToken,
};
use oidc_bearer_kubernetes::{
    ApiServer, ObjectBinding, ObjectBindingCheck, ReviewError, TokenReviewSettings,
};
use oidc_bearer_registry::IssuerRegistry;

/// The object-binding check's default grace period (`ObjectBindingCheck::with_grace_period`).
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(60);
use tower::{ServiceBuilder, ServiceExt as _, service_fn};

impl Cluster {
    fn builder(&self, clock: &ManualClock) -> VerifierBuilder {
        self.in_cluster()
            .verifier_builder(self.issuer.issuer(), AUD)
            .unwrap()
            .with_clock(clock.clone())
    }

    /// A verifier of this cluster's tokens wrapped in `check`.
    fn bound(&self, clock: &ManualClock, check: ObjectBindingCheck) -> ObjectBinding<Verifier> {
        check.wrap(self.builder(clock).build().unwrap()).unwrap()
    }

    /// The object-binding check of this cluster's API server, every [`INTERVAL`].
    fn check(&self) -> ObjectBindingCheck {
        ObjectBindingCheck::new(INTERVAL).with_api_server(self.in_cluster().api_server().unwrap())
    }

    /// A cluster, a manual clock, and a verifier of its tokens with the object-binding check
    /// every [`INTERVAL`].
    async fn with_binding() -> (Self, ManualClock, ObjectBinding<Verifier>) {
        let cluster = Self::start().await;
        let clock = ManualClock::new();
        let verifier = cluster.bound(&clock, cluster.check());
        (cluster, clock, verifier)
    }

    /// A cluster, a manual clock, and a verifier whose object-binding check takes at most
    /// `max_pending` reviews; its keys are loaded and one review answered (the API server is up).
    async fn with_pending_cap(max_pending: usize) -> (Self, ManualClock, ObjectBinding<Verifier>) {
        let cluster = Self::start().await;
        let clock = ManualClock::new();
        let mut settings = TokenReviewSettings::default();
        settings.max_pending_reviews = max_pending;
        let verifier = limited(&cluster, &clock, settings);
        verify(&verifier, &cluster.token().sign()).await.unwrap();
        (cluster, clock, verifier)
    }
}

/// A verifier of `cluster`'s tokens whose object-binding check has these limits.
fn limited(
    cluster: &Cluster,
    clock: &ManualClock,
    settings: TokenReviewSettings,
) -> ObjectBinding<Verifier> {
    cluster.bound(clock, cluster.check().with_settings(settings))
}

const INTERVAL: Duration = Duration::from_secs(30);

mod seal;
// Review R1 of split A.
mod review_split_r1;
// Review R2 of branch `presented`.
mod review_presented_r2;

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

/// The wrapper asks the check on every fast-path answer (`Confirm`'s contract): a nanosecond
/// before the interval ends the confirmation holds; when it ends, the inner verifier's cache still
/// holds the token, yet the HTTP layer's cache hit does not answer it from the expired
/// confirmation: a review is sent.
#[tokio::test]
async fn one_tick_past_the_interval_the_layer_sends_a_review() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let token = cluster.token().sign();
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1);

    clock.advance(INTERVAL - Duration::from_nanos(1));
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1, "confirmed within the interval");

    clock.advance(Duration::from_nanos(1));
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(
        cluster.reviews.calls(),
        2,
        "the layer's cache hit answered a token whose confirmation expired"
    );
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
    assert_eq!(verifier.check().stats().reviews, 6);
}

#[tokio::test]
async fn when_the_api_server_cannot_answer_tokens_pass_for_the_grace_period_then_503() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let grace = Duration::from_secs(60);
    let verifier = cluster.bound(&clock, cluster.check().with_grace_period(grace));
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
            result.as_ref().map_err(ReviewError::of),
            Err(Some(ReviewError::Fetch(FetchError::Status { status: 503 })))
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
    let verifier = cluster.bound(&clock, cluster.check().with_grace_period(Duration::ZERO));
    cluster.issuer.token_reviews().forbid_callers(true);
    let token = cluster.token().sign();
    // The keys load (GET, allowed), the review is refused with 403: our RBAC is wrong.
    let result = verify(&verifier, &token).await;
    assert_eq!(
        result,
        Err(VerifyError::from(ReviewError::Unauthorized { status: 403 }))
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
        Err(VerifyError::from(ReviewError::Unauthorized { status: 403 }))
    );
    assert_eq!(
        code(verify(&verifier, &cluster.token().sign()).await),
        "review_unavailable"
    );
}

#[tokio::test]
async fn a_registry_of_bound_verifiers_checks_the_binding_too() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let registry = verifier.wrapping(
        IssuerRegistry::builder()
            .with_verifier(verifier.get_ref().clone())
            .build()
            .unwrap(),
    );
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
    let verifier = || Verifier::new("https://issuer.example", AUD).unwrap();
    let no_api = ObjectBindingCheck::new(INTERVAL)
        .wrap(verifier())
        .unwrap_err();
    assert!(no_api.to_string().contains("with_api_server"), "{no_api}");
    let api = cluster.in_cluster().api_server().unwrap();
    assert!(
        ObjectBindingCheck::new(INTERVAL)
            .with_api_server(api.clone())
            .wrap(verifier())
            .is_ok()
    );
    let zero = ObjectBindingCheck::new(Duration::ZERO)
        .with_api_server(api.clone())
        .wrap(verifier())
        .unwrap_err();
    assert_eq!(zero.code(), "invalid_setting");
    let no_audience = Verifier::builder("https://issuer.example", "")
        .dangerous_skip_audience_check()
        .build()
        .unwrap();
    let none = ObjectBindingCheck::new(INTERVAL)
        .with_api_server(api)
        .wrap(no_audience)
        .unwrap_err();
    assert!(none.to_string().contains("needs an audience"), "{none}");
}

/// A review that cannot even be started because the queue is full is a local limit, not an
/// API-server outage: 503, never the grace period's acceptance, however long the queue stays full.
#[tokio::test]
async fn a_full_review_queue_is_503_never_an_acceptance() {
    let (cluster, clock, verifier) = Cluster::with_pending_cap(1).await;
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
            Err(VerifyError::from(ReviewError::Flight(FlightError::Full {
                max: 1
            })))
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
    settings.timeout = Duration::from_secs(60);
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
    let stats = verifier.check().stats();
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

/// A token of `cluster` issued two hours ago and valid for another hour: it still passes local
/// verification when the clock steps back an hour.
fn issued_two_hours_ago(cluster: &Cluster) -> String {
    let issued = oidc_bearer_testing::now() - 7200;
    cluster.token().iat(issued).nbf(issued).sign()
}

const HOUR: Duration = Duration::from_secs(3600);

/// The grace period is the window `[start of the outage, start + grace)` by the verifier's clock,
/// to the millisecond: a request at its end, or with the clock stepped back before its start (an
/// NTP correction), is outside it — so a grace period that is off never opens, and one that is over
/// never reopens, however far the clock goes back.
#[tokio::test]
async fn a_clock_stepping_back_never_reopens_the_grace_period() {
    const MS: Duration = Duration::from_millis(1);
    for grace in [Duration::ZERO, Duration::from_secs(60)] {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let verifier = cluster.bound(&clock, cluster.check().with_grace_period(grace));
        verify(&verifier, &issued_two_hours_ago(&cluster))
            .await
            .unwrap();
        cluster.reviews.set_down(true);
        // The outage begins now: accepted in the grace period, if there is one.
        let first = verify(&verifier, &issued_two_hours_ago(&cluster)).await;
        assert_eq!(first.is_ok(), !grace.is_zero(), "{grace:?}: {first:?}");
        if !grace.is_zero() {
            clock.advance(grace - MS);
            verify(&verifier, &issued_two_hours_ago(&cluster))
                .await
                .unwrap();
            clock.advance(MS);
        }
        let over = verify(&verifier, &issued_two_hours_ago(&cluster)).await;
        assert_eq!(code(over), "review_unavailable", "{grace:?}: at its end");

        // The clock steps back to before the outage began; the API server is still down.
        let began = clock.now() - grace;
        for before in [MS, HOUR] {
            clock.set(began - before);
            let result = verify(&verifier, &issued_two_hours_ago(&cluster)).await;
            assert_eq!(
                code(result),
                "review_unavailable",
                "{grace:?}: accepted with the clock {before:?} before the outage began"
            );
        }
    }
}

/// A confirmation counts for `interval` from when it was made, by the verifier's clock: once the
/// clock steps back before that moment it vouches for nothing, and the token is reviewed again —
/// a deleted pod's token is refused at once, not accepted for as long as the clock went back.
#[tokio::test]
async fn a_clock_stepping_back_never_stretches_a_confirmation() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let token = issued_two_hours_ago(&cluster);
    verify(&verifier, &token).await.unwrap();
    cluster.reviews.delete_bound_object(&token);
    clock.set(clock.now() - HOUR);
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        401,
        "the cache answered with a confirmation made an hour from now"
    );
    assert_eq!(code(verify(&verifier, &token).await), "review_refused");
}

/// A credential that cannot be sent is our own configuration, never an outage of the API server.
/// The token file of `ApiServerBuilder::with_bearer_token`'s example, read with `read_to_string`
/// and so ending in a newline, is sent without it (client-go trims token files likewise); one
/// with a control character inside is 503 with a configuration error, and opens no grace period
/// (as a `Transport` error it would have: every token accepted for a minute).
#[tokio::test]
async fn a_credential_that_cannot_be_sent_opens_no_grace_period() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let with_credential = |credential: String| {
        let api = ApiServer::builder(cluster.reviews.api_server_url())
            .with_bearer_token(move || Some(credential.clone()))
            .build()
            .unwrap();
        cluster.bound(
            &clock,
            ObjectBindingCheck::new(INTERVAL).with_api_server(api),
        )
    };
    let file = cluster.token_path.with_file_name("written-with-echo");
    std::fs::write(&file, format!("{}\n", cluster.reviews.caller_token())).unwrap();
    let from_file = with_credential(std::fs::read_to_string(&file).unwrap());
    verify(&from_file, &cluster.token().sign()).await.unwrap();
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    assert_eq!(code(verify(&from_file, &revoked).await), "review_refused");
    assert_eq!(cluster.reviews.calls(), 2);

    let broken = with_credential("two\ntokens".into());
    let result = verify(&broken, &revoked).await;
    let Some(source) = result.as_ref().err().and_then(ReviewError::of) else {
        panic!("{result:?}")
    };
    assert!(
        source.is_configuration() && !source.is_api_server_failure(),
        "{source:?}"
    );
    assert_eq!(
        code(verify(&broken, &cluster.token().sign()).await),
        "review_unavailable"
    );
    assert_eq!(cluster.reviews.calls(), 2, "nothing sent");
}

/// The grace period belongs to the outage: a request that arrives inside its window is accepted
/// even when its own review cannot be queued (rule 2 of docs/tokenreview.md), while the queue stays
/// within `max_pending_reviews`; once the window is over, the same local limit is 503.
#[tokio::test]
async fn inside_a_real_outages_window_a_full_queue_still_gets_grace_and_stays_bounded() {
    let (cluster, clock, verifier) = Cluster::with_pending_cap(1).await;
    cluster.reviews.set_down(true);
    // The outage begins (its first review fails: accepted in the grace period).
    verify(&verifier, &cluster.token().sign()).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 2);

    let hold = cluster.reviews.hold();
    // The background review of this token takes the only place in the queue.
    verify(&verifier, &cluster.token().sign()).await.unwrap();
    cluster.reviews.wait_for_calls(3).await;
    for _ in 0..10 {
        verify(&verifier, &cluster.token().sign()).await.unwrap();
    }
    assert_eq!(verifier.check().stats().pending, 1);

    clock.advance(DEFAULT_GRACE_PERIOD);
    assert_eq!(
        verify(&verifier, &cluster.token().sign()).await,
        Err(VerifyError::from(ReviewError::Flight(FlightError::Full {
            max: 1
        })))
    );
    drop(hold);
    assert_eq!(cluster.reviews.calls(), 3);
}

/// The confirmation is kept by the SHA-256 of the signature segment alone, which is enough only
/// because nothing reaches it without passing local verification: another payload under a
/// confirmed token's signature is refused locally (fast path and full path), never reviewed, never
/// answered from the confirmation — also while an outage's grace period is open.
#[tokio::test]
async fn another_payload_under_a_confirmed_signature_never_uses_its_confirmation() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    let token = cluster.token().sign();
    verify(&verifier, &token).await.unwrap();
    let other = cluster.token().sign();
    let forged = {
        let (signing_input, _) = other.rsplit_once('.').unwrap();
        let (_, signature) = token.rsplit_once('.').unwrap();
        format!("{signing_input}.{signature}")
    };
    for down in [false, true] {
        if down {
            // An outage: its first review fails and opens the grace period.
            cluster.reviews.set_down(true);
            verify(&verifier, &cluster.token().sign()).await.unwrap();
        }
        assert_eq!(
            layer_status::<KubernetesClaims>(&verifier, &forged).await,
            401
        );
        assert_eq!(code(verify(&verifier, &forged).await), "invalid_signature");
    }
    assert_eq!(
        cluster.reviews.calls(),
        2,
        "the forged token was never reviewed"
    );
}

/// A limit or a stall of this process is never an outage.
mod local;
// Review R4 of branch `confirm-key`.
mod review_confirm_r4;
