//! Review of 67b9a93 (issue 28's short cut for `Authorization: <scheme> <token>` on the hot path):
//! whatever the spelling of the header, a token already in the verifier's token cache gets the
//! answer the checked reading of the header gives. The layer is called directly (tower's
//! `oneshot`) so that the header bytes reach it exactly as written here (blanks at either end,
//! tabs, obs-text), with the verifier of a `TestIssuer` on 127.0.0.1.
//!
//! RFC 9449 §7.2: a DPoP-bound token presented as `Bearer` is refused, also once it is cached;
//! RFC 6750 §2.1 / RFC 7235 §2.1: one `Authorization` header, a case-insensitive scheme, one
//! `b64token`, or the request is malformed (400) or carries no bearer credentials (401).

use std::convert::Infallible;

use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::rejection::AuthRejection;
use oidc_bearer::{BearerAuthLayer, Claims, Dpop, DpopMode, Verifier};
use oidc_bearer_testing::{DpopKey, KeyAlg, TestIssuer};
use tower::{Layer as _, ServiceExt as _};

const AUD: &str = "orders-api";
const BASE: &str = "https://api.example";

/// A layer over `issuer`'s verifier (with DPoP in `mode`, or none), and the verifier.
fn layer(
    issuer: &TestIssuer,
    mode: Option<DpopMode>,
) -> (BearerAuthLayer<Verifier, DefaultClaims>, Verifier) {
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let layer = BearerAuthLayer::new(verifier.clone()).claims::<DefaultClaims>();
    let layer = match mode {
        Some(mode) => layer.with_dpop(Dpop::new(mode, BASE).unwrap()),
        None => layer,
    };
    (layer, verifier)
}

/// The layers a cached token must not leak through: without DPoP, with DPoP allowed, and
/// optional (where a request without bearer credentials reaches the handler, without claims).
fn layers(
    issuer: &TestIssuer,
) -> [(
    &'static str,
    BearerAuthLayer<Verifier, DefaultClaims>,
    Verifier,
); 3] {
    let (plain, v1) = layer(issuer, None);
    let (allowed, v2) = layer(issuer, Some(DpopMode::Allowed));
    let (optional, v3) = layer(issuer, None);
    [
        ("plain", plain, v1),
        ("dpop-allowed", allowed, v2),
        ("optional", optional.optional(), v3),
    ]
}

