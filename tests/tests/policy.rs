//! Authorization policies: 403 `insufficient_scope` after a valid token, over real HTTP.

mod support;

use axum::Router;
use axum::routing::get;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::policy::{AuthorizeLayer, Denied};
use oidc_bearer::{BearerAuthLayer, Verifier};
use oidc_bearer_testing::TestIssuer;
use serde_json::json;
use support::serve;

const AUD: &str = "resource-server";

async fn call(url: String, token: &str) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status().as_u16(),
        challenge,
        response.text().await.unwrap(),
    )
}

#[tokio::test]
async fn each_policy_answers_403_with_its_challenge() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let app = Router::new()
        .route("/subjects", get(|| async { "ok" }))
        .route_layer(AuthorizeLayer::subjects([
            "system:serviceaccount:prod:billing",
        ]))
        .merge(
            Router::new()
                .route("/namespaces", get(|| async { "ok" }))
                .route_layer(AuthorizeLayer::namespaces(["prod"])),
        )
        .merge(
            Router::new()
                .route("/accounts", get(|| async { "ok" }))
                .route_layer(AuthorizeLayer::service_accounts(["prod/billing"])),
        )
        .merge(
            Router::new()
                .route("/scopes", get(|| async { "ok" }))
                .route_layer(AuthorizeLayer::scopes(["invoices:write"])),
        )
        .merge(
            Router::new()
                .route("/closure", get(|| async { "ok" }))
                .route_layer(AuthorizeLayer::new(|c: &DefaultClaims| {
                    if c.extra.get("team") == Some(&json!("blue")) {
                        Ok(())
                    } else {
                        Err(Denied::new("blue team only"))
                    }
                })),
        )
        .route_layer(BearerAuthLayer::new(verifier));
    let base = serve(app).await;

    let billing = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud(AUD)
        .claim("scope", json!("invoices:read invoices:write"))
        .claim("team", json!("blue"))
        .sign();
    let other = issuer
        .token()
        .kubernetes("dev", "web")
        .aud(AUD)
        .claim("scope", json!("invoices:read"))
        .sign();
    for path in ["subjects", "namespaces", "accounts", "scopes", "closure"] {
        let (status, _, body) = call(format!("{base}/{path}"), &billing).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "{path} allows billing"
        );
    }
    let rows = [
        (
            "subjects",
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token's subject is not allowed here""#,
        ),
        (
            "namespaces",
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token's Kubernetes namespace is not allowed here""#,
        ),
        (
            "accounts",
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token's Kubernetes service account is not allowed here""#,
        ),
        (
            "scopes",
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="invoices:write""#,
        ),
        (
            "closure",
            r#"Bearer realm="api", error="insufficient_scope", error_description="blue team only""#,
        ),
    ];
    for (path, challenge) in rows {
        let (status, got, body) = call(format!("{base}/{path}"), &other).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(got.as_deref(), Some(challenge), "{path}");
        assert!(body.contains(r#""error":"insufficient_scope""#), "{body}");
    }
    // An invalid token is still a 401 from the bearer layer, before any policy.
    let (status, _, _) = call(format!("{base}/subjects"), "not-a-jwt").await;
    assert_eq!(status, 401);
}
