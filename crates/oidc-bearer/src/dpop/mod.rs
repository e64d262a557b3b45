//! DPoP (RFC 9449) on the resource server: sender-constrained tokens, so that a stolen access
//! token is useless without the private key it is bound to.
//!
//! A DPoP-bound token carries `cnf.jkt`, the RFC 7638 thumbprint of a key the client holds, and
//! comes as `Authorization: DPoP <token>` with a `DPoP` header: a proof, a JWT the client signs
//! with that key for this one request (method, URI, time, a unique `jti`, the token's hash).
//!
//! One stage per file: `proof` (the rules of §4.3 that need no token), `thumbprint` (the proof's
//! key and its RFC 7638 thumbprint), `uri` (the `htu` comparison, RFC 3986 §6), `nonce` (server
//! nonces from a shared secret, §9), `replay` (the `jti`s seen, §11.1). This file holds the
//! configuration ([`Dpop`]) and the binding of a verified token to a checked proof (§7.1); the
//! layer (`layer/dpop.rs`) runs them around the token's verification.

mod nonce;
mod proof;
mod replay;
mod thumbprint;
mod uri;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, Response};
use serde::Deserialize;

use crate::Algorithm;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{ConfigError, DpopError};
use crate::rejection::AuthRejection;

pub(crate) use proof::CheckedProof;

/// The default `iat` window: a proof is accepted up to this long before or after now.
const DEFAULT_IAT_WINDOW: Duration = Duration::from_secs(60);
/// The default bound on proofs remembered for replay detection.
const DEFAULT_MAX_REPLAY_ENTRIES: usize = 100_000;

/// Whether a layer takes DPoP-bound tokens (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopMode {
    /// Only DPoP: `Authorization: DPoP` with a valid proof; a `Bearer` token is refused
    /// ([`DpopError::DpopRequired`]).
    Required,
    /// Both schemes: `DPoP` with a valid proof, or `Bearer` for tokens that are not DPoP-bound; a
    /// token with `cnf.jkt` sent as `Bearer` is refused (RFC 9449 §7.2,
    /// [`DpopError::BoundTokenAsBearer`]).
    Allowed,
    /// No DPoP: the layer reads `Bearer` tokens only, as without [`Dpop`] (a token's `cnf` is
    /// not looked at). A DPoP-bound token sent as `Bearer` is then accepted like any other, so a
    /// stolen bound token works on this resource: RFC 9449 §7.2 requires its refusal only of
    /// resources that take both schemes. Use [`Allowed`](Self::Allowed) to refuse it.
    Off,
}

/// DPoP settings for [`BearerAuthLayer::with_dpop`](crate::BearerAuthLayer::with_dpop).
///
/// The external base URL is required: a proof names the absolute URI it is for (`htu`), and
/// behind a proxy or a load balancer the server cannot know it from the request. It is never
/// taken from the request's `Host` or `X-Forwarded-*` headers, which the client writes: that
/// would let a proof made for another server be replayed here. A path in it prefixes the
/// request's path (a service mounted under `/billing` by its gateway); an axum `Router::nest`
/// prefix is not one, since the layer reads the path the client requested (`OriginalUri`).
///
/// ```
/// use std::time::Duration;
/// use oidc_bearer::{BearerAuthLayer, Dpop, DpopMode, Verifier};
///
/// let dpop = Dpop::new(DpopMode::Required, "https://api.example.com")?
///     .with_iat_window(Duration::from_secs(30))
///     // Replicas sharing this secret accept each other's nonces (RFC 9449 §9).
///     .with_nonces(&[42; 32], Duration::from_secs(300))?;
/// let layer = BearerAuthLayer::new(Verifier::new("https://issuer.example", "my-api")?).with_dpop(dpop);
/// # Ok::<(), oidc_bearer::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use = "settings do nothing until given to `BearerAuthLayer::with_dpop`"]
pub struct Dpop {
    mode: DpopMode,
    base: uri::BaseUrl,
    algorithms: Vec<Algorithm>,
    iat_window: Duration,
    nonces: Option<nonce::Nonces>,
    clock: SharedClock,
    max_replay_entries: usize,
}

impl Dpop {
    /// DPoP in `mode` for a server reached at `external_base_url` (`https://api.example.com`, or
    /// with the path prefix its proxy adds); every other setting at its default: proofs signed
    /// with any asymmetric algorithm but ML-DSA, `iat` within 60 s of now, no server nonces, up
    /// to 100,000 proofs remembered.
    pub fn new(mode: DpopMode, external_base_url: &str) -> Result<Self, ConfigError> {
        let base = uri::BaseUrl::parse(external_base_url).map_err(|reason| {
            ConfigError::InvalidSetting {
                name: "dpop external_base_url",
                reason,
            }
        })?;
        Ok(Self {
            mode,
            base,
            algorithms: Algorithm::ASYMMETRIC
                .iter()
                .copied()
                .filter(|a| !a.is_ml_dsa())
                .collect(),
            iat_window: DEFAULT_IAT_WINDOW,
            nonces: None,
            clock: Arc::new(SystemClock),
            max_replay_entries: DEFAULT_MAX_REPLAY_ENTRIES,
        })
    }

