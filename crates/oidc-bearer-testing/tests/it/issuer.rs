//! End-to-end behaviour of `TestIssuer` over real HTTP on 127.0.0.1: what it serves, that its
//! tokens verify with real crypto against what it publishes, and its fault switches.

use std::time::Duration;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_bearer_testing::{KeyAlg, TestIssuer, now};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    // No proxy: a proxy from the environment must not see (or break) loopback requests.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> Value {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&b64d(part)).unwrap()
}

/// Splits a compact JWS into (header, claims).
fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = decode_part(it.next().unwrap());
    let claims = decode_part(it.next().unwrap());
    assert!(it.next().is_some(), "a JWS has three parts");
    assert!(it.next().is_none(), "a JWS has only three parts");
    (header, claims)
}

/// Verifies `token` the way a relying party does: pick the JWK by the header's kid out of
/// `jwks`, then check the signature with the JWK's own algorithm. Returns the claims.
fn verify(token: &str, jwks: &Value) -> Result<Value, String> {
    let (header, claims) = parts(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (input, sig) = (input.as_bytes(), b64d(sig));
    let ok = match jwk["kty"].as_str().unwrap() {
        "RSA" => {
            let params = match jwk["alg"].as_str().unwrap() {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                other => return Err(format!("RSA alg {other}")),
            };
            let n = b64d(jwk["n"].as_str().unwrap());
            let e = b64d(jwk["e"].as_str().unwrap());
            RsaPublicKeyComponents { n, e }
                .verify(params, input, &sig)
                .is_ok()
        }
        "EC" => {
            let params = match jwk["crv"].as_str().unwrap() {
                "P-256" => &signature::ECDSA_P256_SHA256_FIXED,
                "P-384" => &signature::ECDSA_P384_SHA384_FIXED,
                "P-521" => &signature::ECDSA_P521_SHA512_FIXED,
                other => return Err(format!("curve {other}")),
            };
            let mut point = vec![4];
            point.extend(b64d(jwk["x"].as_str().unwrap()));
            point.extend(b64d(jwk["y"].as_str().unwrap()));
            UnparsedPublicKey::new(params, point)
                .verify(input, &sig)
                .is_ok()
        }
        "OKP" => UnparsedPublicKey::new(&signature::ED25519, b64d(jwk["x"].as_str().unwrap()))
            .verify(input, &sig)
            .is_ok(),
        "AKP" => {
            let params = match jwk["alg"].as_str().unwrap() {
                "ML-DSA-44" => &signature::ML_DSA_44,
                "ML-DSA-65" => &signature::ML_DSA_65,
                "ML-DSA-87" => &signature::ML_DSA_87,
                other => return Err(format!("AKP alg {other}")),
            };
            UnparsedPublicKey::new(params, b64d(jwk["pub"].as_str().unwrap()))
                .verify(input, &sig)
                .is_ok()
        }
        other => return Err(format!("kty {other}")),
    };
    if ok {
        Ok(claims)
    } else {
        Err("bad signature".into())
    }
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or("<none>").to_owned())
        .collect()
}

#[test]
fn handles_and_builders_can_move_between_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TestIssuer>();
    send_sync::<oidc_bearer_testing::TokenBuilder>();
    send_sync::<oidc_bearer_testing::JwksHold>();
    send_sync::<oidc_bearer_testing::TestIssuerBuilder>();
}

