//! The verification rules, each through a real issuer on 127.0.0.1 with keys generated per test.

use crate::support::{code, verifiable_algs};
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::keys::{Jwks, StaticKeySet};
use oidc_bearer::{Algorithm, Verifier, VerifyError};
use oidc_bearer_testing::{KeyAlg, TestIssuer, TokenBuilder, now};
use serde_json::json;
use std::time::Duration;

const AUD: &str = "my-service";

async fn verify(verifier: &Verifier, token: &str) -> Result<DefaultClaims, VerifyError> {
    verifier.verify::<DefaultClaims>(token).await
}

#[tokio::test]
async fn every_supported_algorithm_is_accepted() {
    for alg in verifiable_algs() {
        let issuer = TestIssuer::builder().key(alg).start().await;
        let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
        let token = issuer.token().aud(AUD).sub("alice").sign();
        let claims = verify(&verifier, &token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", alg.name()));
        assert_eq!(claims.subject(), Some("alice"));
        assert_eq!(claims.registered.iss, issuer.issuer());
    }
}

/// One rule per row: the token, and the error code it must produce ("ok" when accepted).
#[tokio::test]
async fn claim_rules_table() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let t = || issuer.token().aud(AUD);
    let n = now();
    let rows: Vec<(&str, TokenBuilder, &str)> = vec![
        ("valid", t(), "ok"),
        (
            "aud array, any-of",
            issuer.token().auds(&["other", AUD]),
            "ok",
        ),
        ("expired", t().exp(n - 3600), "expired"),
        ("expired within leeway", t().exp(n - 30), "ok"),
        ("expired just past leeway", t().exp(n - 61), "expired"),
        (
            "fractional exp",
            t().claim("exp", json!(n as f64 + 100.5)),
            "ok",
        ),
        ("not yet valid", t().nbf(n + 3600), "not_yet_valid"),
        ("nbf within leeway", t().nbf(n + 30), "ok"),
        ("iat in the future", t().iat(n + 3600), "issued_in_future"),
        (
            "wrong iss",
            t().iss("https://evil.example"),
            "issuer_mismatch",
        ),
        ("missing iss", t().no_iss(), "issuer_mismatch"),
        (
            "iss array",
            t().claim("iss", json!([issuer.issuer()])),
            "invalid_claim",
        ),
        (
            "wrong aud",
            issuer.token().aud("other-service"),
            "audience_mismatch",
        ),
        ("missing aud", issuer.token(), "audience_mismatch"),
        (
            "aud not strings",
            issuer.token().claim("aud", json!([1, 2])),
            "invalid_claim",
        ),
        ("missing exp", t().no_exp(), "missing_claim"),
        (
            "string exp",
            t().claim("exp", json!((n + 3600).to_string())),
            "invalid_claim",
        ),
        ("string nbf", t().claim("nbf", json!("0")), "invalid_claim"),
        ("null exp", t().claim("exp", json!(null)), "invalid_claim"),
        ("bool iat", t().claim("iat", json!(true)), "invalid_claim"),
    ];
    for (name, builder, expected) in rows {
        let got = code(verify(&verifier, &builder.sign()).await);
        assert_eq!(got, expected, "{name}");
    }
}

