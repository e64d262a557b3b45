//! Server-provided nonces (RFC 9449 §8, §9): the last `DPoP-Nonce` each server sent, and reading a
//! `use_dpop_nonce` challenge.

use std::{collections::HashMap, sync::Mutex};

use http::{HeaderMap, HeaderName, header::WWW_AUTHENTICATE};

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub(super) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The longest nonce kept, in bytes. RFC 9449 sets no limit; a nonce goes into every later proof,
/// so one from a misbehaving server must not grow every request.
const MAX_NONCE_LEN: usize = 1024;

/// The most servers (origins) whose nonce is kept; one more evicts one of them.
const MAX_ORIGINS: usize = 64;

/// The last nonce each server (origin: scheme, host and port) provided.
///
/// RFC 9449 §8 and §9: nonces are chosen by each server, the authorization server and each
/// resource server apart, so one is kept per origin. The map is bounded: past [`MAX_ORIGINS`] a
/// server's nonce is forgotten, which costs that server one `use_dpop_nonce` round trip.
#[derive(Default)]
pub(super) struct Nonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl Nonces {
    /// The nonce to put in the next proof for `origin`.
    pub(super) fn get(&self, origin: &str) -> Option<String> {
        self.lock().get(origin).cloned()
    }

    /// Keeps the `DPoP-Nonce` of a response from `origin`, if it has a valid one (RFC 9449 §8.2:
    /// a server may send a new nonce with any response). Returns whether it had one.
    pub(super) fn observe(&self, origin: &str, headers: &HeaderMap) -> bool {
        let Some(nonce) = response_nonce(headers) else {
            return false;
        };
        let mut map = self.lock();
        if map.len() >= MAX_ORIGINS
            && !map.contains_key(origin)
            && let Some(evicted) = map.keys().next().cloned()
        {
            map.remove(&evicted);
        }
        map.insert(origin.to_owned(), nonce);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map holds plain strings, and no code panics while holding the lock.
        self.by_origin
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The response's `DPoP-Nonce`, when it has exactly one that RFC 9449 §8.1 allows:
/// `nonce = 1*NQCHAR`, `NQCHAR = %x21 / %x23-5B / %x5D-7E`.
fn response_nonce(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(DPOP_NONCE).iter();
    let (value, None) = (values.next()?, values.next()) else {
        tracing::debug!("ignoring a response with several DPoP-Nonce headers");
        return None;
    };
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_NONCE_LEN
        && bytes
            .iter()
            .all(|&b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
    if !valid {
        tracing::debug!(
            len = bytes.len(),
            "ignoring a DPoP-Nonce that RFC 9449 §8.1 does not allow"
        );
        return None;
    }
    // NQCHAR is ASCII.
    value.to_str().ok().map(str::to_owned)
}

/// Whether the response challenges with `DPoP error="use_dpop_nonce"` (RFC 9449 §9), in any of its
/// `WWW-Authenticate` headers, among any other challenges (RFC 9110 §11.6.1).
pub(super) fn asks_for_nonce(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            challenges(value).any(|(scheme, params)| {
                scheme.eq_ignore_ascii_case("DPoP")
                    && params.iter().any(|(name, value)| {
                        name.eq_ignore_ascii_case("error") && value == "use_dpop_nonce"
                    })
            })
        })
}

/// The challenges of one `WWW-Authenticate` value (RFC 9110 §11.6.1): each scheme with its
/// auth-params, values unquoted. A `token68` challenge yields no params. Lenient: this only looks
/// for one error code, and a malformed header simply does not contain it.
fn challenges(value: &str) -> impl Iterator<Item = (&str, Vec<(&str, String)>)> {
    let mut out: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    for element in split_outside_quotes(value) {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        // `scheme [param]` starts a challenge; `name = value` continues the current one.
        let first_token_end = element.find([' ', '\t', '=']).unwrap_or(element.len());
        let starts_challenge = !element[first_token_end..].trim_start().starts_with('=');
        let param = if starts_challenge {
            out.push((&element[..first_token_end], Vec::new()));
            element[first_token_end..].trim_start()
        } else {
            element
        };
        if let (Some((_, params)), Some((name, raw))) = (out.last_mut(), param.split_once('=')) {
            let raw = raw.trim();
            if !name.trim().is_empty() && !raw.is_empty() {
                params.push((name.trim(), unquote(raw)));
            }
        }
    }
    out.into_iter()
}

/// Splits at commas that are not inside a quoted string.
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// A token as is; a quoted-string without its quotes and escapes (RFC 9110 §5.6.4).
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn use_dpop_nonce_is_found_among_challenges() {
        let cases = [
            (
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
                true,
            ),
            (r#"dpop error=use_dpop_nonce"#, true),
            (
                r#"Bearer realm="api", DPoP algs="ES256 ES384", error="use_dpop_nonce""#,
                true,
            ),
            (r#"DPoP algs="ES256", error="use_dpop_nonce", Bearer"#, true),
            (
                r#"DPoP error_description="a, b \"c\"", error="use_dpop_nonce""#,
                true,
            ),
            (r#"DPoP error="invalid_dpop_proof""#, false),
            (r#"Bearer error="use_dpop_nonce""#, false),
            (r#"DPoP error_description="error=use_dpop_nonce""#, false),
            (r#"DPoP"#, false),
            (r#"Basic abc==, DPoP"#, false),
            ("", false),
        ];
        for (value, expected) in cases {
            assert_eq!(
                asks_for_nonce(&headers(&[("www-authenticate", value)])),
                expected,
                "{value}"
            );
        }
        // A second WWW-Authenticate header counts too.
        assert!(asks_for_nonce(&headers(&[
            ("www-authenticate", r#"Bearer realm="api""#),
            ("www-authenticate", r#"DPoP error="use_dpop_nonce""#),
        ])));
    }

    #[test]
    fn only_valid_nonces_are_kept_per_origin() {
        let nonces = Nonces::default();
        assert!(nonces.observe(
            "https://a",
            &headers(&[("dpop-nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v")])
        ));
        assert_eq!(
            nonces.get("https://a").as_deref(),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v")
        );
        assert_eq!(nonces.get("https://b"), None);
        let long = "n".repeat(MAX_NONCE_LEN + 1);
        for bad in ["has space", "quote\"d", "back\\slash", long.as_str()] {
            assert!(
                !nonces.observe("https://a", &headers(&[("dpop-nonce", bad)])),
                "{bad}"
            );
        }
        assert!(!nonces.observe(
            "https://a",
            &headers(&[("dpop-nonce", "x"), ("dpop-nonce", "y")])
        ));
        assert_eq!(
            nonces.get("https://a").as_deref(),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v")
        );
    }

    #[test]
    fn the_nonce_map_is_bounded() {
        let nonces = Nonces::default();
        for i in 0..MAX_ORIGINS + 10 {
            nonces.observe(&format!("https://h{i}"), &headers(&[("dpop-nonce", "n")]));
        }
        assert_eq!(nonces.lock().len(), MAX_ORIGINS);
        assert!(
            nonces
                .get(&format!("https://h{}", MAX_ORIGINS + 9))
                .is_some()
        );
    }
}