#[tokio::test]
async fn minimal_discovery_is_the_kubernetes_document() {
    let issuer = TestIssuer::start().await;
    assert!(issuer.issuer().starts_with("http://127.0.0.1:"));
    assert!(!issuer.issuer().ends_with('/'));
    assert_eq!(issuer.issuer(), issuer.base_url());
    assert_eq!(issuer.base_url(), format!("http://{}", issuer.addr()));

    let doc = get_json(&issuer.discovery_url()).await;
    assert_eq!(
        doc,
        json!({
            "issuer": issuer.issuer(),
            "jwks_uri": format!("{}/keys", issuer.base_url()),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    );
    assert_eq!(doc["jwks_uri"], issuer.jwks_uri());
    assert_eq!(issuer.discovery_fetches(), 1);
    assert_eq!(issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn full_discovery_has_the_provider_fields() {
    let issuer = TestIssuer::builder().full_discovery(true).start().await;
    let doc = get_json(&issuer.discovery_url()).await;
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "scopes_supported",
    ] {
        assert!(doc.get(field).is_some(), "missing {field}: {doc}");
    }
    assert_eq!(doc["issuer"], issuer.issuer());
    assert_eq!(doc["jwks_uri"], issuer.jwks_uri());

    issuer.set_full_discovery(false);
    let doc = get_json(&issuer.discovery_url()).await;
    assert!(doc.get("authorization_endpoint").is_none(), "{doc}");
}

#[tokio::test]
async fn jwks_is_json_with_the_configured_cache_control() {
    let issuer = TestIssuer::start().await;
    let response = client().get(issuer.jwks_uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("cache-control").is_none());
    let jwks: Value = response.json().await.unwrap();
    assert_eq!(jwks, issuer.jwks_json());
    assert_eq!(kids(&jwks), ["key-1"]);
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["use"], "sig");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");

    issuer.set_cache_control(Some("public, max-age=60"));
    let response = client().get(issuer.jwks_uri()).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    issuer.set_cache_control(None);
    let response = client().get(issuer.jwks_uri()).send().await.unwrap();
    assert!(response.headers().get("cache-control").is_none());
    assert_eq!(issuer.jwks_fetches(), 3);
}

#[tokio::test]
async fn tokens_of_every_alg_verify_against_the_served_jwks() {
    for alg in KeyAlg::ALL {
        let issuer = TestIssuer::builder().key(alg).start().await;
        let jwks = get_json(&issuer.jwks_uri()).await;
        let token = issuer.token().aud("api").sign();
        let (header, _) = parts(&token);
        assert_eq!(
            header,
            json!({"alg": alg.name(), "typ": "JWT", "kid": "key-1"})
        );
        let claims = verify(&token, &jwks).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["aud"], "api");

        // Changing one byte of the payload must break the signature.
        let mut pieces: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut tampered = decode_part(&pieces[1]);
        tampered["aud"] = json!("other");
        pieces[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap());
        assert_eq!(
            verify(&pieces.join("."), &jwks),
            Err("bad signature".into()),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn overriding_the_header_alg_keeps_the_real_signature() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().header("alg", json!("RS512")).sign();
    let (header, _) = parts(&token);
    assert_eq!(header["alg"], "RS512");
    // Still an RS256 signature by key-1.
    verify(&token, &issuer.jwks_json()).unwrap();
}

#[tokio::test]
async fn token_defaults_and_claim_edits() {
    let issuer = TestIssuer::start().await;
    let before = now();
    let builder = issuer.token();
    let claims = builder.claims();
    assert_eq!(claims["iss"], issuer.issuer());
    assert_eq!(claims["sub"], "system:serviceaccount:default:test");
    assert!(claims.get("aud").is_none());
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=now()).contains(&iat));
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);

    let claims = issuer
        .token()
        .auds(&["a", "b"])
        .no_iss()
        .no_iat()
        .no_exp()
        .nbf(5)
        .claim("exp", json!("123"))
        .claim("extra", json!({"x": 1}))
        .remove_claim("sub")
        .claims();
    assert_eq!(
        claims,
        json!({"aud": ["a", "b"], "nbf": 5, "exp": "123", "extra": {"x": 1}})
    );

    let token = issuer
        .token()
        .iss("https://elsewhere")
        .sub("bob")
        .iat(10)
        .exp(20)
        .no_kid()
        .header("jku", json!("https://evil/keys"))
        .header("typ", Value::Null)
        .sign();
    let (header, claims) = parts(&token);
    assert_eq!(header, json!({"alg": "RS256", "jku": "https://evil/keys"}));
    assert_eq!(
        (
            &claims["iss"],
            &claims["sub"],
            &claims["iat"],
            &claims["exp"]
        ),
        (
            &json!("https://elsewhere"),
            &json!("bob"),
            &json!(10),
            &json!(20)
        )
    );
    let expires_in = parts(&issuer.token().expires_in(-30).sign()).1["exp"]
        .as_i64()
        .unwrap();
    assert!((before - 30..=now() - 30).contains(&expires_in));
}

