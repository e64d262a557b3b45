//! DPoP (RFC 9449) end to end over HTTP on 127.0.0.1: a `TestIssuer` mints tokens bound to a
//! client's key, a client signs proofs with `DpopProof`, and an axum server behind
//! `BearerAuthLayer::with_dpop` answers. One test per refusal rule of §4.3, the replay window, nonces
//! across replicas, a proxy's base URL, the `Bearer` downgrade (§7.2) and each mode.
//!
//! Refusals answer with their code as the body (`DefaultRejection::with_body`, which keeps the
//! challenge), so each test names the exact rule that refused.

use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Router};
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::{Clock as _, ManualClock};
use oidc_bearer::rejection::{AuthRejection, BodyRejection, DefaultRejection};
use oidc_bearer::{BearerAuthLayer, Claims, Dpop, DpopMode, DpopThumbprint, Verifier};
use oidc_bearer_testing::{DpopKey, DpopProof, KeyAlg, TestIssuer, now};
use serde_json::{Value, json};

const AUD: &str = "orders-api";
const NONCE_SECRET: &[u8] = &[7; 32];

/// `sub` and the proof key's thumbprint (or `bearer`), as the handler sees them.
async fn whoami(
    Claims(claims): Claims<DefaultClaims>,
    thumbprint: Option<Extension<DpopThumbprint>>,
) -> String {
    let bound = thumbprint.map_or("bearer".to_owned(), |Extension(t)| t.0.to_string());
    format!("{} {bound}", claims.subject().unwrap_or_default())
}

/// A server on 127.0.0.1 behind a DPoP layer, its issuer, a client key and the clock of its DPoP
/// checks (tokens use the system clock; proofs' `iat` start at the same second).
struct Fixture {
    issuer: TestIssuer,
    key: DpopKey,
    clock: ManualClock,
    /// `http://127.0.0.1:port`: where requests go.
    addr: String,
    client: reqwest::Client,
}

struct Settings {
    mode: DpopMode,
    /// The external base URL; `None`: the server's own address.
    base: Option<String>,
    configure: fn(Dpop) -> Dpop,
    /// Another fixture's issuer and client key (a replica of its server); `None`: new ones.
    replica_of: Option<(TestIssuer, DpopKey)>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: DpopMode::Required,
            base: None,
            configure: |d| d,
            replica_of: None,
        }
    }
}

impl Fixture {
    async fn start(mode: DpopMode) -> Self {
        Self::with(Settings {
            mode,
            ..Settings::default()
        })
        .await
    }

    async fn with(settings: Settings) -> Self {
        let (issuer, key) = match settings.replica_of {
            Some(pair) => pair,
            None => (TestIssuer::start().await, DpopKey::generate(KeyAlg::ES256)),
        };
        let clock = ManualClock::at_unix(now() as u64);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let base = settings.base.clone().unwrap_or_else(|| addr.clone());
        let dpop = Dpop::new(settings.mode, &base)
            .unwrap()
            .with_clock(clock.clone());
        serve(listener, &issuer, (settings.configure)(dpop));
        Self {
            issuer,
            key,
            clock,
            addr,
            client: reqwest::Client::new(),
        }
    }

