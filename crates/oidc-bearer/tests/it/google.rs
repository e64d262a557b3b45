//! Google ID tokens and service-account JWTs, through real issuers on 127.0.0.1 standing in for
//! Google, with keys generated per test. (Service-account JWTs through a registry pattern:
//! oidc-bearer-registry's tests/it/google.rs.)

use oidc_bearer::claims::google::GoogleIdClaims;
use oidc_bearer::issuers::google::{self, GOOGLE_ISSUER};
use oidc_bearer::{Verifier, VerifyError};
use oidc_bearer_testing::{KeyAlg, TestIssuer, TokenBuilder};
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

const DEPLOYER: &str = "deployer@my-project.iam.gserviceaccount.com";

/// The key URL (Google's, per account) is checked by the unit tests of `issuers::google`.
#[tokio::test]
async fn a_single_service_account_verifier_is_the_accounts_own_issuer() {
    let verifier = google::service_account_verifier(DEPLOYER, AUD)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(verifier.issuer(), DEPLOYER);
}