#[tokio::test]
async fn kid_sets_the_header_only() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().kid("key-99").sign();
    assert_eq!(parts(&token).0["kid"], "key-99");
    assert_eq!(
        verify(&token, &issuer.jwks_json()),
        Err("kid key-99 not in the JWKS".into())
    );
    // Relabelled back, the same signature verifies: it was made with key-1.
    let relabelled = issuer.token().kid("key-99").kid("key-1").sign();
    verify(&relabelled, &issuer.jwks_json()).unwrap();
}

#[tokio::test]
async fn unsigned_and_hmac_tokens() {
    let issuer = TestIssuer::start().await;
    let none = issuer.token().sign_none();
    assert!(none.ends_with('.'));
    assert_eq!(parts(&none).0["alg"], "none");
    let none_upper = issuer.token().header("alg", json!("None")).sign_none();
    assert_eq!(parts(&none_upper).0["alg"], "None");

    let pem = issuer.public_key_pem(&issuer.signing_kid());
    let forged = issuer.token().sign_hmac("HS256", pem.as_bytes());
    let (header, _) = parts(&forged);
    assert_eq!(header["alg"], "HS256");
    let (input, tag) = forged.rsplit_once('.').unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
    aws_lc_rs::hmac::verify(&key, input.as_bytes(), &b64d(tag)).expect("HMAC under the PEM");
    let wrong = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"other");
    assert!(aws_lc_rs::hmac::verify(&wrong, input.as_bytes(), &b64d(tag)).is_err());
    // And it does not pass as an RSA signature.
    assert!(verify(&forged, &issuer.jwks_json()).is_err());

    let hs512 = issuer.token().sign_hmac("HS512", b"secret");
    assert_eq!(b64d(hs512.rsplit_once('.').unwrap().1).len(), 64);
}

#[tokio::test]
async fn kubernetes_tokens_have_the_bound_service_account_shape() {
    let issuer = TestIssuer::start().await;
    let token = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud("api")
        .sign();
    let claims = verify(&token, &issuer.jwks_json()).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:prod:billing");
    let k8s = &claims["kubernetes.io"];
    assert_eq!(k8s["namespace"], "prod");
    assert_eq!(k8s["serviceaccount"]["name"], "billing");
    for object in ["serviceaccount", "pod", "node"] {
        let uid = k8s[object]["uid"].as_str().unwrap();
        assert_eq!(uid.len(), 36, "{object} uid {uid}");
        assert!(k8s[object]["name"].is_string());
    }
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"], iat);
    assert!(claims["exp"].as_i64().unwrap() > iat);
    assert_eq!(k8s["warnafter"], claims["exp"]);
    assert!(claims["jti"].is_string());
}

#[tokio::test]
async fn rotate_publishes_a_new_signing_key_and_keeps_the_old() {
    let issuer = TestIssuer::builder().key(KeyAlg::ES256).start().await;
    let old_token = issuer.token().sign();
    let new_kid = issuer.rotate();
    assert_eq!(new_kid, "key-2");
    assert_eq!(issuer.signing_kid(), "key-2");
    assert_eq!(issuer.key_alg("key-2"), KeyAlg::ES256);

    let jwks = get_json(&issuer.jwks_uri()).await;
    assert_eq!(kids(&jwks), ["key-1", "key-2"]);
    let new_token = issuer.token().sign();
    assert_eq!(parts(&new_token).0["kid"], "key-2");
    verify(&new_token, &jwks).unwrap();
    verify(&old_token, &jwks).unwrap();

    issuer.set_signing_key("key-1");
    assert_eq!(parts(&issuer.token().sign()).0["kid"], "key-1");
}

