//! Key fetches that outlive the requests waiting for them, and failures told apart: a configuration
//! mistake is logged at ERROR with the fix, once per attempt; an outage at WARN, with honest words
//! about the keys still in use.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Arc, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::{FetchError, FlightError, KeysError, Verifier, VerifyError};
use oidc_bearer_testing::TestIssuer;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};

const AUD: &str = "my-service";

fn verifier(issuer: &str, clock: &ManualClock) -> Verifier {
    Verifier::builder(issuer, AUD)
        .with_clock(clock.clone())
        .build()
        .unwrap()
}

async fn code(v: &Verifier, token: &str) -> &'static str {
    v.verify::<DefaultClaims>(token)
        .await
        .map_or_else(|e| e.code(), |_| "ok")
}

/// 20 requests with forged `kid`s start (or join) one refresh, then are dropped while the issuer
/// holds the JWKS response. The fetch goes on without them and records its start: within the
/// cooldown no other request fetches again. (Before: 21 fetches inside one cooldown.)
#[tokio::test]
async fn requests_aborted_during_a_held_refresh_cause_one_fetch() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer.issuer(), &clock);
    v.ready().await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);
    clock.advance(Duration::from_secs(31));

    let hold = issuer.hold_jwks();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let v = v.clone();
            let token = issuer.token().aud(AUD).kid(&format!("forged-{i}")).sign();
            tokio::spawn(async move { code(&v, &token).await })
        })
        .collect();
    issuer.wait_for_jwks_fetches(2).await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    drop(hold);
    // A request that arrives now joins the fetch still in flight, or finds it done.
    let token = issuer.token().aud(AUD).kid("late").sign();
    let late = code(&v, &token).await;
    assert!(
        matches!(late, "unknown_key" | "unknown_key_retry"),
        "{late}"
    );
    for i in 0..20 {
        let token = issuer.token().aud(AUD).kid(&format!("again-{i}")).sign();
        assert_eq!(code(&v, &token).await, "unknown_key_retry");
    }
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "one refresh for the whole cooldown"
    );
    assert_eq!(issuer.discovery_fetches(), 1);
}

/// Ten first requests dropped while the first load is held: one discovery and one JWKS fetch, and
/// the keys are loaded for the next request. (Before: 10 + 10 fetches, and a service with a short
/// request timeout in front of the layer never loaded its keys.)
#[tokio::test]
async fn first_requests_aborted_during_the_load_still_load_the_keys_once() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer.issuer(), &clock);
    let hold = issuer.hold_jwks();
    let token = issuer.token().aud(AUD).sign();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { code(&v, &token).await })
        })
        .collect();
    issuer.wait_for_jwks_fetches(1).await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    drop(hold);
    assert_eq!(code(&v, &token).await, "ok");
    assert_eq!(issuer.discovery_fetches(), 1);
    assert_eq!(issuer.jwks_fetches(), 1);
}

/// A timeout in front of the verification (as `tower::timeout` would be) that fires while the
/// first load is held does not stop the load: the keys arrive for later requests.
#[tokio::test]
async fn a_request_timeout_shorter_than_the_first_load_does_not_stop_it() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let v = verifier(&issuer.issuer(), &clock);
    let token = issuer.token().aud(AUD).sign();
    let hold = issuer.hold_jwks();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let timed = {
        let (v, token) = (v.clone(), token.clone());
        // The "timeout" fires on our signal, once the fetch is parked at the issuer.
        tokio::spawn(async move {
            tokio::select! {
                r = code(&v, &token) => Some(r),
                _ = release_rx => None,
            }
        })
    };
    issuer.wait_for_jwks_fetches(1).await;
    release_tx.send(()).unwrap();
    assert_eq!(timed.await.unwrap(), None, "the request gave up first");
    drop(hold);
    assert_eq!(code(&v, &token).await, "ok");
    assert_eq!(issuer.jwks_fetches(), 1);
}

/// Polls `future` to completion on this thread, outside any Tokio runtime (another executor).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Outside a Tokio runtime, a verifier that must fetch says so (a configuration error) and fetches
/// nothing; inside one, the same verifier loads its keys, and they then serve any executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn without_a_tokio_runtime_nothing_is_fetched_and_the_error_says_why() {
    let issuer = TestIssuer::start().await;
    let v = Verifier::new(issuer.issuer(), AUD).unwrap();
    let token = issuer.token().aud(AUD).sign();
    let elsewhere = {
        let (v, token) = (v.clone(), token.clone());
        move || block_on(v.verify::<DefaultClaims>(&token))
    };
    let err = std::thread::spawn(elsewhere.clone())
        .join()
        .unwrap()
        .unwrap_err();
    match &err {
        VerifyError::KeysUnavailable {
            source: source @ KeysError::Flight(FlightError::NoRuntime),
        } => assert!(source.is_configuration()),
        other => panic!("expected NoRuntime, got {other:?}"),
    }
    assert_eq!(issuer.discovery_fetches(), 0);
    v.ready().await.unwrap();
    assert!(std::thread::spawn(elsewhere).join().unwrap().is_ok());
    assert_eq!(issuer.jwks_fetches(), 1);
}

