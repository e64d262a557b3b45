//! Structure-aware property tests of everything that reads untrusted bytes: tokens (header, claims,
//! segments, base64url), `Authorization` values and JWK Sets. Invariants: no panic, an answer for
//! every input, and no token accepted that a plain reference check refuses (the `jsonwebtoken`
//! crate's `decode` with the same key, issuer, audience and leeway).
//!
//! Tokens are built from valid parts and then varied: claims of every type, the header's `alg`,
//! `kid`, `typ` and `crit`, and the finished string mutated (segments swapped or repeated, padding,
//! a character changed, whitespace). The default run takes seconds; a long run:
//! `PROPTEST_CASES=100000 cargo test --release -p oidc-bearer --test it -- fuzz::`.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use oidc_bearer::bearer::{AuthorizationHeader, TokenExtractor as _};
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::keys::{Jwks, KeyCacheSettings, StaticKeySet, explain_key_set};
use oidc_bearer::{Verifier, VerifyError};
use oidc_bearer_testing::{KeyAlg, TestIssuer, now};
use proptest::prelude::*;
use serde_json::{Value, json};

const AUD: &str = "my-service";

struct World {
    issuer: TestIssuer,
    verifier: Verifier,
    reference_key: jsonwebtoken::DecodingKey,
}

/// One issuer for the whole run (proptest bodies are synchronous; signing needs no network).
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let issuer = TestIssuer::builder().key(KeyAlg::ES256).start_blocking();
        let jwks = Jwks::from_json(&serde_json::to_vec(&issuer.jwks_json()).unwrap()).unwrap();
        let verifier = Verifier::builder(issuer.issuer(), AUD)
            .with_key_set(StaticKeySet::new(jwks))
            .build()
            .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(issuer.public_jwk(&issuer.signing_kid())).unwrap();
        let reference_key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        World {
            issuer,
            verifier,
            reference_key,
        }
    })
}

/// Polls a future that never waits on I/O (a static key set) to completion.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    for _ in 0..1000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("verification with static keys did not complete: a hang");
}

fn reference_accepts(token: &str) -> bool {
    let w = world();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[w.issuer.issuer()]);
    validation.leeway = 60;
    jsonwebtoken::decode::<Value>(token, &w.reference_key, &validation).is_ok()
}

/// A NumericDate claim: mostly `good` (valid for the token), sometimes anything else.
fn time(good: Vec<Option<Value>>) -> impl Strategy<Value = Option<Value>> {
    let n = now();
    prop_oneof![
        12 => prop::sample::select(good),
        1 => Just(None),
        1 => Just(Some(json!(n + 3600))),
        1 => Just(Some(json!(n - 3600))),
        1 => Just(Some(json!(n + 30))),
        1 => Just(Some(json!(n - 30))),
        1 => Just(Some(json!((n + 3600).to_string()))),
        1 => Just(Some(json!(i64::MAX))),
        1 => Just(Some(json!(-1))),
        1 => Just(Some(json!(null))),
        1 => Just(Some(json!([n + 3600]))),
        1 => Just(Some(json!(1e300))),
        1 => Just(Some(json!(n as f64 + 0.5))),
    ]
}

fn claims() -> impl Strategy<Value = Vec<(&'static str, Option<Value>)>> {
    let iss = world().issuer.issuer();
    let n = now();
    (
        prop_oneof![
            12 => Just(Some(json!(iss.clone()))),
            1 => Just(Some(json!(format!("{iss}/")))),
            1 => Just(Some(json!([iss]))),
            1 => Just(Some(json!(42))),
            1 => Just(None),
        ],
        prop_oneof![
            6 => Just(Some(json!(AUD))),
            6 => Just(Some(json!([AUD, "other"]))),
            1 => Just(Some(json!(["other"]))),
            1 => Just(Some(json!([]))),
            1 => Just(Some(json!(AUD.to_uppercase()))),
            1 => Just(Some(json!(7))),
            1 => Just(None),
        ],
        time(vec![Some(json!(n + 3600)), Some(json!(n + 30))]),
        time(vec![None, Some(json!(n - 3600)), Some(json!(n - 30))]),
        time(vec![None, Some(json!(n - 3600)), Some(json!(n - 30))]),
    )
        .prop_map(|(iss, aud, exp, nbf, iat)| {
            vec![
                ("iss", iss),
                ("aud", aud),
                ("exp", exp),
                ("nbf", nbf),
                ("iat", iat),
            ]
        })
}

