//! [`TokenBuilder`]: JWT claims and JWS header, signed into compact serialization
//! (RFC 7515 §7.1).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::Shared;
use crate::key::hmac_sign;

/// The current time as Unix seconds, from [`std::time::SystemTime`], the clock token
/// timestamps are made with.
pub fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("the year is before 292 billion")
}

/// Builds and signs a JWT for a [`TestIssuer`](crate::TestIssuer); from
/// [`TestIssuer::token`](crate::TestIssuer::token).
///
/// Starts as `{"iss": <issuer>, "sub": "system:serviceaccount:default:test", "iat": now,
/// "exp": now + 3600}` (no `aud`) with the header `{"alg": <key alg>, "typ": "JWT",
/// "kid": <signing kid>}`. Every claim and header field can be changed, removed or given a
/// wrong type, to test what a verifier refuses.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_bearer_testing::{TestIssuer, now};
/// use serde_json::json;
///
/// let issuer = TestIssuer::start().await;
/// let builder = issuer
///     .token()
///     .aud("my-api")
///     .expires_in(-60) // expired a minute ago
///     .claim("email", json!("a@example.com"));
/// assert_eq!(builder.claims()["aud"], "my-api");
/// assert!(builder.claims()["exp"].as_i64().unwrap() < now());
/// let jwt = builder.sign();
/// assert_eq!(jwt.matches('.').count(), 2);
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a token builder does nothing until signed"]
pub struct TokenBuilder {
    shared: Arc<Shared>,
    signing_kid: String,
    claims: Map<String, Value>,
    /// Header fields set by the caller, applied over the defaults; `Null` removes a field.
    header_overrides: Map<String, Value>,
}

