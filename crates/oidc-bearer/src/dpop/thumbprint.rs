//! The proof's public key: its `jwk` header refused when it carries private members (RFC 9449
//! §4.3 check 7), parsed into a key by the key set's own JWK parser, and its RFC 7638 thumbprint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::Algorithm;
use crate::crypto::sha256;
use crate::error::DpopError;
use crate::keys::{PublicKey, parse_jwk};

/// The members that hold private key material in a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037
/// §2): `d` (EC, OKP, RSA), the RSA CRT members, and `k` (symmetric).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The members of a key's RFC 7638 thumbprint, in lexicographic order (§3.2; RFC 8037 §2 for OKP).
fn thumbprint_members(kty: &str) -> Option<&'static [&'static str]> {
    Some(match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    })
}

/// A proof's key, checked and ready, with its thumbprint.
pub(super) struct ProofKey {
    pub(super) key: PublicKey,
    /// base64url(SHA-256) of the RFC 7638 form: what a bound token's `cnf.jkt` holds (RFC 9449 §6.1).
    pub(super) thumbprint: String,
}

impl ProofKey {
    /// The key of a proof whose header says `alg`: a JSON object of kty `EC`, `RSA` or `OKP`
    /// without private members, whose thumbprint members are base64url strings without padding
    /// (one text per key, so one thumbprint per key), and which the key set's parser accepts for
    /// `alg` (curve, length, RSA of at least 2048 bits).
    pub(super) fn new(jwk: Option<&Value>, alg: Algorithm) -> Result<Self, DpopError> {
        let invalid = |reason: &str| DpopError::InvalidKey {
            reason: reason.to_owned(),
        };
        let Some(Value::Object(jwk)) = jwk else {
            return Err(invalid("the header has no jwk object (RFC 9449 §4.2)"));
        };
        // RFC 9449 §4.3 check 7: "the jwk JOSE Header Parameter does not contain a private key".
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(DpopError::PrivateKey);
        }
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
        let members = thumbprint_members(kty)
            .ok_or_else(|| invalid("kty must be EC, RSA or OKP (RFC 7638 §3.2)"))?;
        let thumbprint = thumbprint(jwk, members)?;
        // The key set's parser, told the header's `alg` so that it prepares that one algorithm;
        // a `jwk` naming another `alg` is refused (RFC 7517 §4.4).
        let mut value = jwk.clone();
        match value.get("alg") {
            None => {
                value.insert("alg".into(), Value::from(alg.as_str()));
            }
            Some(named) if named.as_str() == Some(alg.as_str()) => {}
            Some(_) => return Err(invalid("its alg is not the proof's alg")),
        }
        let key = parse_jwk(Value::Object(value)).map_err(|reason| DpopError::InvalidKey {
            reason: format!("unusable key: {reason}"),
        })?;
        if !key.fits(alg) {
            return Err(invalid("the key does not fit the proof's alg"));
        }
        Ok(Self { key, thumbprint })
    }
}

/// RFC 7638 §3: SHA-256 over `{"m1":"v1",...}` of the required members in lexicographic order,
/// no whitespace, base64url without padding. The values are written as JSON strings (they are
/// base64url or short names, so nothing needs escaping; anything that would is refused).
fn thumbprint(jwk: &Map<String, Value>, members: &[&str]) -> Result<String, DpopError> {
    let mut canonical = String::with_capacity(512);
    canonical.push('{');
    for (i, name) in members.iter().enumerate() {
        let value =
            jwk.get(*name)
                .and_then(Value::as_str)
                .ok_or_else(|| DpopError::InvalidKey {
                    reason: format!("member {name:?} must be a string"),
                })?;
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        // `kty` and `crv` are names ("P-256"); the others base64url without padding, strictly.
        let ok = match *name {
            "kty" | "crv" => value.bytes().all(|b| plain(b) || b == b'-'),
            _ => !value.is_empty() && value.bytes().all(plain) && decodes(value),
        };
        if !ok {
            return Err(DpopError::InvalidKey {
                reason: format!("member {name:?} is not unpadded base64url"),
            });
        }
        if i > 0 {
            canonical.push(',');
        }
        canonical.push('"');
        canonical.push_str(name);
        canonical.push_str("\":\"");
        canonical.push_str(value);
        canonical.push('"');
    }
    canonical.push('}');
    Ok(encode_sha256(canonical.as_bytes()))
}

/// Whether `value` is canonical base64url without padding (the strict decoder refuses
/// non-canonical trailing bits, so one key has one text).
fn decodes(value: &str) -> bool {
    URL_SAFE_NO_PAD.decode(value).is_ok()
}

/// base64url(SHA-256(bytes)): a thumbprint, and a proof's `ath` (RFC 9449 §4.2).
pub(super) fn encode_sha256(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7638 §3.1's example: the RSA key and its thumbprint.
    #[test]
    fn rfc_7638_example_thumbprint() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let Value::Object(map) = &jwk else {
            unreachable!()
        };
        assert_eq!(
            thumbprint(map, thumbprint_members("RSA").unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // The members outside the thumbprint change nothing; the proof's alg is RS256.
        let key = ProofKey::new(Some(&jwk), Algorithm::RS256).unwrap();
        assert_eq!(
            key.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert!(matches!(
            ProofKey::new(Some(&jwk), Algorithm::PS256),
            Err(DpopError::InvalidKey { .. })
        ));
    }

    #[test]
    fn private_members_and_odd_texts_are_refused() {
        let ec = json!({"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        assert!(ProofKey::new(Some(&ec), Algorithm::ES256).is_ok());
        for member in PRIVATE_MEMBERS {
            let mut with = ec.clone();
            with[*member] = json!("AAAA");
            let error = ProofKey::new(Some(&with), Algorithm::ES256).err();
            assert_eq!(error, Some(DpopError::PrivateKey), "{member}");
        }
        let mut padded = ec.clone();
        padded["x"] = json!("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU=");
        let mut number = ec.clone();
        number["y"] = json!(1);
        for odd in [
            padded,
            number,
            json!({"kty": "oct", "k": "AAAA"}),
            json!("x"),
        ] {
            assert!(
                ProofKey::new(Some(&odd), Algorithm::ES256).is_err(),
                "{odd}"
            );
        }
        assert!(ProofKey::new(None, Algorithm::ES256).is_err());
    }
}
