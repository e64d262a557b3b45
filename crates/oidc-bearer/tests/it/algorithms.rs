//! Every signature algorithm end to end: keys published in a JWKS by a real issuer on 127.0.0.1,
//! tokens through the HTTP layer; algorithm/key pairs that do not fit; HMAC secret lengths; and
//! the keys a JWKS parse skips, with why.

use std::convert::Infallible;

use crate::support::{code, verifiable_algs};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::keys::{Jwks, KeyCacheSettings, KeySetReport, explain_key_set};
use oidc_bearer::rejection::AuthRejection;
use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
use oidc_bearer_testing::{KeyAlg, TestIssuer};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const AUD: &str = "my-service";

/// Sends `token` through `BearerAuthLayer` in front of a handler that echoes the verified `sub`;
/// returns the status and the body, or the rejection's code.
async fn through_layer(verifier: &Verifier, token: &str) -> (u16, String) {
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier.clone()).claims::<DefaultClaims>())
        .service(service_fn(|req: http::Request<String>| async move {
            let claims = req.extensions().get::<Claims<DefaultClaims>>().unwrap();
            Ok::<_, Infallible>(http::Response::new(
                claims.subject().unwrap_or_default().to_owned(),
            ))
        }));
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    match response.extensions().get::<AuthRejection>() {
        Some(rejection) => (status, rejection.code().to_owned()),
        None => (status, response.into_body()),
    }
}

/// The token with one bit of its signature flipped.
fn flip_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[7] ^= 1;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn every_algorithm_verifies_through_the_layer_with_keys_from_the_jwks() {
    // One issuer publishing a key of every algorithm this build supports.
    let issuer = TestIssuer::builder().key(KeyAlg::RS256).start().await;
    let first = issuer.signing_kid();
    let kids: Vec<(KeyAlg, String)> = verifiable_algs()
        .map(|alg| {
            let kid = if alg == KeyAlg::RS256 {
                first.clone()
            } else {
                issuer.add_key(alg)
            };
            (alg, kid)
        })
        .collect();
    // Every published algorithm is advertised by discovery, under its JOSE name.
    let advertised = issuer.discovery_json()["id_token_signing_alg_values_supported"].clone();
    for (alg, _) in &kids {
        assert!(
            advertised.as_array().unwrap().contains(&json!(alg.name())),
            "{alg}: {advertised}"
        );
    }
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    for (alg, kid) in &kids {
        let token = issuer
            .token()
            .aud(AUD)
            .sub(alg.name())
            .sign_with(kid)
            .sign();
        assert_eq!(
            through_layer(&verifier, &token).await,
            (200, alg.name().to_owned()),
            "{alg}"
        );
        assert_eq!(
            through_layer(&verifier, &flip_signature(&token)).await,
            (401, "invalid_signature".to_owned()),
            "{alg}: a flipped signature bit"
        );
    }
    // All from one fetch of the JWKS: no key was missing from it.
    assert_eq!(issuer.jwks_fetches(), 1);
}

/// Without the `ml-dsa` feature, ML-DSA keys are skipped with a reason that names the feature, and
/// their tokens are refused; the other keys of the set still work.
#[cfg(not(feature = "ml-dsa"))]
#[tokio::test]
async fn ml_dsa_keys_are_skipped_with_a_reason_without_the_feature() {
    let issuer = TestIssuer::builder().key(KeyAlg::MlDsa65).start().await;
    let ml_dsa = issuer.signing_kid();
    let es512 = issuer.add_key(KeyAlg::ES512);
    let document = serde_json::to_vec(&issuer.jwks_json()).unwrap();
    assert_eq!(Jwks::from_json(&document).unwrap().len(), 1);
    let report = explain(&document);
    let skipped = report.keys[0].as_ref().unwrap_err();
    assert!(skipped.contains("`ml-dsa` feature"), "{skipped}");
    assert_eq!(
        report.keys[1].as_ref().unwrap().kid.as_deref(),
        Some(es512.as_str())
    );

    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let token = issuer.token().aud(AUD).sign_with(&ml_dsa).sign();
    assert_eq!(
        through_layer(&verifier, &token).await,
        (401, "algorithm_not_allowed".to_owned())
    );
    let token = issuer.token().aud(AUD).sub("ok").sign_with(&es512).sign();
    assert_eq!(through_layer(&verifier, &token).await, (200, "ok".into()));
    // Asking for ML-DSA explicitly is a configuration error that says what to enable.
    let err = Verifier::builder(issuer.issuer(), AUD)
        .with_algorithms(&[oidc_bearer::Algorithm::MlDsa44])
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_algorithms");
    assert!(err.to_string().contains("`ml-dsa` feature"), "{err}");
}

