//! Parsing a JWK Set leniently and safely, and selecting the key for a token.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::Algorithm;
use crate::crypto::{self, Prepared};
use crate::error::{ConfigError, VerifyError};

use super::skipped::{MAX_SKIPPED_KEYS_KEPT, SkippedKey};

/// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
const MIN_RSA_BITS: usize = 2048;
/// Shared secrets must be at least as long as the hash output (RFC 7518 §3.2): 32 bytes for HS256,
/// the shortest; HS384 and HS512 need 48 and 64 (see `Algorithm::min_secret_len`).
pub(crate) const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The type of a public key (or shared secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// An RSA public key of this many bits.
    Rsa {
        /// The modulus length in bits.
        bits: usize,
    },
    /// An EC public key on P-256.
    P256,
    /// An EC public key on P-384.
    P384,
    /// An EC public key on P-521.
    P521,
    /// An Ed25519 public key.
    Ed25519,
    /// An ML-DSA-44 public key (kty `AKP`, draft-ietf-cose-dilithium).
    MlDsa44,
    /// An ML-DSA-65 public key (kty `AKP`, draft-ietf-cose-dilithium).
    MlDsa65,
    /// An ML-DSA-87 public key (kty `AKP`, draft-ietf-cose-dilithium).
    MlDsa87,
    /// An HMAC shared secret (only ever configured explicitly, never read from a JWKS).
    Secret,
}