#[tokio::test]
async fn errors_carry_what_a_report_needs() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let err = verify(&verifier, &issuer.token().aud("svc-b").sign())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::AudienceMismatch {
            expected: vec![AUD.into()],
            found: vec!["svc-b".into()]
        }
    );
    assert_eq!(
        err.to_string(),
        r#"expected audience "my-service", got "svc-b""#
    );
    let exp = now() - 3600;
    match verify(&verifier, &issuer.token().aud(AUD).exp(exp).sign()).await {
        Err(VerifyError::Expired { exp: e, now: n }) => {
            assert_eq!(e, exp);
            assert!(n >= exp + 3600);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let kid = issuer.signing_kid();
    for none in ["none", "None", "NONE", "nOnE"] {
        let token = issuer
            .token()
            .aud(AUD)
            .header("alg", json!(none))
            .sign_none();
        assert_eq!(
            code(verify(&verifier, &token).await),
            "malformed",
            "{none} without signature"
        );
        // Even with a (garbage) signature segment, `none` is never an algorithm.
        let forged = format!("{}c2ln", token);
        assert_eq!(
            code(verify(&verifier, &forged).await),
            "unsupported_algorithm",
            "{none}"
        );
    }
    // HS256 "signed" with the public key, as PEM and as JWK bytes (RFC 8725 §2.1).
    let pem = issuer.public_key_pem(&kid);
    let jwk = serde_json::to_vec(&issuer.public_jwk(&kid)).unwrap();
    for secret in [pem.as_bytes(), &jwk[..]] {
        let token = issuer.token().aud(AUD).sign_hmac("HS256", secret);
        assert_eq!(
            code(verify(&verifier, &token).await),
            "unsupported_algorithm"
        );
    }
    // An allowed list narrows the algorithms.
    let rs_only = Verifier::builder(issuer.issuer(), AUD)
        .with_algorithms(&[Algorithm::ES256])
        .build()
        .unwrap();
    assert_eq!(
        code(verify(&rs_only, &issuer.token().aud(AUD).sign()).await),
        "algorithm_not_allowed"
    );
    // The header alg must fit the key: PS256 claimed for an RS256-bound JWK.
    let token = issuer.token().aud(AUD).header("alg", json!("PS256")).sign();
    assert_eq!(
        code(verify(&verifier, &token).await),
        "algorithm_key_mismatch"
    );
    // ES256 claimed with an RSA key's kid.
    let token = issuer.token().aud(AUD).header("alg", json!("ES256")).sign();
    assert_eq!(
        code(verify(&verifier, &token).await),
        "algorithm_key_mismatch"
    );
    // HMAC can never be configured for a public-key issuer.
    let err = Verifier::builder(issuer.issuer(), AUD)
        .with_algorithms(&[Algorithm::HS256])
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_algorithms");
}

#[tokio::test]
async fn tampering_and_key_confusion_are_refused() {
    let issuer = TestIssuer::start().await;
    let other = issuer.add_key(KeyAlg::RS256);
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let token = issuer.token().aud(AUD).sub("alice").sign();
    assert_eq!(code(verify(&verifier, &token).await), "ok");

    let parts: Vec<&str> = token.split('.').collect();
    // Tampered payload: same header and signature, other claims.
    let evil = issuer.token().aud(AUD).sub("admin").sign();
    let evil_payload = evil.split('.').nth(1).unwrap();
    let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    assert_eq!(
        code(verify(&verifier, &tampered).await),
        "invalid_signature"
    );
    // Tampered signature: one bit flipped, same length.
    let mut sig = parts[2].as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    );
    assert_eq!(
        code(verify(&verifier, &tampered).await),
        "invalid_signature"
    );
    // Truncated signature: refused before crypto.
    let tampered = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
    assert_eq!(
        code(verify(&verifier, &tampered).await),
        "invalid_signature"
    );
    // The kid of one key with the signature of another.
    let token = issuer
        .token()
        .aud(AUD)
        .sign_with(&other)
        .kid(&issuer.signing_kid())
        .sign();
    assert_eq!(code(verify(&verifier, &token).await), "invalid_signature");
}

#[tokio::test]
async fn keys_embedded_in_the_header_are_ignored() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    // A key the issuer does not publish, advertised in the token itself.
    let rogue = issuer.add_unpublished_key(KeyAlg::RS256);
    let rogue_jwk = issuer.public_jwk(&rogue);
    let rows = [
        ("jwk", rogue_jwk.clone()),
        ("jku", json!(format!("{}/rogue", issuer.base_url()))),
        ("x5u", json!(format!("{}/rogue.pem", issuer.base_url()))),
        ("x5c", json!(["MIIB"])),
    ];
    for (field, value) in rows {
        let token = issuer
            .token()
            .aud(AUD)
            .sign_with(&rogue)
            .no_kid()
            .header(field, value)
            .sign();
        assert_eq!(
            code(verify(&verifier, &token).await),
            "invalid_signature",
            "{field}"
        );
    }
    assert_eq!(issuer.requests_to("/rogue"), 0);
    assert_eq!(issuer.requests_to("/rogue.pem"), 0);
}