// --- What is logged ---------------------------------------------------------------------------

thread_local! {
    static EVENTS: RefCell<Vec<(tracing::Level, String)>> = const { RefCell::new(Vec::new()) };
}

/// Records the events of this thread (current-thread tests: the spawned fetch runs here too).
struct Events;

impl Events {
    fn install() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
                .unwrap();
            tracing::callsite::rebuild_interest_cache();
        });
        EVENTS.with(|e| e.borrow_mut().clear());
        Self
    }

    /// The messages at `level` (with their fields) recorded so far from the key set.
    fn at(&self, level: tracing::Level) -> Vec<String> {
        EVENTS.with(|e| {
            e.borrow()
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, m)| m.clone())
                .collect()
        })
    }
}

struct Recorder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        struct Text(String);
        impl Visit for Text {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        if !event.metadata().target().starts_with("oidc_bearer::keys") {
            return;
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        EVENTS.with(|e| e.borrow_mut().push((*event.metadata().level(), text.0)));
    }
}

/// The issuer configured with a trailing slash its discovery document lacks: every attempt is one
/// ERROR that names the exact string to configure; requests between attempts log nothing and fetch
/// nothing; the typed error says it is a configuration mistake.
#[tokio::test]
async fn an_issuer_spelled_unlike_its_discovery_document_is_one_error_per_attempt() {
    let events = Events::install();
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    let configured = format!("{}/", issuer.issuer());
    let v = verifier(&configured, &clock);
    let token = issuer.token().iss(&configured).aud(AUD).sign();
    for _ in 0..50 {
        let err = v.verify::<DefaultClaims>(&token).await.unwrap_err();
        let VerifyError::KeysUnavailable { source } = &err else {
            panic!("{err:?}");
        };
        assert!(source.is_configuration(), "{source:?}");
    }
    let errors = events.at(tracing::Level::ERROR);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!(
            "the discovery document names issuer {:?}; configure exactly that string, including any trailing slash",
            issuer.issuer()
        )),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("no keys loaded yet"), "{}", errors[0]);
    assert_eq!(issuer.discovery_fetches(), 1);
    assert!(events.at(tracing::Level::WARN).is_empty());
    // The backoff (1 s after the first failure) has passed: one more attempt, one more line.
    clock.advance(Duration::from_secs(2));
    assert_eq!(code(&v, &token).await, "keys_unavailable");
    assert_eq!(events.at(tracing::Level::ERROR).len(), 2);
    assert_eq!(issuer.discovery_fetches(), 2);
}

/// Each kind of failure is classified, and its log line says what is true.
#[tokio::test]
async fn failures_are_classified_and_worded_by_what_is_loaded() {
    let events = Events::install();
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();

    // Nothing published at the discovery URL: 404, a configuration error that says where to look.
    let wrong = format!("{}/no-such-cluster", issuer.issuer());
    let v = verifier(&wrong, &clock);
    let err = v.ready().await.unwrap_err();
    assert_eq!(
        err,
        KeysError::Fetch {
            url: format!("{wrong}/.well-known/openid-configuration"),
            source: FetchError::Status { status: 404 }
        }
    );
    assert!(err.is_configuration());
    let errors = events.at(tracing::Level::ERROR);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("check the issuer URL"), "{}", errors[0]);

    // The issuer down (503): an outage, at WARN, while no key was ever loaded.
    let v = verifier(&issuer.issuer(), &clock);
    issuer.set_down(true);
    let err = v.ready().await.unwrap_err();
    assert!(!err.is_configuration(), "an outage: {err:?}");
    let warns = events.at(tracing::Level::WARN);
    assert_eq!(warns.len(), 1);
    assert!(warns[0].contains("no keys loaded yet"), "{}", warns[0]);

    // Loaded, then down when they are due: "keeping keys loaded N s ago".
    issuer.set_down(false);
    clock.advance(Duration::from_secs(2));
    v.ready().await.unwrap();
    issuer.set_down(true);
    clock.advance(Duration::from_secs(700));
    let token = issuer.token().aud(AUD).kid("rotated?").sign();
    // An unknown kid past the lifetime: a refresh is allowed, fails, and the old keys still answer;
    // the failed fetch showed nothing about the kid, so "retry" rather than a final refusal.
    assert_eq!(code(&v, &token).await, "unknown_key_retry");
    let warns = events.at(tracing::Level::WARN);
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert!(
        warns[1].contains("keeping keys loaded 700 s ago"),
        "{}",
        warns[1]
    );
    assert_eq!(events.at(tracing::Level::ERROR).len(), 1);
}

/// A key set that is valid JSON but holds no usable key is a configuration error, not an outage.
#[tokio::test]
async fn a_jwks_without_usable_keys_is_a_configuration_error() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::new();
    issuer.remove_key(&issuer.signing_kid());
    issuer.add_raw_jwk(
        serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    );
    let v = verifier(&issuer.issuer(), &clock);
    let err = v.ready().await.unwrap_err();
    assert!(
        matches!(err, KeysError::NoUsableKeys { skipped: 1, .. }),
        "{err:?}"
    );
    assert!(err.is_configuration());
}

