//! Prepared signature verifiers over the selected crypto backend.
//!
//! Each key is parsed once, when its key set is loaded, into a verifier per algorithm it may be used
//! with; a request only runs the signature check itself.
//!
//! Backends: with `aws-lc-rs` (the default) we keep an `aws_lc_rs::signature::ParsedPublicKey`, because
//! jsonwebtoken 11's aws-lc verifier re-parses the key on every call. With `rust-crypto` alone we keep
//! the boxed verifier that jsonwebtoken's RustCrypto provider builds. When both features are on (cargo
//! features are additive), aws-lc-rs is used: we call the chosen provider directly and never rely on
//! jsonwebtoken's process-wide default, whose selection panics when both or neither backend is enabled.
//!
//! Algorithms beyond jsonwebtoken's: ES512 (aws-lc-rs; with `rust-crypto` the `p521` crate, since
//! jsonwebtoken's RustCrypto provider has no P-521), `Ed25519` (RFC 9864; the same check as `EdDSA`),
//! and ML-DSA-44/65/87 (aws-lc-rs with the `ml-dsa` feature only). No backend here verifies Ed448.

use jsonwebtoken::DecodingKey;
use jsonwebtoken::DecodingKeyKind;

use crate::Algorithm;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "oidc-bearer needs a crypto backend: enable the `aws-lc-rs` feature (the default) or `rust-crypto`"
);

#[cfg(feature = "aws-lc-rs")]
use jsonwebtoken::crypto::aws_lc as backend;
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
use jsonwebtoken::crypto::rust_crypto as backend;

/// The jsonwebtoken provider for the selected backend, used for key utilities (PEM → components).
pub(crate) fn provider() -> &'static jsonwebtoken::crypto::CryptoProvider {
    &backend::DEFAULT_PROVIDER
}

/// A SHA-256 digest.
pub(crate) type Sha256 = [u8; 32];

/// SHA-256 of `bytes`: the token cache's key (see `cache::TokenKey`) and a key's fingerprint.
///
/// With the `sha2` crate whatever the backend: it uses the CPU's SHA extensions as aws-lc does (the
/// two run at the same speed here).
pub(crate) fn sha256(bytes: &[u8]) -> Sha256 {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// HMAC-SHA-256 of `message` under `key` (RFC 2104), by the selected backend: aws-lc-rs, or the
/// RustCrypto `hmac` crate (below). For values this server derives from a secret of its own, such
/// as DPoP nonces (RFC 9449 §9).
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Sha256 {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut out = [0; 32];
    out.copy_from_slice(aws_lc_rs::hmac::sign(&key, message).as_ref());
    out
}

/// [`hmac_sha256`] with the RustCrypto `hmac` crate, which jsonwebtoken's RustCrypto provider uses.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Sha256 {
    use hmac::Mac as _;
    // HMAC takes a key of any length (RFC 2104 §2): `new_from_slice` cannot fail for it.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths (for MACs: RFC 7518
/// §3.2 warns against timing leaks).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fingerprint of a key's material, so that the token cache can tell whether the key an entry was
/// verified with is still the one a refreshed key set publishes under that `kid`.
pub(crate) fn fingerprint(key: &DecodingKey) -> Sha256 {
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            // Length-prefixed, so that (n, e) pairs cannot run into each other.
            let mut bytes = Vec::with_capacity(n.len() + e.len() + 9);
            bytes.push(b'r');
            bytes.extend_from_slice(&(n.len() as u64).to_be_bytes());
            bytes.extend_from_slice(n);
            bytes.extend_from_slice(e);
            sha256(&bytes)
        }
        DecodingKeyKind::SecretOrDer(bytes) => {
            let mut tagged = Vec::with_capacity(bytes.len() + 1);
            tagged.push(b'd');
            tagged.extend_from_slice(bytes);
            sha256(&tagged)
        }
    }
}

/// A public key (or HMAC secret) ready to check signatures for one algorithm.
pub(crate) struct Prepared {
    inner: Inner,
}

