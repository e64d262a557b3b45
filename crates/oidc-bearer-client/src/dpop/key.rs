//! The key a client proves possession of: [`DpopKey`], its public JWK and its RFC 7638 thumbprint.

use std::fmt;

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        EcdsaSigningAlgorithm, KeyPair as _,
    },
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::InvalidDpopKey;

/// The curves a [`DpopKey`] may be on, with their JWS algorithm (RFC 7518 §3.4) and JWK curve name
/// (RFC 7518 §6.2.1.1).
#[derive(Clone, Copy)]
struct Curve {
    alg: &'static str,
    crv: &'static str,
    signing: &'static EcdsaSigningAlgorithm,
    /// Bytes per coordinate.
    coordinate_len: usize,
}

const P256: Curve = Curve {
    alg: "ES256",
    crv: "P-256",
    signing: &ECDSA_P256_SHA256_FIXED_SIGNING,
    coordinate_len: 32,
};

const P384: Curve = Curve {
    alg: "ES384",
    crv: "P-384",
    signing: &ECDSA_P384_SHA384_FIXED_SIGNING,
    coordinate_len: 48,
};

/// A DPoP key pair (RFC 9449 §2): the private key that signs proofs, its public JWK that each proof
/// carries, and the JWK's thumbprint that a token is bound to.
///
/// [`generate`](Self::generate) makes an ES256 (P-256) key, the algorithm every DPoP server must
/// support in practice; [`from_pkcs8_der`](Self::from_pkcs8_der) takes your own P-256 (ES256) or
/// P-384 (ES384) key, for a key that outlives the process or lives in a secret. The private key
/// never shows up in `Debug` output.
///
/// ```
/// use oidc_bearer_client::DpopKey;
///
/// let key = DpopKey::generate()?;
/// assert_eq!(key.algorithm(), "ES256");
/// // RFC 7638: base64url of a SHA-256 digest, 43 characters. Ask the authorization server for a
/// // token bound to it (RFC 9449 §10: the `dpop_jkt` authorization request parameter).
/// assert_eq!(key.thumbprint().len(), 43);
/// assert!(!key.public_jwk().contains("\"d\""));
/// # Ok::<(), oidc_bearer_client::InvalidDpopKey>(())
/// ```
pub struct DpopKey {
    pair: EcdsaKeyPair,
    curve: Curve,
    /// The public JWK as JSON: `kty`, `crv`, `x`, `y` (never `d`).
    jwk: String,
    /// RFC 7638 thumbprint, base64url.
    thumbprint: String,
}

impl DpopKey {
    /// A new ES256 key (P-256), from the operating system's random source.
    pub fn generate() -> Result<Self, InvalidDpopKey> {
        let pair = EcdsaKeyPair::generate(P256.signing).map_err(|_| InvalidDpopKey::Generate)?;
        Self::from_pair(pair, P256)
    }

    /// Your own key, as an unencrypted PKCS#8 document (DER): a P-256 key signs ES256 proofs, a
    /// P-384 key ES384 proofs.
    ///
    /// From PEM: `openssl pkcs8 -topk8 -nocrypt -in key.pem -outform DER -out key.der`.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, InvalidDpopKey> {
        let mut reason = "";
        for curve in [P256, P384] {
            match EcdsaKeyPair::from_pkcs8(curve.signing, der) {
                Ok(pair) => return Self::from_pair(pair, curve),
                Err(rejected) => reason = rejected.description_(),
            }
        }
        Err(InvalidDpopKey::Rejected { reason })
    }

    fn from_pair(pair: EcdsaKeyPair, curve: Curve) -> Result<Self, InvalidDpopKey> {
        // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let n = curve.coordinate_len;
        if point.len() != 1 + 2 * n || point[0] != 0x04 {
            return Err(InvalidDpopKey::Rejected {
                reason: "unexpected public key encoding",
            });
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..=n]);
        let y = URL_SAFE_NO_PAD.encode(&point[1 + n..]);
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace. The same
        // text serves as the proof's `jwk` header (RFC 9449 §4.2: public members only).
        let jwk = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{x}","y":"{y}"}}"#,
            curve.crv
        );
        let thumbprint = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, jwk.as_bytes()));
        Ok(Self {
            pair,
            curve,
            jwk,
            thumbprint,
        })
    }

    /// The JWS algorithm of the proofs: `ES256` or `ES384`.
    pub fn algorithm(&self) -> &'static str {
        self.curve.alg
    }

    /// The public key as a JWK (JSON text with `crv`, `kty`, `x`, `y`), as each proof's header
    /// carries it.
    pub fn public_jwk(&self) -> &str {
        &self.jwk
    }

    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url: the `jkt` a bound token's
    /// `cnf.jkt` holds (RFC 9449 §6.1), and the `dpop_jkt` to request a token with (§10).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Signs `signing_input` (JWS compact serialization, RFC 7515 §5.1), returning the base64url
    /// signature: R || S, each a coordinate's length (RFC 7518 §3.4).
    pub(super) fn sign(&self, signing_input: &[u8]) -> Result<String, super::DpopError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input)
            .map_err(|_| super::DpopError::Crypto)?;
        Ok(URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.curve.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint of an EC JWK given by its members, for the test below.
#[cfg(test)]
fn ec_thumbprint(crv: &str, x: &str, y: &str) -> String {
    let jwk = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, jwk.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9449's example key (§4.1, Figure 4's `jwk`) and its `jkt` (§6.1, Figure 7).
    #[test]
    fn thumbprint_matches_rfc9449_example() {
        assert_eq!(
            ec_thumbprint(
                "P-256",
                "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
            ),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn a_generated_key_has_a_public_jwk_and_its_thumbprint() {
        let key = DpopKey::generate().unwrap();
        let jwk: serde_json::Value = serde_json::from_str(key.public_jwk()).unwrap();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert!(jwk.get("d").is_none());
        let (x, y) = (jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
        assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap().len(), 32);
        assert_eq!(key.thumbprint(), ec_thumbprint("P-256", x, y));
        assert!(!format!("{key:?}").contains(x));
    }

    #[test]
    fn pkcs8_keys_of_both_curves_are_accepted_and_others_refused() {
        let rng = SystemRandom::new();
        for (curve, alg) in [(P256, "ES256"), (P384, "ES384")] {
            let der = EcdsaKeyPair::generate_pkcs8(curve.signing, &rng).unwrap();
            let key = DpopKey::from_pkcs8_der(der.as_ref()).unwrap();
            assert_eq!(key.algorithm(), alg);
            let jwk: serde_json::Value = serde_json::from_str(key.public_jwk()).unwrap();
            assert_eq!(jwk["crv"], curve.crv);
        }
        assert!(matches!(
            DpopKey::from_pkcs8_der(b"not a key"),
            Err(InvalidDpopKey::Rejected { .. })
        ));
    }
}
