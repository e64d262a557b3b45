//! OpenID Connect Discovery: the issuer's `/.well-known/openid-configuration` document, of which only
//! `issuer` and `jwks_uri` are required.
//!
//! Kubernetes and GitHub Actions publish documents without `authorization_endpoint`, so we do not use
//! a full OpenID Provider metadata type (the `openidconnect` crate requires that field).

use serde::Deserialize;
use url::Url;

use crate::error::KeysError;
use crate::fetch::{Fetcher, check_url};

/// The fields of a discovery document a verifier reads, parsed as a verifier parses them (a document
/// without `issuer` or `jwks_uri` is refused; other fields are ignored).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct DiscoveryDocument {
    /// The issuer identifier; must equal the configured issuer exactly.
    pub(crate) issuer: String,
    /// Where the issuer publishes its JWK Set.
    pub(crate) jwks_uri: String,
    // `id_token_signing_alg_values_supported` is not read: it describes ID tokens, not the access
    // tokens a resource server also receives, so it never narrows the allowed algorithms (go-oidc
    // does narrow by it).
}

/// The discovery URL of an issuer: the issuer without its trailing `/`, followed by
/// `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches and checks the discovery document at `url` for `issuer`, returning the JWKS URL.
pub(crate) async fn discover(
    fetcher: &Fetcher,
    url: &Url,
    issuer: &str,
) -> Result<(DiscoveryDocument, Url), KeysError> {
    let fetched = fetcher.get(url).await?;
    let doc: DiscoveryDocument =
        serde_json::from_slice(&fetched.body).map_err(|e| KeysError::InvalidDocument {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    // OpenID Connect Discovery 1.0 §4.3: the `issuer` value returned MUST be identical to the issuer
    // URL that was used as the prefix. Exact string comparison, as go-oidc does (it offers
    // `InsecureIssuerURLContext` to relax it; we do not).
    if doc.issuer != issuer {
        return Err(KeysError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: doc.issuer,
        });
    }
    let jwks_url = Url::parse(&doc.jwks_uri).map_err(|_| KeysError::InsecureUrl {
        url: doc.jwks_uri.clone(),
    })?;
    check_url(&jwks_url, fetcher.settings().allow_insecure_http).map_err(|_| {
        KeysError::InsecureUrl {
            url: doc.jwks_uri.clone(),
        }
    })?;
    Ok((doc, jwks_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_drops_one_trailing_slash() {
        assert_eq!(
            discovery_url("https://accounts.google.com/"),
            "https://accounts.google.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://container.googleapis.com/v1/projects/p/locations/l/clusters/c"),
            "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c/.well-known/openid-configuration"
        );
    }

    #[test]
    fn kubernetes_minimal_document_parses_and_extra_fields_are_ignored() {
        let doc: DiscoveryDocument = serde_json::from_str(
            r#"{"issuer":"https://kubernetes.default.svc.cluster.local",
                "jwks_uri":"https://10.0.0.1:6443/openid/v1/jwks",
                "response_types_supported":["id_token"],
                "subject_types_supported":["public"],
                "id_token_signing_alg_values_supported":["RS256"],
                "something_new": {"nested": true}}"#,
        )
        .unwrap();
        assert_eq!(doc.issuer, "https://kubernetes.default.svc.cluster.local");
        assert_eq!(doc.jwks_uri, "https://10.0.0.1:6443/openid/v1/jwks");
    }

    #[test]
    fn document_without_jwks_uri_is_refused() {
        assert!(serde_json::from_str::<DiscoveryDocument>(r#"{"issuer":"https://a"}"#).is_err());
    }
}