    /// The DPoP checks' clock, in Unix seconds.
    fn unix(&self) -> i64 {
        self.clock.now().as_secs() as i64
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// A token for the API, bound to the fixture's key.
    fn token(&self) -> String {
        self.issuer
            .token()
            .aud(AUD)
            .sub("alice")
            .dpop_bound(&self.key)
            .sign()
    }

    /// A proof for `GET /orders` with `token`.
    fn proof(&self, token: &str) -> DpopProof {
        self.key
            .proof("GET", &self.url("/orders"))
            .access_token(token)
    }

    /// `GET /orders` with `Authorization: <scheme> <token>` and these `DPoP` headers.
    async fn get(&self, scheme: &str, token: &str, proofs: &[String]) -> Answer {
        let mut request = self
            .client
            .get(self.url("/orders"))
            .header("authorization", format!("{scheme} {token}"));
        for proof in proofs {
            request = request.header("dpop", proof);
        }
        Answer::of(request.send().await.unwrap()).await
    }

    /// `GET /orders` with the DPoP scheme and one proof.
    async fn dpop(&self, token: &str, proof: DpopProof) -> Answer {
        self.get("DPoP", token, &[proof.sign()]).await
    }
}

/// Serves `/orders` (GET) and `/orders/new` (POST) behind the layer under test: the issuer's
/// verifier, refusals answered with their code as the body.
fn serve(listener: tokio::net::TcpListener, issuer: &TestIssuer, dpop: Dpop) {
    let layer = layer(issuer, AUD, dpop);
    let app: Router = Router::new()
        .route("/orders", get(whoami))
        .route("/orders/new", post(whoami))
        .route_layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// A refusal's body: its code.
type Code = fn(&AuthRejection) -> String;

/// The layer under test: `issuer`'s verifier for `aud` with `dpop`, refusals answered with their
/// code as the body.
pub(super) fn layer(
    issuer: &TestIssuer,
    aud: &str,
    dpop: Dpop,
) -> BearerAuthLayer<Verifier, DefaultClaims, BodyRejection<Code>> {
    let code: Code = |r| r.code().to_owned();
    BearerAuthLayer::new(Verifier::new(issuer.issuer(), aud).unwrap())
        .with_rejection(DefaultRejection::new().with_body(code))
        .with_dpop(dpop)
}

/// What a response says: its status, body (the refusal's code, or the handler's answer), its
/// `WWW-Authenticate` values and `DPoP-Nonce`.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    challenges: Vec<String>,
    nonce: Option<String>,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let header = |name: &str| {
            response
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let challenges = header("www-authenticate");
        let nonce = header("dpop-nonce").pop();
        Self {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
            challenges,
            nonce,
        }
    }

    /// Asserts a 401 with `code` and a `DPoP` challenge whose `error` is `error`.
    #[track_caller]
    fn refused(&self, code: &str, error: &str) {
        assert_eq!((self.status, self.body.as_str()), (401, code), "{self:?}");
        let challenge = &self.challenges[0];
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        );
        assert!(challenge.contains("algs=\""), "{challenge}");
    }

    /// Asserts a 401 `invalid_dpop_proof` refusal with `code`.
    #[track_caller]
    fn proof_refused(&self, code: &str) {
        self.refused(code, "invalid_dpop_proof");
    }

    #[track_caller]
    fn accepted(&self) -> &str {
        assert_eq!(self.status, 200, "{self:?}");
        &self.body
    }
}

#[tokio::test]
async fn a_bound_token_with_its_proof_is_accepted_and_the_thumbprint_reaches_the_handler() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let expected = format!("alice {}", f.key.thumbprint());
    // The first request verifies the token in full; the second finds it in the token cache, and
    // still needs a fresh proof of its own.
    for _ in 0..2 {
        let answer = f.dpop(&token, f.proof(&token)).await;
        assert_eq!(answer.accepted(), expected);
    }
    // The query is no part of `htu` (§4.3 check 9); any key type works.
    let key = DpopKey::generate(KeyAlg::PS256);
    let token = f.issuer.token().aud(AUD).sub("bob").dpop_bound(&key).sign();
    let proof = key
        .proof("GET", &f.url("/orders"))
        .access_token(&token)
        .sign();
    let response = f
        .client
        .get(f.url("/orders?page=2"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    let answer = Answer::of(response).await;
    assert_eq!(answer.accepted(), format!("bob {}", key.thumbprint()));
}

// §4.3 check 1: exactly one DPoP header.

#[tokio::test]
async fn the_dpop_scheme_without_a_proof_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    f.get("DPoP", &f.token(), &[])
        .await
        .proof_refused("dpop_proof_missing");
}