/// A token's `alg` must fit the key its `kid` names: type, curve, parameter set, and the JWK's
/// own `alg` when it has one (RFC 8725 §3.1, RFC 9864 §2).
#[tokio::test]
async fn mismatched_algorithm_and_key_pairs_are_refused() {
    let issuer = TestIssuer::builder().key(KeyAlg::ES512).start().await;
    let es512 = issuer.signing_kid();
    let es256 = issuer.add_key(KeyAlg::ES256);
    let eddsa = issuer.add_key(KeyAlg::EdDSA);
    let ed25519 = issuer.add_key(KeyAlg::Ed25519);
    let rsa = issuer.add_key(KeyAlg::RS256);
    // An Ed25519 key published without `alg`: it serves both names.
    let mut unbound = issuer.public_jwk(&ed25519);
    unbound.as_object_mut().unwrap().remove("alg");
    unbound["kid"] = json!("unbound");
    issuer.add_raw_jwk(unbound);

    let mut rows: Vec<(&str, &str, &str, &str)> = vec![
        // (signing kid, header kid, header alg, expected)
        (&es512, &es512, "ES512", "ok"),
        (&es512, &es512, "ES256", "algorithm_key_mismatch"),
        (&es512, &es512, "ES384", "algorithm_key_mismatch"),
        (&es256, &es256, "ES512", "algorithm_key_mismatch"),
        (&rsa, &rsa, "ES512", "algorithm_key_mismatch"),
        (&es512, &es512, "EdDSA", "algorithm_key_mismatch"),
        // A JWK alg binds the key to one of the two names of Ed25519.
        (&eddsa, &eddsa, "EdDSA", "ok"),
        (&eddsa, &eddsa, "Ed25519", "algorithm_key_mismatch"),
        (&ed25519, &ed25519, "Ed25519", "ok"),
        (&ed25519, &ed25519, "EdDSA", "algorithm_key_mismatch"),
        (&ed25519, "unbound", "Ed25519", "ok"),
        (&ed25519, "unbound", "EdDSA", "ok"),
        (&ed25519, "unbound", "ES256", "algorithm_key_mismatch"),
        // No backend has Ed448.
        (&ed25519, &ed25519, "Ed448", "unsupported_algorithm"),
    ];
    let ml_dsa44;
    let ml_dsa87;
    if cfg!(feature = "ml-dsa") {
        ml_dsa44 = issuer.add_key(KeyAlg::MlDsa44);
        ml_dsa87 = issuer.add_key(KeyAlg::MlDsa87);
        rows.extend([
            (ml_dsa44.as_str(), ml_dsa44.as_str(), "ML-DSA-44", "ok"),
            (&ml_dsa44, &ml_dsa44, "ML-DSA-65", "algorithm_key_mismatch"),
            (&ml_dsa44, &ml_dsa44, "ML-DSA-87", "algorithm_key_mismatch"),
            (&ml_dsa87, &ml_dsa87, "ML-DSA-87", "ok"),
            (&ml_dsa87, &ml_dsa87, "ML-DSA-44", "algorithm_key_mismatch"),
            (&es512, &es512, "ML-DSA-44", "algorithm_key_mismatch"),
            (&rsa, &ml_dsa44, "RS256", "algorithm_key_mismatch"),
            // A token signed by another key under the ML-DSA kid and alg: the signature's length
            // is wrong for ML-DSA-44, refused before any crypto.
            (&es512, &ml_dsa44, "ML-DSA-44", "invalid_signature"),
        ]);
    }
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    for (signer, kid, alg, expected) in rows {
        let token = issuer
            .token()
            .aud(AUD)
            .sign_with(signer)
            .kid(kid)
            .header("alg", json!(alg))
            .sign();
        assert_eq!(
            code(verifier.verify::<DefaultClaims>(&token).await),
            expected,
            "key {} (kid {kid}) with alg {alg}",
            issuer.key_alg(signer)
        );
    }
}

