//! Google service-account JWTs through an issuer registry (the `ServiceAccounts` pattern), through
//! a real issuer on 127.0.0.1 standing in for Google, with keys generated per test. (Google ID
//! tokens and the single-account verifier: oidc-bearer's tests/it/google.rs.)

use oidc_bearer::VerifyError;
use oidc_bearer::claims::RegisteredClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::issuers::google::ServiceAccounts;
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::{KeyAlg, TestIssuer};
use serde::Deserialize;
use serde_json::json;

use crate::support::code;

const AUD: &str = "https://my-service.example";

/// What a CI system might put in the JWTs its service account signs.
#[derive(Debug, Deserialize)]
struct DeployClaims {
    #[serde(flatten)]
    registered: RegisteredClaims,
    gituser: String,
    email: String,
}

const DEPLOYER: &str = "deployer@my-project.iam.gserviceaccount.com";
const BUILDER: &str = "builder@my-project.iam.gserviceaccount.com";
const ATTACKER: &str = "attacker@evil-project.iam.gserviceaccount.com";

fn jwk_path(email: &str) -> String {
    format!("/service_accounts/v1/jwk/{email}")
}

#[tokio::test]
async fn service_account_jwts_are_verified_with_the_accounts_own_keys() {
    // One local server stands in for www.googleapis.com: each account's keys at its own path.
    let google = TestIssuer::start().await;
    let deployer_kid = google.add_key(KeyAlg::RS256);
    let builder_kid = google.add_key(KeyAlg::RS256);
    let attacker_kid = google.add_key(KeyAlg::RS256);
    google.serve_jwks_at(&jwk_path(DEPLOYER), &[&deployer_kid]);
    google.serve_jwks_at(&jwk_path(BUILDER), &[&builder_kid]);
    google.serve_jwks_at(&jwk_path(ATTACKER), &[&attacker_kid]);
    let clock = ManualClock::new();
    let accounts = ServiceAccounts::new(AUD, [DEPLOYER, BUILDER])
        .unwrap()
        .with_configure({
            let base = format!("{}/service_accounts/v1/jwk", google.base_url());
            move |builder, email| builder.with_jwks_uri(format!("{base}/{email}"))
        });
    let registry = IssuerRegistry::builder()
        .with_pattern(accounts)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let jwt = |account: &str, kid: &str| {
        google
            .token()
            .iss(account)
            .sub(account)
            .aud(AUD)
            .claim("gituser", json!("alice"))
            .claim("email", json!(account))
            .sign_with(kid)
            .sign()
    };

    let claims: DeployClaims = registry
        .verify(&jwt(DEPLOYER, &deployer_kid))
        .await
        .unwrap();
    assert_eq!(claims.registered.iss, DEPLOYER);
    assert_eq!(claims.gituser, "alice");
    assert_eq!(claims.email, DEPLOYER);
    let claims: DeployClaims = registry.verify(&jwt(BUILDER, &builder_kid)).await.unwrap();
    assert_eq!(claims.registered.sub.as_deref(), Some(BUILDER));

    // One account's key does not vouch for another account's tokens.
    clock.advance(std::time::Duration::from_secs(31)); // past the refresh cooldown: a refetch is allowed
    let swapped = jwt(BUILDER, &deployer_kid);
    assert_eq!(
        code(registry.verify::<DeployClaims>(&swapped).await),
        "unknown_key"
    );
    let audience = google
        .token()
        .iss(DEPLOYER)
        .aud("other")
        .sign_with(&deployer_kid)
        .sign();
    assert_eq!(
        code(registry.verify::<DeployClaims>(&audience).await),
        "audience_mismatch"
    );

    // An account outside the allow-list, though its keys are published: refused without a fetch.
    let fetches = google.jwks_fetches();
    let err = registry
        .verify::<DeployClaims>(&jwt(ATTACKER, &attacker_kid))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::UntrustedIssuer {
            found: Some(ATTACKER.into())
        }
    );
    assert_eq!(google.requests_to(&jwk_path(ATTACKER)), 0);
    assert_eq!(google.jwks_fetches(), fetches);

    // Each account's keys were fetched from its own URL (the builder's twice: the unknown kid
    // refresh), and never the issuer's default JWKS or discovery.
    assert_eq!(google.requests_to(&jwk_path(DEPLOYER)), 1);
    assert_eq!(google.requests_to(&jwk_path(BUILDER)), 2);
    assert_eq!(google.requests_to(&google.jwks_path()), 0);
    assert_eq!(google.discovery_fetches(), 0);
}
