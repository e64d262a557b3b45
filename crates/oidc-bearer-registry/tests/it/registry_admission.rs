//! What a token must pass before it may make an issuer registry build a new pattern issuer: every
//! rule that needs no key (the pattern's algorithms, `typ`, audience, times) is checked first, so
//! forgeries that cost their sender nothing never drain the new-issuer limits, and one pattern's
//! flood leaves another's new issuers alone. Real issuers on 127.0.0.1, keys per test.

use std::time::Duration;

use crate::support::{code, fetches};
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::{Algorithm, Verifier, VerifierBuilder, VerifyError};
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::{KeyAlg, TestIssuer, TokenBuilder, now};

const AUD: &str = "my-service";

async fn verify(registry: &IssuerRegistry, token: &str) -> Result<DefaultClaims, VerifyError> {
    registry.verify::<DefaultClaims>(token).await
}

/// Trusts every issuer on loopback http (RS256 only with `rs256_only`), with a new-issuer limit of
/// three per hour: the limit the forgeries below would drain.
fn registry(rs256_only: bool) -> IssuerRegistry {
    IssuerRegistry::builder()
        .with_pattern(move |iss: &str| {
            iss.starts_with("http://127.0.0.1:").then(|| {
                let builder = Verifier::builder(iss, AUD);
                if rs256_only {
                    builder.with_algorithms(&[Algorithm::RS256])
                } else {
                    builder
                }
            })
        })
        .with_new_issuer_rate(3, Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// Any secret: an attacker's HMAC costs nothing.
const SECRET: &[u8] = b"anything-the-attacker-likes-32-bytes";

/// The start of the `i`-th forgery naming `issuer`, for our audience, signed as each test likes.
fn forgery(issuer: &TestIssuer, i: usize) -> TokenBuilder {
    issuer.token().aud(AUD).sub(&format!("forged-{i}"))
}

/// Sends `forgeries`, each refused with `expected`, then the issuer's real token, which must be
/// accepted, with one fetch of discovery and keys in all.
async fn real_token_after(
    registry: &IssuerRegistry,
    issuer: &TestIssuer,
    forgeries: &[String],
    expected: &str,
) {
    for forged in forgeries {
        assert_eq!(code(verify(registry, forged).await), expected);
    }
    assert_eq!(fetches(issuer), (0, 0), "forgeries fetch nothing");
    let real = issuer.token().aud(AUD).sign();
    assert_eq!(code(verify(registry, &real).await), "ok");
    assert_eq!(fetches(issuer), (1, 1));
    assert_eq!(registry.proven_issuers(), 1);
}

#[tokio::test]
async fn hmac_forgeries_naming_a_new_issuer_leave_its_real_token_accepted() {
    let issuer = TestIssuer::start().await;
    let registry = registry(false);
    let forged: Vec<String> = (0..3)
        .map(|i| forgery(&issuer, i).sign_hmac("HS256", SECRET))
        .collect();
    real_token_after(&registry, &issuer, &forged, "unsupported_algorithm").await;
}

#[tokio::test]
async fn forgeries_in_an_algorithm_the_pattern_does_not_allow_leave_the_real_token_accepted() {
    let issuer = TestIssuer::start().await; // RS256
    let attacker = issuer.add_unpublished_key(KeyAlg::ES256);
    let registry = registry(true);
    let forged: Vec<String> = (0..3)
        .map(|i| forgery(&issuer, i).sign_with(&attacker).sign())
        .collect();
    real_token_after(&registry, &issuer, &forged, "algorithm_not_allowed").await;
}

#[tokio::test]
async fn a_flood_of_keyless_forgeries_leaves_the_real_issuers_first_token_accepted() {
    let issuer = TestIssuer::start().await;
    let attacker = issuer.add_unpublished_key(KeyAlg::ES256);
    let registry = registry(true);
    let forged: Vec<String> = (0..1000)
        .map(|i| {
            let token = forgery(&issuer, i);
            match i % 3 {
                0 => token.sign_hmac("HS256", SECRET),
                1 => token.sign_with(&attacker).sign(),
                _ => token.sign_none(),
            }
        })
        .collect();
    for forged in &forged {
        assert_ne!(code(verify(&registry, forged).await), "ok");
    }
    assert_eq!(registry.pending_issuers(), 0);
    real_token_after(&registry, &issuer, &[], "").await;
}

/// Each rule that needs no key refuses before admission, with the error the issuer's own verifier
/// gives, and costs no admission: with a limit of one new issuer, the real token still gets in.
#[tokio::test]
async fn every_keyless_rule_of_the_pattern_refuses_before_admission() {
    let issuer = TestIssuer::start().await;
    let pattern = |iss: &str| -> Option<VerifierBuilder> {
        iss.starts_with("http://127.0.0.1:").then(|| {
            Verifier::builder(iss, AUD)
                .with_required_typ("at+jwt")
                .with_leeway(Duration::ZERO)
                .with_max_token_bytes(4096)
        })
    };
    let registry = IssuerRegistry::builder()
        .with_pattern(pattern)
        .with_new_issuer_rate(1, Duration::from_secs(3600))
        .build()
        .unwrap();
    let at_jwt = || issuer.token().aud(AUD).header("typ", "at+jwt".into());
    let rows = [
        (issuer.token().aud(AUD).sign(), "invalid_typ"),
        (
            at_jwt().header("alg", "none".into()).sign(),
            "unsupported_algorithm",
        ),
        (
            at_jwt().header("alg", "HS256".into()).sign(),
            "unsupported_algorithm",
        ),
        (at_jwt().aud("another-service").sign(), "audience_mismatch"),
        (at_jwt().exp(now() - 1).sign(), "expired"),
        (at_jwt().no_exp().sign(), "missing_claim"),
        (at_jwt().nbf(now() + 600).sign(), "not_yet_valid"),
        (at_jwt().iat(now() + 600).sign(), "issued_in_future"),
        (at_jwt().claim("exp", "soon").sign(), "invalid_claim"),
        (
            at_jwt().claim("padding", "x".repeat(4096)).sign(),
            "token_too_large",
        ),
    ];
    for (token, expected) in &rows {
        assert_eq!(
            code(verify(&registry, token).await),
            *expected,
            "{expected}"
        );
    }
    assert_eq!(fetches(&issuer), (0, 0));
    assert_eq!(registry.built_issuers(), 0);
    assert_eq!(code(verify(&registry, &at_jwt().sign()).await), "ok");
}

/// Two patterns: made-up tenants under an attacker's address, and every other loopback issuer.
/// The attacker's tenants get their keys from the attacker's JWKS (held in one test, so that they
/// stay on probation), and fail: their tokens pass every keyless rule but cost an admission each.
fn two_patterns(attacker: &TestIssuer, max_pending: usize) -> IssuerRegistry {
    let tenants = format!("{}/tenant-", attacker.issuer());
    let jwks = attacker.jwks_uri();
    IssuerRegistry::builder()
        .with_pattern(move |iss: &str| {
            iss.starts_with(&tenants)
                .then(|| Verifier::builder(iss, AUD).with_jwks_uri(&jwks))
        })
        .with_pattern(|iss: &str| {
            iss.starts_with("http://127.0.0.1:")
                .then(|| Verifier::builder(iss, AUD))
        })
        .with_new_issuer_rate(3, Duration::from_secs(3600))
        .with_max_pending_issuers(max_pending)
        .build()
        .unwrap()
}

/// A token of a made-up tenant of `attacker`, signed with a key its JWKS does not have.
fn tenant_token(attacker: &TestIssuer, unpublished: &str, i: usize) -> String {
    attacker
        .token()
        .iss(&format!("{}/tenant-{i}", attacker.issuer()))
        .aud(AUD)
        .sign_with(unpublished)
        .sign()
}

#[tokio::test]
async fn one_patterns_flood_does_not_use_up_anothers_new_issuer_rate() {
    let attacker = TestIssuer::start().await;
    let unpublished = attacker.add_unpublished_key(KeyAlg::RS256);
    let real = TestIssuer::start().await;
    let registry = two_patterns(&attacker, 64);
    for i in 0..10 {
        let result = verify(&registry, &tenant_token(&attacker, &unpublished, i)).await;
        assert_ne!(code(result), "ok");
    }
    // The attacker's pattern used up its own rate...
    let result = verify(&registry, &tenant_token(&attacker, &unpublished, 10)).await;
    assert_eq!(code(result), "too_many_new_issuers");
    // ...not the other pattern's.
    let token = real.token().aud(AUD).sign();
    assert_eq!(code(verify(&registry, &token).await), "ok");
}

#[tokio::test]
async fn one_patterns_issuers_on_probation_do_not_fill_anothers_probation() {
    let attacker = TestIssuer::start().await;
    let unpublished = attacker.add_unpublished_key(KeyAlg::RS256);
    let real = TestIssuer::start().await;
    let registry = two_patterns(&attacker, 1);
    let hold = attacker.hold_jwks();
    let held = {
        let (registry, token) = (registry.clone(), tenant_token(&attacker, &unpublished, 0));
        tokio::spawn(async move { code(verify(&registry, &token).await) })
    };
    attacker.wait_for_jwks_fetches(1).await;
    assert_eq!(registry.pending_issuers(), 1);
    let result = verify(&registry, &tenant_token(&attacker, &unpublished, 1)).await;
    assert_eq!(code(result), "too_many_new_issuers");
    // The attacker's tenant holds its own pattern's probation, not the other's.
    let token = real.token().aud(AUD).sign();
    assert_eq!(code(verify(&registry, &token).await), "ok");
    drop(hold);
    assert_eq!(held.await.unwrap(), "unknown_key");
}

/// A pattern whose builder keeps its own clock (the registry has none to give it): the keyless
/// rules read that clock, as the issuer's verifier does, not the registry's: a token the verifier
/// accepts by its clock is not refused as expired before admission.
#[tokio::test]
async fn the_keyless_time_rules_read_the_clock_the_issuers_verifier_reads() {
    use oidc_bearer::clock::ManualClock;
    let issuer = TestIssuer::start().await;
    // The pattern's verifiers live a day behind the system clock the registry reads.
    let day_ago = u64::try_from(now() - 86_400).unwrap();
    let clock = ManualClock::at_unix(day_ago);
    let pattern_clock = clock.clone();
    let builder = move |iss: &str| {
        Verifier::builder(iss, AUD)
            .with_clock(pattern_clock.clone())
            .with_leeway(Duration::ZERO)
    };
    let iss = issuer.issuer();
    let registry = IssuerRegistry::builder()
        .with_pattern(move |name: &str| (name == iss).then(|| builder(name)))
        .with_new_issuer_rate(1, Duration::from_secs(3600))
        .build()
        .unwrap();
    let day_ago = now() - 86_400;
    // Valid by the verifier's clock (a day ago), long expired by the system's.
    let verifier = Verifier::builder(issuer.issuer(), AUD)
        .with_clock(clock.clone())
        .with_leeway(Duration::ZERO)
        .build()
        .unwrap();
    let token = issuer
        .token()
        .aud(AUD)
        .iat(day_ago)
        .exp(day_ago + 600)
        .sign();
    assert_eq!(code(verifier.verify::<DefaultClaims>(&token).await), "ok");
    assert_eq!(code(verify(&registry, &token).await), "ok");
    assert_eq!(registry.proven_issuers(), 1);
}