#[tokio::test]
async fn header_and_structure_rules() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let t = || issuer.token().aud(AUD);
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "unknown crit",
            t().header("crit", json!(["b64"]))
                .header("b64", json!(false))
                .sign(),
            "unsupported_crit",
        ),
        ("unknown kid", t().kid("nope").sign(), "unknown_key"),
        ("no kid, one key", t().no_kid().sign(), "ok"),
        (
            "oversized",
            t().claim("pad", json!("x".repeat(9000))).sign(),
            "token_too_large",
        ),
        (
            "two segments",
            "eyJhbGciOiJSUzI1NiJ9.e30".into(),
            "malformed",
        ),
        ("not base64", "!!!.###.$$$".into(), "malformed"),
        ("jwe-like", "a.b.c.d.e".into(), "malformed"),
        ("empty", String::new(), "malformed"),
    ];
    for (name, token, expected) in rows {
        assert_eq!(code(verify(&verifier, &token).await), expected, "{name}");
    }
    // Without kid, two keys fitting the algorithm are ambiguous.
    issuer.add_key(KeyAlg::RS256);
    let fresh = Verifier::new(issuer.issuer(), AUD).unwrap();
    assert_eq!(
        code(verify(&fresh, &t().no_kid().sign()).await),
        "ambiguous_key"
    );
}

#[tokio::test]
async fn typ_can_be_required() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::builder(issuer.issuer(), AUD)
        .with_required_typ("at+jwt")
        .build()
        .unwrap();
    let rows = [
        (json!("at+jwt"), "ok"),
        (json!("application/at+JWT"), "ok"),
        (json!("JWT"), "invalid_typ"),
        (json!(null), "invalid_typ"),
    ];
    for (typ, expected) in rows {
        let token = issuer.token().aud(AUD).header("typ", typ.clone()).sign();
        assert_eq!(code(verify(&verifier, &token).await), expected, "{typ}");
    }
}

#[tokio::test]
async fn leeway_and_clock_are_configurable() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().aud(AUD).expires_in(100).sign();
    // The clock is set after minting, so with no leeway the token's whole-second `iat` is never
    // ahead of it.
    let clock = ManualClock::new();
    let verifier = Verifier::builder(issuer.issuer(), AUD)
        .with_leeway(Duration::ZERO)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(code(verify(&verifier, &token).await), "ok");
    clock.advance(Duration::from_secs(101));
    assert_eq!(code(verify(&verifier, &token).await), "expired");
}

#[tokio::test]
async fn several_audiences_and_dangerous_switches() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::builder(issuer.issuer(), "a")
        .with_audience("b")
        .build()
        .unwrap();
    assert_eq!(
        code(verify(&verifier, &issuer.token().aud("b").sign()).await),
        "ok"
    );
    assert_eq!(
        code(verify(&verifier, &issuer.token().aud("c").sign()).await),
        "audience_mismatch"
    );
    assert_eq!(
        Verifier::new(issuer.issuer(), "").unwrap_err().code(),
        "no_audience"
    );

    let any_aud = Verifier::builder(issuer.issuer(), "")
        .dangerous_skip_audience_check()
        .dangerous_allow_missing_exp()
        .build()
        .unwrap();
    assert_eq!(
        code(verify(&any_aud, &issuer.token().no_exp().sign()).await),
        "ok"
    );
}

#[tokio::test]
async fn configuration_errors_are_reported_at_build() {
    let rows = [
        ("http://issuer.example", "invalid_issuer"),
        ("not a url", "invalid_issuer"),
        ("https://issuer.example?x=1", "invalid_issuer"),
        ("", "invalid_issuer"),
    ];
    for (issuer, expected) in rows {
        assert_eq!(
            Verifier::new(issuer, AUD).unwrap_err().code(),
            expected,
            "{issuer}"
        );
    }
    assert!(Verifier::new("https://issuer.example", AUD).is_ok());
    assert!(Verifier::new("http://127.0.0.1:1", AUD).is_ok());
    assert!(
        Verifier::builder("http://issuer.example", AUD)
            .dangerous_allow_insecure_http()
            .build()
            .is_ok()
    );
    let err = Verifier::builder("https://issuer.example", AUD)
        .with_root_certificates_pem("not a certificate")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_certificate");
}

