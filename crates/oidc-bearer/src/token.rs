//! Taking a compact JWS apart (RFC 7515 §7.1) and rejecting garbage before any crypto: size, segment
//! count, base64url, JSON, repeated member names, `crit`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

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
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ClaimValue, A::Error> {
                visit_members(map, |_, map| map.next_value::<Unique>().map(drop))?;
                Ok(ClaimValue::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The registered claims the verifier checks: read in the pass that validates the payload (after
/// the signature check in a verifier; before it where a caller needs them to choose a policy), and
/// only trusted after it.
#[derive(Debug, Default, Clone)]
pub(crate) struct RawClaims {
    pub(crate) iss: ClaimValue,
    pub(crate) aud: ClaimValue,
    pub(crate) exp: ClaimValue,
    pub(crate) nbf: ClaimValue,
    pub(crate) iat: ClaimValue,
}

/// The pass that validates the payload: the registered claims are read, every other member is
/// validated as JSON, and a member name repeated in any object is refused.
impl<'de> Deserialize<'de> for RawClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawClaims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawClaims, A::Error> {
                let mut claims = RawClaims::default();
                visit_members(map, |name, map| {
                    let claim = match name {
                        "iss" => &mut claims.iss,
                        "aud" => &mut claims.aud,
                        "exp" => &mut claims.exp,
                        "nbf" => &mut claims.nbf,
                        "iat" => &mut claims.iat,
                        _ => return map.next_value::<Unique>().map(drop),
                    };
                    *claim = map.next_value()?;
                    Ok(())
                })?;
                Ok(claims)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The error of a repeated member name: a data error, told apart from a syntax error by
/// [`serde_json::Error::is_data`] (the validating passes raise no other).
const REPEATED_NAME: &str = "duplicate member name";

/// Visits every member of a JSON object, handing its name to `member`, which must read the value;
/// a name the object already had is an error.
///
/// RFC 7515 §4 (header) and RFC 7519 §4 (claims): a recipient must reject a JWS or JWT whose JSON
/// repeats a member name, or take the last one consistently. serde takes the last in a map and
/// refuses a repeat in a struct, so two readers of one token could disagree (a policy reading
/// `scope` from a map, a claims type reading it as a field): we reject, at every depth.
fn visit_members<'de, A: MapAccess<'de>>(
    mut map: A,
    mut member: impl FnMut(&str, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let mut names = Names::default();
    while let Some(Name(name)) = map.next_key()? {
        member(&name, &mut map)?;
        if !names.insert(name) {
            return Err(de::Error::custom(REPEATED_NAME));
        }
    }
    Ok(())
}

/// A member name, borrowed from the JSON text unless it has escapes (then unescaped, so that
/// `"a"` and `"\u0061"` are the same name).
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// How many names of one object are compared one by one before they go into a hash set: real
/// objects in tokens have fewer (a Kubernetes token's payload has 9 members), so the miss path
/// neither hashes nor allocates for them.
const INLINE_NAMES: usize = 16;

/// The names of one object seen so far.
#[derive(Default)]
struct Names<'de> {
    /// The names while there are at most [`INLINE_NAMES`], all without escapes (borrowed from the
    /// JSON text): compared one by one, nothing allocated.
    inline: [&'de str; INLINE_NAMES],
    len: usize,
    /// Every name, once an object has more, or one with escapes: a large object costs hashing,
    /// not comparisons by the square of its size.
    spilled: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Names<'de> {
    /// Adds `name`; `false` if the object already had it.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        match (&mut self.spilled, name) {
            (Some(set), name) => set.insert(name),
            (None, Cow::Borrowed(name)) if self.len < INLINE_NAMES => {
                if self.inline[..self.len].contains(&name) {
                    return false;
                }
                self.inline[self.len] = name;
                self.len += 1;
                true
            }
            (None, name) => {
                let seen = self.inline[..self.len].iter().map(|n| Cow::Borrowed(*n));
                let mut set: HashSet<_> = seen.collect();
                let fresh = set.insert(name);
                self.spilled = Some(set);
                fresh
            }
        }
    }
}

/// Any JSON value, validated and dropped, as serde's `IgnoredAny` does, except that every object
/// in it is checked for repeated member names.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Unique;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
                while seq.next_element::<Unique>()?.is_some() {}
                Ok(Unique)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Unique, A::Error> {
                visit_members(map, |_, map| map.next_value::<Unique>().map(drop))?;
                Ok(Unique)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A compact JWS taken apart as far as its signature check needs: the header parsed and checked,
/// the signature decoded; the payload not read at all (still base64url, as sent).
///
/// A verifier that knows its issuer from the configuration checks the signature on this alone, so
/// a forged token's payload is never decoded or parsed (the order of go-oidc's `verify.go` since
/// v3.15, CVE-2025-27144: claims are read only from a payload whose signature holds).
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub(crate) header: Header,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the JWS signing input.
    pub(crate) signing_input: &'a [u8],
    pub(crate) signature: Vec<u8>,
    /// The payload segment as sent (base64url): decoded only when needed.
    encoded_payload: &'a str,
}

/// A compact JWS taken apart and its payload validated as JSON, for a caller that reads the payload
/// before or without a key set's signature check (TokenReview reads `exp` to bound its cache; a
/// DPoP proof carries its own key); nothing in it is trusted until its signature is checked. Its
/// [`Jws`] is reached through `Deref` (`parsed.header`).
///
/// The registered claims are read in the pass that validates the payload (one pass, as validating
/// alone would cost: BENCHMARKS.md, "One JSON path").
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) jws: Jws<'a>,
    /// The decoded payload.
    pub(crate) payload: Vec<u8>,
    /// The registered claims, read (not trusted) in the pass that validates the payload.
    pub(crate) claims: RawClaims,
}

impl<'a> std::ops::Deref for Parsed<'a> {
    type Target = Jws<'a>;

    fn deref(&self) -> &Jws<'a> {
        &self.jws
    }
}

