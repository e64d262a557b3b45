//! Authorization policies: 403 `insufficient_scope` after a valid token, over real HTTP.

use crate::support::serve;
use axum::Router;
use axum::routing::get;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::policy::{self, AuthorizeLayer, Denied};
use oidc_bearer::{BearerAuthLayer, Verifier};
use oidc_bearer_testing::TestIssuer;
use serde_json::json;

const AUD: &str = "resource-server";

/// A service's own claim, beside those the built-in policies read: no trait to implement.
#[derive(serde::Deserialize)]
struct Team {
    team: Option<String>,
}

type TeamClaims = DefaultClaims<Team>;

/// Every built-in policy and a closure over the service's own claim, on `DefaultClaims<Team>`.
#[tokio::test]
async fn each_policy_answers_403_with_its_challenge() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let app = Router::new()
        .route("/subjects", get(|| async { "ok" }))
        .route_layer(
            AuthorizeLayer::new(policy::subjects(["system:serviceaccount:prod:billing"]))
                .claims::<TeamClaims>(),
        )
        .merge(
            Router::new()
                .route("/namespaces", get(|| async { "ok" }))
                .route_layer(
                    AuthorizeLayer::new(policy::namespaces(["prod"])).claims::<TeamClaims>(),
                ),
        )
        .merge(
            Router::new()
                .route("/accounts", get(|| async { "ok" }))
                .route_layer(
                    AuthorizeLayer::new(policy::service_accounts(["prod/billing"]))
                        .claims::<TeamClaims>(),
                ),
        )
        .merge(
            Router::new()
                .route("/scopes", get(|| async { "ok" }))
                .route_layer(
                    AuthorizeLayer::new(policy::scopes(["invoices:write"])).claims::<TeamClaims>(),
                ),
        )
        .merge(
            Router::new()
                .route("/closure", get(|| async { "ok" }))
                .route_layer(
                    AuthorizeLayer::new(|c: &TeamClaims| {
                        if c.extra.team.as_deref() == Some("blue") {
                            Ok(())
                        } else {
                            Err(Denied::new("blue team only"))
                        }
                    })
                    .claims::<TeamClaims>(),
                ),
        )
        .route_layer(BearerAuthLayer::new(verifier).claims::<TeamClaims>());
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
        let (status, _, body) = get_text(format!("{base}/{path}"), Some(&billing)).await;
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
        let (status, got, body) = get_text(format!("{base}/{path}"), Some(&other)).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(got.as_deref(), Some(challenge), "{path}");
        assert!(body.contains(r#""error":"insufficient_scope""#), "{body}");
    }
    // An invalid token is still a 401 from the bearer layer, before any policy.
    let (status, _, _) = get_text(format!("{base}/subjects"), Some("not-a-jwt")).await;
    assert_eq!(status, 401);
}

/// The body and the `WWW-Authenticate` challenge of a GET.
async fn get_text(url: String, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
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
async fn a_policy_on_another_claims_type_is_a_500_naming_the_fix() {
    use oidc_bearer::claims::kubernetes::KubernetesClaims;

    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    // The policy defaults to `DefaultClaims`; the layer decodes `KubernetesClaims`.
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(AuthorizeLayer::new(policy::scopes(["admin"])))
        .route_layer(BearerAuthLayer::new(verifier).claims::<KubernetesClaims>());
    let base = serve(app).await;
    let token = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud(AUD)
        .claim("scope", "admin")
        .sign();

    let (status, challenge, body) = get_text(format!("{base}/admin"), Some(&token)).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(challenge, None, "not the client's fault: no challenge");
    assert!(
        body.contains("a bearer layer ran")
            && body.contains(".claims::<oidc_bearer::claims::DefaultClaims>().authorize(policy)"),
        "{body}"
    );
}

#[tokio::test]
async fn a_policy_before_its_bearer_layer_is_a_500_naming_the_fix() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    // With `route_layer`, the layer added last runs first: here the policy runs first.
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(BearerAuthLayer::new(verifier))
        .route_layer(AuthorizeLayer::new(policy::scopes(["admin"])));
    let base = serve(app).await;
    let token = issuer.token().aud(AUD).claim("scope", "admin").sign();

    let (status, _, body) = get_text(format!("{base}/admin"), Some(&token)).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("ran before any bearer layer") && body.contains("add the policy first"),
        "{body}"
    );
}

