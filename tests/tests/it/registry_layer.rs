//! The HTTP layer in front of an `IssuerRegistry`: known tokens are answered from their issuer's
//! token cache on the layer's fast path, exactly when the registry's full path would accept them.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::FastPathLog;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::keys::{Jwks, KeySet, Refresh};
use oidc_bearer::{BearerAuthLayer, Claims, FetchError, KeysError, Verifier, VerifierBuilder};
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::TestIssuer;
use tower::{ServiceBuilder, ServiceExt as _, service_fn};

const AUD: &str = "my-service";

/// A registry trusting `exact` by name and `patterns` as pattern issuers (built on demand,
/// evictable, negatively cached when their keys fail), on `clock`, behind the layer. Returns the
/// registry and a function sending one token through the layer (its status code).
fn registry_behind_layer(
    exact: &TestIssuer,
    pattern: impl Fn(&str) -> Option<VerifierBuilder> + Send + Sync + 'static,
    max_live: usize,
    clock: &ManualClock,
) -> (IssuerRegistry, impl Fn(&str) -> Status) {
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(exact.issuer(), AUD))
        .with_pattern(pattern)
        .with_max_live_issuers(max_live)
        .with_negative_ttl(Duration::from_secs(60))
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(registry.clone()))
        .service(service_fn(|req: http::Request<String>| async move {
            let claims = req.extensions().get::<Claims<DefaultClaims>>().unwrap();
            let body = axum::body::Body::from(claims.registered.iss.clone());
            Ok::<_, Infallible>(http::Response::new(body))
        }));
    let call = move |token: &str| {
        let request = http::Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        let service = service.clone();
        Box::pin(async move { service.oneshot(request).await.unwrap().status().as_u16() }) as Status
    };
    (registry, call)
}

/// A pattern trusting `issuers`, with discovery.
fn trusting(issuers: Vec<String>) -> impl Fn(&str) -> Option<VerifierBuilder> + Send + Sync {
    move |iss: &str| {
        issuers
            .iter()
            .any(|i| i == iss)
            .then(|| Verifier::builder(iss, AUD))
    }
}

/// A pattern trusting `issuer` only, whose verifier takes its keys from `keys`.
fn trusting_with_keys(
    issuer: &TestIssuer,
    keys: impl KeySet + Clone,
) -> impl Fn(&str) -> Option<VerifierBuilder> + Send + Sync + 'static {
    let trusted = issuer.issuer();
    move |iss: &str| {
        (iss == trusted).then(|| Verifier::builder(iss, AUD).with_key_set(keys.clone()))
    }
}

/// The keys `issuer` publishes now.
fn jwks_of(issuer: &TestIssuer) -> Arc<Jwks> {
    Arc::new(Jwks::from_json(&serde_json::to_vec(&issuer.jwks_json()).unwrap()).unwrap())
}

/// A request's status code, to come.
type Status = std::pin::Pin<Box<dyn std::future::Future<Output = u16>>>;

fn fetches(issuer: &TestIssuer) -> (usize, usize) {
    (issuer.discovery_fetches(), issuer.jwks_fetches())
}