fn header() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    let kid = world().issuer.signing_kid();
    (
        prop_oneof![
            12 => Just(None),
            1 => Just(Some(json!("none"))),
            1 => Just(Some(json!("HS256"))),
            1 => Just(Some(json!("es256"))),
            1 => Just(Some(json!("RS256"))),
            1 => Just(Some(json!(["ES256"]))),
        ],
        prop_oneof![
            8 => Just(None),
            1 => Just(Some(json!("other"))),
            1 => Just(Some(json!(7))),
            1 => Just(Some(json!(kid)))
        ],
        prop_oneof![
            12 => Just(None),
            1 => Just(Some(json!(null))),
            1 => Just(Some(json!([]))),
            1 => Just(Some(json!(["exp"]))),
            1 => Just(Some(json!("b64")))
        ],
        prop_oneof![
            8 => Just(None),
            1 => Just(Some(json!("at+jwt"))),
            1 => Just(Some(json!(null)))
        ],
    )
        .prop_map(|(alg, kid, crit, typ)| {
            [("alg", alg), ("kid", kid), ("crit", crit), ("typ", typ)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect()
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    SwapSegments,
    RepeatPayload,
    Pad,
    Change(usize, char),
    Whitespace(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => Just(Mutation::None),
        1 => Just(Mutation::SwapSegments),
        1 => Just(Mutation::RepeatPayload),
        1 => Just(Mutation::Pad),
        2 => (any::<usize>(), prop::sample::select(vec!['A', '_', '-', '+', '/', '.', '=', 'é'])).prop_map(|(i, c)| Mutation::Change(i, c)),
        1 => any::<usize>().prop_map(Mutation::Whitespace),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(token: &str, mutation: &Mutation) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let at = |i: usize| {
        let mut i = i % token.len().max(1);
        while !token.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match mutation {
        Mutation::None => token.to_owned(),
        Mutation::SwapSegments => format!("{}.{}.{}", parts[1], parts[0], parts[2]),
        Mutation::RepeatPayload => format!("{}.{}.{}.{}", parts[0], parts[1], parts[1], parts[2]),
        Mutation::Pad => format!("{}=.{}.{}==", parts[0], parts[1], parts[2]),
        Mutation::Change(i, c) => {
            let i = at(*i);
            let mut s = token.to_owned();
            let end = s[i..].chars().next().map_or(i, |ch| i + ch.len_utf8());
            s.replace_range(i..end, &c.to_string());
            s
        }
        Mutation::Whitespace(i) => {
            let i = at(*i);
            format!("{} {}", &token[..i], &token[i..])
        }
        Mutation::Truncate(i) => token[..at(*i)].to_owned(),
    }
}

/// Whether a claim is one the reference reads differently by design: RFC 7519 NumericDates may be
/// fractional (jsonwebtoken requires integers), and we check `nbf`/`iat` it does not.
fn reference_is_stricter(claims: &[(&str, Option<Value>)]) -> bool {
    claims.iter().any(|(name, v)| {
        matches!(name, &"exp" | &"nbf" | &"iat")
            && v.as_ref()
                .is_some_and(|v| v.as_f64().is_some_and(|f| f.fract() != 0.0 || f > 1e18))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_token_is_accepted_that_the_reference_refuses(
        claims in claims(),
        header in header(),
        mutation in mutation(),
    ) {
        let w = world();
        let mut builder = w.issuer.token().sub("alice");
        for (name, value) in &claims {
            builder = match value {
                Some(value) => builder.claim(name, value.clone()),
                None => builder.remove_claim(name),
            };
        }
        for (name, value) in &header {
            builder = builder.header(name, value.clone());
        }
        let token = apply(&builder.sign(), &mutation);
        let ours: Result<DefaultClaims, VerifyError> = block_on(w.verifier.verify(&token));
        if ours.is_ok() && !reference_is_stricter(&claims) {
            prop_assert!(
                reference_accepts(&token),
                "accepted what jsonwebtoken refuses: claims {claims:?}, header {header:?}, {mutation:?}"
            );
        }
        // The untouched token with every claim right is accepted (the test can see acceptance).
        if matches!(mutation, Mutation::None) && header.is_empty() {
            let right = claims.iter().all(|(name, v)| match (*name, v) {
                ("iss", Some(v)) => *v == json!(w.issuer.issuer()),
                ("aud", Some(v)) => *v == json!(AUD) || *v == json!([AUD, "other"]),
                ("exp", Some(v)) => *v == json!(now_plus(3600)) || *v == json!(now_plus(30)),
                ("nbf" | "iat", None) => true,
                ("nbf" | "iat", Some(v)) => *v == json!(now_plus(-3600)) || *v == json!(now_plus(-30)),
                _ => false,
            });
            if right {
                prop_assert!(ours.is_ok(), "refused a valid token: {:?} {claims:?}", ours.err());
            }
        }
    }

    #[test]
    fn authorization_values_never_panic(value in "(Bearer|bearer|BEARER|Basic)?[ \t]{0,3}[A-Za-z0-9._~+/=\\- ]{0,40}") {
        // Header values hold no control characters but tab; the strategy's alphabet fits.
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        let parsed = AuthorizationHeader.token(&headers);
        if let Ok(Some(token)) = parsed {
            // RFC 6750 §2.1 b64token: no spaces inside, never empty.
            prop_assert!(!token.is_empty() && !token.contains(' '), "{token:?} from {value:?}");
        }
    }

    #[test]
    fn jwk_sets_never_panic(keys in prop::collection::vec(jwk(), 0..6)) {
        let document = serde_json::to_vec(&json!({"keys": keys})).unwrap();
        let parsed = Jwks::from_json(&document);
        let jwks = parsed.expect("a JSON object with a keys array is a JWK Set");
        // The diagnostics call explains every key, and keeps exactly the keys the set kept.
        let report = explain_key_set(&document, None, &KeyCacheSettings::default())
            .expect("a JSON object with a keys array is a JWK Set");
        prop_assert_eq!(report.keys.len(), keys.len());
        prop_assert_eq!(report.keys.iter().filter(|k| k.is_ok()).count(), jwks.len());
    }
}

fn now_plus(secs: i64) -> i64 {
    now() + secs
}

fn jwk() -> impl Strategy<Value = Value> {
    let real = world().issuer.public_jwk(&world().issuer.signing_kid());
    prop_oneof![
        Just(real.clone()),
        Just(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})),
        Just(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        Just(json!({"kty": "OKP", "crv": "Ed448", "x": "AA"})),
        Just(json!({"kty": "oct", "k": "c2VjcmV0"})),
        Just(json!({"kty": 5})),
        Just(json!([1, 2])),
        "[a-zA-Z0-9_-]{0,90}".prop_map({
            let real = real.clone();
            move |x| {
                let mut k = real.clone();
                k["x"] = json!(x);
                k
            }
        }),
        (
            prop::sample::select(vec!["ES256", "ES384", "RS256", "none", "HS256", "EdDSA"]),
            any::<bool>()
        )
            .prop_map(move |(alg, enc)| {
                let mut k = real.clone();
                k["alg"] = json!(alg);
                if enc {
                    k["use"] = json!("enc");
                }
                k
            }),
    ]
}
