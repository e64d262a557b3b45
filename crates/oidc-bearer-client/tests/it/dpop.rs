//! `AddDpopLayer` end to end: hyper-util's client sends DPoP proofs to a real HTTP server on
//! 127.0.0.1, which records what it got and plays the resource server's part of RFC 9449's nonce
//! exchange (§8, §9). Proofs are checked here with RustCrypto's P-256, independently of the
//! aws-lc-rs code that signs them.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::HeaderValue,
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use oidc_bearer_client::{AddDpopLayer, BearerToken, DpopKey, clock::ManualClock};
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tower::{Service, ServiceBuilder, ServiceExt as _};

const TOKEN: &str = "the.access-token_~+/=";
const NOW: u64 = 1_700_000_000;

/// How the test server answers.
#[derive(Clone, Copy)]
enum Mode {
    /// 200 to everything.
    Ok,
    /// 200 with `DPoP-Nonce: fresh-<n>`, n counting the requests.
    NonceOnOk,
    /// 401 `use_dpop_nonce` with `DPoP-Nonce: n-<n>` to everything: a server that never accepts
    /// (after 10 requests it answers 500, so that a client that loops fails instead of hanging).
    AlwaysAskNonce,
    /// 401 `use_dpop_nonce` with `DPoP-Nonce: n-1` unless the proof carries `n-1`, then 200.
    AskNonceOnce,
    /// 401 `invalid_dpop_proof` with a `DPoP-Nonce`: not a nonce challenge.
    InvalidProof,
}

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    authorization: Option<String>,
    /// Every `DPoP` header value.
    dpop: Vec<String>,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn serve(mode: Mode) -> (SocketAddr, Log) {
    let log = Log::default();
    let app = Router::new().fallback({
        let log = Arc::clone(&log);
        move |request: Request<Body>| {
            let log = Arc::clone(&log);
            async move { answer(mode, &log, request).await }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, log)
}

async fn answer(mode: Mode, log: &Log, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
    };
    let seen = Seen {
        authorization: header(AUTHORIZATION.as_str()),
        dpop: parts
            .headers
            .get_all("dpop")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect(),
        body: to_bytes(body, 1 << 20).await.unwrap(),
    };
    let sent_nonce = seen
        .dpop
        .first()
        .and_then(|proof| claims(proof)["nonce"].as_str().map(str::to_owned));
    let count = {
        let mut log = log.lock().unwrap();
        log.push(seen);
        log.len()
    };
    let challenge = |error: &str, nonce: String| {
        (
            StatusCode::UNAUTHORIZED,
            [
                (
                    "www-authenticate",
                    format!(r#"DPoP algs="ES256", error="{error}""#),
                ),
                ("dpop-nonce", nonce),
            ],
        )
            .into_response()
    };
    match mode {
        Mode::Ok => StatusCode::OK.into_response(),
        Mode::NonceOnOk => {
            (StatusCode::OK, [("dpop-nonce", format!("fresh-{count}"))]).into_response()
        }
        Mode::AlwaysAskNonce if count > 10 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::AlwaysAskNonce => challenge("use_dpop_nonce", format!("n-{count}")),
        Mode::AskNonceOnce if sent_nonce.as_deref() == Some("n-1") => {
            StatusCode::OK.into_response()
        }
        Mode::AskNonceOnce => challenge("use_dpop_nonce", "n-1".to_owned()),
        Mode::InvalidProof => challenge("invalid_dpop_proof", "n-x".to_owned()),
    }
}

fn decode_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The claims of a proof, unverified (the server's bookkeeping).
fn claims(proof: &str) -> Value {
    decode_json(proof.split('.').nth(1).unwrap())
}

/// Verifies a proof's ES256 signature with the `jwk` of its own header, as a resource server does
/// (RFC 9449 §4.3 checks 5–7), and returns its header and claims.
fn verified(proof: &str) -> (Value, Value) {
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "{proof}");
    let (header, claims) = (decode_json(parts[0]), decode_json(parts[1]));
    let jwk = &header["jwk"];
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y.
    let point = [&[0x04][..], &coordinate("x"), &coordinate("y")].concat();
    let key = VerifyingKey::from_sec1_bytes(&point).expect("the jwk is a P-256 point");
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the proof's signature verifies with the jwk in its header");
    (header, claims)
}

fn base64url_sha256(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

fn client(
    key: DpopKey,
) -> (
    impl Service<
        Request<Full<Bytes>>,
        Response = http::Response<hyper::body::Incoming>,
        Error = oidc_bearer_client::BoxError,
    > + Clone,
    String,
) {
    let layer = AddDpopLayer::new(BearerToken::new(TOKEN).unwrap(), key)
        .with_clock(ManualClock::at_unix(NOW));
    let jkt = layer.key().thumbprint().to_owned();
    let client = ServiceBuilder::new()
        .layer(layer)
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    (client, jkt)
}

async fn send<S>(client: &S, request: Request<Full<Bytes>>) -> StatusCode
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = oidc_bearer_client::BoxError,
        > + Clone,
{
    client.clone().oneshot(request).await.unwrap().status()
}

fn get(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/data"))
        .body(Full::default())
        .unwrap()
}

/// The `jti` of each request the server saw, and the nonce of each proof.
fn jtis_and_nonces(log: &Log) -> Vec<(String, Option<String>)> {
    log.lock()
        .unwrap()
        .iter()
        .map(|seen| {
            let (_, claims) = verified(&seen.dpop[0]);
            (
                claims["jti"].as_str().unwrap().to_owned(),
                claims["nonce"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_proof_has_rfc9449_header_and_claims_and_verifies_with_its_jwk() {
    let (addr, log) = serve(Mode::Ok).await;
    let (client, jkt) = client(DpopKey::generate().unwrap());
    let request = Request::post(format!("http://{addr}/orders/7?page=2&sort=asc#top"))
        .body(Full::from("{\"qty\":1}"))
        .unwrap();
    assert_eq!(send(&client, request).await, StatusCode::OK);

    let log = log.lock().unwrap();
    let [seen] = &log[..] else {
        panic!("one request expected, got {log:?}")
    };
    // RFC 9449 §7.1: the token goes with the DPoP scheme.
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("DPoP {TOKEN}").as_str())
    );
    assert_eq!(seen.dpop.len(), 1, "exactly one DPoP header (§4.3 check 1)");
    let (header, claims) = verified(&seen.dpop[0]);

    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    let jwk = header["jwk"].as_object().unwrap();
    let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["crv", "kty", "x", "y"], "public members only");
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    // RFC 7638 §3.2, computed here from the header's jwk: the thumbprint the layer exposes.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    assert_eq!(base64url_sha256(&canonical), jkt);

    assert_eq!(claims["htm"], "POST");
    // §4.2: the target URI without query and fragment.
    assert_eq!(claims["htu"], format!("http://{addr}/orders/7"));
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["ath"], base64url_sha256(TOKEN));
    let jti = URL_SAFE_NO_PAD
        .decode(claims["jti"].as_str().unwrap())
        .unwrap();
    assert!(jti.len() >= 16, "a jti of {} bytes", jti.len());
    assert!(
        claims.get("nonce").is_none(),
        "no nonce before the server sent one"
    );
    assert_eq!(seen.body, "{\"qty\":1}");
}

#[tokio::test]
async fn a_caller_provided_pkcs8_key_signs_the_proofs() {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair},
    };
    let (addr, log) = serve(Mode::Ok).await;
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let key = DpopKey::from_pkcs8_der(der.as_ref()).unwrap();
    let expected_jwk: Value = serde_json::from_str(key.public_jwk()).unwrap();
    let (client, _) = client(key);
    assert_eq!(send(&client, get(addr)).await, StatusCode::OK);
    let (header, _) = verified(&log.lock().unwrap()[0].dpop[0]);
    assert_eq!(header["jwk"], expected_jwk);
}

#[tokio::test]
async fn each_request_gets_a_new_jti() {
    let (addr, log) = serve(Mode::Ok).await;
    let (client, _) = client(DpopKey::generate().unwrap());
    for _ in 0..3 {
        assert_eq!(send(&client, get(addr)).await, StatusCode::OK);
    }
    let mut jtis: Vec<String> = jtis_and_nonces(&log)
        .into_iter()
        .map(|(jti, _)| jti)
        .collect();
    assert_eq!(jtis.len(), 3);
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), 3, "every proof has its own jti");
}

