//! The key path under real traffic, over real sockets: clients that hang up mid-request, and a key
//! rotation that was not pre-published.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::clocked_verifier;
use axum::Router;
use axum::routing::get;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::{Clock, ManualClock};
use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
use oidc_bearer_testing::TestIssuer;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

const AUD: &str = "resource-server";

/// Counts the requests that reached the router, and their futures dropped before they finished.
#[derive(Clone, Default)]
struct Dropped {
    entered: Arc<AtomicUsize>,
    count: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

impl Dropped {
    async fn wait(&self, counter: &AtomicUsize, n: usize) {
        loop {
            let changed = self.changed.notified();
            if counter.load(Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }

    async fn wait_for(&self, n: usize) {
        self.wait(&self.count, n).await;
    }

    async fn wait_entered(&self, n: usize) {
        self.wait(&self.entered, n).await;
    }
}

struct Guard(Dropped, bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.count.fetch_add(1, Ordering::SeqCst);
            self.0.changed.notify_waiters();
        }
    }
}

async fn serve(verifier: Verifier, dropped: Dropped) -> std::net::SocketAddr {
    let app = Router::new()
        .route(
            "/private",
            get(|Claims(c): Claims<DefaultClaims>| async move {
                c.subject().unwrap_or_default().to_owned()
            }),
        )
        .route_layer(BearerAuthLayer::new(verifier))
        // Outside the bearer layer: sees whether hyper dropped the request's future.
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let guard = Guard(dropped.clone(), false);
                dropped.entered.fetch_add(1, Ordering::SeqCst);
                dropped.changed.notify_waiters();
                async move {
                    let mut guard = guard;
                    let response = next.run(req).await;
                    guard.1 = true;
                    response
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// 100 clients each send a forged-`kid` request and close the connection before the answer, while
/// the issuer holds the JWKS response. The server drops each request's future; the one refresh
/// goes on without them: one fetch for the cooldown, not one per abandoned request.
#[tokio::test]
async fn clients_that_hang_up_during_a_held_refresh_cause_one_fetch() {
    let issuer = TestIssuer::start().await;
    let (clock, verifier) = clocked_verifier(&issuer, AUD);
    verifier.ready().await.unwrap();
    clock.advance(Duration::from_secs(31));
    let dropped = Dropped::default();
    let addr = serve(verifier, dropped.clone()).await;

    let hold = issuer.hold_jwks();
    for i in 0..100 {
        let token = issuer.token().aud(AUD).kid(&format!("forged-{i}")).sign();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /private HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        if i == 0 {
            issuer.wait_for_jwks_fetches(2).await;
        }
        // The server has read it (and it waits for the held refresh).
        dropped.wait_entered(i + 1).await;
        // Hung up, as an impatient client or a proxy's timeout does: hyper drops the request's
        // future when it reads the connection's end.
        drop(stream);
    }
    tokio::time::timeout(Duration::from_secs(30), dropped.wait_for(100))
        .await
        .expect("the server drops the futures of closed connections");
    drop(hold);
    // Within the cooldown: no second refresh, whatever the abandoned requests did.
    let token = issuer.token().aud(AUD).kid("after").sign();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/private"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(matches!(response.status().as_u16(), 401 | 503));
    assert_eq!(issuer.jwks_fetches(), 2, "one initial load, one refresh");
    assert_eq!(issuer.discovery_fetches(), 1);
}

/// The issuer rotates to a key it did not pre-publish, just after our background refresh. A client
/// that honours `Retry-After` on 503 sees no 401: first "retry in N s", then 200, at the cost of
/// one more JWKS fetch. The clock is the server's; the client "waits" by moving it.
#[tokio::test]
async fn a_rotation_without_pre_publication_fails_no_retrying_client() {
    let issuer = TestIssuer::start().await;
    let (clock, verifier) = clocked_verifier(&issuer, AUD);
    let addr = serve(verifier.clone(), Dropped::default()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/private");
    let now = |clock: &ManualClock| clock.now().as_secs() as i64;
    let token_at = |clock: &ManualClock| {
        issuer
            .token()
            .aud(AUD)
            .iat(now(clock))
            .exp(now(clock) + 3600)
            .sign()
    };
    let status = |token: String| {
        let request = client.get(&url).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (response.status().as_u16(), retry_after)
        }
    };
    assert_eq!(status(token_at(&clock)).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 1);

    // Three quarters of the keys' 10 min lifetime later, a request starts a background refresh.
    clock.advance(Duration::from_secs(451));
    assert_eq!(status(token_at(&clock)).await.0, 200);
    issuer.wait_for_jwks_fetches(2).await;
    // A probe with an unknown kid joins that refresh if it still runs: once it answers, the
    // refresh is stored. It costs no fetch.
    let probe = issuer
        .token()
        .aud(AUD)
        .kid("probe")
        .iat(now(&clock))
        .exp(now(&clock) + 3600)
        .sign();
    assert_eq!(status(probe).await.0, 503);
    assert_eq!(issuer.jwks_fetches(), 2);

    // Now the issuer signs with a new key it did not publish before.
    issuer.rotate();
    let token = token_at(&clock);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (code, retry_after) = status(token.clone()).await;
        seen.push(code);
        match (code, retry_after) {
            (503, Some(secs)) => {
                assert!((1..=30).contains(&secs), "{secs}");
                clock.advance(Duration::from_secs(secs));
            }
            _ => break,
        }
    }
    assert_eq!(seen, [503, 200], "no 401 for a retrying client");
    assert_eq!(issuer.jwks_fetches(), 3, "one more fetch for the new key");
}