#[tokio::test]
async fn two_proofs_are_a_malformed_request() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let proofs = [f.proof(&token).sign(), f.proof(&token).sign()];
    let answer = f.get("DPoP", &token, &proofs).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (400, "dpop_multiple_proofs")
    );
    assert!(
        answer.challenges[0].contains("error=\"invalid_request\""),
        "{answer:?}"
    );
}

// Check 2: one well-formed JWT.

#[tokio::test]
async fn a_proof_that_is_no_jwt_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let garbage = [
        "not-a-jwt".to_owned(),
        format!("{}.extra", f.proof(&token).sign()),
    ];
    for proof in garbage {
        f.get("DPoP", &token, &[proof])
            .await
            .proof_refused("dpop_malformed");
    }
}

// Check 3: the required claims.

#[tokio::test]
async fn a_proof_without_a_required_claim_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    for claim in ["jti", "htm", "htu", "iat", "ath"] {
        let answer = f.dpop(&token, f.proof(&token).remove_claim(claim)).await;
        assert_eq!(answer.body, "dpop_missing_claim", "{claim}");
        answer.proof_refused("dpop_missing_claim");
    }
    // A claim of the wrong type is malformed, never read as another value.
    let answer = f
        .dpop(&token, f.proof(&token).claim("iat", now().to_string()))
        .await;
    answer.proof_refused("dpop_malformed");
}

// Check 4: `typ`.

#[tokio::test]
async fn a_proof_of_another_typ_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    for typ in [json!("JWT"), Value::Null] {
        f.dpop(&token, f.proof(&token).header("typ", typ))
            .await
            .proof_refused("dpop_invalid_typ");
    }
}

// Check 5: an asymmetric algorithm on the accepted list.

#[tokio::test]
async fn a_proof_with_none_hmac_or_an_algorithm_not_accepted_is_refused() {
    let f = Fixture::with(Settings {
        configure: |d| d.with_algorithms(&[oidc_bearer::Algorithm::ES256]).unwrap(),
        ..Settings::default()
    })
    .await;
    let token = f.token();
    for alg in ["none", "HS256", "ES384"] {
        f.dpop(&token, f.proof(&token).header("alg", json!(alg)))
            .await
            .proof_refused("dpop_algorithm_not_allowed");
    }
    // A key of an algorithm the server does not accept, with its own alg.
    let key = DpopKey::generate(KeyAlg::EdDSA);
    let token = f.issuer.token().aud(AUD).dpop_bound(&key).sign();
    let proof = key.proof("GET", &f.url("/orders")).access_token(&token);
    let answer = f.dpop(&token, proof).await;
    answer.proof_refused("dpop_algorithm_not_allowed");
    assert!(
        answer.challenges[0].ends_with("algs=\"ES256\""),
        "{answer:?}"
    );
}

// Check 6: the signature, by the header's key.

#[tokio::test]
async fn a_proof_signed_by_another_key_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let thief = DpopKey::generate(KeyAlg::ES256);
    f.dpop(&token, f.proof(&token).signed_by(&thief))
        .await
        .proof_refused("dpop_invalid_signature");
}

#[tokio::test]
async fn a_proof_without_a_usable_jwk_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let broken = [
        f.proof(&token).header("jwk", Value::Null),
        f.proof(&token).header("jwk", json!("a string")),
        f.proof(&token).jwk_member("crv", json!("P-384")),
        f.proof(&token).jwk_member("kty", json!("oct")),
        f.proof(&token).jwk_member("alg", json!("ES384")),
        // One key, one text: a padded coordinate would give the key a second thumbprint.
        f.proof(&token).jwk_member(
            "x",
            json!(format!("{}=", f.key.public_jwk()["x"].as_str().unwrap())),
        ),
    ];
    for proof in broken {
        f.dpop(&token, proof)
            .await
            .proof_refused("dpop_invalid_key");
    }
}

// Check 7: no private key in the header.

#[tokio::test]
async fn a_proof_whose_jwk_holds_a_private_key_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    f.dpop(&token, f.proof(&token).jwk_member("d", json!("c2VjcmV0")))
        .await
        .proof_refused("dpop_private_key");
}