/// Hits come from the fast path, with the issuer cache's checks (an expired token is refused); a
/// token of an evicted pattern issuer is not answered there but goes through a rebuilt verifier (a
/// fresh key cache: one more fetch).
#[tokio::test]
async fn known_tokens_take_the_fast_path_while_the_registry_keeps_their_issuer() {
    let log = FastPathLog::install();
    let [a, b, c] = [
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    let clock = ManualClock::new();
    let (_registry, call) =
        registry_behind_layer(&a, trusting(vec![b.issuer(), c.issuer()]), 1, &clock);

    let token_a = a.token().aud(AUD).expires_in(600).sign();
    assert_eq!(call(&token_a).await, 200);
    assert_eq!(call(&token_a).await, 200);
    assert_eq!(log.take(), [false, true]);

    let token_b = b.token().aud(AUD).sign();
    assert_eq!(call(&token_b).await, 200);
    assert_eq!(call(&token_b).await, 200);
    assert_eq!(log.take(), [false, true]);
    assert_eq!(fetches(&b), (1, 1));
    // c takes the one live slot of pattern issuers: b is evicted.
    clock.advance(Duration::from_secs(1));
    assert_eq!(call(&c.token().aud(AUD).sign()).await, 200);
    assert_eq!(call(&token_b).await, 200);
    assert_eq!(log.take(), [false, false]);
    assert_eq!(fetches(&b), (2, 2));
    assert_eq!(call(&token_b).await, 200);
    assert_eq!(log.take(), [true]);

    // Past `exp` and the 60 s leeway: refused although it was cached.
    clock.advance(Duration::from_secs(600 + 61));
    assert_eq!(call(&token_a).await, 401);
    assert_eq!(log.take(), [false]);
}

/// The registry's index finds a token by its signature's SHA-256, and the issuer's token cache
/// compares the rest: a cached token's signature over another payload, for an exact or a pattern
/// issuer, is not answered from the fast path but refused by the full path, and the genuine token
/// still takes the fast path.
#[tokio::test]
async fn a_cached_signature_over_another_payload_gets_no_answer_from_the_fast_path() {
    let log = FastPathLog::install();
    let [a, b] = [TestIssuer::start().await, TestIssuer::start().await];
    let clock = ManualClock::new();
    let (_registry, call) = registry_behind_layer(&a, trusting(vec![b.issuer()]), 4, &clock);

    for issuer in [&a, &b] {
        let genuine = issuer.token().aud(AUD).sub("alice").sign();
        assert_eq!(call(&genuine).await, 200);
        let mallory = issuer.token().aud(AUD).sub("mallory").sign();
        let forged = crate::support::with_signature_of(&genuine, &mallory);
        assert_eq!(call(&forged).await, 401);
        assert_eq!(call(&genuine).await, 200);
        assert_eq!(log.take(), [false, false, true]);
    }
}

/// A key set that keeps its keys but whose refreshes fail once told to (an issuer that went down,
/// with a key set that does not serve stale keys in that case).
#[derive(Clone)]
struct Failing {
    keys: Arc<Jwks>,
    failing: Arc<AtomicBool>,
}

impl KeySet for Failing {
    fn current(&self) -> Option<Arc<Jwks>> {
        Some(self.keys.clone())
    }

    async fn refresh(&self) -> Result<Refresh, KeysError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(KeysError::Fetch {
                url: "http://127.0.0.1/keys".into(),
                source: FetchError::Transport {
                    message: "down".into(),
                },
            })
        } else {
            Ok(Refresh::fresh(self.keys.clone()))
        }
    }
}

/// A proven pattern issuer whose keys fail is negatively cached: its cached tokens get the 503 the
/// full path gives, not an answer from the fast path, until the negative period ends.
#[tokio::test]
async fn a_negatively_cached_issuer_gets_no_answer_from_the_fast_path() {
    let log = FastPathLog::install();
    let [a, b] = [TestIssuer::start().await, TestIssuer::start().await];
    let keys = Failing {
        keys: jwks_of(&b),
        failing: Arc::default(),
    };
    let clock = ManualClock::new();
    let (_registry, call) =
        registry_behind_layer(&a, trusting_with_keys(&b, keys.clone()), 4, &clock);
    let token = b.token().aud(AUD).sign();
    assert_eq!(call(&token).await, 200);
    assert_eq!(call(&token).await, 200);
    assert_eq!(log.take(), [false, true]);

    // A token with a key b does not publish, while refreshes fail: keys unavailable, 503, and b is
    // negatively cached; its cached token gets the same answer.
    keys.failing.store(true, Ordering::SeqCst);
    let rotated = b.add_unpublished_key(oidc_bearer_testing::KeyAlg::ES256);
    let unknown = b.token().aud(AUD).sign_with(&rotated).sign();
    assert_eq!(call(&unknown).await, 503);
    assert_eq!(call(&token).await, 503);
    assert_eq!(log.take(), [false, false]);

    // After the negative period the full path would accept it again (from the cache), and so
    // does the fast path.
    keys.failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(61));
    assert_eq!(call(&token).await, 200);
    assert_eq!(log.take(), [true]);
}

