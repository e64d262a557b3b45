//! The TokenReview endpoint answers like the API server: caller authentication, each reason a
//! token is refused, the JSON shapes, and the test switches.

use oidc_bearer_testing::{KeyAlg, TestIssuer, TokenReviews};
use serde_json::{Value, json};

async fn post(reviews: &TokenReviews, caller: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(reviews.url()).json(&body);
    if let Some(caller) = caller {
        request = request.bearer_auth(caller);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn review(token: &str, audiences: &[&str]) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    })
}

#[tokio::test]
async fn callers_must_hold_a_valid_credential_and_the_permission() {
    let issuer = TestIssuer::start().await;
    let reviews = issuer.token_reviews();
    let token = issuer.token().kubernetes("prod", "app").aud("api").sign();
    let body = review(&token, &["api"]);
    let (status, answer) = post(&reviews, None, body.clone()).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    // A token of the issuer for another audience is no credential for the API server.
    let (status, _) = post(&reviews, Some(&token), body.clone()).await;
    assert_eq!(status, 401);
    let caller = reviews.caller_token();
    reviews.forbid_callers(true);
    let (status, answer) = post(&reviews, Some(&caller), body.clone()).await;
    assert_eq!(status, 403);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("system:serviceaccount:kube-system:token-reviewer"),
        "{answer}"
    );
    reviews.forbid_callers(false);
    let (status, answer) = post(&reviews, Some(&caller), body).await;
    assert_eq!((status, &answer["kind"]), (201, &json!("TokenReview")));
    assert_eq!(reviews.calls(), 4);
}

#[tokio::test]
async fn a_valid_bound_token_is_authenticated_with_its_user_and_audiences() {
    let issuer = TestIssuer::builder().key(KeyAlg::ES256).start().await;
    let reviews = issuer.token_reviews();
    let builder = issuer.token().kubernetes("prod", "app").auds(&["a", "b"]);
    let claims = builder.claims();
    let token = builder.sign();
    let (status, answer) = post(
        &reviews,
        Some(&reviews.caller_token()),
        review(&token, &["b", "c"]),
    )
    .await;
    assert_eq!(status, 201);
    let k8s = &claims["kubernetes.io"];
    assert_eq!(
        answer["status"],
        json!({
            "authenticated": true,
            "audiences": ["b"],
            "user": {
                "username": "system:serviceaccount:prod:app",
                "uid": k8s["serviceaccount"]["uid"],
                "groups": ["system:serviceaccounts", "system:serviceaccounts:prod", "system:authenticated"],
                "extra": {
                    "authentication.kubernetes.io/pod-name": [k8s["pod"]["name"]],
                    "authentication.kubernetes.io/pod-uid": [k8s["pod"]["uid"]],
                    "authentication.kubernetes.io/node-name": [k8s["node"]["name"]],
                    "authentication.kubernetes.io/node-uid": [k8s["node"]["uid"]],
                    "authentication.kubernetes.io/credential-id": [format!("JTI={}", claims["jti"].as_str().unwrap())],
                },
            },
        })
    );
    assert_eq!(reviews.last_spec().unwrap()["audiences"], json!(["b", "c"]));
    // No audiences asked: the API server's own (the issuer by default).
    let (_, answer) = post(&reviews, Some(&reviews.caller_token()), review(&token, &[])).await;
    assert_eq!(answer["status"]["authenticated"], Value::Null);
    reviews.set_api_audiences(&["a"]);
    let (_, answer) = post(&reviews, Some(&reviews.caller_token()), review(&token, &[])).await;
    assert_eq!(answer["status"]["audiences"], json!(["a"]));
}

#[tokio::test]
async fn refusals_carry_the_api_servers_error() {
    let issuer = TestIssuer::start().await;
    let reviews = issuer.token_reviews();
    let caller = reviews.caller_token();
    let ok = || issuer.token().kubernetes("prod", "app").aud("api");
    let unpublished = issuer.add_unpublished_key(KeyAlg::RS256);
    let bound = ok().sign();
    reviews.delete_bound_object(&bound);
    let rows = [
        (bound, "service account token has been invalidated"),
        (
            ok().expires_in(-10).sign(),
            "service account token has expired",
        ),
        (
            ok().nbf(oidc_bearer_testing::now() + 600).sign(),
            "service account token is not valid yet",
        ),
        (
            ok().aud("other").sign(),
            r#"token audiences ["other"] is invalid for the target audiences ["api"]"#,
        ),
        (
            ok().sign_with(&unpublished).sign(),
            "square/go-jose: error in cryptographic primitive",
        ),
        (
            ok().iss("https://elsewhere.example").sign(),
            "invalid bearer token",
        ),
        ("not-a-jwt".to_owned(), "invalid bearer token"),
    ];
    for (token, error) in rows {
        let (status, answer) = post(&reviews, Some(&caller), review(&token, &["api"])).await;
        assert_eq!(status, 201);
        assert_eq!(
            answer["status"]["error"],
            format!("[invalid bearer token, {error}]"),
            "{error}"
        );
        assert_eq!(answer["status"]["authenticated"], Value::Null);
    }
}

#[tokio::test]
async fn switches_fail_hold_and_override_reviews() {
    let issuer = TestIssuer::start().await;
    let reviews = issuer.token_reviews();
    let caller = reviews.caller_token();
    let token = issuer.token().kubernetes("prod", "app").aud("api").sign();
    reviews.fail_with(Some(429));
    assert_eq!(
        post(&reviews, Some(&caller), review(&token, &["api"]))
            .await
            .0,
        429
    );
    reviews.set_down(true);
    assert_eq!(
        post(&reviews, Some(&caller), review(&token, &["api"]))
            .await
            .0,
        503
    );
    reviews.set_down(false);
    reviews.answer_with(Some(
        json!({"authenticated": true, "user": {"username": "x"}}),
    ));
    let (_, answer) = post(&reviews, Some(&caller), review(&token, &["api"])).await;
    assert_eq!(answer["status"]["audiences"], Value::Null);
    reviews.answer_with(None);

    let hold = reviews.hold();
    let parked = tokio::spawn({
        let (reviews, caller, token) = (reviews.clone(), caller.clone(), token.clone());
        async move { post(&reviews, Some(&caller), review(&token, &["api"])).await }
    });
    reviews.wait_for_calls(4).await;
    assert!(!parked.is_finished());
    drop(hold);
    assert_eq!(parked.await.unwrap().1["status"]["authenticated"], true);
    // Revoked, then the pod comes back: the token works again.
    reviews.delete_bound_object(&token);
    let pod_uid = issuer_claims(&token)["kubernetes.io"]["pod"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        post(&reviews, Some(&caller), review(&token, &["api"]))
            .await
            .1["status"]["authenticated"],
        Value::Null
    );
    reviews.restore_object(&pod_uid);
    assert_eq!(
        post(&reviews, Some(&caller), review(&token, &["api"]))
            .await
            .1["status"]["authenticated"],
        true
    );
}

fn issuer_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