// Check 8: `htm`.

#[tokio::test]
async fn a_proof_for_another_method_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    for htm in ["POST", "get"] {
        f.dpop(&token, f.proof(&token).claim("htm", htm))
            .await
            .proof_refused("dpop_htm_mismatch");
    }
    // The same proof's method on a POST route.
    let proof = f
        .key
        .proof("POST", &f.url("/orders/new"))
        .access_token(&token);
    let response = f
        .client
        .post(f.url("/orders/new"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof.sign())
        .send()
        .await
        .unwrap();
    Answer::of(response).await.accepted();
}

// Check 9: `htu`, normalised, without query and fragment.

#[tokio::test]
async fn a_proof_for_another_uri_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let elsewhere = [
        f.url("/orders/new"),
        f.url("/other"),
        "https://api.example/orders".to_owned(),
        f.url("/orders").replace("http://", "https://"),
        "/orders".to_owned(),
    ];
    for htu in elsewhere {
        f.dpop(&token, f.proof(&token).claim("htu", &htu))
            .await
            .proof_refused("dpop_htu_mismatch");
    }
    // RFC 3986 §6 normalisation: the same URI spelled otherwise is accepted.
    let same = f.url("/x/../%6Frders?q=1#f").replace("http://", "HTTP://");
    f.dpop(&token, f.proof(&token).claim("htu", same))
        .await
        .accepted();
}

// Check 11: `iat` within the window (the server's clock moves, not the test's time).

#[tokio::test]
async fn a_proof_too_old_or_from_the_future_is_refused() {
    let f = Fixture::with(Settings {
        configure: |d| d.with_iat_window(Duration::from_secs(30)),
        ..Settings::default()
    })
    .await;
    let token = f.token();
    let iat = f.unix();
    f.dpop(&token, f.proof(&token).iat(iat + 31))
        .await
        .proof_refused("dpop_iat_out_of_window");
    f.dpop(&token, f.proof(&token).iat(iat + 30))
        .await
        .accepted();
    f.dpop(&token, f.proof(&token).iat(iat - 30))
        .await
        .accepted();
    let proof = f.proof(&token).iat(iat);
    f.clock.advance(Duration::from_secs(31));
    f.dpop(&token, proof)
        .await
        .proof_refused("dpop_iat_out_of_window");
}

// Check 12: `ath`, and the key the token is bound to.

#[tokio::test]
async fn a_proof_for_another_token_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let other = f
        .issuer
        .token()
        .aud(AUD)
        .sub("bob")
        .dpop_bound(&f.key)
        .sign();
    f.dpop(&token, f.proof(&other))
        .await
        .proof_refused("dpop_ath_mismatch");
}

#[tokio::test]
async fn a_token_bound_to_another_key_is_refused_with_a_valid_proof_of_the_thief() {
    let f = Fixture::start(DpopMode::Required).await;
    // A stolen token: the thief signs a perfect proof with a key of its own.
    let token = f.token();
    let thief = DpopKey::generate(KeyAlg::ES256);
    let proof = thief.proof("GET", &f.url("/orders")).access_token(&token);
    f.dpop(&token, proof)
        .await
        .proof_refused("dpop_jkt_mismatch");
    // Also once the token is in the verifier's cache.
    f.dpop(&token, f.proof(&token)).await.accepted();
    let proof = thief.proof("GET", &f.url("/orders")).access_token(&token);
    f.dpop(&token, proof)
        .await
        .proof_refused("dpop_jkt_mismatch");
}

#[tokio::test]
async fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.issuer.token().aud(AUD).sign();
    f.dpop(&token, f.proof(&token))
        .await
        .refused("dpop_unbound_token", "invalid_token");
}

#[tokio::test]
async fn an_invalid_token_with_a_valid_proof_gets_a_dpop_challenge() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f
        .issuer
        .token()
        .aud(AUD)
        .expires_in(-3600)
        .dpop_bound(&f.key)
        .sign();
    f.dpop(&token, f.proof(&token))
        .await
        .refused("expired", "invalid_token");
}

