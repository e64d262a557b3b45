//! Signing keys: generation with aws-lc-rs, public JWK and PEM export, and JWS signatures
//! (RFC 7518 §3, RFC 8037, RFC 9864, and ML-DSA as draft-ietf-cose-dilithium puts it in JOSE).
//!
//! We sign with aws-lc-rs directly rather than through `jsonwebtoken`: this crate is a
//! dev-dependency of users whose `oidc-bearer` picks one of jsonwebtoken's crypto backends by
//! feature, and a second, different choice here would be unified into theirs.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, PqdsaKeyPair, PqdsaSigningAlgorithm,
    RsaEncoding, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The signature algorithm of a key the issuer generates (RFC 7518 §3.1, RFC 8037 §3.1, RFC 9864
/// §2, draft-ietf-cose-dilithium).
///
/// ```
/// use oidc_bearer_testing::KeyAlg;
/// assert_eq!(KeyAlg::PS384.name(), "PS384");
/// assert_eq!("EdDSA".parse::<KeyAlg>(), Ok(KeyAlg::EdDSA));
/// assert_eq!("ML-DSA-65".parse::<KeyAlg>(), Ok(KeyAlg::MlDsa65));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit key).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (2048-bit key).
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (2048-bit key).
    RS512,
    /// RSASSA-PSS with SHA-256, salt as long as the digest (2048-bit key).
    PS256,
    /// RSASSA-PSS with SHA-384, salt as long as the digest (2048-bit key).
    PS384,
    /// RSASSA-PSS with SHA-512, salt as long as the digest (2048-bit key).
    PS512,
    /// ECDSA on P-256 with SHA-256, signature as fixed-width `r || s`.
    ES256,
    /// ECDSA on P-384 with SHA-384, signature as fixed-width `r || s`.
    ES384,
    /// ECDSA on P-521 with SHA-512, signature as fixed-width `r || s` (RFC 7518 §3.4).
    ES512,
    /// Ed25519 under the polymorphic name `EdDSA` (RFC 8037).
    EdDSA,
    /// Ed25519 under its fully-specified name `Ed25519` (RFC 9864 §2); the JWK is the same OKP key
    /// with `alg: "Ed25519"`.
    Ed25519,
    /// ML-DSA-44 (FIPS 204): a JWK of kty `AKP` with the raw public key in `pub`.
    MlDsa44,
    /// ML-DSA-65 (FIPS 204): a JWK of kty `AKP` with the raw public key in `pub`.
    MlDsa65,
    /// ML-DSA-87 (FIPS 204): a JWK of kty `AKP` with the raw public key in `pub`.
    MlDsa87,
}

impl KeyAlg {
    /// Every algorithm, in declaration order (handy for table tests). A verifier may support fewer:
    /// see [`KeyAlg::is_ml_dsa`].
    pub const ALL: [KeyAlg; 14] = [
        KeyAlg::RS256,
        KeyAlg::RS384,
        KeyAlg::RS512,
        KeyAlg::PS256,
        KeyAlg::PS384,
        KeyAlg::PS512,
        KeyAlg::ES256,
        KeyAlg::ES384,
        KeyAlg::ES512,
        KeyAlg::EdDSA,
        KeyAlg::Ed25519,
        KeyAlg::MlDsa44,
        KeyAlg::MlDsa65,
        KeyAlg::MlDsa87,
    ];

    /// Whether this is one of the ML-DSA (post-quantum, still draft in JOSE) algorithms, which a
    /// verifier may support only behind a feature.
    pub fn is_ml_dsa(&self) -> bool {
        matches!(self, KeyAlg::MlDsa44 | KeyAlg::MlDsa65 | KeyAlg::MlDsa87)
    }