    /// The algorithms accepted for proofs, also announced in the challenge's `algs`. Asymmetric
    /// only (RFC 9449 §4.3 check 5: never `none` or a MAC), and not ML-DSA (RFC 7638 has no
    /// thumbprint for its keys yet).
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidAlgorithms {
            reason: format!("DPoP: {reason}"),
        };
        if algorithms.is_empty() {
            return Err(invalid("no algorithm allowed"));
        }
        if algorithms.iter().any(|a| a.is_hmac()) {
            return Err(invalid(
                "HMAC algorithms cannot sign a DPoP proof (RFC 9449 §4.3)",
            ));
        }
        if algorithms.iter().any(|a| a.is_ml_dsa()) {
            return Err(invalid("ML-DSA keys have no RFC 7638 thumbprint"));
        }
        self.algorithms = algorithms.to_vec();
        Ok(self)
    }

    /// How far a proof's `iat` may be from now, either way (default 60 s). Proofs are remembered
    /// for replay detection for as long.
    pub fn with_iat_window(mut self, window: Duration) -> Self {
        self.iat_window = window;
        self
    }

    /// Requires a nonce of this server in every proof (RFC 9449 §9): a proof without one, or with
    /// a stale one, is answered 401 `use_dpop_nonce` with a fresh nonce in `DPoP-Nonce`. Nonces
    /// are made from `secret` (at least 32 bytes) and the current `lifetime` window, and accepted
    /// for that window and the next: replicas sharing the secret (and roughly the time) accept
    /// each other's nonces with no shared store.
    pub fn with_nonces(mut self, secret: &[u8], lifetime: Duration) -> Result<Self, ConfigError> {
        let nonces =
            nonce::Nonces::new(secret, lifetime).map_err(|reason| ConfigError::InvalidSetting {
                name: "dpop nonces",
                reason,
            })?;
        self.nonces = Some(nonces);
        Ok(self)
    }

    /// The clock for proofs' `iat` and nonce windows (default: the system clock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many proofs are remembered for replay detection (default 100,000, about 10 MiB). Each
    /// is remembered until its `iat` leaves the window, and never forgotten earlier (a forgotten
    /// proof could be replayed): while the memory is full of proofs still in their window, new
    /// proofs are refused ([`DpopError::ReplayMemoryFull`]). Set at least the proofs of one
    /// window (requests per second × 2 × the `iat` window); the memory is split into up to 16
    /// parts by the proofs' hashes, each with its share of the bound.
    pub fn with_max_replay_entries(mut self, max: usize) -> Self {
        self.max_replay_entries = max.max(1);
        self
    }

    /// The checks these settings make, shared by a layer and its clones; `None` for
    /// [`DpopMode::Off`].
    pub(crate) fn build(self) -> Option<Arc<DpopCheck>> {
        if self.mode == DpopMode::Off {
            return None;
        }
        let algs = self
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Some(Arc::new(DpopCheck {
            mode: self.mode,
            base: self.base,
            algs,
            algorithms: self.algorithms,
            iat_window: self.iat_window.as_secs_f64(),
            nonces: self.nonces,
            clock: self.clock,
            replay: replay::Replay::new(self.max_replay_entries),
        }))
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .field("base", &self.base)
            .field("algorithms", &self.algorithms)
            .field("iat_window", &self.iat_window)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

/// The RFC 7638 thumbprint of the key whose proof came with the request's DPoP-bound token (its
/// `cnf.jkt`): put into the request's extensions next to the claims, for handlers (axum:
/// `Extension<DpopThumbprint>`). Absent for a request with a `Bearer` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopThumbprint(pub Arc<str>);

/// The checks of one layer's [`Dpop`] settings (and its clones'), with its replay memory.
pub(crate) struct DpopCheck {
    mode: DpopMode,
    base: uri::BaseUrl,
    algorithms: Vec<Algorithm>,
    /// The challenge's `algs`: the accepted algorithms, space-separated (RFC 9449 §7.1).
    algs: String,
    /// Seconds.
    iat_window: f64,
    nonces: Option<nonce::Nonces>,
    clock: SharedClock,
    replay: replay::Replay,
}

/// The `cnf` claim of a token (RFC 7800 §3.1), as far as DPoP reads it (RFC 9449 §6.1).
#[derive(Deserialize)]
struct Confirmation {
    cnf: Option<serde_json::Value>,
}

impl DpopCheck {
    pub(crate) fn mode(&self) -> DpopMode {
        self.mode
    }

    /// Now, by the configured clock.
    pub(crate) fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The `DPoP` header's value: exactly one (§4.3 check 1), visible ASCII.
    pub(crate) fn proof_header<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, DpopError> {
        let mut values = headers.get_all("dpop").iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(match headers.contains_key("dpop") {
                true => DpopError::MultipleProofs,
                false => DpopError::MissingProof,
            });
        };
        value.to_str().map_err(|_| DpopError::Malformed {
            reason: "the DPoP header is not visible ASCII",
        })
    }

    /// Binds a verified token to its checked proof (§4.3 check 12, §7.1): the proof's key
    /// thumbprint must be the token's `cnf.jkt`, and the proof must not have been used before
    /// (§11.1; recorded only now, so that a refused request consumes nothing). Call only with a
    /// `token` the verifier accepted: `cnf` is read from its payload.
    pub(crate) fn bind(
        &self,
        token: &str,
        proof: CheckedProof,
    ) -> Result<DpopThumbprint, DpopError> {
        let jkt = match confirmation(token.as_bytes()) {
            Ok(Some(serde_json::Value::Object(cnf))) => match cnf.get("jkt") {
                Some(serde_json::Value::String(jkt)) => jkt.clone(),
                _ => return Err(DpopError::UnboundToken),
            },
            _ => return Err(DpopError::UnboundToken),
        };
        // Not secret: the thumbprint of a public key, in the token anyone holding it can read.
        if jkt != proof.thumbprint {
            return Err(DpopError::KeyMismatch);
        }
        // Check 11 again, now: the token's verification may have taken long, and a proof out of
        // its window may already be gone from the replay memory (§11.1), so only a proof still in
        // it is recorded and accepted.
        let now_time = self.now();
        let now = now_time.as_secs_f64();
        if proof.expires < now {
            return Err(DpopError::IssuedAtOutOfWindow {
                iat: (proof.expires - self.iat_window).floor() as i64,
                now: now.floor() as i64,
            });
        }
        self.replay
            .first_use(&proof.replay_key, proof.expires, now_time)?;
        Ok(DpopThumbprint(Arc::from(jkt)))
    }

    /// Why a token sent as `Bearer` is refused, if it is: DPoP is required, or the token is
    /// DPoP-bound (§7.2: its payload has a `cnf` with a `jkt`). Read before the token is verified
    /// or looked up in the token cache (which holds bound tokens accepted with proofs): a refusal
    /// needs no trust, and bytes that are no JWT with a JSON payload have no `cnf` (the verifier
    /// judges the rest).
    pub(crate) fn bearer_refusal(&self, token: &[u8]) -> Option<DpopError> {
        if self.mode == DpopMode::Required {
            return Some(DpopError::DpopRequired);
        }
        let bound = match confirmation(token) {
            Ok(Some(serde_json::Value::Object(cnf))) => cnf.contains_key("jkt"),
            Ok(_) => false,
            // A JSON object we cannot read might hide a `cnf`: fail closed.
            Err(Unreadable) => true,
        };
        bound.then_some(DpopError::BoundTokenAsBearer)
    }

    /// Shapes a refusal's challenge for DPoP (§7.1): `DPoP … algs="…"` instead of `Bearer …`
    /// when the request used the DPoP scheme, when the layer requires DPoP, or for a DPoP rule;
    /// otherwise (a `Bearer` request to a layer that allows both) the `Bearer` challenge stays and
    /// a `DPoP algs="…"` challenge follows it. A `use_dpop_nonce` refusal gets its `DPoP-Nonce`.
    /// A response without a `Bearer` challenge (503, 500, a builder of your own) keeps its own.
    pub(crate) fn shape_refusal<B>(&self, response: &mut Response<B>, dpop_scheme: bool) {
        let rejection = response.extensions().get::<AuthRejection>();
        let nonce = match rejection {
            Some(AuthRejection::Dpop(DpopError::UseNonce { nonce })) => {
                HeaderValue::try_from(nonce.as_str()).ok()
            }
            _ => None,
        };
        let dpop_rule = matches!(rejection, Some(AuthRejection::Dpop(_)));
        let headers = response.headers_mut();
        if let Some(nonce) = nonce {
            headers.insert("dpop-nonce", nonce);
        }
        let Some(bearer) = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return;
        };
        let algs = format!("algs=\"{}\"", self.algs);
        let (value, extra) = if dpop_scheme || dpop_rule || self.mode == DpopMode::Required {
            (format!("DPoP {bearer}, {algs}"), None)
        } else {
            (format!("Bearer {bearer}"), Some(format!("DPoP {algs}")))
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(Ok(extra)) = extra.map(HeaderValue::try_from) {
            headers.append(WWW_AUTHENTICATE, extra);
        }
    }
}

