//! Differential property tests of the two JSON paths for the registered claims: the one-pass
//! capture ([`super::capture`]) and serde's own parse of [`RawClaims`]. For every payload, they
//! agree on the claims, or the capture gives up (and the verifier then parses them the serde way);
//! the capture never reports values serde would not.
//!
//! Payloads are built from the shapes that trip JSON readers: registered claims of every type,
//! duplicated keys, keys spelled with escapes (`"i\u0073s"` is `iss`), huge and odd numbers, deep
//! nesting, odd whitespace. `PROPTEST_CASES=100000 cargo test -p oidc-bearer --lib fuzz` runs long.

use proptest::prelude::*;

use super::capture::decode_with_claims;
use super::{ClaimValue, RawClaims};
use crate::claims::DefaultClaims;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("iss".to_owned()),
        Just("aud".to_owned()),
        Just("exp".to_owned()),
        Just("nbf".to_owned()),
        Just("iat".to_owned()),
        Just("sub".to_owned()),
        Just(r"i\u0073s".to_owned()),
        Just(r"\u0061ud".to_owned()),
        Just(r"ex\u0070".to_owned()),
        Just("ISS".to_owned()),
        Just("iss ".to_owned()),
        "[a-z]{1,4}",
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:/.]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just(r#""https:\/\/issuer.example""#.to_owned()),
        Just(r#""\u00e9\ud83d\ude00""#.to_owned()),
        Just(r#""a\"b\\c""#.to_owned()),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("1.5e9".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1700000000.000000000001".to_owned()),
        (0.0f64..4e9).prop_map(|f| f.to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        string(),
        number(),
        Just("true".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(8, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|v| {
                let fields: Vec<_> = v.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\n\t"), Just("\r\n  ")]
}

/// A JSON object of registered and other claims, possibly repeated, with odd whitespace; sometimes
/// made invalid at the end.
fn payload() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((key(), value(), whitespace()), 0..8),
        whitespace(),
        prop_oneof![
            Just(""),
            Just(""),
            Just(""),
            Just(","),
            Just("}"),
            Just("x")
        ],
    )
        .prop_map(|(fields, ws, tail)| {
            let fields: Vec<_> = fields
                .iter()
                .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                .collect();
            format!("{ws}{{{}}}{ws}{tail}", fields.join(","))
        })
}

fn same(a: &RawClaims, b: &RawClaims) -> bool {
    let eq = |x: &ClaimValue, y: &ClaimValue| x == y;
    eq(&a.iss, &b.iss)
        && eq(&a.aud, &b.aud)
        && eq(&a.exp, &b.exp)
        && eq(&a.nbf, &b.nbf)
        && eq(&a.iat, &b.iat)
}

fn check<T: serde::de::DeserializeOwned>(payload: &str) -> Result<(), TestCaseError> {
    let (decoded, captured) = decode_with_claims::<T>(payload.as_bytes());
    let reference = serde_json::from_slice::<RawClaims>(payload.as_bytes());
    if let Some(captured) = captured {
        prop_assert!(decoded.is_ok(), "a capture comes only with a decoded value");
        match reference {
            Ok(reference) => prop_assert!(
                same(&captured, &reference),
                "capture {captured:?} != serde {reference:?} for {payload}"
            ),
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "capture gave claims where serde refuses ({e}): {payload}"
                )));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn capture_agrees_with_serde_or_gives_up_for_json_values(payload in payload()) {
        check::<serde_json::Value>(&payload)?;
    }

    #[test]
    fn capture_agrees_with_serde_or_gives_up_for_default_claims(payload in payload()) {
        check::<DefaultClaims>(&payload)?;
    }

    #[test]
    fn capture_agrees_with_serde_or_gives_up_for_a_struct(payload in payload()) {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Mine {
            sub: Option<String>,
            #[serde(default)]
            aud: serde_json::Value,
        }
        check::<Mine>(&payload)?;
    }
}