#[tokio::test]
async fn static_keys_from_pem_and_jwks() {
    let issuer = TestIssuer::builder().key(KeyAlg::ES256).start().await;
    let kid = issuer.signing_kid();
    let rsa = issuer.add_key(KeyAlg::PS256);
    let ed = issuer.add_key(KeyAlg::EdDSA);
    for k in [&kid, &rsa, &ed] {
        let keys = Jwks::from_pem(issuer.public_key_pem(k).as_bytes(), Some(k)).unwrap();
        let verifier = Verifier::builder("kubernetes/serviceaccount", AUD)
            .with_key_set(StaticKeySet::new(keys))
            .build()
            .unwrap();
        let token = issuer
            .token()
            .iss("kubernetes/serviceaccount")
            .aud(AUD)
            .sign_with(k)
            .sign();
        assert_eq!(code(verify(&verifier, &token).await), "ok", "{k}");
    }
    let keys = Jwks::from_json(&serde_json::to_vec(&issuer.jwks_json()).unwrap()).unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(
        Jwks::from_pem(b"nope", None).unwrap_err().code(),
        "invalid_key"
    );
    assert_eq!(Jwks::from_json(b"[]").unwrap_err().code(), "invalid_key");
    issuer.remove_key(&ed);
}

#[tokio::test]
async fn shared_secret_issuer_accepts_only_its_hmac() {
    // 64 bytes: long enough for HS512 too (RFC 7518 §3.2).
    let secret = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let verifier = Verifier::shared_secret_builder("https://auth.internal", AUD, secret)
        .unwrap()
        .build()
        .unwrap();
    let issuer = TestIssuer::start().await;
    let t = || {
        issuer
            .token()
            .iss("https://auth.internal")
            .aud(AUD)
            .no_kid()
    };
    for alg in ["HS256", "HS384", "HS512"] {
        assert_eq!(
            code(verify(&verifier, &t().sign_hmac(alg, secret)).await),
            "ok",
            "{alg}"
        );
    }
    assert_eq!(
        code(
            verify(
                &verifier,
                &t().sign_hmac("HS256", b"another secret of 32 bytes or more!!")
            )
            .await
        ),
        "invalid_signature"
    );
    // An RS256 token is not accepted by the HMAC issuer.
    assert_eq!(
        code(verify(&verifier, &t().sign()).await),
        "algorithm_not_allowed"
    );
    let err = Verifier::shared_secret_builder("https://auth.internal", AUD, b"short").unwrap_err();
    assert_eq!(err.code(), "invalid_key");
}

#[tokio::test]
async fn claims_decode_into_the_callers_type() {
    #[derive(serde::Deserialize)]
    struct Mine {
        sub: String,
        team: String,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        missing_field: String,
    }
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let token = issuer
        .token()
        .aud(AUD)
        .sub("bob")
        .claim("team", json!("blue"))
        .sign();
    let mine: Mine = verifier.verify(&token).await.unwrap();
    assert_eq!((mine.sub.as_str(), mine.team.as_str()), ("bob", "blue"));
    let err = verifier.verify::<Strict>(&token).await.unwrap_err();
    assert_eq!(err.code(), "claims_decode");
    assert!(err.to_string().contains("missing_field"), "{err}");

    // A claim of the wrong type: the message gives the position, never the claim's value.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Numeric {
        team: u64,
    }
    let err = verifier.verify::<Numeric>(&token).await.unwrap_err();
    assert_eq!(err.code(), "claims_decode");
    let message = err.to_string();
    assert!(!message.contains("blue"), "{message}");
    assert!(message.contains("column"), "{message}");
}

/// Unverified strings from the token (an `iss`, a `kid`) are excerpted in messages and logs.
#[tokio::test]
async fn token_supplied_strings_are_excerpted_in_messages() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let long = "x".repeat(4000);
    let token = issuer.token().aud(AUD).header("kid", json!(long)).sign();
    let err = verifier.verify::<DefaultClaims>(&token).await.unwrap_err();
    assert_eq!(err.code(), "unknown_key");
    let message = err.to_string();
    assert!(message.len() < 200, "{message}");
    assert!(message.contains("4000 bytes"), "{message}");
    // The typed error keeps the whole value for programs.
    assert!(matches!(&err, VerifyError::UnknownKey { kid: Some(kid) } if kid.len() == 4000));
}