/// A payload that looks like a JSON object but cannot be read (repeated `cnf`, nesting past the
/// parser's limit): whether it holds a `cnf` is unknown.
struct Unreadable;

/// The `cnf` member of a token's payload: `None` when the token is no JWS whose payload is a
/// JSON object, or has no `cnf`.
fn confirmation(token: &[u8]) -> Result<Option<serde_json::Value>, Unreadable> {
    let Some(payload) = token.split(|b| *b == b'.').nth(1) else {
        return Ok(None);
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload) else {
        return Ok(None);
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok(None);
    }
    serde_json::from_slice::<Confirmation>(&bytes)
        .map(|c| c.cnf)
        .map_err(|_| Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    /// §7.2 for `Bearer`: a token that is or may be bound is refused; anything that cannot be
    /// bound is left to the verifier.
    #[test]
    fn bearer_tokens_that_are_or_may_be_bound_are_refused() {
        let allowed = Dpop::new(DpopMode::Allowed, "https://api.example")
            .unwrap()
            .build()
            .unwrap();
        let refused = [
            r#"{"sub":"a","cnf":{"jkt":"abc"}}"#,
            r#"{"cnf":{"jkt":1}}"#,
            // Unreadable JSON objects: a repeated `cnf`, a broken document.
            r#"{"cnf":{},"cnf":{"jkt":"abc"}}"#,
            r#"{"cnf":{"jkt":"abc"}"#,
        ];
        for payload in refused {
            assert_eq!(
                allowed.bearer_refusal(token(payload).as_bytes()),
                Some(DpopError::BoundTokenAsBearer),
                "{payload}"
            );
        }
        let left = [
            token(r#"{"sub":"a"}"#),
            token(r#"{"cnf":{"x5t#S256":"abc"}}"#),
            token("not json"),
            "opaque-token".to_owned(),
            "a.!!!.c".to_owned(),
        ];
        for token in left {
            assert_eq!(allowed.bearer_refusal(token.as_bytes()), None, "{token}");
        }
        let required = Dpop::new(DpopMode::Required, "https://api.example")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            required.bearer_refusal(token(r#"{"sub":"a"}"#).as_bytes()),
            Some(DpopError::DpopRequired)
        );
        assert!(
            Dpop::new(DpopMode::Off, "https://api.example")
                .unwrap()
                .build()
                .is_none()
        );
    }

    /// A proof is bound (and recorded) only within its window: a request whose proof was checked
    /// in time but whose token took long to verify is refused once the window has passed, since
    /// the replay memory may by then have dropped the proof's first use as expired.
    #[test]
    fn a_proof_is_bound_only_within_its_window() {
        use crate::clock::ManualClock;
        let clock = ManualClock::at_unix(999);
        let check = Dpop::new(DpopMode::Required, "https://api.example")
            .unwrap()
            .with_clock(clock.clone())
            .with_max_replay_entries(3)
            .build()
            .unwrap();
        let token = token(r#"{"cnf":{"jkt":"T"}}"#);
        let proof = |jti: &str, expires: f64| CheckedProof {
            thumbprint: "T".to_owned(),
            replay_key: replay::Replay::key("T", "https://api.example/x", jti),
            expires,
        };
        // Two proofs in their last second, one with time left: the memory is full.
        for (jti, expires) in [("a", 1000.0), ("b", 1000.0), ("c", 1050.0)] {
            assert!(check.bind(&token, proof(jti, expires)).is_ok(), "{jti}");
        }
        clock.set(Duration::from_millis(1_000_500));
        // A new proof makes room: the two out of their window go.
        assert!(check.bind(&token, proof("d", 1060.0)).is_ok());
        // `a` again, checked before 1000 s (in its window), its token verified only now.
        let replay = check.bind(&token, proof("a", 1000.0));
        assert!(
            matches!(replay, Err(DpopError::IssuedAtOutOfWindow { .. })),
            "{replay:?}"
        );
    }

    #[test]
    fn settings_that_weaken_dpop_are_refused() {
        let dpop = || Dpop::new(DpopMode::Required, "https://api.example").unwrap();
        for algorithms in [
            &[][..],
            &[Algorithm::HS256],
            &[Algorithm::ES256, Algorithm::MlDsa44],
        ] {
            assert!(
                dpop().with_algorithms(algorithms).is_err(),
                "{algorithms:?}"
            );
        }
        assert!(
            dpop()
                .with_nonces(&[1; 31], Duration::from_secs(60))
                .is_err()
        );
        assert!(Dpop::new(DpopMode::Required, "api.example").is_err());
        let check = dpop().build().unwrap();
        assert!(!check.algs.contains("HS"), "{}", check.algs);
        assert!(!check.algs.contains("ML-DSA"), "{}", check.algs);
    }
}
