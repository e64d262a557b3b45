//! DPoP (RFC 9449) from the client's side, for testing resource servers: [`DpopKey`] holds a
//! client's key and its RFC 7638 thumbprint (what [`TokenBuilder::dpop_bound`] puts in a token's
//! `cnf.jkt`); [`DpopProof`] signs a proof for one request, with a knob to break each rule.
//!
//! The thumbprint and the proof are written here from RFC 7638 and RFC 9449 alone, not with
//! `oidc-bearer`'s code, so that tests compare two implementations.
//!
//! [`TokenBuilder::dpop_bound`]: crate::TokenBuilder::dpop_bound

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::KeyAlg;
use crate::issuer::token::{apply_overrides, claim_value, now, signing_input, uuid};
use crate::key::TestKey;

/// A client's DPoP key: signs proofs, and binds tokens by its thumbprint.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_bearer_testing::{DpopKey, KeyAlg, TestIssuer};
///
/// let issuer = TestIssuer::start().await;
/// let key = DpopKey::generate(KeyAlg::ES256);
/// let token = issuer.token().aud("my-api").dpop_bound(&key).sign();
/// let proof = key.proof("GET", "https://api.example/orders").access_token(&token).sign();
/// // Sent as `Authorization: DPoP <token>` and `DPoP: <proof>`.
/// assert_eq!(proof.split('.').count(), 3);
/// # }
/// ```
#[derive(Clone)]
pub struct DpopKey {
    key: Arc<TestKey>,
}

impl DpopKey {
    /// A fresh key of `alg` (any [`KeyAlg`] but the ML-DSA ones, which have no RFC 7638
    /// thumbprint).
    ///
    /// # Panics
    /// For an ML-DSA algorithm.
    pub fn generate(alg: KeyAlg) -> DpopKey {
        assert!(
            !alg.is_ml_dsa(),
            "oidc-bearer-testing: DPoP keys need an RFC 7638 thumbprint, which ML-DSA keys lack"
        );
        DpopKey {
            key: Arc::new(TestKey::generate(alg)),
        }
    }

    /// The key's algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.key.alg()
    }

    /// The public JWK, as a proof's header carries it: the key's members only (no `kid`, `use`
    /// or `alg`).
    pub fn public_jwk(&self) -> Value {
        Value::Object(header_jwk(&self.key))
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members in lexicographic
    /// order, as JSON without whitespace (§3) — a bound token's `cnf.jkt` (RFC 9449 §6.1).
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        let members: &[&str] = match jwk["kty"].as_str() {
            Some("RSA") => &["e", "kty", "n"],
            Some("EC") => &["crv", "kty", "x", "y"],
            _ => &["crv", "kty", "x"],
        };
        let canonical: Map<String, Value> = members
            .iter()
            .map(|m| ((*m).to_owned(), jwk[*m].clone()))
            .collect();
        // Inserted in lexicographic order, which serde_json keeps whether or not its
        // `preserve_order` feature is on; written without whitespace; the values are plain
        // strings.
        let text = serde_json::to_string(&canonical).expect("JSON values serialize");
        URL_SAFE_NO_PAD.encode(digest(&SHA256, text.as_bytes()))
    }

    /// A proof for a request with `method` to `url`: header `{"typ": "dpop+jwt", "alg": <key
    /// alg>, "jwk": <public jwk>}`, claims `{"jti": <random>, "htm": method, "htu": url,
    /// "iat": now}`. Add [`access_token`](DpopProof::access_token) for a resource request.
    pub fn proof(&self, method: &str, url: &str) -> DpopProof {
        let mut claims = Map::new();
        claims.insert("jti".into(), uuid().into());
        claims.insert("htm".into(), method.into());
        claims.insert("htu".into(), url.into());
        claims.insert("iat".into(), now().into());
        DpopProof {
            key: self.key.clone(),
            signer: self.key.clone(),
            claims,
            header: Map::new(),
            jwk: Map::new(),
        }
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.key.alg())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

