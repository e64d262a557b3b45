//! The signature algorithms this library verifies (RFC 7518 §3, RFC 8037, RFC 9864, and ML-DSA from
//! draft-ietf-cose-dilithium behind the `ml-dsa` feature).

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm accepted for public-key verification, or HMAC for an explicitly
/// configured shared-secret issuer.
///
/// `none` has no variant: it can never be accepted (RFC 8725 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// ECDSA on P-521 with SHA-512 (RFC 7518 §3.4).
    ES512,
    /// EdDSA, the polymorphic name of RFC 8037; only with Ed25519 keys here (Ed448 is not supported).
    EdDSA,
    /// Ed25519 by its fully-specified name (RFC 9864 §2): the same keys and signatures as `EdDSA`
    /// with an Ed25519 key.
    Ed25519,
    /// ML-DSA-44 (FIPS 204, draft-ietf-cose-dilithium): feature `ml-dsa`, aws-lc-rs backend only.
    MlDsa44,
    /// ML-DSA-65 (FIPS 204, draft-ietf-cose-dilithium): feature `ml-dsa`, aws-lc-rs backend only.
    MlDsa65,
    /// ML-DSA-87 (FIPS 204, draft-ietf-cose-dilithium): feature `ml-dsa`, aws-lc-rs backend only.
    MlDsa87,
    /// HMAC with SHA-256: shared-secret issuers only, never with published keys.
    HS256,
    /// HMAC with SHA-384: shared-secret issuers only.
    HS384,
    /// HMAC with SHA-512: shared-secret issuers only.
    HS512,
}

impl Algorithm {
    /// Every asymmetric algorithm this build supports: the default allowed list of a public-key
    /// issuer. The ML-DSA algorithms are in it when the `ml-dsa` feature is enabled.
    pub(crate) const ASYMMETRIC: &'static [Algorithm] = if cfg!(feature = "ml-dsa") {
        Self::EVERY_ASYMMETRIC
    } else {
        Self::EVERY_ASYMMETRIC
            .split_at(Self::EVERY_ASYMMETRIC.len() - Self::ML_DSA)
            .0
    };

    /// Every asymmetric algorithm there is, the [`ML_DSA`](Self::ML_DSA) feature-gated ones last,
    /// so that one list serves both builds.
    const EVERY_ASYMMETRIC: &'static [Algorithm] = &[
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
        Self::Ed25519,
        Self::MlDsa44,
        Self::MlDsa65,
        Self::MlDsa87,
    ];

    /// How many ML-DSA algorithms end [`EVERY_ASYMMETRIC`](Self::EVERY_ASYMMETRIC).
    const ML_DSA: usize = 3;

    /// The HMAC algorithms, for shared-secret issuers.
    pub(crate) const HMAC: &'static [Algorithm] = &[Self::HS256, Self::HS384, Self::HS512];

    /// The name used in the JOSE header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
            Self::Ed25519 => "Ed25519",
            Self::MlDsa44 => "ML-DSA-44",
            Self::MlDsa65 => "ML-DSA-65",
            Self::MlDsa87 => "ML-DSA-87",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// Whether this is an HMAC (shared-secret) algorithm.
    pub(crate) fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// Whether this is one of the ML-DSA (post-quantum) algorithms.
    pub(crate) fn is_ml_dsa(self) -> bool {
        matches!(self, Self::MlDsa44 | Self::MlDsa65 | Self::MlDsa87)
    }

    /// The shortest HMAC secret this algorithm may be used with: the hash output size
    /// (RFC 7518 §3.2: "A key of the same size as the hash output ... or larger MUST be used").
    pub(crate) fn min_secret_len(self) -> Option<usize> {
        match self {
            Self::HS256 => Some(32),
            Self::HS384 => Some(48),
            Self::HS512 => Some(64),
            _ => None,
        }
    }

    /// Whether this build can verify this algorithm: ML-DSA needs the `ml-dsa` feature (aws-lc-rs).
    pub(crate) fn is_available(self) -> bool {
        !self.is_ml_dsa() || cfg!(feature = "ml-dsa")
    }

    /// Why this build cannot verify `self`, for configuration errors and skipped keys.
    pub(crate) fn unavailable_reason(self) -> Option<String> {
        (!self.is_available()).then(|| {
            format!(
                "{self} needs the `ml-dsa` feature of oidc-bearer (aws-lc-rs backend; the \
                 rust-crypto backend has no ML-DSA)"
            )
        })
    }

    /// Parses a header's `alg` exactly (JOSE names are case-sensitive, RFC 7515 §4.1.1), so `none`,
    /// `None` and `NONE` are all refused.
    pub(crate) fn from_header(alg: &str) -> Option<Self> {
        Some(match alg {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "ES512" => Self::ES512,
            "EdDSA" => Self::EdDSA,
            "Ed25519" => Self::Ed25519,
            "ML-DSA-44" => Self::MlDsa44,
            "ML-DSA-65" => Self::MlDsa65,
            "ML-DSA-87" => Self::MlDsa87,
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            _ => return None,
        })
    }

    /// jsonwebtoken's algorithm of the same JOSE name, where its RustCrypto provider verifies it:
    /// not ES512 (verified with the `p521` crate instead) nor ML-DSA, which it has no name for.
    /// `Ed25519` is `EdDSA` over the same key (RFC 9864 §2).
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    pub(crate) fn to_jwt(self) -> Option<jsonwebtoken::Algorithm> {
        let name = if self == Self::Ed25519 {
            "EdDSA"
        } else {
            self.as_str()
        };
        name.parse().ok()
    }
}