/// A key's type as people say it: `RSA 2048 bits`, `EC P-256`, `OKP Ed25519`.
impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA {bits} bits"),
            Self::P256 => f.write_str("EC P-256"),
            Self::P384 => f.write_str("EC P-384"),
            Self::P521 => f.write_str("EC P-521"),
            Self::Ed25519 => f.write_str("OKP Ed25519"),
            Self::MlDsa44 => f.write_str("AKP ML-DSA-44"),
            Self::MlDsa65 => f.write_str("AKP ML-DSA-65"),
            Self::MlDsa87 => f.write_str("AKP ML-DSA-87"),
            Self::Secret => f.write_str("HMAC secret"),
        }
    }
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg`.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => alg == ES256,
            Self::P384 => alg == ES384,
            Self::P521 => alg == ES512,
            // RFC 9864 §2: an Ed25519 key serves the polymorphic `EdDSA` and the fully-specified
            // `Ed25519`; a JWK `alg` narrows it to one of them.
            Self::Ed25519 => matches!(alg, EdDSA | Ed25519),
            Self::MlDsa44 => alg == MlDsa44,
            Self::MlDsa65 => alg == MlDsa65,
            Self::MlDsa87 => alg == MlDsa87,
            Self::Secret => alg.is_hmac(),
        }
    }
}

/// One verification key, parsed once and ready to check signatures.
pub(crate) struct PublicKey {
    kid: Option<String>,
    kind: KeyKind,
    alg: Option<Algorithm>,
    prepared: Vec<(Algorithm, Prepared)>,
    /// SHA-256 of the key material: the token cache's test that a key is still the same key.
    fingerprint: crypto::Sha256,
}

impl PublicKey {
    /// The key's id (`kid`), if it has one.
    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's type.
    pub(crate) fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The algorithm the key is bound to by its JWK `alg`, if any.
    pub(crate) fn algorithm(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether this key may verify a token whose header says `alg`: the algorithm must fit the key's
    /// type and curve, and equal the JWK's `alg` when it has one (RFC 8725 §3.1, RFC 7517 §4.4); an
    /// HMAC secret must be at least as long as the algorithm's hash output (RFC 7518 §3.2).
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        // Exactly the algorithms the key was prepared for, which `new` chose by these rules.
        self.prepared.iter().any(|(a, _)| *a == alg)
    }

    /// The expected signature length for `alg`, when it is fixed; used to reject garbage before any
    /// crypto.
    pub(crate) fn signature_len(&self, alg: Algorithm) -> Option<usize> {
        match (self.kind, alg) {
            (KeyKind::Rsa { bits }, _) => Some(bits.div_ceil(8)),
            (KeyKind::P256, _) => Some(64),
            (KeyKind::P384, _) => Some(96),
            // RFC 7518 §3.4: R and S of 521 bits, each padded to 66 octets.
            (KeyKind::P521, _) => Some(132),
            (KeyKind::Ed25519, _) => Some(64),
            // FIPS 204 Table 2: ML-DSA signature sizes.
            (KeyKind::MlDsa44, _) => Some(2420),
            (KeyKind::MlDsa65, _) => Some(3309),
            (KeyKind::MlDsa87, _) => Some(4627),
            (KeyKind::Secret, Algorithm::HS256) => Some(32),
            (KeyKind::Secret, Algorithm::HS384) => Some(48),
            (KeyKind::Secret, _) => Some(64),
        }
    }

    /// The SHA-256 fingerprint of the key material.
    pub(crate) fn fingerprint(&self) -> &crypto::Sha256 {
        &self.fingerprint
    }

    /// Checks `signature` over `message` with `alg`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.prepared
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, p)| p.verify(message, signature))
    }

    fn new(
        kid: Option<String>,
        kind: KeyKind,
        alg: Option<Algorithm>,
        key: &DecodingKey,
    ) -> Result<Self, String> {
        let candidates: Vec<Algorithm> = match alg {
            Some(alg) => vec![alg],
            None => Algorithm::ASYMMETRIC
                .iter()
                .chain(Algorithm::HMAC)
                .copied()
                .filter(|a| kind.fits(*a))
                .collect(),
        };
        if let Some(alg) = alg
            && !kind.fits(alg)
        {
            return Err(format!("alg {alg} does not fit a {kind:?} key"));
        }
        if let Some(reason) = alg.and_then(Algorithm::unavailable_reason) {
            return Err(reason);
        }
        // RFC 7518 §3.2: "A key of the same size as the hash output (for instance, 256 bits for
        // HS256) or larger MUST be used": a 32-byte secret is for HS256 only, 48 bytes also allow
        // HS384, 64 bytes all three.
        let candidates: Vec<Algorithm> = if kind == KeyKind::Secret {
            let len = key.try_get_as_bytes().map_or(0, <[u8]>::len);
            candidates
                .into_iter()
                .filter(|a| a.min_secret_len().is_some_and(|min| len >= min))
                .collect()
        } else {
            candidates
        };
        let prepared = candidates
            .into_iter()
            .map(|a| Prepared::new(key, a).map(|p| (a, p)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            kid,
            kind,
            alg,
            prepared,
            fingerprint: crypto::fingerprint(key),
        })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

/// A parsed key set: the keys an issuer publishes that this library can use, indexed by `kid`.
#[derive(Debug, Default)]
pub struct Jwks {
    keys: Vec<PublicKey>,
    by_kid: HashMap<String, Vec<usize>>,
    skipped: usize,
    /// The first [`MAX_SKIPPED_KEYS_KEPT`] skipped keys, with why.
    skipped_keys: Vec<SkippedKey>,
}

/// The lenient shape of one JWK: every field optional, so that one odd key is skipped instead of
/// failing the whole set.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    /// The public key of an `AKP` (algorithm key pair) JWK, draft-ietf-cose-dilithium.
    #[serde(rename = "pub")]
    pub_: Option<String>,
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    /// Parses a JWK Set document (RFC 7517 §5).
    ///
    /// Keys this library cannot or must not use are skipped, never failing the set (a verifier logs
    /// each with the reason, and [`explain_key_set`](super::explain_key_set) lists them): unknown `kty` or `crv` (Ed448 has no
    /// backend here), `use` other than `sig`, `key_ops` without `verify` (RFC 7517 §4.2, §4.3), an
    /// `alg` that is unknown or does not fit the key, ML-DSA (`AKP`) keys without the `ml-dsa`
    /// feature, symmetric (`oct`) keys — HMAC is never used with published keys (RFC 8725 §3.1) —
    /// and RSA keys shorter than 2048 bits (RFC 7518 §3.3). Only a document that is not a JSON object
    /// with a `keys` array is an error.
    pub fn from_json(json: &[u8]) -> Result<Self, ConfigError> {
        Self::parse(json).map_err(|reason| ConfigError::InvalidKey { reason })
    }

    pub(crate) fn parse(json: &[u8]) -> Result<Self, String> {
        let set: RawJwkSet = serde_json::from_slice(json)
            .map_err(|e| format!("not a JWK Set (a JSON object with a `keys` array): {e}"))?;
        let mut jwks = Self::default();
        for (index, value) in set.keys.into_iter().enumerate() {
            // Read before parsing, so that a key whose other members are malformed is still named.
            let kid = value.get("kid").and_then(serde_json::Value::as_str);
            let kid = kid.map(str::to_owned);
            match parse_jwk(value) {
                Ok(key) => jwks.push(key),
                Err(reason) => {
                    tracing::debug!(index, kid, %reason, "skipping JWK");
                    jwks.record_skipped(SkippedKey::new(index, kid.as_deref(), &reason));
                }
            }
        }
        Ok(jwks)
    }

    /// Counts a skipped key, and keeps it while fewer than [`MAX_SKIPPED_KEYS_KEPT`] are kept.
    fn record_skipped(&mut self, key: SkippedKey) {
        self.skipped += 1;
        if self.skipped_keys.len() < MAX_SKIPPED_KEYS_KEPT {
            self.skipped_keys.push(key);
        }
    }

    /// A key set holding one PEM-encoded public key (`PUBLIC KEY` or `RSA PUBLIC KEY`): RSA, EC P-256,
    /// P-384 or P-521, or Ed25519. `kid` names it; tokens without a `kid` are matched by algorithm.
    pub fn from_pem(pem: &[u8], kid: Option<&str>) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::InvalidKey { reason };
        let kid = kid.map(str::to_owned);
        let key = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            let der = key.try_get_as_bytes().map_err(|e| err(e.to_string()))?;
            let (n, e) = (crypto::provider()
                .key_utils
                .rsa_pub_components_from_public_key)(der)
            .map_err(|e| err(format!("invalid RSA public key: {e}")))?;
            rsa_key(kid, None, &n, &e)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let point = key.try_get_as_bytes().map_err(|e| err(e.to_string()))?;
            let kind = match point.len() {
                65 => KeyKind::P256,
                97 => KeyKind::P384,
                133 => KeyKind::P521,
                _ => {
                    return Err(err(
                        "unsupported EC curve (P-256, P-384 and P-521 are)".into()
                    ));
                }
            };
            PublicKey::new(kid, kind, None, &key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            PublicKey::new(kid, KeyKind::Ed25519, None, &key)
        } else {
            return Err(err(
                "not a PEM public key (RSA, EC P-256/P-384/P-521 or Ed25519 `PUBLIC KEY`)".into(),
            ));
        };
        let mut jwks = Self::default();
        jwks.push(key.map_err(err)?);
        Ok(jwks)
    }

    /// A key set holding one HMAC shared secret, for an explicitly configured shared-secret issuer.
    /// The secret must be at least as long as the hash output (RFC 7518 §3.2): 32 bytes, and tokens
    /// signed with HS384 or HS512 are accepted only with a secret of at least 48 or 64 bytes.
    pub(crate) fn from_secret(secret: &[u8], kid: Option<&str>) -> Result<Self, ConfigError> {
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(ConfigError::InvalidKey {
                reason: format!(
                    "HMAC secret is {} bytes; at least {MIN_HMAC_SECRET_BYTES} are required \
                     (RFC 7518 §3.2)",
                    secret.len()
                ),
            });
        }
        let key = PublicKey::new(
            kid.map(str::to_owned),
            KeyKind::Secret,
            None,
            &DecodingKey::from_secret(secret),
        )
        .map_err(|reason| ConfigError::InvalidKey { reason })?;
        let mut jwks = Self::default();
        jwks.push(key);
        Ok(jwks)
    }

    /// Adds the keys of `other` to this set.
    pub fn merge(mut self, other: Jwks) -> Self {
        let room = MAX_SKIPPED_KEYS_KEPT.saturating_sub(self.skipped_keys.len());
        self.skipped_keys
            .extend(other.skipped_keys.into_iter().take(room));
        self.skipped += other.skipped;
        for key in other.keys {
            self.push(key);
        }
        self
    }

    fn push(&mut self, key: PublicKey) {
        if let Some(kid) = &key.kid {
            self.by_kid
                .entry(kid.clone())
                .or_default()
                .push(self.keys.len());
        }
        self.keys.push(key);
    }

    /// How many keys the set held that were skipped as unusable.
    pub(crate) fn skipped(&self) -> usize {
        self.skipped
    }

    /// The skipped keys with their `kid` and the reason, in document order: the first
    /// [`MAX_SKIPPED_KEYS_KEPT`] of them ([`skipped`](Self::skipped) counts them all).
    pub(crate) fn skipped_keys(&self) -> &[SkippedKey] {
        &self.skipped_keys
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Selects the key for a token: by `kid` when the header has one (O(1)), the algorithm must fit
    /// that key; without a `kid`, only when exactly one key fits the algorithm.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&PublicKey, VerifyError> {
        match kid {
            Some(kid) => {
                let Some(indexes) = self.by_kid.get(kid) else {
                    return Err(VerifyError::UnknownKey {
                        kid: Some(kid.to_owned()),
                    });
                };
                indexes
                    .iter()
                    .map(|&i| &self.keys[i])
                    .find(|k| k.fits(alg))
                    .ok_or_else(|| VerifyError::AlgorithmKeyMismatch {
                        alg: alg.as_str().to_owned(),
                        kid: Some(kid.to_owned()),
                    })
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.count()) {
                    (Some(key), 0) => Ok(key),
                    (Some(_), more) => Err(VerifyError::AmbiguousKey {
                        candidates: more + 1,
                    }),
                    (None, _) => Err(VerifyError::UnknownKey { kid: None }),
                }
            }
        }
    }
}

pub(crate) fn parse_jwk(value: serde_json::Value) -> Result<PublicKey, String> {
    let raw: RawJwk = serde_json::from_value(value).map_err(|e| format!("invalid JWK: {e}"))?;
    // RFC 7517 §4.2: `use` other than "sig" (e.g. "enc") is not for signatures.
    if let Some(u) = &raw.use_
        && u != "sig"
    {
        return Err(format!("use {u:?} is not \"sig\""));
    }
    // RFC 7517 §4.3: `key_ops` restricts the key to the listed operations.
    if let Some(ops) = &raw.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        // RFC 9864 §2 registers Ed448 next to Ed25519; neither crypto backend verifies it.
        Some("Ed448") => return Err(ED448_UNSUPPORTED.into()),
        Some(name) => match Algorithm::from_header(name) {
            Some(alg) if !alg.is_hmac() => Some(alg),
            _ => return Err(format!("unsupported alg {name:?}")),
        },
    };
    let kty = raw.kty.as_deref().ok_or("missing kty")?;
    let field = |v: &Option<String>, name: &str| {
        v.as_deref()
            .ok_or_else(|| format!("{kty} key without {name:?}"))
            .map(str::to_owned)
    };
    match kty {
        "RSA" => {
            let n = decode_b64(&field(&raw.n, "n")?, "n")?;
            let e = decode_b64(&field(&raw.e, "e")?, "e")?;
            rsa_key(raw.kid, alg, &n, &e)
        }
        "EC" => {
            // RFC 7518 §6.2.1.2: x and y are exactly the field size, P-521's being 66 octets.
            let (kind, len) = match raw.crv.as_deref() {
                Some("P-256") => (KeyKind::P256, 32),
                Some("P-384") => (KeyKind::P384, 48),
                Some("P-521") => (KeyKind::P521, 66),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let x = decode_b64(&field(&raw.x, "x")?, "x")?;
            let y = decode_b64(&field(&raw.y, "y")?, "y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::new(raw.kid, kind, alg, &DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            match raw.crv.as_deref() {
                Some("Ed25519") => {}
                Some("Ed448") => return Err(ED448_UNSUPPORTED.into()),
                other => return Err(format!("unsupported OKP curve {other:?}")),
            }
            let x = decode_b64(&field(&raw.x, "x")?, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".into());
            }
            PublicKey::new(
                raw.kid,
                KeyKind::Ed25519,
                alg,
                &DecodingKey::from_ed_der(&x),
            )
        }
        "AKP" => ml_dsa_key(raw.kid, alg, &field(&raw.pub_, "pub")?),
        "oct" => Err("symmetric keys are never accepted from a key set (RFC 8725 §3.1)".into()),
        other => Err(format!("unsupported kty {other:?}")),
    }
}

const ED448_UNSUPPORTED: &str = "Ed448 is not supported by either crypto backend";

/// An `AKP` key (draft-ietf-cose-dilithium): the JWK's `alg` is required and names the parameter
/// set; the raw public key in `pub` must have exactly that set's length (FIPS 204 Table 2), checked
/// before any crypto.
fn ml_dsa_key(
    kid: Option<String>,
    alg: Option<Algorithm>,
    public: &str,
) -> Result<PublicKey, String> {
    let (kind, len) = match alg {
        Some(Algorithm::MlDsa44) => (KeyKind::MlDsa44, 1312_usize),
        Some(Algorithm::MlDsa65) => (KeyKind::MlDsa65, 1952),
        Some(Algorithm::MlDsa87) => (KeyKind::MlDsa87, 2592),
        Some(other) => return Err(format!("alg {other} does not fit an AKP key")),
        None => return Err("AKP key without \"alg\" (required for AKP keys)".into()),
    };
    if let Some(reason) = alg.and_then(Algorithm::unavailable_reason) {
        return Err(reason);
    }
    // The base64url text of a key of `len` bytes is 4/3 as long: refuse longer text undecoded.
    if public.len() > len.div_ceil(3) * 4 {
        return Err(format!("{kind:?} public key is not {len} bytes"));
    }
    let public = decode_b64(public, "pub")?;
    if public.len() != len {
        return Err(format!("{kind:?} public key is not {len} bytes"));
    }
    // DecodingKey only carries the raw bytes here; the backend parses them per algorithm.
    PublicKey::new(kid, kind, alg, &DecodingKey::from_ed_der(&public))
}

fn rsa_key(
    kid: Option<String>,
    alg: Option<Algorithm>,
    n: &[u8],
    e: &[u8],
) -> Result<PublicKey, String> {
    let n = strip_leading_zeros(n);
    let bits = n
        .first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits is shorter than {MIN_RSA_BITS} (RFC 7518 §3.3)"
        ));
    }
    PublicKey::new(
        kid,
        KeyKind::Rsa { bits },
        alg,
        &DecodingKey::from_rsa_raw_components(n, strip_leading_zeros(e)),
    )
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn decode_b64(value: &str, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| format!("{name:?} is not base64url"))
}
