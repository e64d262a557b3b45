//! Key fetches of the issuers of a registry (oidc-bearer's tests/it/fetch_reliability.rs has the
//! rest).

use oidc_bearer::Verifier;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::TestIssuer;

const AUD: &str = "my-service";

/// A registry's warm-up loads the keys of every issuer listed exactly, ready-built or not, without
/// any request; each issuer is fetched once.
#[tokio::test]
async fn a_registry_warm_up_loads_every_exact_issuer() {
    let (lazy, built) = (TestIssuer::start().await, TestIssuer::start().await);
    let registry = IssuerRegistry::builder()
        .with_issuer(Verifier::builder(lazy.issuer(), AUD))
        .with_verifier(Verifier::new(built.issuer(), AUD).unwrap())
        .build()
        .unwrap();
    registry.warm_up();
    lazy.wait_for_jwks_fetches(1).await;
    built.wait_for_jwks_fetches(1).await;
    for issuer in [&lazy, &built] {
        let token = issuer.token().aud(AUD).sign();
        registry.verify::<DefaultClaims>(&token).await.unwrap();
        assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (1, 1));
    }
}