#[tokio::test]
async fn removed_and_unpublished_keys_still_sign_but_are_not_served() {
    let issuer = TestIssuer::start().await;
    let ed = issuer.add_key(KeyAlg::EdDSA);
    let hidden = issuer.add_unpublished_key(KeyAlg::PS256);
    assert_eq!((ed.as_str(), hidden.as_str()), ("key-2", "key-3"));
    let jwks = get_json(&issuer.jwks_uri()).await;
    assert_eq!(kids(&jwks), ["key-1", "key-2"]);

    let hidden_token = issuer.token().sign_with(&hidden).sign();
    let (header, _) = parts(&hidden_token);
    assert_eq!(
        (&header["alg"], &header["kid"]),
        (&json!("PS256"), &json!("key-3"))
    );
    assert_eq!(
        verify(&hidden_token, &jwks),
        Err("kid key-3 not in the JWKS".into())
    );
    // Its public JWK is available to the test and does verify it.
    verify(
        &hidden_token,
        &json!({"keys": [issuer.public_jwk(&hidden)]}),
    )
    .unwrap();

    issuer.remove_key("key-1");
    let jwks = get_json(&issuer.jwks_uri()).await;
    assert_eq!(kids(&jwks), ["key-2"]);
    let token = issuer.token().sign();
    assert_eq!(
        parts(&token).0["kid"],
        "key-1",
        "removing does not change the signing key"
    );

    issuer.publish_key("key-1");
    issuer.publish_key(&hidden);
    assert_eq!(kids(&issuer.jwks_json()), ["key-1", "key-2", "key-3"]);
    verify(&hidden_token, &issuer.jwks_json()).unwrap();
}

#[tokio::test]
async fn add_key_with_kid_replaces_the_key_material() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().sign();
    issuer.add_key_with_kid(KeyAlg::RS256, "key-1");
    let jwks = issuer.jwks_json();
    assert_eq!(kids(&jwks), ["key-1"]);
    assert_eq!(verify(&token, &jwks), Err("bad signature".into()));
    issuer.add_key_with_kid(KeyAlg::ES384, "ec");
    assert_eq!(kids(&issuer.jwks_json()), ["key-1", "ec"]);
    assert_eq!(issuer.add_key(KeyAlg::ES256), "key-3");
}

#[tokio::test]
async fn raw_jwks_are_published_verbatim() {
    let issuer = TestIssuer::start().await;
    let odd = json!({"kty": "oct", "kid": "sym", "k": "c2VjcmV0"});
    issuer.add_raw_jwk(odd.clone());
    let jwks = get_json(&issuer.jwks_uri()).await;
    assert_eq!(kids(&jwks), ["key-1", "sym"]);
    assert_eq!(jwks["keys"][1], odd);
    issuer.remove_key("sym");
    assert_eq!(kids(&issuer.jwks_json()), ["key-1"]);
}

#[tokio::test]
async fn the_public_pem_matches_the_jwk() {
    let issuer = TestIssuer::start().await;
    let pem = issuer.public_key_pem("key-1");
    let jwk = issuer.public_jwk("key-1");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    // An RSA SPKI ends with the RSAPublicKey, whose last bytes are the modulus then e.
    let n = b64d(jwk["n"].as_str().unwrap());
    let tail = &der[der.len() - n.len() - 5..der.len() - 5];
    assert_eq!(tail, &n[..]);
    assert_eq!(&der[der.len() - 3..], &[1, 0, 1], "e = 65537");
}

#[tokio::test]
async fn discovery_overrides_are_served() {
    let issuer = TestIssuer::start().await;
    issuer.set_discovery_issuer("https://impostor");
    issuer.set_jwks_uri("http://127.0.0.1:1/elsewhere");
    let doc = get_json(&issuer.discovery_url()).await;
    assert_eq!(doc["issuer"], "https://impostor");
    assert_eq!(doc["jwks_uri"], "http://127.0.0.1:1/elsewhere");
    assert_eq!(issuer.jwks_uri(), "http://127.0.0.1:1/elsewhere");
    // Tokens keep the real issuer, and the JWKS stays where it was.
    assert_eq!(issuer.token().claims()["iss"], issuer.issuer());
    get_json(&format!("{}/keys", issuer.base_url())).await;
}