#[cfg(feature = "aws-lc-rs")]
enum Inner {
    Public(aws_lc_rs::signature::ParsedPublicKey),
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

/// jsonwebtoken's RustCrypto verifiers are boxed trait objects that are neither `Send` nor `Sync`, so
/// they cannot live in a shared key set: keep the parsed key and build the verifier per check.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
enum Inner {
    Provider(DecodingKey, jsonwebtoken::Algorithm),
    /// ES512: jsonwebtoken's RustCrypto provider has no P-521, so the `p521` crate verifies it.
    P521(Box<p521::ecdsa::VerifyingKey>),
}

impl Prepared {
    /// Prepares `key` for `alg`. Fails when the key material is invalid for the algorithm.
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) fn new(key: &DecodingKey, alg: Algorithm) -> Result<Self, String> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::{hmac, signature as sig};

        let params: &'static dyn sig::VerificationAlgorithm = match alg {
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            // RFC 7518 §3.4: the signature is the fixed-width R || S, 66 octets each.
            Algorithm::ES512 => &sig::ECDSA_P521_SHA512_FIXED,
            // RFC 9864 §2: `Ed25519` is EdDSA restricted to Ed25519, the same verification.
            Algorithm::EdDSA | Algorithm::Ed25519 => &sig::ED25519,
            // Pure ML-DSA with the empty context string, as draft-ietf-cose-dilithium specifies.
            #[cfg(feature = "ml-dsa")]
            Algorithm::MlDsa44 => &sig::ML_DSA_44,
            #[cfg(feature = "ml-dsa")]
            Algorithm::MlDsa65 => &sig::ML_DSA_65,
            #[cfg(feature = "ml-dsa")]
            Algorithm::MlDsa87 => &sig::ML_DSA_87,
            #[cfg(not(feature = "ml-dsa"))]
            Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
                return Err(alg.unavailable_reason().unwrap_or_default());
            }
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let h = match alg {
                    Algorithm::HS256 => hmac::HMAC_SHA256,
                    Algorithm::HS384 => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA512,
                };
                let secret = key.try_get_as_bytes().map_err(|e| e.to_string())?;
                return Ok(Self {
                    inner: Inner::Hmac(Box::new(hmac::Key::new(h, secret))),
                });
            }
        };
        let parsed = match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let der = aws_lc_rs::rsa::PublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .as_der()
                .map_err(|_| "invalid RSA public key".to_owned())?;
                sig::ParsedPublicKey::new(params, der.as_ref())
            }
            DecodingKeyKind::SecretOrDer(bytes) => sig::ParsedPublicKey::new(params, bytes),
        };
        parsed
            .map(|key| Self {
                inner: Inner::Public(key),
            })
            .map_err(|e| format!("key rejected for {alg}: {e}"))
    }

    /// Prepares `key` for `alg`. Fails when the key material is invalid for the algorithm.
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    pub(crate) fn new(key: &DecodingKey, alg: Algorithm) -> Result<Self, String> {
        let Some(jwt_alg) = alg.to_jwt() else {
            if alg == Algorithm::ES512 {
                let point = key.try_get_as_bytes().map_err(|e| e.to_string())?;
                let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| format!("key rejected for {alg}: not a P-521 point"))?;
                return Ok(Self {
                    inner: Inner::P521(Box::new(key)),
                });
            }
            return Err(alg
                .unavailable_reason()
                .unwrap_or_else(|| format!("{alg} is not supported by the rust-crypto backend")));
        };
        // Built once here to refuse bad key material when the key set is loaded.
        (provider().verifier_factory)(&jwt_alg, key)
            .map(|_| Self {
                inner: Inner::Provider(key.clone(), jwt_alg),
            })
            .map_err(|e| format!("key rejected for {alg}: {e}"))
    }

    /// Checks `signature` over `message`.
    #[inline]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            #[cfg(feature = "aws-lc-rs")]
            Inner::Public(key) => key.verify_sig(message, signature).is_ok(),
            // Constant-time comparison (RFC 7518 §3.2 warns against timing leaks).
            #[cfg(feature = "aws-lc-rs")]
            Inner::Hmac(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
            #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
            Inner::Provider(key, alg) => (provider().verifier_factory)(alg, key)
                .is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok()),
            #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
            Inner::P521(key) => {
                use p521::ecdsa::signature::Verifier as _;
                // The fixed-width R || S of RFC 7518 §3.4; from_slice refuses any other length.
                p521::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
        }
    }
}
