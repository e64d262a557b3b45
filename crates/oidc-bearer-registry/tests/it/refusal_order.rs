//! The order of a verification (issue 28): the signature is checked before anything in the payload
//! is read, the token's digest is computed once per request, and neither lets a token through that
//! the full checks refuse. Through a `Verifier`, an `IssuerRegistry` and the HTTP layer over both
//! (the layer hands its digest to the verifier). Tokens are signed with HS256 by hand, so that the
//! payload can be any bytes under a valid signature.

use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::rejection::AuthRejection;
use oidc_bearer::{BearerAuthLayer, Verifier, VerifyError, VerifyToken};
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::now;
use tower::{Layer as _, ServiceExt as _};

pub(crate) const ISS: &str = "https://auth.internal";
pub(crate) const AUD: &str = "my-service";
pub(crate) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub(crate) const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// HS256 over `signing_input` under [`SECRET`], base64url.
fn mac(signing_input: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, signing_input.as_bytes()))
}

/// `header` and the payload segment `payload` (already encoded, so that it can be anything)
/// signed with HS256 under [`SECRET`].
pub(crate) fn signed_segments(header: &str, payload: &str) -> String {
    let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
    let tag = mac(&input);
    format!("{input}.{tag}")
}

/// A payload (JSON text, as given) signed.
pub(crate) fn signed(payload: &str) -> String {
    signed_segments(HEADER, &URL_SAFE_NO_PAD.encode(payload))
}

/// Valid claims for [`ISS`] and [`AUD`], with `extra` members.
pub(crate) fn claims(extra: &str) -> String {
    let exp = now() + 600;
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{exp},"sub":"alice"{extra}}}"#)
}

/// `token` with its signature segment replaced by `signature`'s.
pub(crate) fn with_signature_of(token: &str, signature: &str) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    let (_, sig) = signature.rsplit_once('.').unwrap();
    format!("{input}.{sig}")
}

fn verifier() -> Verifier {
    Verifier::shared_secret_builder(ISS, AUD, SECRET)
        .unwrap()
        .build()
        .unwrap()
}

fn registry(verifier: &Verifier) -> IssuerRegistry {
    IssuerRegistry::builder()
        .with_verifier(verifier.clone())
        .build()
        .unwrap()
}

/// The code of `token`'s answer through `BearerAuth` over `verify` (`ok` for a 200).
async fn through_layer<V: VerifyToken>(verify: &V, token: &str) -> &'static str {
    let service = BearerAuthLayer::new(verify.clone())
        .claims::<DefaultClaims>()
        .layer(tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, Infallible>(http::Response::new(String::new()))
        }));
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    match response.extensions().get::<AuthRejection>() {
        Some(rejection) => rejection.code(),
        None => "ok",
    }
}

/// The codes of `token` through every path: `Verifier::verify`, `verify_token`, the registry's
/// `verify` and `verify_token`, and the layer over the verifier and over the registry.
async fn every_path(
    verifier: &Verifier,
    registry: &IssuerRegistry,
    token: &str,
) -> [&'static str; 6] {
    let code = |r: Result<(), VerifyError>| r.map_or_else(|e| e.code(), |()| "ok");
    [
        code(verifier.verify::<DefaultClaims>(token).await.map(drop)),
        code(
            verifier
                .verify_token::<DefaultClaims>(token)
                .await
                .map(drop),
        ),
        code(registry.verify::<DefaultClaims>(token).await.map(drop)),
        code(
            registry
                .verify_token::<DefaultClaims>(token)
                .await
                .map(drop),
        ),
        through_layer(verifier, token).await,
        through_layer(registry, token).await,
    ]
}