impl TokenBuilder {
    pub(crate) fn new(shared: Arc<Shared>, signing_kid: String) -> TokenBuilder {
        let now = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), shared.issuer().into());
        claims.insert("sub".into(), "system:serviceaccount:default:test".into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + 3600).into());
        TokenBuilder {
            shared,
            signing_kid,
            claims,
            header_overrides: Map::new(),
        }
    }

    /// Sets `iss`.
    pub fn iss(self, iss: &str) -> Self {
        self.claim("iss", json!(iss))
    }

    /// Removes `iss`.
    pub fn no_iss(self) -> Self {
        self.remove_claim("iss")
    }

    /// Sets `sub`.
    // The JWT claim name; no one will take it for `std::ops::Sub`.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, sub: &str) -> Self {
        self.claim("sub", json!(sub))
    }

    /// Sets `aud` to a single string (RFC 7519 §4.1.3 allows a string or an array).
    pub fn aud(self, aud: &str) -> Self {
        self.claim("aud", json!(aud))
    }

    /// Sets `aud` to an array of strings.
    pub fn auds(self, auds: &[&str]) -> Self {
        self.claim("aud", json!(auds))
    }

    /// Sets `exp` to these Unix seconds.
    pub fn exp(self, unix_secs: i64) -> Self {
        self.claim("exp", json!(unix_secs))
    }

    /// Sets `exp` to [`now()`] plus `secs` (negative: already expired).
    pub fn expires_in(self, secs: i64) -> Self {
        self.exp(now() + secs)
    }

    /// Removes `exp`.
    pub fn no_exp(self) -> Self {
        self.remove_claim("exp")
    }

    /// Sets `iat` to these Unix seconds.
    pub fn iat(self, unix_secs: i64) -> Self {
        self.claim("iat", json!(unix_secs))
    }

    /// Removes `iat`.
    pub fn no_iat(self) -> Self {
        self.remove_claim("iat")
    }

    /// Binds the token to `key` (RFC 9449 §6.1): `cnf` `{"jkt": <the key's RFC 7638
    /// thumbprint>}`. A resource server then requires a proof signed by that key with it.
    pub fn dpop_bound(self, key: &crate::DpopKey) -> Self {
        self.claim("cnf", json!({ "jkt": key.thumbprint() }))
    }

    /// Sets `nbf` to these Unix seconds.
    pub fn nbf(self, unix_secs: i64) -> Self {
        self.claim("nbf", json!(unix_secs))
    }

    /// Sets or replaces any claim with any serializable value: `.claim("team", "blue")`,
    /// `.claim("scp", ["read"])`, or a [`Value`] such as `json!("123")` for a string where a number
    /// belongs.
    ///
    /// # Panics
    ///
    /// If `value` cannot be written as JSON (a map with non-string keys): a bug in the test.
    pub fn claim(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.claims
            .insert(name.to_owned(), claim_value(name, value));
        self
    }

    /// Removes a claim, if present.
    pub fn remove_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets or replaces a header field (`jwk`, `jku`, `crit`, `typ`, `alg`, `kid`...), over
    /// whatever the signing key would put there; `Value::Null` removes the field.
    ///
    /// Overriding `alg` changes only what the header claims: [`Self::sign`] still signs with
    /// the key's real algorithm.
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header_overrides.insert(name.to_owned(), value);
        self
    }

    /// Sets the header `kid` only; the token is still signed with the signing key.
    pub fn kid(self, kid: &str) -> Self {
        self.header("kid", json!(kid))
    }

    /// Leaves `kid` out of the header.
    pub fn no_kid(self) -> Self {
        self.header("kid", Value::Null)
    }

    /// Signs with the issuer's key with this kid (published or not) and puts its kid and
    /// algorithm in the header, unless [`Self::header`] set them.
    ///
    /// # Panics
    /// In [`Self::sign`], if the issuer has no generated key with this kid.
    pub fn sign_with(mut self, kid: &str) -> Self {
        self.signing_kid = kid.to_owned();
        self
    }

    /// Shapes the token like a Kubernetes bound, projected service-account token (as
    /// `TokenRequest` issues it): `sub` `"system:serviceaccount:NS:SA"`, a `kubernetes.io` claim
    /// with the namespace and service account, pod and node names and uids and `warnafter`, a
    /// `jti`, and `iat` = `nbf` = now, `exp` = now + 3607 seconds. Later calls can change any
    /// of these.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let issuer = oidc_bearer_testing::TestIssuer::start().await;
    /// let claims = issuer.token().kubernetes("prod", "billing").claims();
    /// assert_eq!(claims["sub"], "system:serviceaccount:prod:billing");
    /// assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "billing");
    /// # }
    /// ```
    pub fn kubernetes(self, namespace: &str, service_account: &str) -> Self {
        let now = now();
        // Kubernetes adds 7 seconds to the requested lifetime (3600 s by default) and sets
        // warnafter to the un-extended expiry; without extension both are iat + 3607.
        let exp = now + 3607;
        let kubernetes_io = json!({
            "namespace": namespace,
            "serviceaccount": { "name": service_account, "uid": uuid() },
            "pod": { "name": format!("{service_account}-7d4b9c8f6-x2k9q"), "uid": uuid() },
            "node": { "name": "node-1", "uid": uuid() },
            "warnafter": exp,
        });
        self.sub(&format!(
            "system:serviceaccount:{namespace}:{service_account}"
        ))
        .claim("kubernetes.io", kubernetes_io)
        .claim("jti", json!(uuid()))
        .iat(now)
        .nbf(now)
        .exp(exp)
    }

    /// The payload as it stands.
    pub fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// The header [`Self::sign`] would use.
    ///
    /// # Panics
    /// If the issuer has no generated key with the signing kid.
    pub fn header_json(&self) -> Value {
        let alg = self.shared.key(&self.signing_kid).alg().name();
        Value::Object(self.header_with_alg(alg))
    }

    fn header_with_alg(&self, alg: &str) -> Map<String, Value> {
        let mut header = Map::new();
        header.insert("alg".into(), alg.into());
        header.insert("typ".into(), "JWT".into());
        header.insert("kid".into(), self.signing_kid.clone().into());
        apply_overrides(&mut header, &self.header_overrides);
        header
    }

    fn signing_input(&self, header: Map<String, Value>) -> String {
        signing_input(header, self.claims.clone())
    }

    /// Signs with the signing key's real algorithm and returns the compact JWS
    /// `header.payload.signature`.
    ///
    /// # Panics
    /// If the issuer has no generated key with the signing kid.
    pub fn sign(self) -> String {
        let key = self.shared.key(&self.signing_kid);
        let input = self.signing_input(self.header_with_alg(key.alg().name()));
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// An unsecured JWS (RFC 7515 Appendix A.5): header `alg` `"none"` (or what
    /// [`Self::header`] set) and an empty signature, `header.payload.`.
    pub fn sign_none(self) -> String {
        let input = self.signing_input(self.header_with_alg("none"));
        format!("{input}.")
    }

    /// Signs with HMAC (`"HS256"`, `"HS384"` or `"HS512"`) under `secret`, header `alg` = `alg`
    /// (unless [`Self::header`] set it). With the issuer's public key as the secret this forges
    /// the classic algorithm-confusion token.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let issuer = oidc_bearer_testing::TestIssuer::start().await;
    /// let pem = issuer.public_key_pem(&issuer.signing_kid());
    /// let forged = issuer.token().sign_hmac("HS256", pem.as_bytes());
    /// assert_eq!(forged.split('.').count(), 3);
    /// # }
    /// ```
    ///
    /// # Panics
    /// If `alg` is not one of the three HMAC algorithms.
    pub fn sign_hmac(self, alg: &str, secret: &[u8]) -> String {
        let input = self.signing_input(self.header_with_alg(alg));
        let tag = hmac_sign(alg, secret, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
    }
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("signing_kid", &self.signing_kid)
            .field("claims", &self.claims)
            .field("header_overrides", &self.header_overrides)
            .finish_non_exhaustive()
    }
}

/// `value` as the JSON of claim `name`.
///
/// # Panics
/// If `value` cannot be written as JSON (a map with non-string keys): a bug in the test.
pub(crate) fn claim_value(name: &str, value: impl serde::Serialize) -> Value {
    serde_json::to_value(value)
        .unwrap_or_else(|e| panic!("claim `{name}` cannot be written as JSON: {e}"))
}

/// Applies `overrides` to `map`: `Null` removes a member, anything else sets it.
pub(crate) fn apply_overrides(map: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (name, value) in overrides {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
}

/// The JWS signing input `BASE64URL(header) '.' BASE64URL(claims)` (RFC 7515 §5.1).
pub(crate) fn signing_input(header: Map<String, Value>, claims: Map<String, Value>) -> String {
    let encode = |map: Map<String, Value>| {
        let json = serde_json::to_vec(&Value::Object(map)).expect("JSON values serialize");
        URL_SAFE_NO_PAD.encode(json)
    };
    format!("{}.{}", encode(header), encode(claims))
}

/// A random version-4 UUID string (RFC 9562 §5.4), for the uids Kubernetes puts in tokens.
pub(crate) fn uuid() -> String {
    use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system random generator works");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
