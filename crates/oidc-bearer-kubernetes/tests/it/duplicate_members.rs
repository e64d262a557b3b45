//! A token whose header or payload repeats a member name is refused (RFC 7515 §4, RFC 7519 §4:
//! reject, or keep the last one consistently; we reject) by TokenReview's pre-check as by the local
//! verifier (oidc-bearer's `duplicate_members` tests), so that no two readers of one token see
//! different values. The token is written by hand, as JSON text (no JSON library writes a
//! duplicate), and not signed: the pre-check refuses it before any signature matters.

use crate::support::cluster::{AUD, Cluster};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_bearer_kubernetes::TokenReview;
use oidc_bearer_testing::now;

const ISS: &str = "https://auth.internal";

/// `header` and `payload` (JSON text, as given) with a signature segment that signs nothing.
fn unsigned(header: &str, payload: &str) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// A payload with `extra` members after valid registered claims.
fn payload(extra: &str) -> String {
    let exp = now() + 600;
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{exp},"sub":"alice",{extra}}}"#)
}

/// TokenReview's pre-check parses the token with the verifier's parser: a repeat is refused there,
/// without asking the API server.
#[tokio::test]
async fn token_review_refuses_a_repeated_member_before_any_review() {
    let cluster = Cluster::start().await;
    let review = TokenReview::builder(cluster.in_cluster().api_server().unwrap(), AUD)
        .build()
        .unwrap();
    let token = unsigned(
        r#"{"alg":"RS256"}"#,
        &payload(r#""kubernetes.io":{"namespace":"prod","namespace":"kube-system"}"#),
    );
    let err = review.verify(&token).await.unwrap_err();
    assert_eq!(err.code(), "malformed", "{err}");
    assert_eq!(cluster.reviews.calls(), 0);
}