/// RFC 7518 §3.2: the secret must be at least the hash output: 32, 48 and 64 bytes for HS256,
/// HS384 and HS512.
#[tokio::test]
async fn hmac_secrets_must_be_as_long_as_the_hash() {
    let issuer = TestIssuer::start().await;
    let iss = "https://auth.internal";
    for (len, accepted) in [
        (32, ["HS256"].as_slice()),
        (47, &["HS256"]),
        (48, &["HS256", "HS384"]),
        (63, &["HS256", "HS384"]),
        (64, &["HS256", "HS384", "HS512"]),
    ] {
        let secret: Vec<u8> = (0..len as u8).collect();
        let verifier = Verifier::shared_secret_builder(iss, AUD, &secret)
            .unwrap()
            .build()
            .unwrap();
        for alg in ["HS256", "HS384", "HS512"] {
            let token = issuer
                .token()
                .iss(iss)
                .aud(AUD)
                .no_kid()
                .sign_hmac(alg, &secret);
            let expected = if accepted.contains(&alg) {
                "ok"
            } else {
                // Without a kid: no key fits the algorithm.
                "unknown_key"
            };
            assert_eq!(
                code(verifier.verify::<DefaultClaims>(&token).await),
                expected,
                "{alg} with a {len}-byte secret"
            );
        }
    }
    let err = Verifier::shared_secret_builder(iss, AUD, &[7; 31]).unwrap_err();
    assert_eq!(err.code(), "invalid_key");
}