#[tokio::test]
async fn authorize_on_the_bearer_layer_uses_its_claims_type() {
    use oidc_bearer::claims::RegisteredClaims;
    use oidc_bearer::policy::{self, PolicyClaims};
    use oidc_bearer::{BearerAuthLayer, Verifier};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct MyClaims {
        #[serde(flatten)]
        registered: RegisteredClaims,
        #[serde(default)]
        scope: String,
    }

    impl PolicyClaims for MyClaims {
        fn issuer(&self) -> Option<&str> {
            Some(&self.registered.iss)
        }
        fn subject(&self) -> Option<&str> {
            self.registered.subject()
        }
        fn scopes(&self) -> Vec<&str> {
            self.scope.split_whitespace().collect()
        }
    }

    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(
            BearerAuthLayer::new(verifier.clone())
                .claims::<MyClaims>()
                .authorize(policy::scopes(["admin"]).for_issuer([issuer.issuer()])),
        )
        .merge(
            Router::new()
                .route("/maybe", get(|| async { "maybe" }))
                .route_layer(
                    BearerAuthLayer::new(verifier)
                        .claims::<MyClaims>()
                        .optional()
                        .authorize(policy::scopes(["admin"])),
                ),
        );
    let base = serve(app).await;
    let admin = issuer.token().aud(AUD).claim("scope", "read admin").sign();
    let reader = issuer.token().aud(AUD).claim("scope", "read").sign();

    for path in ["admin", "maybe"] {
        let (status, _, body) = get_text(format!("{base}/{path}"), Some(&admin)).await;
        assert_eq!((status, body.as_str()), (200, path));
        let (status, challenge, _) = get_text(format!("{base}/{path}"), Some(&reader)).await;
        assert_eq!(status, 403, "{path}");
        assert!(challenge.unwrap().contains(r#"scope="admin""#));
    }
    // Optional layer, no credentials: the policy needs a caller, so a challenge (401), never a 500.
    let (status, challenge, _) = get_text(format!("{base}/maybe"), None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some(r#"Bearer realm="api""#))
    );
}

#[tokio::test]
async fn a_custom_body_keeps_www_authenticate_and_retry_after() {
    use oidc_bearer::policy;
    use oidc_bearer::rejection::{AuthRejection, DefaultRejection};
    use oidc_bearer::{BearerAuthLayer, Verifier};

    let issuer = TestIssuer::start().await;
    let down = TestIssuer::start().await;
    down.set_down(true);
    let rejection = DefaultRejection::new()
        .with_realm("shop")
        .with_body(|r: &AuthRejection| format!("custom {} {}", r.status().as_u16(), r.code()))
        .with_content_type("text/plain");
    let layer = |verifier: Verifier| {
        BearerAuthLayer::new(verifier)
            .with_rejection(rejection.clone())
            .authorize(policy::scopes(["admin"]))
    };
    let app = Router::new()
        .route("/up", get(|| async { "up" }))
        .route_layer(layer(Verifier::new(issuer.issuer(), AUD).unwrap()))
        .merge(
            Router::new()
                .route("/down", get(|| async { "down" }))
                .route_layer(layer(Verifier::new(down.issuer(), AUD).unwrap())),
        );
    let base = serve(app).await;
    let reader = issuer.token().aud(AUD).claim("scope", "read").sign();
    let on_down = down.token().aud(AUD).sign();

    let rows = [
        (
            "up",
            None,
            401,
            Some(r#"Bearer realm="shop""#),
            "custom 401 missing_token",
        ),
        (
            "up",
            Some("not-a-jwt"),
            401,
            Some(
                r#"Bearer realm="shop", error="invalid_token", error_description="the token is malformed""#,
            ),
            "custom 401 malformed",
        ),
        (
            "up",
            Some(reader.as_str()),
            403,
            Some(
                r#"Bearer realm="shop", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#,
            ),
            "custom 403 forbidden",
        ),
        (
            "down",
            Some(on_down.as_str()),
            503,
            None,
            "custom 503 keys_unavailable",
        ),
    ];
    for (path, token, status, challenge, body) in rows {
        let mut request = reqwest::Client::new().get(format!("{base}/{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (got_challenge, retry_after, content_type) = (
            header("www-authenticate"),
            header("retry-after"),
            header("content-type"),
        );
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(got_challenge.as_deref(), challenge, "{body}");
        assert_eq!(
            retry_after.is_some(),
            status == 503,
            "{body}: Retry-After on 503 only"
        );
        assert_eq!(content_type.as_deref(), Some("text/plain"));
        assert_eq!(response.text().await.unwrap(), body);
    }
}
