//! Taking a compact JWS apart (RFC 7515 §7.1) and rejecting garbage before any crypto: size, segment
//! count, base64url, JSON, `crit`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::VerifyError;

/// The JOSE header fields we read. `jku`, `x5u`, `x5c` and `jwk` are deliberately not read: keys come
/// only from the issuer's configured key set, never from the token (RFC 8725 §3.10).
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    /// `None` when absent, `Some(None)` for `"crit": null`, which RFC 7515 §4.1.11 does not allow
    /// ("its value is an array"), so it is told apart from absence and refused.
    #[serde(default, deserialize_with = "present")]
    pub(crate) crit: Option<Option<Vec<String>>>,
}

/// Wraps a present member in `Some`, so that `null` is not mistaken for absence.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A claim's value as found, before validation, so that a wrong type is reported precisely instead of
/// failing the whole payload.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) enum ClaimValue {
    #[default]
    Absent,
    Str(String),
    Num(f64),
    StrArray(Vec<String>),
    Other,
}

impl<'de> Deserialize<'de> for ClaimValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClaimValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Num(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<ClaimValue, E> {
                Ok(ClaimValue::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ClaimValue, A::Error> {
                let mut strings = Vec::new();
                let mut all_strings = true;
                while let Some(item) = seq.next_element::<ClaimValue>()? {
                    match item {
                        ClaimValue::Str(s) if all_strings => strings.push(s),
                        _ => all_strings = false,
                    }
                }
                Ok(if all_strings {
                    ClaimValue::StrArray(strings)
                } else {
                    ClaimValue::Other
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ClaimValue::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The registered claims the verifier checks: read in the pass that validates the payload, before
/// the signature check; only trusted after it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct RawClaims {
    pub(crate) iss: ClaimValue,
    pub(crate) aud: ClaimValue,
    pub(crate) exp: ClaimValue,
    pub(crate) nbf: ClaimValue,
    pub(crate) iat: ClaimValue,
}

impl RawClaims {
    /// The `iss` claim if it is a string.
    pub(crate) fn issuer(&self) -> Option<&str> {
        match &self.iss {
            ClaimValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A compact JWS taken apart, its payload decoded and validated as JSON but not yet decoded into
/// claims; nothing in it is trusted until the signature is checked.
///
/// The registered claims are read in the pass that validates the payload (one pass, as validating
/// alone would cost: BENCHMARKS.md, "One JSON path"); the caller's claims type is decoded once,
/// after the signature check.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub(crate) header: Header,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the JWS signing input.
    pub(crate) signing_input: &'a [u8],
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    /// The registered claims, read (not trusted) in the pass that validates the payload; `None`
    /// when the payload is a JSON object whose registered claims cannot be read (a duplicated
    /// `iss`, say), which is refused after the signature check.
    pub(crate) claims: Option<RawClaims>,
}

/// Headers up to this size are decoded on the stack (real ones are under 200 bytes).
const HEADER_STACK_BYTES: usize = 512;

impl<'a> Jws<'a> {
    /// Takes `token` apart, refusing garbage before any crypto: size, segments, base64url, a JSON
    /// object header with an `alg`, `crit`, and a payload that is one well-formed JSON object.
    pub(crate) fn new(token: &'a str, max_len: usize) -> Result<Self, VerifyError> {
        if token.len() > max_len {
            return Err(VerifyError::TooLarge {
                len: token.len(),
                max: max_len,
            });
        }
        let malformed = |reason| VerifyError::Malformed { reason };
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("a JWS has three dot-separated parts"));
        };
        if parts.next().is_some() {
            return Err(malformed(
                "a JWS has three dot-separated parts (encrypted JWE tokens are not supported)",
            ));
        }
        if h.is_empty() || p.is_empty() {
            return Err(malformed("empty header or payload"));
        }
        if s.is_empty() {
            return Err(malformed("missing signature"));
        }
        // RFC 7515 §2: base64url without padding. The strict decoder also refuses non-canonical
        // trailing bits, so one signature has one encoding.
        let mut stack = [0u8; HEADER_STACK_BYTES];
        let heap;
        let header_bytes: &[u8] = match URL_SAFE_NO_PAD.decode_slice(h, &mut stack) {
            Ok(len) => &stack[..len],
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                heap = URL_SAFE_NO_PAD
                    .decode(h)
                    .map_err(|_| malformed("header is not base64url"))?;
                &heap
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => {
                return Err(malformed("header is not base64url"));
            }
        };
        // serde's derived structs also accept JSON arrays; a JOSE header and a claims set are objects.
        if !is_json_object(header_bytes) {
            return Err(malformed("header is not a JSON object with an alg"));
        }
        let header: Header = serde_json::from_slice(header_bytes)
            .map_err(|_| malformed("header is not a JSON object with an alg"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| malformed("payload is not base64url"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| malformed("signature is not base64url"))?;
        // Garbage is refused before any crypto: the payload must be one well-formed JSON object. This
        // pass only validates (serde's `IgnoredAny` allocates nothing); the claims are decoded once,
        // after the signature check.
        if !is_json_object(&payload) {
            return Err(malformed("payload is not a JSON object"));
        }
        let claims = serde_json::from_slice::<RawClaims>(&payload).ok();
        if claims.is_none() && serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
            return Err(malformed("payload is not a JSON object"));
        }
        // RFC 7515 §4.1.11: a recipient MUST reject a JWS whose `crit` lists extensions it does not
        // understand; we understand none. An empty list is itself invalid, and so is any value that
        // is not an array, `null` included.
        match &header.crit {
            None => {}
            Some(None) => return Err(malformed("crit must be an array of names")),
            Some(Some(crit)) if crit.is_empty() => return Err(malformed("crit must not be empty")),
            Some(Some(crit)) => {
                return Err(VerifyError::UnsupportedCritical {
                    names: crit.clone(),
                });
            }
        }
        Ok(Self {
            header,
            signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
            payload,
            signature,
            claims,
        })
    }

    /// The registered claims, parsed on their own.
    pub(crate) fn raw_claims(&self) -> Result<RawClaims, VerifyError> {
        serde_json::from_slice(&self.payload).map_err(|_| VerifyError::Malformed {
            reason: "payload is not a JSON object",
        })
    }

    /// The registered claims read when the payload was validated (or parsed now).
    pub(crate) fn claims(&self) -> Result<std::borrow::Cow<'_, RawClaims>, VerifyError> {
        match &self.claims {
            Some(claims) => Ok(std::borrow::Cow::Borrowed(claims)),
            None => self.raw_claims().map(std::borrow::Cow::Owned),
        }
    }
}

/// A compact JWS taken apart with its registered claims read (not trusted) up front: for callers
/// that need the issuer before choosing a verifier.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    jws: Jws<'a>,
    pub(crate) claims: RawClaims,
}

impl<'a> Parsed<'a> {
    pub(crate) fn new(token: &'a str, max_len: usize) -> Result<Self, VerifyError> {
        let mut jws = Jws::new(token, max_len)?;
        let claims = match jws.claims.take() {
            Some(claims) => claims,
            None => jws.raw_claims()?,
        };
        Ok(Self { jws, claims })
    }
}

impl<'a> std::ops::Deref for Parsed<'a> {
    type Target = Jws<'a>;

    fn deref(&self) -> &Jws<'a> {
        &self.jws
    }
}

/// The decoded payload of a token that verified before (a token cache hit): no checks beyond
/// base64url, which the first verification passed.
pub(crate) fn decode_payload(token: &str) -> Result<Vec<u8>, VerifyError> {
    let payload = token.split('.').nth(1).unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed {
            reason: "payload is not base64url",
        })
}

fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64(r#"{"iss":"x"}"#);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "malformed"),
            ("abc".into(), "malformed"),
            (format!("{h}.{p}"), "malformed"),
            (format!("{h}.{p}.c2ln.x.y"), "malformed"),
            (format!("{h}.{p}."), "malformed"),
            (format!("{h}=.{p}.c2ln"), "malformed"),
            (format!("{}.{p}.c2ln", b64("not json")), "malformed"),
            (format!("{}.{p}.c2ln", b64(r#"{"typ":"JWT"}"#)), "malformed"),
            (format!("{h}.{}.c2ln", b64("[1,2]")), "malformed"),
            (format!("{h}.{}.c2ln", b64("garbage")), "malformed"),
            (format!("{h}.{}.c2ln", b64("{garbage}")), "malformed"),
            (
                format!("{h}.{}.c2ln", b64(r#"{"iss":"x"} trailing"#)),
                "malformed",
            ),
            (format!("{h}.{p}.c2l*"), "malformed"),
            (
                format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","crit":["exp"]}"#)),
                "unsupported_crit",
            ),
            // RFC 7515 §4.1.11: when present, crit is an array; null is not absence.
            (
                format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","crit":null}"#)),
                "malformed",
            ),
            (
                format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","crit":[]}"#)),
                "malformed",
            ),
            (
                format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","crit":"exp"}"#)),
                "malformed",
            ),
            (
                format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","alg":"HS256"}"#)),
                "malformed",
            ),
            ("a".repeat(9000), "token_too_large"),
        ];
        for (token, code) in cases {
            let err = Parsed::new(&token, 8192).unwrap_err();
            assert_eq!(err.code(), code, "{token:.60}: {err}");
        }
    }

    #[test]
    fn crit_null_is_refused_as_not_an_array() {
        let h = b64(r#"{"alg":"RS256","crit":null}"#);
        let token = format!("{h}.{}.c2ln", b64(r#"{"iss":"x"}"#));
        let err = Parsed::new(&token, 8192).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed token: crit must be an array of names"
        );
        // Without crit at all the same token parses.
        let h = b64(r#"{"alg":"RS256"}"#);
        assert!(Parsed::new(&format!("{h}.{}.c2ln", b64(r#"{"iss":"x"}"#)), 8192).is_ok());
    }

    #[test]
    fn claim_types_are_kept_for_precise_errors() {
        let claims: RawClaims = serde_json::from_str(
            r#"{"iss":["a","b"],"aud":["x",1],"exp":"123","nbf":1.5,"iat":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(
            claims.iss,
            ClaimValue::StrArray(vec!["a".into(), "b".into()])
        );
        assert_eq!(claims.aud, ClaimValue::Other);
        assert_eq!(claims.exp, ClaimValue::Str("123".into()));
        assert_eq!(claims.nbf, ClaimValue::Num(1.5));
        assert_eq!(claims.iat, ClaimValue::Other);
    }
}