fn document(keys: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

/// What the key cache makes of a JWK Set document, by the library's diagnostics call.
fn explain(document: &[u8]) -> KeySetReport {
    explain_key_set(document, None, &KeyCacheSettings::default()).unwrap()
}

/// Each unusable JWK is skipped with a reason, in the document's order, and the usable ones are
/// kept.
#[tokio::test]
async fn skipped_keys_are_recorded_with_kid_and_reason() {
    let issuer = TestIssuer::builder().key(KeyAlg::ES512).start().await;
    let good = issuer.public_jwk(&issuer.signing_kid());
    let ed = issuer.public_jwk(&issuer.add_key(KeyAlg::Ed25519));
    let b64 = |n: usize| URL_SAFE_NO_PAD.encode(vec![1u8; n]);
    let short_p521 = {
        let mut jwk = good.clone();
        jwk["kid"] = json!("short-x");
        jwk["x"] = json!(b64(65));
        jwk
    };
    let rows: Vec<(Value, Option<&str>, &str)> = vec![
        (
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
            Some("enc"),
            r#"use "enc" is not "sig""#,
        ),
        (
            json!({"kty": "RSA", "kid": "short-rsa", "n": b64(128), "e": "AQAB"}),
            Some("short-rsa"),
            "RSA key of 1017 bits is shorter than 2048 (RFC 7518 §3.3)",
        ),
        (
            json!({"kty": "EC", "kid": "unknown-alg", "alg": "ES999", "crv": "P-256"}),
            Some("unknown-alg"),
            r#"unsupported alg "ES999""#,
        ),
        (
            json!({"kty": "OKP", "kid": "ed448", "crv": "Ed448", "x": b64(57)}),
            Some("ed448"),
            "Ed448 is not supported by either crypto backend",
        ),
        (
            json!({"kty": "OKP", "kid": "ed448-alg", "alg": "Ed448", "crv": "Ed448", "x": b64(57)}),
            Some("ed448-alg"),
            "Ed448 is not supported by either crypto backend",
        ),
        (
            short_p521,
            Some("short-x"),
            "EC coordinates have the wrong length",
        ),
        (
            json!({"kty": "oct", "kid": "hmac", "k": b64(32)}),
            Some("hmac"),
            "symmetric keys are never accepted from a key set (RFC 8725 §3.1)",
        ),
        (
            json!({"kty": "AKP", "kid": "no-alg", "pub": b64(1312)}),
            Some("no-alg"),
            r#"AKP key without "alg" (required for AKP keys)"#,
        ),
        (
            json!({"kty": "AKP", "kid": "akp-es256", "alg": "ES256", "pub": b64(1312)}),
            Some("akp-es256"),
            "alg ES256 does not fit an AKP key",
        ),
        (
            json!({"kty": "OKP", "kid": "ed-as-es512", "alg": "ES512", "crv": "Ed25519", "x": ed["x"]}),
            Some("ed-as-es512"),
            "alg ES512 does not fit a Ed25519 key",
        ),
        (
            json!({"kty": 5, "kid": "bad-kty"}),
            Some("bad-kty"),
            "invalid JWK",
        ),
        (json!({"kty": "XYZ"}), None, r#"unsupported kty "XYZ""#),
    ];
    let mut keys = vec![good.clone(), ed.clone()];
    keys.extend(rows.iter().map(|(jwk, _, _)| jwk.clone()));
    let document = document(Value::Array(keys));
    let jwks = Jwks::from_json(&document).unwrap();
    assert_eq!(jwks.len(), 2, "the ES512 and Ed25519 keys are kept");
    let report = explain(&document);
    assert_eq!(report.keys.len(), rows.len() + 2);
    let used: Vec<_> = report.keys[..2]
        .iter()
        .map(|key| key.as_ref().unwrap().kid.as_deref())
        .collect();
    assert_eq!(used, [good["kid"].as_str(), ed["kid"].as_str()]);
    for (i, ((jwk, _, reason), explained)) in rows.iter().zip(&report.keys[2..]).enumerate() {
        let skipped = explained.as_ref().unwrap_err();
        assert!(
            skipped.starts_with(reason),
            "row {i} ({jwk}): {skipped:?} does not start with {reason:?}"
        );
    }
}

/// ML-DSA public keys of the wrong length are refused at parse time, before any crypto.
#[cfg(feature = "ml-dsa")]
#[test]
fn ml_dsa_keys_of_the_wrong_length_are_skipped() {
    let b64 = |n: usize| URL_SAFE_NO_PAD.encode(vec![1u8; n]);
    for (alg, len) in [
        ("ML-DSA-44", 1312),
        ("ML-DSA-65", 1952),
        ("ML-DSA-87", 2592),
    ] {
        for wrong in [0, 32, len - 1, len + 1, 10 * len] {
            let document =
                document(json!([{"kty": "AKP", "kid": "k", "alg": alg, "pub": b64(wrong)}]));
            assert_eq!(
                Jwks::from_json(&document).unwrap().len(),
                0,
                "{alg} of {wrong} bytes"
            );
            let report = explain(&document);
            let skipped = report.keys[0].as_ref().unwrap_err();
            assert!(
                skipped.ends_with(&format!("public key is not {len} bytes")),
                "{skipped:?}"
            );
        }
    }
}

/// A P-521 or Ed25519 key configured by hand as PEM serves its algorithms like one from a JWKS.
#[tokio::test]
async fn pem_keys_of_the_new_algorithms_verify() {
    for (alg, other) in [
        (KeyAlg::ES512, "ES384"),
        (KeyAlg::Ed25519, "ES256"),
        (KeyAlg::EdDSA, "ES512"),
    ] {
        let issuer = TestIssuer::builder().key(alg).start().await;
        let kid = issuer.signing_kid();
        let pem = issuer.public_key_pem(&kid);
        let jwks = Jwks::from_pem(pem.as_bytes(), Some(&kid)).unwrap();
        let verifier = Verifier::builder(issuer.issuer(), AUD)
            .with_key_set(oidc_bearer::keys::StaticKeySet::new(jwks))
            .build()
            .unwrap();
        let token = issuer.token().aud(AUD).sub("pem").sign();
        assert_eq!(
            through_layer(&verifier, &token).await,
            (200, "pem".to_owned()),
            "{alg}"
        );
        let token = issuer.token().aud(AUD).header("alg", json!(other)).sign();
        assert_eq!(
            code(verifier.verify::<DefaultClaims>(&token).await),
            "algorithm_key_mismatch",
            "{alg} key with alg {other}"
        );
    }
}