/// The answer to `GET /orders` with these `Authorization` values (as bytes) and `DPoP` proof:
/// the status and the refusal's code, or what the handler got: `ok` (claims) or `anonymous`.
async fn answer(
    layer: &BearerAuthLayer<Verifier, DefaultClaims>,
    authorization: &[&[u8]],
    proof: Option<String>,
) -> (u16, &'static str) {
    let service = layer.layer(tower::service_fn(|req: http::Request<String>| async move {
        let claims = req.extensions().get::<Claims<DefaultClaims>>().is_some();
        let who = if claims { "ok" } else { "anonymous" };
        Ok::<_, Infallible>(http::Response::new(who.to_owned()))
    }));
    let mut request = http::Request::get("/orders");
    for value in authorization {
        request = request.header(
            "authorization",
            http::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = service
        .oneshot(request.body(String::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let code = match response.extensions().get::<AuthRejection>() {
        Some(rejection) => rejection.code(),
        None if response.body() == "ok" => "ok",
        None => "anonymous",
    };
    (status, code)
}

/// Asserts that each of `values`, alone in `Authorization` and without a proof, is answered
/// `expected`.
async fn each_answered(
    layer: &BearerAuthLayer<Verifier, DefaultClaims>,
    values: &[Vec<u8>],
    expected: (u16, &str),
    context: &str,
) {
    for value in values {
        let shown = String::from_utf8_lossy(value);
        assert_eq!(
            answer(layer, &[value], None).await,
            expected,
            "{context} {shown:?}"
        );
    }
}

/// `<scheme> <token>` in the spellings the short cut takes (one space, nothing around) and those
/// it leaves to the scan (several blanks, tabs, blanks at either end), the scheme in several cases.
fn spellings(scheme: &str, token: &str) -> Vec<Vec<u8>> {
    let upper = scheme.to_ascii_uppercase();
    let lower = scheme.to_ascii_lowercase();
    [
        format!("{scheme} {token}"),
        format!("{lower} {token}"),
        format!("{upper} {token}"),
        format!("{scheme}\t{token}"),
        format!("{scheme}  {token}"),
        format!("{scheme} \t{token}"),
        format!(" {scheme} {token}"),
        format!("\t{scheme} {token}"),
        format!("{scheme} {token} "),
        format!("{scheme} {token}\t"),
        format!("\t {lower}\t \t{token} \t"),
    ]
    .map(String::into_bytes)
    .into()
}

/// §7.2 after the cache: a bound token verified through a DPoP request (so in the token cache)
/// is refused in every `Bearer` spelling, with or without a proof alongside, and its `DPoP`
/// spellings still need their proof.
#[tokio::test]
async fn a_cached_bound_token_is_refused_as_bearer_in_every_spelling() {
    let issuer = TestIssuer::start().await;
    let key = DpopKey::generate(KeyAlg::ES256);
    let bound = issuer.token().aud(AUD).sub("alice").dpop_bound(&key).sign();
    let proof = || {
        Some(
            key.proof("GET", &format!("{BASE}/orders"))
                .access_token(&bound)
                .sign(),
        )
    };
    for mode in [DpopMode::Allowed, DpopMode::Required] {
        let (layer, verifier) = layer(&issuer, Some(mode));
        let dpop = format!("DPoP {bound}");
        assert_eq!(
            answer(&layer, &[dpop.as_bytes()], proof()).await,
            (200, "ok")
        );
        assert_eq!(verifier.token_cache_stats().unwrap().insertions, 1);
        let refusal = match mode {
            DpopMode::Allowed => "dpop_bound_token_as_bearer",
            _ => "dpop_required",
        };
        for value in spellings("Bearer", &bound) {
            let shown = String::from_utf8_lossy(&value);
            for proof in [None, proof()] {
                let with = proof.is_some();
                assert_eq!(
                    answer(&layer, &[&value], proof).await,
                    (401, refusal),
                    "{mode:?} {shown:?} proof={with}"
                );
            }
        }
        let hits = verifier.token_cache_stats().unwrap().hits;
        for value in spellings("DPoP", &bound) {
            let shown = String::from_utf8_lossy(&value);
            assert_eq!(
                answer(&layer, &[&value], None).await,
                (401, "dpop_proof_missing"),
                "{mode:?} {shown:?}"
            );
            assert_eq!(
                answer(&layer, &[&value], proof()).await,
                (200, "ok"),
                "{mode:?} {shown:?}"
            );
        }
        // Those DPoP requests were answered from the cache: the refusals above were refusals of
        // a cached token.
        let stats = verifier.token_cache_stats().unwrap();
        assert_eq!(stats.insertions, 1);
        assert!(stats.hits > hits, "{stats:?}");
    }
}

/// A token in the cache is never taken from a header the checked reading refuses or does not
/// read as `Bearer` credentials (several headers, another scheme or a near one, a second word,
/// obs-text, no token), on a layer without DPoP, one that allows it and an optional one (which
/// lets such a request through without claims, never with the cached token's); its good
/// spellings are answered from the cache.
#[tokio::test]
async fn a_cached_token_is_not_taken_from_a_header_the_checked_reading_refuses() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().aud(AUD).sub("carol").sign();
    let t = token.as_str();
    let bytes = |parts: &[&[u8]]| parts.concat();
    // One header each, refused as malformed by the checked reading (400 `invalid_request`): a
    // second word, a list, a quoted string, no token, or obs-text anywhere (not visible ASCII,
    // whatever the scheme).
    let mut malformed: Vec<Vec<u8>> = [
        format!("Bearer {t} {t}"),
        format!("Bearer {t},{t}"),
        format!("Bearer {t} x"),
        format!("Bearer x {t}"),
        format!("Bearer \"{t}\""),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer\t\t".to_owned(),
    ]
    .map(String::into_bytes)
    .into();
    let t = t.as_bytes();
    malformed.extend([
        bytes(&[b"Bearer ", t, b"\xff"]),
        bytes(&[b"Bearer ", t, b"\x80 "]),
        bytes(&[b"Bearer \xc2\xa0", t]),
        bytes(&[b"Bearer\xc2\xa0", t]),
        bytes(&[b"\xc2\xa0Bearer ", t]),
        bytes(&[b"Basic \xff ", t]),
    ]);
    let t = token.as_str();
    let other_scheme = [
        format!("Bearerx {t}"),
        format!("xBearer {t}"),
        format!("Beare {t}"),
        format!("Bearer-{t}"),
        format!("Bearer{t}"),
        format!("Basic {t}"),
        format!("Token {t}"),
        t.to_owned(),
        " \t ".to_owned(),
    ]
    .map(String::into_bytes);
    for (name, layer, verifier) in layers(&issuer) {
        let plain = format!("Bearer {t}");
        assert_eq!(answer(&layer, &[plain.as_bytes()], None).await, (200, "ok"));
        // No bearer credentials: refused, or let through without claims when optional.
        let none = match name {
            "optional" => (200, "anonymous"),
            _ => (401, "missing_token"),
        };
        each_answered(&layer, &malformed, (400, "invalid_request"), name).await;
        each_answered(&layer, &other_scheme, none, name).await;
        // Several headers, whatever the other one says (RFC 6750 §2.1's one credential).
        for other in ["Bearer x.y.z", "Basic eDp5", plain.as_str(), "DPoP x.y.z"] {
            for pair in [
                [plain.as_bytes(), other.as_bytes()],
                [other.as_bytes(), plain.as_bytes()],
            ] {
                assert_eq!(
                    answer(&layer, &pair, None).await,
                    (400, "invalid_request"),
                    "{name} {other:?}"
                );
            }
        }
        // The DPoP scheme is no bearer credential: without DPoP, missing; with it, its rules.
        let dpop = format!("DPoP {t}");
        let expected = match name {
            "dpop-allowed" => (401, "dpop_proof_missing"),
            _ => none,
        };
        assert_eq!(
            answer(&layer, &[dpop.as_bytes()], None).await,
            expected,
            "{name}"
        );
        // Every spelling the checked reading accepts is answered, from the cache.
        let before = verifier.token_cache_stats().unwrap();
        let good = spellings("Bearer", t);
        each_answered(&layer, &good, (200, "ok"), name).await;
        let after = verifier.token_cache_stats().unwrap();
        assert_eq!(after.insertions, 1, "{name} {after:?}");
        assert_eq!(
            after.hits - before.hits,
            good.len() as u64,
            "{name} {after:?}"
        );
    }
}

/// §7.2 the other way: an unbound token in the cache (verified as `Bearer`) is refused with the
/// `DPoP` scheme and a valid proof, in every spelling.
#[tokio::test]
async fn a_cached_unbound_token_is_refused_with_the_dpop_scheme() {
    let issuer = TestIssuer::start().await;
    let key = DpopKey::generate(KeyAlg::ES256);
    let token = issuer.token().aud(AUD).sub("carol").sign();
    let (layer, verifier) = layer(&issuer, Some(DpopMode::Allowed));
    let plain = format!("Bearer {token}");
    assert_eq!(answer(&layer, &[plain.as_bytes()], None).await, (200, "ok"));
    assert_eq!(verifier.token_cache_stats().unwrap().insertions, 1);
    for value in spellings("DPoP", &token) {
        let shown = String::from_utf8_lossy(&value);
        let proof = key
            .proof("GET", &format!("{BASE}/orders"))
            .access_token(&token)
            .sign();
        assert_eq!(
            answer(&layer, &[&value], Some(proof)).await,
            (401, "dpop_unbound_token"),
            "{shown:?}"
        );
    }
}