/// Hits on the fast path count as uses: the pattern issuer that only the fast path serves is not
/// the one evicted as idle.
#[tokio::test]
async fn fast_path_hits_keep_their_issuer_from_being_evicted() {
    let log = FastPathLog::install();
    let [a, b, c, d] = [
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    let clock = ManualClock::new();
    let (_registry, call) = registry_behind_layer(
        &a,
        trusting(vec![b.issuer(), c.issuer(), d.issuer()]),
        2,
        &clock,
    );
    let (token_b, token_c) = (b.token().aud(AUD).sign(), c.token().aud(AUD).sign());
    assert_eq!(call(&token_b).await, 200);
    clock.advance(Duration::from_secs(1));
    assert_eq!(call(&token_c).await, 200);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        assert_eq!(call(&token_b).await, 200);
    }
    assert_eq!(log.take(), [false, false, true, true, true]);
    // d is proven: the issuer used least recently goes, and that is c.
    clock.advance(Duration::from_secs(1));
    assert_eq!(call(&d.token().aud(AUD).sign()).await, 200);
    assert_eq!(call(&token_b).await, 200);
    assert_eq!(call(&token_c).await, 200);
    assert_eq!(log.take(), [false, true, false]);
    assert_eq!((fetches(&b), fetches(&c)), ((1, 1), (2, 2)));
}

/// A key set whose refreshes wait for `release`, then fail.
#[derive(Clone)]
struct HeldThenFailing {
    keys: Arc<Jwks>,
    release: Arc<tokio::sync::Notify>,
}

impl KeySet for HeldThenFailing {
    fn current(&self) -> Option<Arc<Jwks>> {
        Some(self.keys.clone())
    }

    async fn refresh(&self) -> Result<Refresh, KeysError> {
        self.release.notified().await;
        Err(KeysError::Fetch {
            url: "http://127.0.0.1/keys".into(),
            source: FetchError::Transport {
                message: "down".into(),
            },
        })
    }
}

/// Two first verifications of a new pattern issuer at once: one proves it while the other then
/// fails its keys. The issuer stays in use and is negatively cached; once that period ends, the fast
/// path answers for it again (it is not shut off for good).
#[tokio::test]
async fn a_failure_after_a_concurrent_proof_holds_the_fast_path_back_only_for_the_negative_period()
{
    let log = FastPathLog::install();
    let [a, b] = [TestIssuer::start().await, TestIssuer::start().await];
    let keys = HeldThenFailing {
        keys: jwks_of(&b),
        release: Arc::default(),
    };
    let clock = ManualClock::new();
    let (_registry, call) =
        registry_behind_layer(&a, trusting_with_keys(&b, keys.clone()), 4, &clock);
    let token = b.token().aud(AUD).sign();
    let unknown = b
        .token()
        .aud(AUD)
        .sign_with(&b.add_unpublished_key(oidc_bearer_testing::KeyAlg::ES256))
        .sign();

    // The first request puts b on probation and waits in a refresh for its unknown kid; the second
    // joins the probation and proves b; then the refresh fails.
    let (proved_tx, proved_rx) = tokio::sync::oneshot::channel();
    let (failed, proved, ()) = tokio::join!(
        call(&unknown),
        async {
            let status = call(&token).await;
            proved_tx.send(()).unwrap();
            status
        },
        async {
            proved_rx.await.unwrap();
            keys.release.notify_one();
        }
    );
    assert_eq!((failed, proved), (503, 200));
    assert_eq!(log.take(), [false, false]);

    // Negatively cached: refused on both paths.
    assert_eq!(call(&token).await, 503);
    assert_eq!(log.take(), [false]);
    // Afterwards the token is answered from the fast path again.
    clock.advance(Duration::from_secs(61));
    assert_eq!(call(&token).await, 200);
    assert_eq!(call(&token).await, 200);
    assert_eq!(log.take(), [true, true]);
}

