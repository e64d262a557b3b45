//! What the issuer serves: the discovery document (OpenID Connect Discovery 1.0 §4) and JWKS
//! documents (RFC 7517 §5), and the switches that change them.

use serde_json::{Value, json};

use super::{DISCOVERY_PATH, Shared, TestIssuer};

impl Shared {
    pub(super) fn jwks_uri(&self) -> String {
        let state = self.lock();
        state
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}{}", self.base_url(), self.jwks_path))
    }

    pub(crate) fn discovery_document(&self) -> Value {
        let state = self.lock();
        let base = self.base_url();
        let issuer = state.discovery_issuer.as_deref().unwrap_or(&self.issuer);
        let jwks_uri = state
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{base}{}", self.jwks_path));
        // The algorithms of the published keys, as Kubernetes advertises them.
        let mut algs: Vec<&str> = Vec::new();
        for entry in state.keys.iter().filter(|e| e.published) {
            let name = entry.key.alg().name();
            if !algs.contains(&name) {
                algs.push(name);
            }
        }
        if algs.is_empty() {
            algs.push("RS256");
        }
        if state.full_discovery {
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/userinfo"),
                "jwks_uri": jwks_uri,
                "scopes_supported": ["openid", "email", "profile"],
                "response_types_supported": ["code", "id_token", "token id_token"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": algs,
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"],
                "code_challenge_methods_supported": ["S256"],
            })
        } else {
            // What a Kubernetes API server serves for service-account issuer discovery.
            json!({
                "issuer": issuer,
                "jwks_uri": jwks_uri,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": algs,
            })
        }
    }

    /// The JWKS (all published keys, or just `kids`) and the Cache-Control value to send.
    pub(crate) fn jwks_document(&self, kids: Option<&[String]>) -> (Value, Option<String>) {
        let state = self.lock();
        let mut keys = Vec::new();
        for entry in &state.keys {
            let wanted = match kids {
                None => entry.published,
                Some(kids) => kids.contains(&entry.kid),
            };
            if wanted {
                keys.push(entry.key.public_jwk(&entry.kid));
            }
        }
        for jwk in &state.raw_jwks {
            let wanted = match kids {
                None => true,
                Some(kids) => jwk["kid"]
                    .as_str()
                    .is_some_and(|k| kids.iter().any(|w| w == k)),
            };
            if wanted {
                keys.push(jwk.clone());
            }
        }
        (json!({ "keys": keys }), state.cache_control.clone())
    }
}

impl TestIssuer {
    /// The JWKS the jwks path serves right now: `{"keys": [...]}`.
    pub fn jwks_json(&self) -> Value {
        self.shared().jwks_document(None).0
    }

    /// The discovery document served right now.
    pub fn discovery_json(&self) -> Value {
        self.shared().discovery_document()
    }

    /// The `Cache-Control` header sent with JWKS responses; `None` (the default) sends none.
    ///
    /// # Panics
    /// If `value` is not a valid header value.
    pub fn set_cache_control(&self, value: Option<&str>) {
        if let Some(v) = value {
            assert!(
                hyper::header::HeaderValue::from_str(v).is_ok(),
                "oidc-bearer-testing: set_cache_control({v:?}) is not a valid header value"
            );
        }
        self.shared().lock().cache_control = value.map(str::to_owned);
    }

    /// Advertises `issuer` in the discovery document instead of [`Self::issuer`] (tokens keep
    /// the real one), to test that a mismatch is refused (OpenID Connect Discovery §4.3).
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.shared().lock().discovery_issuer = Some(issuer.to_owned());
    }

    /// Advertises `uri` as `jwks_uri` in discovery. The JWKS is still served at
    /// [`Self::jwks_path`]; serve other paths with [`Self::serve_jwks_at`].
    pub fn set_jwks_uri(&self, uri: &str) {
        self.shared().lock().jwks_uri = Some(uri.to_owned());
    }

    /// Serves the full discovery document of a general OpenID provider (`true`) or the minimal
    /// Kubernetes one (`false`, the default).
    pub fn set_full_discovery(&self, full: bool) {
        self.shared().lock().full_discovery = full;
    }

    /// Also serves, at `path`, a JWKS with just the keys with these kids, published or not
    /// (Google serves one such document per service account). Requests to it count in
    /// [`Self::jwks_fetches`] and wait on [`Self::hold_jwks`] like the main JWKS.
    ///
    /// # Panics
    /// If `path` does not start with `/` or is the discovery or main JWKS path, or a kid is
    /// unknown.
    pub fn serve_jwks_at(&self, path: &str, kids: &[&str]) {
        check_path("serve_jwks_at", path);
        assert!(
            path != self.shared().jwks_path,
            "oidc-bearer-testing: serve_jwks_at({path:?}): that is the main JWKS path"
        );
        let mut state = self.shared().lock();
        for kid in kids {
            let known = state.keys.iter().any(|e| e.kid == *kid)
                || state.raw_jwks.iter().any(|j| j["kid"] == *kid);
            if !known {
                let known = state.known_kids();
                drop(state);
                panic!(
                    "oidc-bearer-testing: serve_jwks_at: no key with kid {kid:?} (keys: {known})"
                );
            }
        }
        let kids = kids.iter().map(|k| (*k).to_owned()).collect();
        state.extra_jwks.insert(path.to_owned(), kids);
    }
}

/// Panics unless `path` can serve a JWKS: it starts with `/` and is not the discovery path.
pub(super) fn check_path(what: &str, path: &str) {
    assert!(
        path.starts_with('/'),
        "oidc-bearer-testing: {what}({path:?}): the path must start with '/'"
    );
    assert!(
        path != DISCOVERY_PATH,
        "oidc-bearer-testing: {what}({path:?}): that is the discovery path"
    );
}