/// A DPoP proof being built (from [`DpopKey::proof`]); every rule of RFC 9449 §4.3 can be broken.
#[derive(Clone)]
#[must_use = "a proof does nothing until signed"]
pub struct DpopProof {
    /// The key whose public JWK the header carries.
    key: Arc<TestKey>,
    /// The key that signs (another one breaks the signature).
    signer: Arc<TestKey>,
    claims: Map<String, Value>,
    /// Header fields over the defaults; `Null` removes one.
    header: Map<String, Value>,
    /// JWK members over the key's; `Null` removes one.
    jwk: Map<String, Value>,
}

impl DpopProof {
    /// Sets `ath` to base64url(SHA-256(`token`)) (RFC 9449 §4.2), binding the proof to it.
    pub fn access_token(self, token: &str) -> Self {
        let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
        self.claim("ath", ath)
    }

    /// Sets the server-provided `nonce` (RFC 9449 §9).
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce)
    }

    /// Sets `iat` to these Unix seconds.
    pub fn iat(self, unix_secs: i64) -> Self {
        self.claim("iat", unix_secs)
    }

    /// Sets `jti` (to send the same one twice, say).
    pub fn jti(self, jti: &str) -> Self {
        self.claim("jti", jti)
    }

    /// Sets or replaces any claim (`htm`, `htu`, `ath`, or a wrong type such as `json!(1)`).
    ///
    /// # Panics
    /// If `value` cannot be written as JSON.
    pub fn claim(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.claims
            .insert(name.to_owned(), claim_value(name, value));
        self
    }

    /// Removes a claim (`jti`, `htm`, `htu`, `iat`, `ath`…).
    pub fn remove_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets or replaces a header field (`typ`, `alg`, `jwk`…); `Value::Null` removes it. The
    /// proof is still signed with the key's own algorithm.
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.to_owned(), value);
        self
    }

    /// Sets or replaces a member of the header's `jwk` (`"d"` to leak a private key, a padded
    /// `"x"`…); `Value::Null` removes it.
    pub fn jwk_member(mut self, name: &str, value: Value) -> Self {
        self.jwk.insert(name.to_owned(), value);
        self
    }

    /// Signs with `other`'s key while the header still carries this key's `jwk`: a signature
    /// that does not verify.
    pub fn signed_by(mut self, other: &DpopKey) -> Self {
        self.signer = other.key.clone();
        self
    }

    /// The claims as they stand.
    pub fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// Signs the proof: the compact JWS for the `DPoP` header.
    pub fn sign(self) -> String {
        let mut jwk = header_jwk(&self.key);
        apply_overrides(&mut jwk, &self.jwk);
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert("alg".into(), json!(self.signer.alg().name()));
        header.insert("jwk".into(), Value::Object(jwk));
        apply_overrides(&mut header, &self.header);
        let input = signing_input(header, self.claims);
        let signature = self.signer.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A key's public JWK members alone, as a proof's header carries them.
fn header_jwk(key: &TestKey) -> Map<String, Value> {
    let mut jwk = match key.public_jwk("") {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for member in ["kid", "use", "alg"] {
        jwk.remove(member);
    }
    jwk
}

impl fmt::Debug for DpopProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopProof")
            .field("claims", &self.claims)
            .field("header", &self.header)
            .field("jwk", &self.jwk)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proof's header carries the bare public JWK (and what a knob adds to it); thumbprints are
    /// 43 characters (a base64url SHA-256) and differ per key.
    #[test]
    fn proofs_carry_the_public_jwk() {
        let key = DpopKey::generate(KeyAlg::ES256);
        let jwk = key.public_jwk();
        assert_eq!(jwk.as_object().unwrap().len(), 4, "{jwk}");
        assert_eq!(key.thumbprint().len(), 43);
        assert_ne!(
            key.thumbprint(),
            DpopKey::generate(KeyAlg::ES256).thumbprint()
        );
        let proof = key
            .proof("GET", "https://a.example/x")
            .jwk_member("d", json!("AAAA"));
        let token = proof.sign();
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["d"], "AAAA");
    }
}
