//! Correctly signed tokens whose header or payload repeats a member name are refused (RFC 7515 §4,
//! RFC 7519 §4: reject, or keep the last one consistently; we reject), so that no two readers of
//! one token (a claims type, a policy, `WithPayload`, the TokenReview pre-check: its test is in
//! oidc-bearer-kubernetes) can see different values. Tokens are written by hand, as JSON text, and
//! signed with HMAC: no JSON library writes a duplicate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::{Verifier, VerifyError};
use oidc_bearer_testing::now;
use serde::de::DeserializeOwned;

const ISS: &str = "https://auth.internal";
const AUD: &str = "my-service";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// `header` and `payload` (JSON text, as given) signed with HS256 under [`SECRET`].
fn signed(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A payload with `extra` members after valid registered claims.
fn payload(extra: &str) -> String {
    let exp = now() + 600;
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{exp},"sub":"alice",{extra}}}"#)
}

async fn verify<T: DeserializeOwned>(token: &str) -> Result<T, VerifyError> {
    let verifier = Verifier::shared_secret_builder(ISS, AUD, SECRET)
        .unwrap()
        .build()
        .unwrap();
    verifier.verify::<T>(token).await
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[tokio::test]
async fn a_signed_header_with_a_repeated_member_is_refused() {
    let token = signed(
        r#"{"alg":"HS256","typ":"JWT","x5t":"a","x5t":"b"}"#,
        &payload(r#""scope":"read""#),
    );
    let err = verify::<DefaultClaims>(&token).await.unwrap_err();
    assert_eq!(err.code(), "malformed", "{err}");
}

#[tokio::test]
async fn a_signed_payload_repeating_a_claim_is_refused_not_read_as_its_last_value() {
    let scope = signed(HEADER, &payload(r#""scope":"read","scope":"admin""#));
    let err = verify::<DefaultClaims>(&scope).await.unwrap_err();
    assert_eq!(err.code(), "malformed", "{err}");
    // The same token without the repeat is accepted: the signature and claims are right.
    let once = signed(HEADER, &payload(r#""scope":"admin""#));
    let claims = verify::<DefaultClaims>(&once).await.unwrap();
    let scope: Vec<&str> = claims.scope.iter().flat_map(|s| s.iter()).collect();
    assert_eq!(scope, ["admin"]);
}

/// A repeat inside a nested object: `DefaultClaims` kept the last namespace while
/// `KubernetesClaims` refused the token; both refuse it now, before decoding either.
#[tokio::test]
async fn a_signed_payload_repeating_a_member_of_a_nested_object_is_refused() {
    let kubernetes = r#""kubernetes.io":{"namespace":"prod","namespace":"kube-system",
        "serviceaccount":{"name":"billing","uid":"u"}}"#;
    let token = signed(HEADER, &payload(kubernetes));
    let err = verify::<DefaultClaims>(&token).await.unwrap_err();
    assert_eq!(err.code(), "malformed", "{err}");
    let err = verify::<KubernetesClaims>(&token).await.unwrap_err();
    assert_eq!(err.code(), "malformed", "{err}");
}