#[tokio::test]
async fn a_use_dpop_nonce_challenge_is_answered_with_a_new_proof_carrying_the_nonce() {
    let (addr, log) = serve(Mode::AskNonceOnce).await;
    let (client, _) = client(DpopKey::generate().unwrap());
    let request = Request::put(format!("http://{addr}/doc"))
        .body(Full::from("replayed body"))
        .unwrap();
    assert_eq!(send(&client, request).await, StatusCode::OK);

    let sent = jtis_and_nonces(&log);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].1, None);
    assert_eq!(sent[1].1.as_deref(), Some("n-1"));
    assert_ne!(sent[0].0, sent[1].0, "the retry has a new jti");
    let log = log.lock().unwrap();
    assert!(
        log.iter().all(|seen| seen.body == "replayed body"),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_server_that_keeps_asking_for_a_nonce_gets_one_retry_and_the_caller_its_401() {
    let (addr, log) = serve(Mode::AlwaysAskNonce).await;
    let (client, _) = client(DpopKey::generate().unwrap());
    assert_eq!(send(&client, get(addr)).await, StatusCode::UNAUTHORIZED);
    let nonces: Vec<_> = jtis_and_nonces(&log).into_iter().map(|(_, n)| n).collect();
    assert_eq!(nonces, [None, Some("n-1".to_owned())], "one retry, no loop");

    // The nonce of the second 401 is kept: the next request starts with it.
    assert_eq!(send(&client, get(addr)).await, StatusCode::UNAUTHORIZED);
    let nonces: Vec<_> = jtis_and_nonces(&log).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        nonces[2..],
        [Some("n-2".to_owned()), Some("n-3".to_owned())]
    );
}

#[tokio::test]
async fn a_nonce_sent_with_a_200_is_used_on_the_next_request() {
    let (addr, log) = serve(Mode::NonceOnOk).await;
    let (client, _) = client(DpopKey::generate().unwrap());
    for _ in 0..3 {
        assert_eq!(send(&client, get(addr)).await, StatusCode::OK);
    }
    let nonces: Vec<_> = jtis_and_nonces(&log).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        nonces,
        [None, Some("fresh-1".to_owned()), Some("fresh-2".to_owned())]
    );
}

#[tokio::test]
async fn a_401_that_is_not_a_nonce_challenge_is_not_retried() {
    let (addr, log) = serve(Mode::InvalidProof).await;
    let (client, _) = client(DpopKey::generate().unwrap());
    assert_eq!(send(&client, get(addr)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(log.lock().unwrap().len(), 1);
}