    /// The JOSE name, as it appears in a JWS header's `alg` and a JWK's `alg`.
    pub fn name(&self) -> &'static str {
        match self {
            KeyAlg::RS256 => "RS256",
            KeyAlg::RS384 => "RS384",
            KeyAlg::RS512 => "RS512",
            KeyAlg::PS256 => "PS256",
            KeyAlg::PS384 => "PS384",
            KeyAlg::PS512 => "PS512",
            KeyAlg::ES256 => "ES256",
            KeyAlg::ES384 => "ES384",
            KeyAlg::ES512 => "ES512",
            KeyAlg::EdDSA => "EdDSA",
            KeyAlg::Ed25519 => "Ed25519",
            KeyAlg::MlDsa44 => "ML-DSA-44",
            KeyAlg::MlDsa65 => "ML-DSA-65",
            KeyAlg::MlDsa87 => "ML-DSA-87",
        }
    }

    fn ml_dsa_signing(self) -> Option<&'static PqdsaSigningAlgorithm> {
        Some(match self {
            KeyAlg::MlDsa44 => &signature::ML_DSA_44_SIGNING,
            KeyAlg::MlDsa65 => &signature::ML_DSA_65_SIGNING,
            KeyAlg::MlDsa87 => &signature::ML_DSA_87_SIGNING,
            _ => return None,
        })
    }

    fn rsa_encoding(self) -> Option<&'static dyn RsaEncoding> {
        Some(match self {
            KeyAlg::RS256 => &signature::RSA_PKCS1_SHA256,
            KeyAlg::RS384 => &signature::RSA_PKCS1_SHA384,
            KeyAlg::RS512 => &signature::RSA_PKCS1_SHA512,
            // aws-lc-rs defaults the PSS salt to the digest length, which is what RFC 7518 §3.5
            // requires.
            KeyAlg::PS256 => &signature::RSA_PSS_SHA256,
            KeyAlg::PS384 => &signature::RSA_PSS_SHA384,
            KeyAlg::PS512 => &signature::RSA_PSS_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error from parsing a [`KeyAlg`] out of a name it does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKeyAlg(pub String);

impl fmt::Display for UnknownKeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown key algorithm {:?}; expected one of RS256, RS384, RS512, PS256, PS384, \
             PS512, ES256, ES384, ES512, EdDSA, Ed25519, ML-DSA-44, ML-DSA-65, ML-DSA-87",
            self.0
        )
    }
}

impl std::error::Error for UnknownKeyAlg {}

impl std::str::FromStr for KeyAlg {
    type Err = UnknownKeyAlg;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlg::ALL
            .into_iter()
            .find(|alg| alg.name() == s)
            .ok_or_else(|| UnknownKeyAlg(s.to_owned()))
    }
}

enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    MlDsa(PqdsaKeyPair),
}

/// A generated key pair with its public forms computed once.
pub(crate) struct TestKey {
    alg: KeyAlg,
    signer: Signer,
    /// The public JWK without `kid` (the kid belongs to where the key is published).
    jwk: serde_json::Map<String, Value>,
    spki_der: Vec<u8>,
}

impl TestKey {
    /// Generates a fresh key; panics if aws-lc-rs cannot (it only fails on internal errors).
    pub(crate) fn generate(alg: KeyAlg) -> TestKey {
        let fail = |e| -> ! { panic!("oidc-bearer-testing: generating a {alg} key failed: {e}") };
        let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
        let (signer, jwk, spki_der) = match alg {
            KeyAlg::RS256
            | KeyAlg::RS384
            | KeyAlg::RS512
            | KeyAlg::PS256
            | KeyAlg::PS384
            | KeyAlg::PS512 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap_or_else(|e| fail(e));
                let public = pair.public_key();
                // RFC 7518 §6.3.1: n and e are unsigned big-endian without leading zeros.
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                let der = public.as_der().unwrap_or_else(|e| fail(e));
                let der = der.as_ref().to_vec();
                (Signer::Rsa(pair), jwk, der)
            }
            KeyAlg::ES256 | KeyAlg::ES384 | KeyAlg::ES512 => {
                let (signing, crv, coord_len) = match alg {
                    KeyAlg::ES256 => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
                    KeyAlg::ES384 => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
                    _ => (&signature::ECDSA_P521_SHA512_FIXED_SIGNING, "P-521", 66),
                };
                let pair = EcdsaKeyPair::generate(signing).unwrap_or_else(|e| fail(e));
                let public = pair.public_key();
                // Uncompressed SEC1 point: 0x04 || x || y, each coordinate full width
                // (RFC 7518 §6.2.1.2 wants exactly the field size).
                let point = public.as_ref();
                assert_eq!(
                    point.len(),
                    1 + 2 * coord_len,
                    "unexpected EC point encoding"
                );
                let jwk = json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64(&point[1..=coord_len]),
                    "y": b64(&point[1 + coord_len..]),
                });
                let der = public.as_der().unwrap_or_else(|e| fail(e));
                let der = der.as_ref().to_vec();
                (Signer::Ecdsa(pair), jwk, der)
            }
            KeyAlg::EdDSA | KeyAlg::Ed25519 => {
                let pair = Ed25519KeyPair::generate().unwrap_or_else(|e| fail(e));
                let public = pair.public_key();
                // RFC 8037 §2: an OKP key with the raw 32-byte public key in x.
                let jwk = json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64(public.as_ref()),
                });
                let der = public.as_der().unwrap_or_else(|e| fail(e));
                let der = der.as_ref().to_vec();
                (Signer::Ed25519(pair), jwk, der)
            }
            KeyAlg::MlDsa44 | KeyAlg::MlDsa65 | KeyAlg::MlDsa87 => {
                let signing = alg.ml_dsa_signing().expect("an ML-DSA alg");
                let pair = PqdsaKeyPair::generate(signing).unwrap_or_else(|e| fail(e));
                let public = pair.public_key();
                // draft-ietf-cose-dilithium: an "algorithm key pair" with the raw public key
                // (FIPS 204 pkEncode) in `pub`; the `alg` member, required for AKP, is added with
                // the kid.
                let jwk = json!({
                    "kty": "AKP",
                    "pub": b64(public.as_ref()),
                });
                let der = public.as_der().unwrap_or_else(|e| fail(e));
                let der = der.as_ref().to_vec();
                (Signer::MlDsa(pair), jwk, der)
            }
        };
        let Value::Object(jwk) = jwk else {
            unreachable!("json! object literal")
        };
        TestKey {
            alg,
            signer,
            jwk,
            spki_der,
        }
    }

    pub(crate) fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public JWK as published under `kid`, with `use: "sig"` and the key's `alg`.
    pub(crate) fn public_jwk(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk.insert("kid".into(), kid.into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert("alg".into(), self.alg.name().into());
        Value::Object(jwk)
    }

    /// The public key as a PEM `PUBLIC KEY` (an X.509 SubjectPublicKeyInfo, RFC 7468 §13).
    pub(crate) fn public_key_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.spki_der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Signs `message` with the key's own algorithm (whatever a token's header claims).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let fail = |e| -> ! { panic!("oidc-bearer-testing: {} signing failed: {e}", self.alg) };
        match &self.signer {
            Signer::Rsa(pair) => {
                let encoding = self.alg.rsa_encoding().expect("RSA key has an RSA alg");
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(encoding, &SystemRandom::new(), message, &mut sig)
                    .unwrap_or_else(|e| fail(e));
                sig
            }
            Signer::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .unwrap_or_else(|e| fail(e))
                .as_ref()
                .to_vec(),
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            // Pure ML-DSA with the empty context string, as draft-ietf-cose-dilithium specifies.
            Signer::MlDsa(pair) => {
                let mut sig = vec![0; pair.algorithm().signature_len()];
                let len = pair.sign(message, &mut sig).unwrap_or_else(|e| fail(e));
                sig.truncate(len);
                sig
            }
        }
    }
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg)
            .field("jwk", &self.jwk)
            .finish_non_exhaustive()
    }
}