/// A compact JWS with its payload decoded and only its `iss` read: what an issuer registry needs
/// to choose a verifier, which checks the signature before the rest of the payload is parsed.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub(crate) jws: Jws<'a>,
    /// The decoded payload, not yet validated beyond its top-level `iss`.
    pub(crate) payload: Vec<u8>,
    /// The top-level `iss`, as found (not trusted).
    pub(crate) iss: ClaimValue,
}

/// Headers up to this size are decoded on the stack (real ones are under 200 bytes).
const HEADER_STACK_BYTES: usize = 512;

fn malformed(reason: &'static str) -> VerifyError {
    VerifyError::Malformed { reason }
}

impl<'a> Jws<'a> {
    /// Takes `token` apart as far as a signature check needs, refusing garbage before any crypto:
    /// size, segments, base64url of the header and the signature, a JSON object header with an
    /// `alg`, no member name repeated in it, `crit`. The payload segment must be non-empty; it is
    /// not decoded.
    pub(crate) fn new(token: &'a str, max_len: usize) -> Result<Self, VerifyError> {
        if token.len() > max_len {
            return Err(VerifyError::TooLarge {
                len: token.len(),
                max: max_len,
            });
        }
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
        // RFC 7515 §4: the header is UTF-8 JSON (checked once for both passes, as the payload's).
        let header_text = std::str::from_utf8(header_bytes)
            .map_err(|_| malformed("header is not a JSON object with an alg"))?;
        // A second pass over the header (under 200 bytes), for the members `Header` ignores.
        serde_json::from_str::<Unique>(header_text).map_err(|e| {
            malformed(if e.is_data() {
                "duplicate member name in the header (RFC 7515 §4)"
            } else {
                "header is not a JSON object with an alg"
            })
        })?;
        let header: Header = serde_json::from_str(header_text)
            .map_err(|_| malformed("header is not a JSON object with an alg"))?;
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
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| malformed("signature is not base64url"))?;
        Ok(Self {
            header,
            signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
            signature,
            encoded_payload: p,
        })
    }

    /// The payload's bytes (base64url-decoded), not yet read.
    pub(crate) fn decode_payload(&self) -> Result<Vec<u8>, VerifyError> {
        URL_SAFE_NO_PAD
            .decode(self.encoded_payload)
            .map_err(|_| malformed("payload is not base64url"))
    }

    /// The payload decoded and validated ([`validate_payload`]).
    pub(crate) fn into_parsed(self) -> Result<Parsed<'a>, VerifyError> {
        let payload = self.decode_payload()?;
        let claims = validate_payload(&payload)?;
        Ok(Parsed {
            jws: self,
            payload,
            claims,
        })
    }

    /// The payload decoded and its top-level `iss` read, nothing else validated yet (see
    /// [`Unverified`]): one JSON pass that skips every other member.
    pub(crate) fn read_issuer(self) -> Result<Unverified<'a>, VerifyError> {
        let payload = self.decode_payload()?;
        if !is_json_object(&payload) {
            return Err(malformed("payload is not a JSON object"));
        }
        let Issuer(iss) = serde_json::from_slice(&payload).map_err(payload_error)?;
        Ok(Unverified {
            jws: self,
            payload,
            iss,
        })
    }
}

