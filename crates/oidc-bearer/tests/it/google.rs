//! Google ID tokens and service-account JWTs, through real issuers on 127.0.0.1 standing in for
//! Google, with keys generated per test.

use oidc_bearer::IssuerRegistry;
use oidc_bearer::claims::RegisteredClaims;
use oidc_bearer::claims::google::GoogleIdClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::issuers::google::{self, GOOGLE_ISSUER, ServiceAccounts};
use oidc_bearer::{Verifier, VerifyError};
use oidc_bearer_testing::{KeyAlg, TestIssuer, TokenBuilder};
use serde::Deserialize;
use serde_json::json;

const AUD: &str = "https://my-service.example";

fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

async fn google_stand_in() -> (TestIssuer, Verifier) {
    let issuer = TestIssuer::builder()
        .issuer(GOOGLE_ISSUER)
        .full_discovery(true)
        .start()
        .await;
    let verifier = google::id_token_verifier(AUD)
        .with_discovery_url(issuer.discovery_url())
        .build()
        .unwrap();
    (issuer, verifier)
}

#[tokio::test]
async fn google_id_tokens_are_accepted_with_either_issuer_spelling() {
    let (issuer, verifier) = google_stand_in().await;
    let es256 = issuer.add_key(KeyAlg::ES256);
    let t = || issuer.token().aud(AUD).sub("112233445566778899000");
    let rows: Vec<(&str, TokenBuilder, &str)> = vec![
        ("https spelling", t(), "ok"),
        ("no-scheme spelling", t().iss("accounts.google.com"), "ok"),
        (
            "http spelling",
            t().iss("http://accounts.google.com"),
            "issuer_mismatch",
        ),
        (
            "trailing slash",
            t().iss("https://accounts.google.com/"),
            "issuer_mismatch",
        ),
        (
            "look-alike",
            t().iss("accounts.google.com.evil.example"),
            "issuer_mismatch",
        ),
        (
            "another audience",
            issuer.token().aud("other"),
            "audience_mismatch",
        ),
        // Google signs ID tokens with RS256 only.
        ("ES256 key", t().sign_with(&es256), "algorithm_not_allowed"),
    ];
    for (name, builder, expected) in rows {
        let got = code(verifier.verify::<GoogleIdClaims>(&builder.sign()).await);
        assert_eq!(got, expected, "{name}");
    }
    // Discovery used the https spelling, once.
    assert_eq!(issuer.discovery_fetches(), 1);
}

#[tokio::test]
async fn google_id_token_claims_are_typed() {
    let (issuer, verifier) = google_stand_in().await;
    let token = issuer
        .token()
        .aud(AUD)
        .sub("112233445566778899000")
        .claim("azp", json!("112233445566778899000"))
        .claim("email", json!("builder@my-project.iam.gserviceaccount.com"))
        .claim("email_verified", json!(true))
        .claim("hd", json!("example.com"))
        .claim(
            "google",
            json!({"compute_engine": {
                "project_id": "my-project",
                "project_number": 123456789012u64,
                "zone": "europe-west1-b",
                "instance_id": "4455667788990011223",
                "instance_name": "builder-1",
                "instance_creation_timestamp": 1700000000,
                "license_id": ["1000010"],
            }}),
        )
        .sign();
    let claims: GoogleIdClaims = verifier.verify(&token).await.unwrap();
    assert_eq!(
        claims.registered.sub.as_deref(),
        Some("112233445566778899000")
    );
    assert_eq!(claims.azp.as_deref(), Some("112233445566778899000"));
    assert_eq!(
        claims.verified_email(),
        Some("builder@my-project.iam.gserviceaccount.com")
    );
    assert_eq!(claims.hd.as_deref(), Some("example.com"));
    let gce = claims.compute_engine().unwrap();
    assert_eq!(gce.project_id, "my-project");
    assert_eq!(gce.project_number, 123456789012);
    assert_eq!(gce.zone, "europe-west1-b");
    assert_eq!(gce.instance_id, "4455667788990011223");
    assert_eq!(gce.instance_name, "builder-1");
    assert_eq!(
        gce.instance_creation_timestamp.map(|d| d.as_secs()),
        Some(1700000000)
    );
    assert_eq!(gce.license_id, ["1000010"]);
}

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

/// The key URL (Google's, per account) is checked by the unit tests of `issuers::google`.
#[tokio::test]
async fn a_single_service_account_verifier_is_the_accounts_own_issuer() {
    let verifier = google::service_account_verifier(DEPLOYER, AUD)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(verifier.issuer(), DEPLOYER);
}
