//! One DPoP proof JWT (RFC 9449 §4.2): its header, its claims, its signature.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderValue, Method, Uri};

use super::{DpopError, DpopKey};

/// Bytes of randomness in a `jti`: 128 bits, so that two proofs never share one (RFC 9449 §4.2
/// asks for "sufficient entropy"; RFC 7519 §4.1.7 for a negligible collision probability).
const JTI_BYTES: usize = 16;

impl DpopKey {
    /// A DPoP proof for one request, for clients that are not tower services (reqwest): the value of
    /// its `DPoP` header (RFC 9449 §4.2), marked sensitive.
    ///
    /// `uri` is the request's absolute URI; the proof's `htu` is that URI without query and
    /// fragment. `access_token`, when the request carries one (as `Authorization: DPoP <token>`),
    /// is bound to the proof through `ath`; `nonce` is the last `DPoP-Nonce` the server sent. `iat`
    /// is the system clock's time. [`AddDpopLayer`](crate::AddDpopLayer) does all of this, and the
    /// nonce retry, for tower clients.
    ///
    /// ```
    /// use http::{Method, Uri};
    /// use oidc_bearer_client::DpopKey;
    ///
    /// let key = DpopKey::generate()?;
    /// let uri: Uri = "https://api.example.com/orders?page=2".parse()?;
    /// let proof = key.proof(&Method::GET, &uri, Some("the-access-token"), None)?;
    /// assert_eq!(proof.to_str()?.split('.').count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        use oidc_bearer_shared::clock::{Clock as _, SystemClock};
        self.proof_at(method, uri, access_token, nonce, SystemClock.now())
    }

    /// [`proof`](Self::proof) with `iat` from a given clock reading.
    pub(super) fn proof_at(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: Duration,
    ) -> Result<HeaderValue, DpopError> {
        let htu = format!("{}{}", origin(uri)?, uri.path());
        // RFC 9449 §4.2: `typ` is `dpop+jwt`, `alg` an asymmetric algorithm, `jwk` the public key.
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
            self.algorithm(),
            self.public_jwk()
        );
        let mut claims = serde_json::json!({
            "jti": jti()?,
            "htm": method.as_str(),
            "htu": htu,
            "iat": now.as_secs(),
        });
        if let Some(token) = access_token {
            claims["ath"] = ath(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let mut jws = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        jws.push_str(&signature);
        let mut value = HeaderValue::try_from(jws).expect("base64url and dots are header-safe");
        // A proof is good for one request only, but it is bound to the access token: keep it out of
        // HPACK tables and `Debug` output like the token itself.
        value.set_sensitive(true);
        Ok(value)
    }
}

/// The scheme and authority of an absolute URI: `https://host:port`, the server a nonce belongs to
/// and the start of `htu`.
///
/// RFC 9449 §4.2: `htu` is the HTTP target URI (RFC 9110 §7.1) without query and fragment. The
/// user information of an authority is not part of a target URI (RFC 9110 §4.2.4), so it is left
/// out too.
pub(super) fn origin(uri: &Uri) -> Result<String, DpopError> {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(DpopError::NotAbsoluteUri {
            uri: uri.to_string(),
        });
    };
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host_port)| host_port);
    Ok(format!("{scheme}://{host_port}"))
}

/// RFC 9449 §4.2: `ath` is the base64url SHA-256 of the ASCII access token.
pub(super) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

fn jti() -> Result<String, DpopError> {
    let mut bytes = [0u8; JTI_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| DpopError::Crypto)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_is_the_target_uri_without_query_fragment_or_userinfo() {
        // `Uri::path` is "/" for an empty path, as the origin-form request target is (RFC 9110 §7.1).
        let htu = |uri: &Uri| origin(uri).map(|origin| format!("{origin}{}", uri.path()));
        let cases = [
            (
                "https://api.example.com/a/b?x=1",
                "https://api.example.com/a/b",
            ),
            ("http://127.0.0.1:8080/p?q#frag", "http://127.0.0.1:8080/p"),
            ("https://user:pw@example.com/p", "https://example.com/p"),
            ("https://example.com", "https://example.com/"),
            ("https://example.com?x", "https://example.com/"),
        ];
        for (uri, expected) in cases {
            assert_eq!(htu(&uri.parse().unwrap()).unwrap(), expected, "{uri}");
        }
    }

    #[test]
    fn a_relative_uri_has_no_htu() {
        let error = origin(&"/only/a/path?x".parse().unwrap()).unwrap_err();
        assert!(
            matches!(&error, DpopError::NotAbsoluteUri { uri } if uri == "/only/a/path?x"),
            "{error:?}"
        );
    }

    /// RFC 9449 §7.1, Figure 12: the access token and its `ath`.
    #[test]
    fn ath_matches_rfc9449_example() {
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
