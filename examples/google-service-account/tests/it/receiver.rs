//! The receiving service and the signJwt stand-in in this process, over HTTP on 127.0.0.1: what the
//! receiver accepts, what it refuses, and which keys it fetches.

use google_service_account::caller::payload;
use google_service_account::iam::{IamClient, sign_jwt_path};
use google_service_account::receiver::{self, JWKS_PATH};
use google_service_account::stand_in::{IamStandIn, jwks_path};
use oidc_bearer_testing::{TestIssuer, now};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const AUD: &str = "deploy-receiver";
const DEPLOYER: &str = "deployer@demo-project.iam.gserviceaccount.com";
const INTRUDER: &str = "intruder@evil-project.iam.gserviceaccount.com";

struct Setup {
    issuer: TestIssuer,
    iam: IamClient,
    iam_url: String,
    whoami: String,
}

async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// The stand-in signs for both accounts; the receiver trusts the deployer only.
async fn setup() -> Setup {
    let issuer = TestIssuer::start().await;
    let mut stand_in = IamStandIn::new(issuer.clone());
    stand_in.add_account(DEPLOYER);
    stand_in.add_account(INTRUDER);
    let iam_url = serve(stand_in.router()).await;
    let base = format!("{}{JWKS_PATH}", issuer.base_url());
    let registry = receiver::registry(AUD, &[DEPLOYER], Some(&base)).unwrap();
    let whoami = format!("{}/whoami", serve(receiver::app(registry)).await);
    Setup {
        issuer,
        iam: IamClient::new(iam_url.clone()),
        iam_url,
        whoami,
    }
}

impl Setup {
    /// Has `email` sign `claims` through signJwt.
    async fn sign(&self, email: &str, claims: &Value) -> String {
        self.iam.sign_jwt(email, claims).await.unwrap().signed_jwt
    }

    /// Calls `/whoami`: status, challenge, JSON body.
    async fn whoami(&self, token: Option<&str>) -> (u16, Option<String>, Value) {
        let mut request = reqwest::Client::new().get(&self.whoami);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = response.status().as_u16();
        (status, challenge, response.json().await.unwrap())
    }
}

#[tokio::test]
async fn a_listed_account_is_verified_with_its_own_keys() {
    let s = setup().await;
    let claims = payload(DEPLOYER, AUD, "octocat", now());
    let response = s.iam.sign_jwt(DEPLOYER, &claims).await.unwrap();
    // Signed with the key the stand-in made for the account.
    assert_eq!(response.key_id, "key-2");

    let (status, challenge, body) = s.whoami(Some(&response.signed_jwt)).await;
    assert_eq!((status, challenge), (200, None), "{body}");
    assert_eq!(
        body,
        json!({"gituser": "octocat", "email": DEPLOYER, "issuer": DEPLOYER})
    );
    // Keys came from the account's own key set, fetched once for both calls.
    let again = s.sign(DEPLOYER, &claims).await;
    assert_eq!(s.whoami(Some(&again)).await.0, 200);
    assert_eq!(s.issuer.requests_to(&jwks_path(DEPLOYER)), 1);
    assert_eq!(s.issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn an_unlisted_account_is_refused_without_a_key_fetch() {
    let s = setup().await;
    let token = s
        .sign(INTRUDER, &payload(INTRUDER, AUD, "mallory", now()))
        .await;
    let (status, challenge, body) = s.whoami(Some(&token)).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="the token's issuer is not trusted""#
        )
    );
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(s.issuer.requests_to(&jwks_path(INTRUDER)), 0);
    assert_eq!(s.issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn tokens_the_receiver_refuses() {
    let s = setup().await;
    let good = || payload(DEPLOYER, AUD, "octocat", now());
    let with = |name: &str, value: Value| {
        let mut claims = good();
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = good();
        claims.as_object_mut().unwrap().remove(name);
        claims
    };
    // (case, signing account, claims, status, error_description)
    let rows = [
        (
            "another audience",
            DEPLOYER,
            with("aud", json!("another-service")),
            401,
            "the token is not meant for this service",
        ),
        (
            "email names another account than the signer",
            DEPLOYER,
            with("email", json!(INTRUDER)),
            403,
            "the email claim must be the signing service account",
        ),
        (
            "no gituser",
            DEPLOYER,
            without("gituser"),
            401,
            "the token's claims do not have the expected shape",
        ),
    ];
    for (name, signer, claims, status, description) in rows {
        let token = s.sign(signer, &claims).await;
        let (got, challenge, body) = s.whoami(Some(&token)).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error_description"], description, "{name}");
        assert!(challenge.is_some(), "{name}");
    }
    // The intruder's key under the deployer's iss: a kid the deployer's keys lack, within the
    // refresh cooldown of their fetch. The key could have been published since, so the answer is
    // 503 "try again" (a retry after the cooldown fetches once more, then gets 401), not a 401 yet.
    let token = s.sign(INTRUDER, &good()).await;
    let (got, challenge, body) = s.whoami(Some(&token)).await;
    assert_eq!(got, 503, "{body}");
    assert_eq!(
        body["error_description"],
        "the token's signing key is not known yet; try again later"
    );
    assert_eq!(challenge, None);
    let (status, challenge, _) = s.whoami(None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some(r#"Bearer realm="api""#))
    );
    // Only the deployer's key set was ever fetched.
    assert_eq!(s.issuer.requests_to(&jwks_path(INTRUDER)), 0);
}

#[tokio::test]
async fn the_stand_in_follows_the_sign_jwt_rules() {
    let s = setup().await;
    let good = payload(DEPLOYER, AUD, "octocat", now());
    let mut far = good.clone();
    far["exp"] = json!(now() + 13 * 3600);
    let mut past = good.clone();
    past["exp"] = json!(now() - 60);
    let mut text = good.clone();
    text["exp"] = json!(now().to_string());
    for (name, claims) in [("13 h", far), ("past", past), ("string", text)] {
        let err = s.iam.sign_jwt(DEPLOYER, &claims).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 400"), "{name}: {err}");
        assert!(err.to_string().contains("12 hours"), "{name}: {err}");
    }

    let err = s
        .iam
        .sign_jwt("nobody@demo-project.iam.gserviceaccount.com", &good)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");

    let url = format!("{}{}", s.iam_url, sign_jwt_path(DEPLOYER));
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({"payload": "[1, 2]"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
}