/// Keys the issuer publishes that we skip are named once per key-set load at WARN, with why.
#[tokio::test]
async fn skipped_keys_are_reported_once_per_load_with_their_reason() {
    let events = Events::install();
    let issuer = TestIssuer::start().await;
    issuer.add_raw_jwk(
        serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    );
    let clock = ManualClock::new();
    let v = verifier(&issuer.issuer(), &clock);
    v.ready().await.unwrap();
    let token = issuer.token().aud(AUD).sign();
    for _ in 0..10 {
        assert_eq!(code(&v, &token).await, "ok");
    }
    let warns = events.at(tracing::Level::WARN);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0].contains(r#"key "enc": use "enc" is not "sig""#),
        "{}",
        warns[0]
    );
}

// --- Warm-up ----------------------------------------------------------------------------------

/// `warm_up` returns at once and loads the keys in the background, without any request: the first
/// request then finds them (no second fetch), and their arrival is one INFO line.
#[tokio::test]
async fn warm_up_loads_the_keys_without_a_request() {
    let events = Events::install();
    let issuer = TestIssuer::start().await;
    let v = Verifier::new(issuer.issuer(), AUD).unwrap();
    v.warm_up();
    issuer.wait_for_jwks_fetches(1).await;
    let token = issuer.token().aud(AUD).sign();
    assert_eq!(code(&v, &token).await, "ok");
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (1, 1));
    let loaded = events.at(tracing::Level::INFO);
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert!(loaded[0].contains("issuer keys loaded"), "{loaded:?}");
}

/// An issuer whose discovery document names another issuer, warmed up: every attempt is the key
/// cache's own fetch, paced by its backoff, and logged once by the library (one ERROR naming the
/// fix, nothing else); once the document is right, the keys load and the warm-up stops.
#[tokio::test]
async fn a_failing_issuer_warmed_up_logs_once_per_attempt_until_it_loads() {
    let events = Events::install();
    let issuer = TestIssuer::start().await;
    issuer.set_discovery_issuer("https://elsewhere.example");
    let mut settings = oidc_bearer::keys::KeyCacheSettings::default();
    settings.initial_backoff = Duration::from_millis(5);
    settings.max_backoff = Duration::from_millis(20);
    let v = Verifier::builder(issuer.issuer(), AUD)
        .with_key_cache(settings)
        .build()
        .unwrap();
    v.warm_up();
    issuer.wait_for_discovery_fetches(3).await;
    issuer.set_discovery_issuer(&issuer.issuer());
    issuer.wait_for_jwks_fetches(1).await;
    let token = issuer.token().aud(AUD).sign();
    assert_eq!(code(&v, &token).await, "ok");

    let attempts = issuer.discovery_fetches();
    let errors = events.at(tracing::Level::ERROR);
    assert_eq!(
        errors.len(),
        attempts - 1,
        "one per failed attempt: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e.contains("configure exactly that string")),
        "{errors:?}"
    );
    assert_eq!(events.at(tracing::Level::WARN), Vec::<String>::new());
    let loaded = events.at(tracing::Level::INFO);
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert!(
        loaded[0].contains(&format!("failures={}", attempts - 1)),
        "{loaded:?}"
    );
    // Loaded: no further attempt.
    assert_eq!(issuer.jwks_fetches(), 1);
}

/// The crate's one fetch path (keys, discovery, TokenReview) resolves names within half the
/// request's timeout: a lookup that waits for a blocking thread (the runtime's one, held here)
/// fails as this side's `NameResolution`, never as the server's `Timeout` (which would count as
/// an outage). The resolver's error is found in reqwest's error chain.
#[test]
fn a_name_lookup_waiting_for_a_blocking_thread_is_this_sides() {
    use oidc_bearer_shared::fetch::{ClientSettings, LocalCause, client};
    let runtime = crate::support::one_blocking_thread_runtime();
    runtime.block_on(async {
        let client = client(&ClientSettings::new(Duration::from_secs(5), "test")).unwrap();
        // Port 9 (discard) on loopback: never reached, the name is not resolved in time.
        let request = client
            .get("http://localhost:9/")
            .send(Duration::from_millis(200));
        match crate::support::with_the_blocking_thread_held(request).await {
            Err(FetchError::Local {
                cause: LocalCause::NameResolution,
                message,
            }) => assert!(message.contains("localhost"), "{message}"),
            other => panic!("{other:?}"),
        }
    });
}

/// Review 3 (s3-review-grace3): `fetch::Request::send` (public in `oidc-bearer-shared`, used by
/// the client crate's metadata source with its `with_timeout`) computed `Instant::now() +
/// timeout`, which panics for a timeout as long as `Duration::MAX`; reqwest's own timer saturates.
#[tokio::test]
async fn review3_send_with_a_huge_timeout_does_not_panic() {
    use oidc_bearer_shared::fetch::{ClientSettings, client};
    let client = client(&ClientSettings::new(Duration::from_secs(1), "test")).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let sent =
        tokio::spawn(async move { client.get(url).send(Duration::MAX).await.map(|_| ()) }).await;
    assert!(sent.is_ok(), "send panicked: {sent:?}");
}
