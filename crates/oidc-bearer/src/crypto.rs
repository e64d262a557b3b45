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

use jsonwebtoken::DecodingKey;
use jsonwebtoken::DecodingKeyKind;

use crate::Algorithm;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "oidc-bearer needs a crypto backend: enable the `aws-lc-rs` feature (the default) or `rust-crypto`"
);

/// The jsonwebtoken provider for the selected backend, used for key utilities (PEM → components).
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn provider() -> &'static jsonwebtoken::crypto::CryptoProvider {
    &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
}

/// The jsonwebtoken provider for the selected backend, used for key utilities (PEM → components).
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
pub(crate) fn provider() -> &'static jsonwebtoken::crypto::CryptoProvider {
    &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
}

/// A SHA-256 digest.
pub(crate) type Sha256 = [u8; 32];

/// SHA-256 of `bytes`: the token cache's key and a key's fingerprint.
///
/// With the `sha2` crate whatever the backend: it uses the CPU's SHA extensions as aws-lc does, and
/// its hash state is a plain value, so keeping a copy mid-way costs a copy (see [`TokenHash`]).
pub(crate) fn sha256(bytes: &[u8]) -> Sha256 {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The SHA-256 of a signing input, computed along with the token's own SHA-256 (see [`TokenHash`]),
/// that a verifier of a SHA-256 algorithm checks instead of hashing the same bytes again.
#[cfg(feature = "aws-lc-rs")]
pub(crate) type Prehashed = aws_lc_rs::digest::Digest;

/// Without aws-lc-rs, no backend verifies a precomputed digest: there is never one.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
pub(crate) type Prehashed = std::convert::Infallible;

/// A token's SHA-256 (the token cache's key), hashed in one pass that also yields the SHA-256 of
/// its JWS signing input almost for free: the hash state at the last `.` is kept, so a cache miss
/// of an RS256, PS256 or ES256 token pays for hashing its bytes once, not twice.
pub(crate) struct TokenHash {
    /// SHA-256 of the whole token.
    pub(crate) token: Sha256,
    /// The length hashed and the state at the last `.`, finished only on a cache miss.
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    signing_input: Option<(usize, sha2::Sha256)>,
}

impl TokenHash {
    /// Hashes `token`.
    pub(crate) fn new(token: &str) -> Self {
        use sha2::Digest as _;
        let bytes = token.as_bytes();
        let mut state = sha2::Sha256::new();
        let signing_input = match token.rfind('.') {
            Some(dot) => {
                state.update(&bytes[..dot]);
                let at_dot = state.clone();
                state.update(&bytes[dot..]);
                Some((dot, at_dot))
            }
            None => {
                state.update(bytes);
                None
            }
        };
        Self {
            token: state.finalize().into(),
            signing_input,
        }
    }

    /// The SHA-256 of `signing_input`, if it is the prefix hashed (it always is for a well-formed
    /// token: everything before the last `.`).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) fn signing_input(self, signing_input: &[u8]) -> Option<Prehashed> {
        use sha2::Digest as _;
        let (len, state) = self.signing_input?;
        if len != signing_input.len() {
            return None;
        }
        aws_lc_rs::digest::Digest::import_less_safe(&state.finalize(), &aws_lc_rs::digest::SHA256)
            .ok()
    }

    /// Never available without aws-lc-rs.
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    pub(crate) fn signing_input(self, _: &[u8]) -> Option<Prehashed> {
        None
    }
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
    /// The algorithm signs a SHA-256 digest (RS256, PS256, ES256): a [`Prehashed`] signing input
    /// can be checked directly.
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    sha256: bool,
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
            Algorithm::EdDSA => &sig::ED25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let h = match alg {
                    Algorithm::HS256 => hmac::HMAC_SHA256,
                    Algorithm::HS384 => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA512,
                };
                let secret = key.try_get_as_bytes().map_err(|e| e.to_string())?;
                return Ok(Self {
                    inner: Inner::Hmac(Box::new(hmac::Key::new(h, secret))),
                    sha256: false,
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
                sha256: matches!(alg, Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256),
            })
            .map_err(|e| format!("key rejected for {alg}: {e}"))
    }

    /// Prepares `key` for `alg`. Fails when the key material is invalid for the algorithm.
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    pub(crate) fn new(key: &DecodingKey, alg: Algorithm) -> Result<Self, String> {
        // Built once here to refuse bad key material when the key set is loaded.
        (provider().verifier_factory)(&alg.to_jwt(), key)
            .map(|_| Self {
                inner: Inner::Provider(key.clone(), alg.to_jwt()),
                sha256: false,
            })
            .map_err(|e| format!("key rejected for {alg}: {e}"))
    }

    /// Checks `signature` over `message`, whose SHA-256 `prehashed` may already hold.
    #[inline]
    pub(crate) fn verify(
        &self,
        message: &[u8],
        signature: &[u8],
        prehashed: Option<&Prehashed>,
    ) -> bool {
        match &self.inner {
            #[cfg(feature = "aws-lc-rs")]
            Inner::Public(key) => match prehashed {
                // The same check as `verify_sig`, minus hashing the message: aws-lc's
                // `EVP_PKEY_verify` on the digest that `verify_sig` would compute itself.
                Some(digest) if self.sha256 => key.verify_digest_sig(digest, signature).is_ok(),
                _ => key.verify_sig(message, signature).is_ok(),
            },
            // Constant-time comparison (RFC 7518 §3.2 warns against timing leaks).
            #[cfg(feature = "aws-lc-rs")]
            Inner::Hmac(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
            #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
            Inner::Provider(key, alg) => {
                // `Prehashed` is uninhabited here.
                let _ = prehashed;
                (provider().verifier_factory)(alg, key)
                    .is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
            }
        }
    }
}