/// Refuses an allowed list that names an algorithm this build cannot verify, saying what to enable.
pub(crate) fn check_available(algorithms: &[Algorithm]) -> Result<(), String> {
    match algorithms.iter().find_map(|a| a.unavailable_reason()) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown algorithm name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown or unsupported algorithm {:?}", self.0)
    }
}

impl std::error::Error for UnknownAlgorithm {}

/// Parses a JOSE name exactly (`"RS256"`, `"ML-DSA-65"`; case-sensitive, RFC 7515 §4.1.1).
impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_header(s).ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        let all = Algorithm::EVERY_ASYMMETRIC.iter().chain(Algorithm::HMAC);
        for &alg in all {
            assert_eq!(Algorithm::from_header(alg.as_str()), Some(alg));
            assert_eq!(Algorithm::from_header(&alg.as_str().to_lowercase()), None);
        }
        assert_eq!(
            Algorithm::from_header("Ed448"),
            None,
            "no backend has Ed448"
        );
        assert_eq!(Algorithm::from_header("none"), None);
    }

    #[test]
    fn ml_dsa_is_available_only_with_its_feature() {
        for alg in [Algorithm::MlDsa44, Algorithm::MlDsa65, Algorithm::MlDsa87] {
            assert_eq!(alg.is_available(), cfg!(feature = "ml-dsa"));
            assert_eq!(
                Algorithm::ASYMMETRIC.contains(&alg),
                cfg!(feature = "ml-dsa")
            );
            assert_eq!(
                check_available(&[Algorithm::ES512, alg]).is_ok(),
                alg.is_available()
            );
        }
        assert!(check_available(Algorithm::ASYMMETRIC).is_ok());
        // The list is cut where the ML-DSA tail starts, and nowhere else.
        let (classic, ml_dsa): (Vec<Algorithm>, Vec<Algorithm>) = Algorithm::EVERY_ASYMMETRIC
            .iter()
            .copied()
            .partition(|alg| !alg.is_ml_dsa());
        assert_eq!(ml_dsa.len(), Algorithm::ML_DSA);
        let expected = if cfg!(feature = "ml-dsa") {
            Algorithm::EVERY_ASYMMETRIC.to_vec()
        } else {
            classic
        };
        assert_eq!(Algorithm::ASYMMETRIC, expected);
    }
}