// §11.1: replay.

#[tokio::test]
async fn a_proof_used_twice_within_its_window_is_refused() {
    let f = Fixture::start(DpopMode::Required).await;
    let token = f.token();
    let proof = f.proof(&token).sign();
    f.get("DPoP", &token, std::slice::from_ref(&proof))
        .await
        .accepted();
    // Again: now through the token cache.
    f.get("DPoP", &token, std::slice::from_ref(&proof))
        .await
        .proof_refused("dpop_replayed");
    // A refused request consumes no `jti`: the same key, URI and `jti` with a token the verifier
    // refuses, then with the good one.
    let fresh = f.proof(&token);
    let jti = fresh.claims()["jti"].as_str().unwrap().to_owned();
    let wrong_audience = f
        .issuer
        .token()
        .aud("another-api")
        .dpop_bound(&f.key)
        .sign();
    let refused = f.proof(&wrong_audience).jti(&jti);
    f.dpop(&wrong_audience, refused)
        .await
        .refused("audience_mismatch", "invalid_token");
    f.dpop(&token, fresh).await.accepted();
    // Two requests racing with one proof: exactly one passes.
    let proof = f.proof(&token).sign();
    let (a, b) = tokio::join!(
        f.get("DPoP", &token, std::slice::from_ref(&proof)),
        f.get("DPoP", &token, std::slice::from_ref(&proof))
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{a:?} {b:?}");
}

// §9: server nonces, shared by replicas through their secret.

#[tokio::test]
async fn nonces_from_a_shared_secret_are_accepted_by_every_replica() {
    let configure = |d: Dpop| {
        d.with_nonces(NONCE_SECRET, Duration::from_secs(300))
            .unwrap()
    };
    let a = Fixture::with(Settings {
        configure,
        ..Settings::default()
    })
    .await;
    // Replicas of a: other layers (other verifiers, other replay memories) for a's issuer, known
    // by a's external URL, with their clocks where a's is; b shares a's secret, c has its own.
    let replica = |configure| Settings {
        base: Some(a.addr.clone()),
        configure,
        replica_of: Some((a.issuer.clone(), a.key.clone())),
        ..Settings::default()
    };
    let b = Fixture::with(replica(configure)).await;
    let c = Fixture::with(replica(|d| {
        d.with_nonces(&[8; 32], Duration::from_secs(300)).unwrap()
    }))
    .await;
    for replica in [&b, &c] {
        replica.clock.set(a.clock.now());
    }
    let token = a.token();
    // Without a nonce: 401 use_dpop_nonce, with one to use.
    let first = a.dpop(&token, a.proof(&token)).await;
    first.refused("use_dpop_nonce", "use_dpop_nonce");
    let nonce = first.nonce.clone().expect("a DPoP-Nonce header");
    a.dpop(&token, a.proof(&token).nonce(&nonce))
        .await
        .accepted();
    // b accepts a's nonce (the proofs name a's URL, b's external one).
    b.dpop(&token, a.proof(&token).nonce(&nonce))
        .await
        .accepted();
    // c does not, and hands out its own.
    let answer = c.dpop(&token, a.proof(&token).nonce(&nonce)).await;
    answer.refused("use_dpop_nonce", "use_dpop_nonce");
    assert_ne!(answer.nonce.as_deref(), Some(nonce.as_str()));
    c.dpop(
        &token,
        a.proof(&token).nonce(answer.nonce.as_deref().unwrap()),
    )
    .await
    .accepted();
    // Rotation: the previous window's nonce is still good, the one before is not.
    a.clock.advance(Duration::from_secs(300));
    let iat = a.unix();
    a.dpop(&token, a.proof(&token).nonce(&nonce).iat(iat))
        .await
        .accepted();
    a.clock.advance(Duration::from_secs(300));
    let iat = a.unix();
    let stale = a.dpop(&token, a.proof(&token).nonce(&nonce).iat(iat)).await;
    stale.refused("use_dpop_nonce", "use_dpop_nonce");
    let fresh = stale.nonce.expect("a fresh nonce");
    assert_ne!(fresh, nonce);
    a.dpop(&token, a.proof(&token).nonce(&fresh).iat(iat))
        .await
        .accepted();
}

// A proxy: the proof names the external URL, never the address the server listens on.

#[tokio::test]
async fn behind_a_proxy_the_external_base_url_is_what_proofs_name() {
    let f = Fixture::with(Settings {
        base: Some("https://api.example.com/billing/".into()),
        ..Settings::default()
    })
    .await;
    let token = f.token();
    let external = "https://api.example.com/billing/orders";
    f.dpop(&token, f.key.proof("GET", external).access_token(&token))
        .await
        .accepted();
    // The address the request really reached is not what the client was told.
    f.dpop(&token, f.proof(&token))
        .await
        .proof_refused("dpop_htu_mismatch");
    // Headers the client writes change nothing: a proof for another host stays refused.
    let response = f
        .client
        .get(f.url("/orders"))
        .header("authorization", format!("DPoP {token}"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header(
            "dpop",
            f.key
                .proof("GET", "https://evil.example/orders")
                .access_token(&token)
                .sign(),
        )
        .send()
        .await
        .unwrap();
    Answer::of(response)
        .await
        .proof_refused("dpop_htu_mismatch");
}

// §7.2 and the modes.

#[tokio::test]
async fn allowed_mode_takes_unbound_bearer_tokens_and_refuses_bound_ones() {
    let f = Fixture::start(DpopMode::Allowed).await;
    let plain = f.issuer.token().aud(AUD).sub("carol").sign();
    assert_eq!(
        f.get("Bearer", &plain, &[]).await.accepted(),
        "carol bearer"
    );
    let bound = f.token();
    let downgrade = f.get("Bearer", &bound, &[]).await;
    downgrade.refused("dpop_bound_token_as_bearer", "invalid_token");
    // Still refused once the token is in the verifier's cache through a DPoP request, and with a
    // valid proof alongside.
    f.dpop(&bound, f.proof(&bound)).await.accepted();
    let proof = f.proof(&bound).sign();
    f.get("Bearer", &bound, &[proof])
        .await
        .refused("dpop_bound_token_as_bearer", "invalid_token");
    // No credentials: both challenges.
    let answer = Answer::of(f.client.get(f.url("/orders")).send().await.unwrap()).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, "missing_token")
    );
    assert_eq!(answer.challenges.len(), 2, "{answer:?}");
    assert!(
        answer.challenges[0].starts_with("Bearer realm="),
        "{answer:?}"
    );
    assert!(
        answer.challenges[1].starts_with("DPoP algs=\""),
        "{answer:?}"
    );
}

#[tokio::test]
async fn required_mode_refuses_every_bearer_token() {
    let f = Fixture::start(DpopMode::Required).await;
    let plain = f.issuer.token().aud(AUD).sign();
    f.get("Bearer", &plain, &[])
        .await
        .refused("dpop_required", "invalid_token");
    let answer = Answer::of(f.client.get(f.url("/orders")).send().await.unwrap()).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, "missing_token")
    );
    assert_eq!(answer.challenges.len(), 1, "{answer:?}");
    let challenge = &answer.challenges[0];
    assert!(
        challenge.starts_with("DPoP realm=\"api\", algs=\""),
        "{challenge}"
    );
    assert!(challenge.contains(" ES256 "), "{challenge}");
}

#[tokio::test]
async fn off_mode_is_the_bearer_layer_of_before() {
    let f = Fixture::start(DpopMode::Off).await;
    let bound = f.token();
    // `cnf` is not looked at, and the DPoP scheme is no bearer credential.
    assert_eq!(
        f.get("Bearer", &bound, &[]).await.accepted(),
        "alice bearer"
    );
    let answer = f.dpop(&bound, f.proof(&bound)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, "missing_token")
    );
    assert_eq!(answer.challenges, [r#"Bearer realm="api""#]);
}