#[tokio::test]
async fn builder_issuer_port_and_path() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let gke = "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c";
    let issuer = TestIssuer::builder()
        .issuer(gke)
        .port(port)
        .jwks_path("/v1/jwks")
        .kid("first")
        .start()
        .await;
    assert_eq!(issuer.addr().port(), port);
    assert_eq!(issuer.issuer(), gke);
    assert_eq!(issuer.base_url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(
        issuer.jwks_uri(),
        format!("http://127.0.0.1:{port}/v1/jwks")
    );
    let doc = get_json(&issuer.discovery_url()).await;
    assert_eq!(doc["issuer"], gke);
    assert_eq!(doc["jwks_uri"], issuer.jwks_uri());
    assert_eq!(kids(&get_json(&issuer.jwks_uri()).await), ["first"]);
    assert_eq!(issuer.token().claims()["iss"], gke);

    let old = client()
        .get(format!("{}/keys", issuer.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 404);
    assert_eq!(issuer.requests_to("/keys"), 1);
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn extra_jwks_paths_serve_just_their_keys() {
    let issuer = TestIssuer::start().await;
    let sa = issuer.add_unpublished_key(KeyAlg::RS256);
    let path = "/service_accounts/v1/jwk/sa@p.iam.gserviceaccount.com";
    issuer.serve_jwks_at(path, &[&sa]);
    let jwks = get_json(&format!("{}{path}", issuer.base_url())).await;
    assert_eq!(kids(&jwks), [sa.as_str()]);
    verify(&issuer.token().sign_with(&sa).sign(), &jwks).unwrap();
    assert_eq!(kids(&issuer.jwks_json()), ["key-1"]);
    assert_eq!(issuer.jwks_fetches(), 1);
    assert_eq!(issuer.requests_to(path), 1);
}

#[tokio::test]
async fn down_answers_503_everywhere_until_back_up() {
    let issuer = TestIssuer::start().await;
    issuer.set_down(true);
    for url in [issuer.discovery_url(), issuer.jwks_uri()] {
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 503, "{url}");
    }
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (1, 1));
    issuer.set_down(false);
    get_json(&issuer.discovery_url()).await;
    get_json(&issuer.jwks_uri()).await;
}

