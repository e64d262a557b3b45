//! Decoding a token's header and claims without trusting them (no signature check).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// A token's header and payload as JSON objects, unverified.
pub(crate) struct Decoded {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    /// The signature's length in bytes.
    pub(crate) signature_len: usize,
}

/// Decodes a compact JWS (RFC 7515 §7.1) without verifying it; the error says what is wrong.
pub(crate) fn decode(token: &str) -> Result<Decoded, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(format!(
            "a JWT has three dot-separated segments (RFC 7515 §7.1); this has {}{}",
            parts.len(),
            if parts.len() == 5 {
                " (five: an encrypted JWE, which this tool cannot read)"
            } else {
                ""
            }
        ));
    };
    let object = |segment: &str, name: &str| -> Result<Map<String, Value>, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|e| format!("the {name} is not base64url without padding: {e}"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(format!("the {name} is JSON but not an object")),
            Err(e) => Err(format!("the {name} is not JSON: {e}")),
        }
    };
    let header = object(header, "header")?;
    let claims = object(payload, "payload")?;
    let signature_len = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| format!("the signature is not base64url without padding: {e}"))?
        .len();
    Ok(Decoded {
        header,
        claims,
        signature_len,
    })
}

impl Decoded {
    /// A string claim.
    pub(crate) fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A string header parameter.
    pub(crate) fn str_header(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim, in whole seconds.
    pub(crate) fn time_claim(&self, name: &str) -> Option<i64> {
        self.claims
            .get(name)
            .and_then(Value::as_f64)
            .map(|t| t.floor() as i64)
    }

    /// The audiences, whether `aud` is a string or an array.
    pub(crate) fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}