impl<'a> Parsed<'a> {
    /// Takes `token` apart, refusing garbage before any crypto: size, segments, base64url, a JSON
    /// object header with an `alg`, `crit`, a payload that is one well-formed JSON object, and a
    /// member name repeated anywhere in either.
    pub(crate) fn new(token: &'a str, max_len: usize) -> Result<Self, VerifyError> {
        Jws::new(token, max_len)?.into_parsed()
    }
}

/// Validates a decoded payload: one well-formed JSON object, UTF-8, without a member name repeated
/// in any object; returns its registered claims (read, not trusted).
pub(crate) fn validate_payload(payload: &[u8]) -> Result<RawClaims, VerifyError> {
    // Garbage is refused with a clear reason: the payload must be one well-formed JSON object
    // without repeated member names. This pass only validates and reads the registered claims (it
    // allocates nothing else); the caller's claims are decoded once, after the signature check.
    if !is_json_object(payload) {
        return Err(malformed("payload is not a JSON object"));
    }
    // RFC 7519 §7.2: the claims set is UTF-8. Checked once here, so that the pass reads its
    // strings without checking each again (serde_json's `from_str` trusts a `str`).
    let text = std::str::from_utf8(payload).map_err(|_| malformed("payload is not UTF-8"))?;
    serde_json::from_str::<RawClaims>(text).map_err(payload_error)
}

/// A payload's JSON pass failed: a member name repeated, or not one JSON object.
fn payload_error(e: serde_json::Error) -> VerifyError {
    malformed(if e.is_data() {
        "duplicate member name in the payload (RFC 7519 §4)"
    } else {
        "payload is not a JSON object"
    })
}

/// The top-level `iss` of a claims set, every other member skipped unread (serde's `IgnoredAny`):
/// an issuer registry's first look at a payload. A repeated `iss` is refused (RFC 7519 §4), so the
/// issuer chosen is the one the full pass reads after the signature check.
struct Issuer(ClaimValue);

impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Issuer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Issuer, A::Error> {
                let mut iss = None;
                while let Some(Name(name)) = map.next_key()? {
                    if name == "iss" {
                        if iss.is_some() {
                            return Err(de::Error::custom(REPEATED_NAME));
                        }
                        iss = Some(map.next_value::<ClaimValue>()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(Issuer(iss.unwrap_or_default()))
            }
        }
        deserializer.deserialize_map(V)
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

    /// RFC 7515 §4 and RFC 7519 §4: a recipient must reject a JOSE header or claims set with
    /// duplicate member names, or keep the last one consistently; we reject, anywhere in either
    /// (a member of a nested object, an object in an array, names spelled with escapes).
    #[test]
    fn duplicate_member_names_are_refused_in_the_header_and_payload() {
        let header = r#"{"alg":"RS256"}"#;
        let payload = r#"{"iss":"x"}"#;
        let refused = [
            (r#"{"alg":"RS256","x5t":"a","x5t":"b"}"#, payload),
            (r#"{"alg":"RS256","jwk":{"kty":"RSA","kty":"EC"}}"#, payload),
            (header, r#"{"iss":"x","scope":"read","scope":"admin"}"#),
            (header, r#"{"iss":"x","iss":"y"}"#),
            (
                header,
                r#"{"iss":"x","kubernetes.io":{"namespace":"a","namespace":"b"}}"#,
            ),
            (header, r#"{"iss":"x","groups":[{"name":"a","name":"b"}]}"#),
            (header, r#"{"iss":"x","aud":{"a":1,"a":2}}"#),
            (header, r#"{"iss":"x","aud":[{"a":1,"a":2}]}"#),
            (header, r#"{"iss":"x","scope":"read","sc\u006fpe":"admin"}"#),
            // Escaped quotes and backslashes are unescaped before names are compared.
            (header, r#"{"iss":"x","a\"b":1,"a\u0022b":2}"#),
            (header, r#"{"iss":"x","a\\b":1,"a\u005cb":2}"#),
            (r#"{"alg":"RS256","\u0061lg":"none"}"#, payload),
            (header, r#"{"iss":"x","a":{"b":{"c":{"d":1,"d":1}}}}"#),
        ];
        // Past the names compared one by one, in the hash set.
        let many: Vec<String> = (0..40).map(|i| format!(r#""n{i}":{i}"#)).collect();
        let distinct = format!("{{{}}}", many.join(","));
        let repeated = format!(r#"{{{},"n3":0}}"#, many.join(","));
        let refused = refused.into_iter().chain([(header, repeated.as_str())]);
        for (h, p) in refused {
            let token = format!("{}.{}.c2ln", b64(h), b64(p));
            let err = Parsed::new(&token, 8192).unwrap_err();
            assert_eq!(err.code(), "malformed", "{h} {p}");
            assert!(err.to_string().contains("duplicate member name"), "{err}");
        }
        // The same name in different objects is no duplicate.
        let accepted = [
            r#"{"iss":"x","a":{"n":1},"b":{"n":1},"c":[{"n":1},{"n":2}],"n":0}"#,
            r#"{"iss":"x","aud":["a","a"],"scope":"a b"}"#,
            &distinct,
        ];
        for p in accepted {
            let token = format!("{}.{}.c2ln", b64(header), b64(p));
            assert!(Parsed::new(&token, 8192).is_ok(), "{p}");
        }
    }

    /// The passes that look for repeated names recurse into every array and object: nesting up to
    /// serde_json's depth limit (128) is read, and deeper nesting is refused as malformed, never a
    /// stack overflow (which aborts the process), in the header, an unknown claim and `aud`, on a
    /// thread with a quarter of Tokio's default stack.
    #[test]
    fn deep_nesting_is_read_or_refused_within_a_small_stack() {
        let nested = |depth: usize, object: bool| {
            let (open, close) = if object {
                (r#"{"a":"#, "}")
            } else {
                ("[", "]")
            };
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        };
        let header = r#"{"alg":"RS256"}"#;
        let mut rows = Vec::new();
        for object in [false, true] {
            for (depth, accepted) in [(120, true), (5_000, false)] {
                let value = nested(depth, object);
                rows.push((header.to_owned(), format!(r#"{{"x":{value}}}"#), accepted));
                rows.push((header.to_owned(), format!(r#"{{"aud":{value}}}"#), accepted));
                let deep_header = format!(r#"{{"alg":"RS256","x":{value}}}"#);
                rows.push((deep_header, r#"{"iss":"x"}"#.to_owned(), accepted));
            }
        }
        let outcomes = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                rows.into_iter()
                    .map(|(h, p, accepted)| {
                        let token = format!("{}.{}.c2ln", b64(&h), b64(&p));
                        let outcome = Parsed::new(&token, 1 << 20).map(drop);
                        (outcome.map_err(|e| e.code()), accepted, p.len() + h.len())
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        for (outcome, accepted, len) in outcomes {
            let expected = if accepted { Ok(()) } else { Err("malformed") };
            assert_eq!(outcome, expected, "{len} bytes");
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