#[tokio::test]
async fn stop_listening_refuses_connections_and_resume_restores_the_same_issuer() {
    let issuer = TestIssuer::start().await;
    let http = client();
    // A pooled keep-alive connection must not outlive stop_listening.
    assert_eq!(
        http.get(issuer.jwks_uri()).send().await.unwrap().status(),
        200
    );
    let jwks_before = issuer.jwks_json();
    let addr = issuer.addr();

    issuer.stop_listening().await;
    assert!(!issuer.is_listening());
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = http.get(issuer.jwks_uri()).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    issuer.stop_listening().await; // idempotent

    let kid = issuer.rotate(); // state can change while stopped
    issuer.resume_listening().await;
    assert!(issuer.is_listening());
    assert_eq!(issuer.addr(), addr);
    let jwks = get_json(&issuer.jwks_uri()).await;
    assert_eq!(kids(&jwks), ["key-1", kid.as_str()]);
    assert_eq!(jwks["keys"][0], jwks_before["keys"][0]);
    assert_eq!(issuer.jwks_fetches(), 2, "counters survive a restart");
    issuer.resume_listening().await; // idempotent
    assert_eq!(
        http.get(issuer.jwks_uri()).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn held_jwks_requests_wait_until_released() {
    let issuer = TestIssuer::start().await;
    let hold = issuer.hold_jwks();
    let fetches: Vec<_> = (0..3)
        .map(|_| {
            let url = issuer.jwks_uri();
            tokio::spawn(async move { get_json(&url).await })
        })
        .collect();
    issuer.wait_for_jwks_fetches(3).await;
    assert_eq!(issuer.jwks_fetches(), 3);
    assert!(fetches.iter().all(|f| !f.is_finished()));
    // Discovery is not held.
    get_json(&issuer.discovery_url()).await;
    assert!(fetches.iter().all(|f| !f.is_finished()));

    // The held requests get the keys as they are at release time.
    let kid = issuer.rotate();
    hold.release();
    for fetch in fetches {
        assert_eq!(kids(&fetch.await.unwrap()), ["key-1", kid.as_str()]);
    }
}

#[tokio::test]
async fn nested_holds_release_only_when_all_are_gone() {
    let issuer = TestIssuer::start().await;
    let first = issuer.hold_jwks();
    let second = issuer.hold_jwks();
    let url = issuer.jwks_uri();
    let fetch = tokio::spawn(async move { get_json(&url).await });
    issuer.wait_for_jwks_fetches(1).await;
    drop(first);
    // Still held: a discovery round trip gives the server time to (wrongly) answer.
    get_json(&issuer.discovery_url()).await;
    assert!(!fetch.is_finished());
    drop(second);
    fetch.await.unwrap();
}

#[tokio::test]
async fn wait_for_fetches_returns_at_once_when_already_reached() {
    let issuer = TestIssuer::start().await;
    issuer.wait_for_jwks_fetches(0).await;
    get_json(&issuer.jwks_uri()).await;
    issuer.wait_for_jwks_fetches(1).await;
    get_json(&issuer.discovery_url()).await;
    issuer.wait_for_discovery_fetches(1).await;
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let issuer = TestIssuer::start().await;
    let clone = issuer.clone();
    let addr = issuer.addr();
    drop(issuer);
    get_json(&clone.jwks_uri()).await; // a clone keeps it running
    // An idle connection is the notification: the server closes it after its listener.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    drop(clone);
    let mut buf = [0u8; 1];
    let closed = tokio::io::AsyncReadExt::read(&mut idle, &mut buf).await;
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener outlived the last handle"
    );
}

#[test]
fn start_blocking_serves_without_a_caller_runtime() {
    let issuer = TestIssuer::builder().key(KeyAlg::EdDSA).start_blocking();
    let response = blocking_get(issuer.addr(), "/keys");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let jwks: Value = serde_json::from_str(body).unwrap();
    verify(&issuer.token().sign(), &jwks).unwrap();
}

#[tokio::test]
#[should_panic(expected = "set_signing_key(\"nope\"): no such key (keys: \"key-1\")")]
async fn setting_an_unknown_signing_key_panics() {
    TestIssuer::start().await.set_signing_key("nope");
}

#[tokio::test]
#[should_panic(expected = "no signing key with kid \"raw\"")]
async fn signing_with_a_raw_jwk_panics() {
    let issuer = TestIssuer::start().await;
    issuer.add_raw_jwk(json!({"kty": "RSA", "kid": "raw"}));
    let _ = issuer.token().sign_with("raw").sign();
}

#[tokio::test]
#[should_panic(expected = "remove_key(\"nope\"): no such key")]
async fn removing_an_unknown_key_panics() {
    TestIssuer::start().await.remove_key("nope");
}

#[test]
#[should_panic(expected = "the path must start with '/'")]
fn a_relative_jwks_path_panics() {
    let _ = TestIssuer::builder().jwks_path("keys");
}

#[test]
#[should_panic(expected = "needs a tokio runtime")]
fn start_outside_a_runtime_panics_with_a_hint() {
    // Poll the future by hand, without any runtime.
    let fut = std::pin::pin!(TestIssuer::start());
    let waker = std::task::Waker::noop();
    let _ = fut.poll(&mut std::task::Context::from_waker(waker));
}

/// GET over raw HTTP/1.1 from a plain thread, outside any runtime.
fn blocking_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(start_paused = true)]
async fn waiting_for_fetches_is_not_cut_short_by_a_paused_clock() {
    // With tokio's clock paused, a tokio-timer deadline would expire as soon as the runtime
    // idles; the wait must keep real time instead. A paused clock's hour passes only when the
    // runtime is idle, so the task sleeping one tells the client (a plain thread) when to send:
    // each request then arrives after the runtime idled inside the wait, past any shorter
    // tokio deadline.
    let issuer = TestIssuer::start().await;
    let addr = issuer.addr();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let next = std::sync::Arc::new(tokio::sync::Notify::new());
    let idler = tokio::spawn({
        let next = std::sync::Arc::clone(&next);
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            go.send(()).unwrap();
            next.notified().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            go.send(()).unwrap();
        }
    });
    let client = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        let keys = blocking_get(addr, "/keys");
        go_rx.recv().unwrap();
        let discovery = blocking_get(addr, "/.well-known/openid-configuration");
        (keys, discovery)
    });
    issuer.wait_for_jwks_fetches(1).await;
    assert_eq!(issuer.discovery_fetches(), 0);
    next.notify_one();
    issuer.wait_for_discovery_fetches(1).await;
    idler.await.unwrap();
    let (keys, discovery) = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert!(keys.starts_with("HTTP/1.1 200"), "{keys}");
    assert!(discovery.contains("\"jwks_uri\""), "{discovery}");
}