/// A cached answer is bound to its exact token: once a token is accepted (and cached, with its
/// digest computed by the layer and handed to the verifier), another signing input carrying its
/// signature is refused, and so is its signing input with another signature (fresh or another
/// token's).
#[tokio::test]
async fn a_cached_answer_is_never_returned_for_another_token_with_the_same_signature() {
    let verifier = verifier();
    let registry = registry(&verifier);
    let accepted = signed(&claims(""));
    let other = signed(&claims(r#","role":"admin""#));
    assert_eq!(every_path(&verifier, &registry, &accepted).await, ["ok"; 6]);
    assert_eq!(every_path(&verifier, &registry, &other).await, ["ok"; 6]);
    // Both are cached now, under their own signatures' digests.
    let swapped = with_signature_of(&other, &accepted);
    assert_eq!(
        every_path(&verifier, &registry, &swapped).await,
        ["invalid_signature"; 6]
    );
    let mut flipped = URL_SAFE_NO_PAD
        .decode(accepted.rsplit_once('.').unwrap().1)
        .unwrap();
    flipped[5] ^= 1;
    let forged = format!(
        "{}.{}",
        accepted.rsplit_once('.').unwrap().0,
        URL_SAFE_NO_PAD.encode(flipped)
    );
    assert_eq!(
        every_path(&verifier, &registry, &forged).await,
        ["invalid_signature"; 6]
    );
    // The accepted ones still are, from the cache.
    assert_eq!(every_path(&verifier, &registry, &accepted).await, ["ok"; 6]);
    let stats = verifier.token_cache_stats().unwrap();
    assert!(stats.hits > 0, "{stats:?}");
}

/// A valid signature does not carry a token past the claims read after it: expired, not yet
/// valid, another issuer or another audience are refused on every path, again when sent twice
/// (rejections are not cached), and the token is not cached.
#[tokio::test]
async fn a_valid_signature_with_bad_claims_is_refused_after_the_reordering() {
    let verifier = verifier();
    let registry = registry(&verifier);
    let t = now();
    let rows = [
        (
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}}}"#, t - 3600),
            "expired",
        ),
        (
            format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"nbf":{}}}"#,
                t + 7200,
                t + 3600
            ),
            "not_yet_valid",
        ),
        (
            format!(r#"{{"iss":"{ISS}","aud":"other","exp":{}}}"#, t + 600),
            "audience_mismatch",
        ),
        (
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}"}}"#),
            "missing_claim",
        ),
        (
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":"{}"}}"#, t + 600),
            "invalid_claim",
        ),
    ];
    for (payload, code) in rows {
        let token = signed(&payload);
        for _ in 0..2 {
            assert_eq!(
                every_path(&verifier, &registry, &token).await,
                [code; 6],
                "{payload}"
            );
        }
    }
    // Another issuer under the same secret: the verifier refuses it by `iss` after the signature;
    // the registry does not trust it at all.
    let token = signed(&format!(
        r#"{{"iss":"https://other.internal","aud":"{AUD}","exp":{}}}"#,
        t + 600
    ));
    let codes = every_path(&verifier, &registry, &token).await;
    assert_eq!(
        codes,
        [
            "issuer_mismatch",
            "issuer_mismatch",
            "untrusted_issuer",
            "untrusted_issuer",
            "issuer_mismatch",
            "untrusted_issuer"
        ]
    );
    assert_eq!(verifier.token_cache_stats().unwrap().entries, 0);
}

/// A payload that is not base64url, not UTF-8, not JSON or not one object is refused as malformed
/// under a valid signature (never accepted, never a panic), on every path; under a bad signature
/// a verifier refuses it by the signature without reading it, and a registry (which reads `iss`
/// first) as malformed.
#[tokio::test]
async fn a_payload_that_is_not_a_json_object_is_refused_never_accepted() {
    let verifier = verifier();
    let registry = registry(&verifier);
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    // Each payload, and whether its top-level `iss` can be read (a registry then hands the token
    // to the issuer's verifier, which refuses a bad signature before reading the rest).
    let payloads = [
        (b64(b"garbage"), false),
        (b64(b"{"), false),
        (b64(b"[1,2]"), false),
        (b64(b"null"), false),
        (b64(b"\xff\xfe{}"), false),
        (b64(format!(r#"{} trailing"#, claims("")).as_bytes()), false),
        (
            b64(format!(r#"{{"iss":"{ISS}","iss":"{ISS}"}}"#).as_bytes()),
            false,
        ),
        (
            b64(claims(r#","sc\u006fpe":"a","scope":"b""#).as_bytes()),
            true,
        ),
        (b64(claims(r#","x":{"a":1,"a":2}"#).as_bytes()), true),
        // Not base64url (standard base64's `+` and `/`, which RFC 6750's token syntax lets
        // through), or with non-canonical trailing bits ("eyJ9" is `{}`; "eyK" is not a
        // canonical encoding of anything).
        ("e+J9".to_owned(), false),
        ("ey/9".to_owned(), false),
        ("eyK".to_owned(), false),
    ];
    for (payload, iss_readable) in &payloads {
        let token = signed_segments(HEADER, payload);
        assert_eq!(
            every_path(&verifier, &registry, &token).await,
            ["malformed"; 6],
            "{payload}"
        );
        let mut bad = URL_SAFE_NO_PAD
            .decode(token.rsplit_once('.').unwrap().1)
            .unwrap();
        bad[0] ^= 1;
        let forged = format!("{}.{}", token.rsplit_once('.').unwrap().0, b64(&bad));
        let registry_code = if *iss_readable {
            "invalid_signature"
        } else {
            "malformed"
        };
        let codes = every_path(&verifier, &registry, &forged).await;
        assert_eq!(
            codes,
            [
                "invalid_signature",
                "invalid_signature",
                registry_code,
                registry_code,
                "invalid_signature",
                registry_code
            ],
            "{payload}"
        );
    }
    assert_eq!(verifier.token_cache_stats().unwrap().entries, 0);
}