/// Computes an HMAC tag for `HS256`/`HS384`/`HS512` (RFC 7518 §3.2); panics on any other name.
pub(crate) fn hmac_sign(alg: &str, secret: &[u8], message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let algorithm = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        other => panic!(
            "oidc-bearer-testing: sign_hmac needs HS256, HS384 or HS512, got {other:?} \
             (set a different header alg with .header(\"alg\", ..))"
        ),
    };
    hmac::sign(&hmac::Key::new(algorithm, secret), message)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ParsedPublicKey, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey,
        VerificationAlgorithm,
    };

    fn b64d(v: &Value) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(v.as_str().expect("string member"))
            .expect("base64url")
    }

    /// The RSA verification parameters of `alg`, if it is an RSA algorithm.
    fn rsa_params(alg: KeyAlg) -> Option<&'static RsaParameters> {
        Some(match alg {
            KeyAlg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            KeyAlg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            KeyAlg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            KeyAlg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            KeyAlg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            KeyAlg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    /// How a relying party verifies `alg`'s signatures.
    pub(crate) fn verification_alg(alg: KeyAlg) -> &'static dyn VerificationAlgorithm {
        if let Some(params) = rsa_params(alg) {
            return params;
        }
        match alg {
            KeyAlg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            KeyAlg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            KeyAlg::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            KeyAlg::EdDSA | KeyAlg::Ed25519 => &signature::ED25519,
            KeyAlg::MlDsa44 => &signature::ML_DSA_44,
            KeyAlg::MlDsa65 => &signature::ML_DSA_65,
            KeyAlg::MlDsa87 => &signature::ML_DSA_87,
            rsa => unreachable!("{rsa} is an RSA algorithm"),
        }
    }

    /// Verifies `sig` over `msg` using only the published JWK, the way a relying party would.
    pub(crate) fn verify_with_jwk(jwk: &Value, msg: &[u8], sig: &[u8]) -> bool {
        let alg: KeyAlg = jwk["alg"].as_str().unwrap().parse().unwrap();
        let public = match jwk["kty"].as_str().unwrap() {
            "RSA" => {
                let params = rsa_params(alg).unwrap_or_else(|| panic!("RSA JWK with alg {alg}"));
                let components = RsaPublicKeyComponents {
                    n: b64d(&jwk["n"]),
                    e: b64d(&jwk["e"]),
                };
                return components.verify(params, msg, sig).is_ok();
            }
            "EC" => {
                let mut point = vec![4];
                point.extend(b64d(&jwk["x"]));
                point.extend(b64d(&jwk["y"]));
                point
            }
            "OKP" => b64d(&jwk["x"]),
            "AKP" => b64d(&jwk["pub"]),
            other => panic!("unexpected kty {other}"),
        };
        UnparsedPublicKey::new(verification_alg(alg), public)
            .verify(msg, sig)
            .is_ok()
    }

    #[test]
    fn every_alg_signs_what_its_jwk_verifies() {
        for alg in KeyAlg::ALL {
            let key = TestKey::generate(alg);
            let jwk = key.public_jwk("k");
            let sig = key.sign(b"hello");
            assert!(verify_with_jwk(&jwk, b"hello", &sig), "{alg}");
            assert!(
                !verify_with_jwk(&jwk, b"hellO", &sig),
                "{alg} accepted a changed message"
            );
        }
    }

    #[test]
    fn jwk_members_follow_rfc_7518() {
        let rsa = TestKey::generate(KeyAlg::PS256).public_jwk("a");
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["e"], "AQAB");
        assert_eq!(
            b64d(&rsa["n"]).len(),
            256,
            "2048-bit modulus, no leading zero"
        );
        assert_eq!(rsa["use"], "sig");
        assert_eq!(rsa["alg"], "PS256");
        assert_eq!(rsa["kid"], "a");

        let ec = TestKey::generate(KeyAlg::ES384).public_jwk("b");
        assert_eq!(
            (ec["kty"].as_str(), ec["crv"].as_str()),
            (Some("EC"), Some("P-384"))
        );
        assert_eq!((b64d(&ec["x"]).len(), b64d(&ec["y"]).len()), (48, 48));

        let ed = TestKey::generate(KeyAlg::EdDSA).public_jwk("c");
        assert_eq!(
            (ed["kty"].as_str(), ed["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert_eq!(b64d(&ed["x"]).len(), 32);
        assert_eq!(ed["alg"], "EdDSA");

        // RFC 7518 §6.2.1.2: P-521 coordinates are 66 octets, leading zeros kept.
        let p521 = TestKey::generate(KeyAlg::ES512).public_jwk("d");
        assert_eq!(
            (p521["kty"].as_str(), p521["crv"].as_str()),
            (Some("EC"), Some("P-521"))
        );
        assert_eq!((b64d(&p521["x"]).len(), b64d(&p521["y"]).len()), (66, 66));
        assert_eq!(p521["alg"], "ES512");

        // RFC 9864 §2: the same OKP key, bound to the fully-specified name.
        let ed = TestKey::generate(KeyAlg::Ed25519).public_jwk("e");
        assert_eq!(
            (ed["kty"].as_str(), ed["crv"].as_str(), ed["alg"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("Ed25519"))
        );

        // draft-ietf-cose-dilithium: kty AKP, the raw public key in `pub`, FIPS 204 sizes.
        for (alg, len) in [
            (KeyAlg::MlDsa44, 1312),
            (KeyAlg::MlDsa65, 1952),
            (KeyAlg::MlDsa87, 2592),
        ] {
            let key = TestKey::generate(alg);
            let jwk = key.public_jwk("f");
            assert_eq!(jwk["kty"], "AKP");
            assert_eq!(jwk["alg"], alg.name());
            assert_eq!(b64d(&jwk["pub"]).len(), len, "{alg}");
            assert!(jwk.get("x").is_none() && jwk.get("crv").is_none());
            let signature_len = [(1312, 2420), (1952, 3309), (2592, 4627)]
                .iter()
                .find(|(k, _)| *k == len)
                .unwrap()
                .1;
            assert_eq!(key.sign(b"m").len(), signature_len, "{alg}");
        }
    }

    #[test]
    fn pem_is_an_spki_that_verifies_the_keys_signatures() {
        for alg in KeyAlg::ALL {
            let key = TestKey::generate(alg);
            let pem = key.public_key_pem();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
            assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"), "{pem}");
            assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = STANDARD.decode(body).unwrap();
            assert_eq!(der[0], 0x30, "{alg}: a DER SEQUENCE");
            let public = ParsedPublicKey::new(verification_alg(alg), &der)
                .unwrap_or_else(|e| panic!("{alg}: PEM did not parse: {e}"));
            let sig = key.sign(b"pem");
            assert!(public.verify_sig(b"pem", &sig).is_ok(), "{alg}");
            assert!(public.verify_sig(b"PEM", &sig).is_err(), "{alg}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let tag = hmac_sign("HS256", b"Jefe", b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    #[should_panic(expected = "sign_hmac needs HS256, HS384 or HS512")]
    fn hmac_with_a_non_hmac_alg_panics() {
        hmac_sign("RS256", b"k", b"m");
    }
}
