//! DPoP (RFC 9449) from one end to the other: `oidc-bearer-client`'s `AddDpopLayer` signs the proofs
//! (aws-lc-rs), `oidc-bearer`'s `BearerAuthLayer::with_dpop` checks them, over HTTP on 127.0.0.1.
//! The two sides compute the key's RFC 7638 thumbprint independently; the token's `cnf.jkt` is the
//! client's, and the handler sees the server's.

use axum::{Extension, Router, routing::get};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use oidc_bearer::{BearerAuthLayer, Dpop, DpopMode, DpopThumbprint, Verifier};
use oidc_bearer_client::{AddDpopLayer, BearerToken, DpopKey};
use oidc_bearer_testing::TestIssuer;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt as _};

const AUD: &str = "orders-api";

/// A server on 127.0.0.1 requiring DPoP, with server nonces when `nonces`: its base URL, and the
/// number of requests it received.
async fn serve(issuer: &TestIssuer, nonces: bool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut dpop = Dpop::new(DpopMode::Required, &base).unwrap();
    if nonces {
        dpop = dpop
            .with_nonces(&[9; 32], Duration::from_secs(300))
            .unwrap();
    }
    let layer = BearerAuthLayer::new(Verifier::new(issuer.issuer(), AUD).unwrap()).with_dpop(dpop);
    let app: Router = Router::new()
        .route(
            "/orders",
            get(|Extension(jkt): Extension<DpopThumbprint>| async move { jkt.0.to_string() }),
        )
        .route_layer(layer);
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    let app = app.layer(tower::util::MapRequestLayer::new(
        move |r: Request<axum::body::Body>| {
            count.fetch_add(1, Ordering::SeqCst);
            r
        },
    ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, received)
}

type Body = Full<Bytes>;

/// A client that sends `token` with proofs signed by `key`, through the client crate's layer.
fn client(
    key: DpopKey,
    token: &str,
) -> impl tower::Service<
    Request<Body>,
    Response = http::Response<hyper::body::Incoming>,
    Error = oidc_bearer_client::BoxError,
> + Clone
+ use<> {
    ServiceBuilder::new()
        .layer(AddDpopLayer::new(BearerToken::new(token).unwrap(), key))
        .service(Client::builder(TokioExecutor::new()).build_http::<Body>())
}

/// `GET {base}/orders?page=1` through `client`: status and body.
async fn get_orders<C>(client: &C, base: &str) -> (StatusCode, String)
where
    C: tower::Service<
            Request<Body>,
            Response = http::Response<hyper::body::Incoming>,
            Error = oidc_bearer_client::BoxError,
        > + Clone,
{
    let request = Request::get(format!("{base}/orders?page=1"))
        .body(Body::default())
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A token for the API bound to `jkt` (`cnf.jkt`, RFC 9449 §6.1).
fn bound_token(issuer: &TestIssuer, jkt: &str) -> String {
    issuer
        .token()
        .aud(AUD)
        .claim("cnf", json!({ "jkt": jkt }))
        .sign()
}

/// A client with a new key and a token bound to it: the client and the key's thumbprint.
fn bound_client(
    issuer: &TestIssuer,
) -> (
    impl tower::Service<
        Request<Body>,
        Response = http::Response<hyper::body::Incoming>,
        Error = oidc_bearer_client::BoxError,
    > + Clone
    + use<>,
    String,
) {
    let key = DpopKey::generate().unwrap();
    let jkt = key.thumbprint().to_owned();
    (client(key, &bound_token(issuer, &jkt)), jkt)
}

#[tokio::test]
async fn the_client_layers_proofs_pass_the_servers_checks_and_the_thumbprints_agree() {
    let issuer = TestIssuer::start().await;
    let (base, _) = serve(&issuer, false).await;
    let (alice, jkt) = bound_client(&issuer);
    for _ in 0..2 {
        // The second request finds the token in the server's cache and needs its own proof.
        assert_eq!(
            get_orders(&alice, &base).await,
            (StatusCode::OK, jkt.clone())
        );
    }
    // A token bound to another key: this client's valid proofs do not make it theirs.
    let other = DpopKey::generate().unwrap();
    let thief = client(
        DpopKey::generate().unwrap(),
        &bound_token(&issuer, other.thumbprint()),
    );
    assert_eq!(get_orders(&thief, &base).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_server_nonce_is_asked_for_and_the_clients_one_retry_carries_it() {
    let issuer = TestIssuer::start().await;
    let (base, received) = serve(&issuer, true).await;
    let (alice, jkt) = bound_client(&issuer);
    // The first proof has no nonce: the server answers `use_dpop_nonce` with one (§8) and the layer
    // retries once with it; the caller sees the 200. The next request carries the nonce at once.
    for _ in 0..2 {
        assert_eq!(
            get_orders(&alice, &base).await,
            (StatusCode::OK, jkt.clone())
        );
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        3,
        "one nonce challenge, one retry"
    );
}
