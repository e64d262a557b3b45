//! DPoP (RFC 9449) against an attacker who holds a stolen DPoP-bound token and a proof made for
//! another resource, or who floods the replay memory with proofs of its own: each test sends real
//! HTTP to a server on 127.0.0.1 and expects the refusal the RFC asks for.
//!
//! Requests whose path has dot segments go out as raw HTTP/1.1: every URL-based client (reqwest
//! included) removes them before sending, but a client of its own need not.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use oidc_bearer::clock::{Clock as _, ManualClock};
use oidc_bearer::{Dpop, DpopMode};
use oidc_bearer_testing::{DpopKey, KeyAlg, TestIssuer, now};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const AUD: &str = "orders-api";

/// A listener on 127.0.0.1 and its `127.0.0.1:port`.
async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// Serves `GET /{*path}` (answering `served <path>`) on `listener` behind a DPoP layer whose
/// refusals answer with their code.
fn serve(listener: tokio::net::TcpListener, issuer: &TestIssuer, dpop: Dpop) {
    let layer = super::dpop::layer(issuer, AUD, dpop);
    let app: Router = Router::new()
        .route(
            "/{*path}",
            get(|Path(path): Path<String>| async move { format!("served {path}") }),
        )
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// `GET <target>` over raw HTTP/1.1, the request target sent byte for byte: status and body.
async fn raw_get(addr: &str, target: &str, token: &str, proof: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: {addr}\r\nauthorization: DPoP {token}\r\n\
         dpop: {proof}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// RFC 9449 §4.3 check 9 compares `htu` with "the HTTP URI value for the HTTP request in which
/// the JWT was received": the target the server routes, not a rewrite of it. A gateway serves
/// the billing service under `/billing` and an admin service under `/admin`; a proof the client
/// made for the admin service (stolen with its token) must not be accepted by billing for
/// `/../admin/users`, which billing routes as its own path `../admin/users`.
#[tokio::test]
async fn dpop_a_proof_for_a_sibling_service_is_refused_for_a_dot_segment_path() {
    let issuer = TestIssuer::start().await;
    let key = DpopKey::generate(KeyAlg::ES256);
    let dpop = Dpop::new(DpopMode::Required, "https://gw.example/billing").unwrap();
    let (listener, addr) = listen().await;
    serve(listener, &issuer, dpop);
    let token = issuer.token().aud(AUD).sub("alice").dpop_bound(&key).sign();
    let proof = |url: &str| key.proof("GET", url).access_token(&token).sign();

    // The proof for billing's own resource passes: the fixture is sound.
    let own = proof("https://gw.example/billing/invoices");
    let answer = raw_get(&addr, "/invoices", &token, &own).await;
    assert_eq!(answer, (200, "served invoices".to_owned()));

    // Dot segments, as such or percent-encoded, and backslashes (a URL parser reads them as `/`):
    // the server routes each of these targets as it is.
    let targets = [
        "/../admin/users",
        "/%2e%2E/admin/users",
        "/x/./../../admin/users",
        "/x\\..\\..\\admin/users",
    ];
    let mut answers = Vec::new();
    for target in targets {
        let stolen = proof("https://gw.example/admin/users");
        answers.push((target, raw_get(&addr, target, &token, &stolen).await));
    }
    let refused = targets.map(|t| (t, (401, "dpop_htu_mismatch".to_owned())));
    assert_eq!(answers, refused);
}

/// RFC 9449 §11.1: a proof is remembered for as long as it would be accepted. A client with a
/// token of its own fills the replay memory with fresh proofs; the victim's proof, seen before
/// the flood, must still be refused when replayed within its window. The memory refuses new
/// proofs while it is full of proofs still in their window, and takes them again once these
/// have left it.
#[tokio::test]
async fn dpop_a_flood_of_fresh_proofs_does_not_let_a_replay_through() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at_unix(now() as u64);
    let (listener, addr) = listen().await;
    let dpop = Dpop::new(DpopMode::Required, &format!("http://{addr}"))
        .unwrap()
        .with_clock(clock.clone())
        .with_iat_window(Duration::from_secs(60))
        .with_max_replay_entries(2);
    serve(listener, &issuer, dpop);
    let url = format!("http://{addr}/orders");
    // A token bound to `key`, and a fresh proof for `GET /orders` with it, made now.
    let bound = |sub: &str, key: &DpopKey| issuer.token().aud(AUD).sub(sub).dpop_bound(key).sign();
    let proof = |key: &DpopKey, token: &str| {
        let iat = clock.now().as_secs() as i64;
        key.proof("GET", &url).access_token(token).iat(iat).sign()
    };

    let victim = DpopKey::generate(KeyAlg::ES256);
    let victim_token = bound("alice", &victim);
    let stolen = proof(&victim, &victim_token);
    let first = raw_get(&addr, "/orders", &victim_token, &stolen).await;
    assert_eq!(first, (200, "served orders".to_owned()));

    let attacker = DpopKey::generate(KeyAlg::ES256);
    let attacker_token = bound("mallory", &attacker);
    let mut flood = Vec::new();
    for _ in 0..4 {
        let fresh = proof(&attacker, &attacker_token);
        flood.push(raw_get(&addr, "/orders", &attacker_token, &fresh).await);
    }
    let replay = raw_get(&addr, "/orders", &victim_token, &stolen).await;
    assert_eq!(
        replay,
        (401, "dpop_replayed".to_owned()),
        "flood: {flood:?}"
    );
    // One place was left: one fresh proof taken, the others refused while the memory is full.
    assert_eq!(flood[0], (200, "served orders".to_owned()));
    for answer in &flood[1..] {
        assert_eq!(answer, &(401, "dpop_replay_memory_full".to_owned()));
    }
    // Past the window (iat + 60 s) the remembered proofs are forgotten: new proofs are taken.
    clock.advance(Duration::from_secs(61));
    let later = proof(&attacker, &attacker_token);
    let answer = raw_get(&addr, "/orders", &attacker_token, &later).await;
    assert_eq!(answer, (200, "served orders".to_owned()));
}

/// A layer on a router that axum nests under `/tenant-a` sees the request's path without the
/// prefix (axum rewrites the URI, keeping the original in `OriginalUri`). The proof must name
/// the URI the client requested (§4.3 check 9): a proof for `/orders` is not one for
/// `/tenant-a/orders`.
#[tokio::test]
async fn dpop_a_nested_layer_compares_htu_with_the_uri_requested() {
    let issuer = TestIssuer::start().await;
    let key = DpopKey::generate(KeyAlg::ES256);
    let (listener, addr) = listen().await;
    let dpop = Dpop::new(DpopMode::Required, &format!("http://{addr}")).unwrap();
    let tenant: Router = Router::new()
        .route("/orders", get(|| async { "tenant-a orders" }))
        .layer(super::dpop::layer(&issuer, AUD, dpop));
    let app: Router = Router::new().nest("/tenant-a", tenant);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token = issuer.token().aud(AUD).sub("alice").dpop_bound(&key).sign();
    let proof = |path: &str| {
        let url = format!("http://{addr}{path}");
        key.proof("GET", &url).access_token(&token).sign()
    };
    let answers = [
        raw_get(&addr, "/tenant-a/orders", &token, &proof("/orders")).await,
        raw_get(
            &addr,
            "/tenant-a/orders",
            &token,
            &proof("/tenant-a/orders"),
        )
        .await,
    ];
    assert_eq!(
        answers,
        [
            (401, "dpop_htu_mismatch".to_owned()),
            (200, "tenant-a orders".to_owned())
        ]
    );
}