/// A key set whose refreshes say when they start (`entered`), wait for `release`, then replace the
/// `current` keys with `after`.
#[derive(Clone)]
struct HeldThenLoading {
    current: Arc<std::sync::Mutex<Arc<Jwks>>>,
    after: Arc<Jwks>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl KeySet for HeldThenLoading {
    fn current(&self) -> Option<Arc<Jwks>> {
        Some(self.current.lock().unwrap().clone())
    }

    async fn refresh(&self) -> Result<Refresh, KeysError> {
        self.entered.notify_one();
        self.release.notified().await;
        *self.current.lock().unwrap() = self.after.clone();
        Ok(Refresh::fresh(self.after.clone()))
    }
}

/// A pattern issuer evicted while a verification on its old verifier still waits for keys, and
/// admitted again: that old verification then fails and negatively caches the issuer while the new
/// verifier is on probation, and the new one is proven inside the negative period. Its tokens get
/// the full path's 503 until the period ends, not an answer from the fast path. (Two guards cover
/// this: the failure marks the issuer on probation, and its promotion checks the negative cache; the
/// test fails when both are removed.)
#[tokio::test]
async fn an_issuer_proven_inside_a_negative_period_left_by_its_evicted_verifier_waits_for_its_end()
{
    let log = FastPathLog::install();
    let [a, b, c] = [
        TestIssuer::start().await,
        TestIssuer::start().await,
        TestIssuer::start().await,
    ];
    let rotated = b.add_unpublished_key(oidc_bearer_testing::KeyAlg::ES256);
    let unknown = b.token().aud(AUD).sign_with(&rotated).sign();
    // b's first verifier: refreshes wait, then fail. Its second: refreshes wait, then find the key.
    let first = HeldThenFailing {
        keys: jwks_of(&b),
        release: Arc::default(),
    };
    let before = jwks_of(&b);
    b.publish_key(&rotated);
    let second = HeldThenLoading {
        current: Arc::new(std::sync::Mutex::new(before)),
        after: jwks_of(&b),
        entered: Arc::default(),
        release: Arc::default(),
    };
    let builds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pattern = {
        let builds = builds.clone();
        let (b_iss, c_iss) = (b.issuer(), c.issuer());
        let (first, second) = (first.clone(), second.clone());
        move |iss: &str| {
            if iss == c_iss {
                return Some(Verifier::builder(iss, AUD));
            }
            (iss == b_iss).then(|| match builds.fetch_add(1, Ordering::SeqCst) {
                0 => Verifier::builder(iss, AUD).with_key_set(first.clone()),
                _ => Verifier::builder(iss, AUD).with_key_set(second.clone()),
            })
        }
    };
    let clock = ManualClock::new();
    let (_registry, call) = registry_behind_layer(&a, pattern, 1, &clock);
    assert_eq!(call(&b.token().aud(AUD).sign()).await, 200);
    log.take();

    // The old verification waits in a refresh; c takes the one live slot (b is evicted); the token
    // comes again and b goes on probation with its second verifier, which waits in a refresh too.
    // Then the old verification fails (b is negatively cached), and the new one proves b.
    let (old_failed, old_done) = tokio::sync::oneshot::channel();
    let (old, new, ()) = tokio::join!(
        async {
            let status = call(&unknown).await;
            old_failed.send(()).unwrap();
            status
        },
        async {
            clock.advance(Duration::from_secs(1));
            assert_eq!(call(&c.token().aud(AUD).sign()).await, 200);
            call(&unknown).await
        },
        async {
            second.entered.notified().await;
            first.release.notify_one();
            old_done.await.unwrap();
            second.release.notify_one();
        }
    );
    assert_eq!((old, new), (503, 200));
    assert_eq!(
        builds.load(Ordering::SeqCst),
        2,
        "b was evicted and built again"
    );
    assert_eq!(log.take(), [false, false, false]);

    // Negatively cached: the fast path does not answer, the full path gives 503.
    assert_eq!(call(&unknown).await, 503);
    assert_eq!(log.take(), [false]);
    // Afterwards the token is answered from the fast path.
    clock.advance(Duration::from_secs(61));
    assert_eq!(call(&unknown).await, 200);
    assert_eq!(log.take(), [true]);
}
