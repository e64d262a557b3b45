//! Typed claims: the registered claims of RFC 7519 §4.1 (with a one-or-many audience and a numeric
//! date type), [`DefaultClaims`], what the built-in policies read plus your own claims, and
//! [`WithPayload`], any claims type together with the payload as signed.
//!
//! A verifier decodes the verified payload into any `T: DeserializeOwned`; these types are building
//! blocks for `T`. `DefaultClaims<YourClaims>` is the shortest way to custom claims that the
//! built-in policies can read; a type of your own embeds [`RegisteredClaims`] with
//! `#[serde(flatten)]` and implements [`PolicyClaims`](crate::policy::PolicyClaims).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use kubernetes::{KubernetesIo, LegacyServiceAccountClaims};

pub mod google;
pub mod kubernetes;

/// A JSON numeric date: seconds since the Unix epoch (RFC 7519 §2). Non-integer values are accepted
/// and rounded down; strings are refused (jsonwebtoken < 10.3 let a string `exp` skip the expiry
/// check, CVE-2026-25537).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NumericDate(i64);

impl NumericDate {
    /// The date `secs` seconds after the epoch.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    pub fn as_secs(self) -> i64 {
        self.0
    }
}

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds since the epoch")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("date out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v.abs() < 1e17 {
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("date out of range"))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience(Vec<String>);

impl Audience {
    /// The audiences, in token order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether `aud` is one of them.
    pub fn contains(&self, aud: &str) -> bool {
        self.0.iter().any(|a| a == aud)
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<String>> for Audience {
    fn from(v: Vec<String>) -> Self {
        Self(v)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Self(vec![one]),
            OneOrMany::Many(many) => Self(many),
        })
    }
}

/// The registered claims of RFC 7519 §4.1, as a verified token carries them.
///
/// Embed them in your claims type with `#[serde(flatten)]`. In unit tests, build them with
/// [`new`](Self::new) and set the public fields:
///
/// ```
/// use oidc_bearer::claims::RegisteredClaims;
///
/// let mut claims = RegisteredClaims::new("https://issuer.example");
/// claims.sub = Some("alice".into());
/// assert_eq!(claims.subject(), Some("alice"));
/// assert!(claims.aud.iter().next().is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// The issuer.
    pub iss: String,
    /// The subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The audiences (empty only for issuers configured to skip the audience check).
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience,
    /// The expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// The token's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl RegisteredClaims {
    /// Claims naming only their issuer (every other claim empty): a start for tests, since the
    /// struct is `#[non_exhaustive]`.
    pub fn new(iss: impl Into<String>) -> Self {
        Self {
            iss: iss.into(),
            ..Self::default()
        }
    }

    /// The subject (`sub`), if the token has one.
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }
}

/// The claims type used when none is named: the registered claims, what the built-in policies read
/// (the scopes, the Kubernetes service-account claims) and your own claims, `extra`, of type `E`
/// (none by default).
///
/// Custom claims that the built-in policies can read, without a trait to implement: name your
/// claims' type as `E`, and `Claims<DefaultClaims<MyClaims>>` in handlers.
///
/// ```
/// use oidc_bearer::claims::DefaultClaims;
/// use oidc_bearer::policy::{self, Policy as _};
///
/// #[derive(serde::Deserialize)]
/// struct Profile {
///     email: Option<String>,
/// }
///
/// let claims: DefaultClaims<Profile> = serde_json::from_str(
///     r#"{"iss":"https://issuer.example","sub":"alice","aud":"api","scope":"read write","email":"a@example.com"}"#,
/// ).unwrap();
/// assert_eq!(claims.subject(), Some("alice"));
/// assert_eq!(claims.extra.email.as_deref(), Some("a@example.com"));
/// assert!(policy::scopes(["read"]).check(&claims).is_ok());
/// ```
///
/// `E` is decoded from the same payload (`#[serde(flatten)]`) and sees the claims that
/// `DefaultClaims` does not hold itself: not `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`,
/// `scope`, `scp` or the Kubernetes claims, which are read once, here. `serde_json::Map<String,
/// serde_json::Value>` as `E` keeps every other claim. A `kubernetes.io` claim, `scope` or `scp` of
/// another shape than the one below is a decoding error (the token is refused), as for any claims
/// type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DefaultClaims<E = ()> {
    /// The registered claims.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// The `scope` claim: space-separated (RFC 8693 §4.2, RFC 9068 §2.2.3), or an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The `scp` claim, which some issuers use instead (an array, or space-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<Scope>,
    /// The `kubernetes.io` claim of a bound Kubernetes service-account token.
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<KubernetesIo>,
    /// The flat claims of a legacy Kubernetes service-account token (all `None` for other tokens).
    #[serde(flatten)]
    pub kubernetes_legacy: LegacyServiceAccountClaims,
    /// Your own claims.
    #[serde(flatten)]
    pub extra: E,
}

impl<E> DefaultClaims<E> {
    /// Claims with these registered claims and `extra`, and no scope or Kubernetes claim: a start
    /// for tests, since the struct is `#[non_exhaustive]`.
    pub fn new(registered: RegisteredClaims, extra: E) -> Self {
        Self {
            registered,
            scope: None,
            scp: None,
            kubernetes: None,
            kubernetes_legacy: LegacyServiceAccountClaims::default(),
            extra,
        }
    }

    /// The subject (`sub`), if the token has one.
    pub fn subject(&self) -> Option<&str> {
        self.registered.subject()
    }
}

/// A scope claim (`scope` or `scp`) as the token writes it: a space-separated string (RFC 6749
/// §3.3, RFC 8693 §4.2) or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Scope {
    /// `"read write"`.
    Spaced(String),
    /// `["read", "write"]`.
    List(Vec<String>),
}

impl Scope {
    /// The scopes, in token order, empty items skipped.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (spaced, list) = match self {
            Self::Spaced(s) => (Some(s.split(' ')), None),
            Self::List(l) => (None, Some(l.iter().map(String::as_str))),
        };
        spaced
            .into_iter()
            .flatten()
            .chain(list.into_iter().flatten())
            .filter(|s| !s.is_empty())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a space-separated string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scope, E> {
                Ok(Scope::Spaced(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scope, E> {
                Ok(Scope::Spaced(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scope, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(scope) = seq.next_element()? {
                    list.push(scope);
                }
                Ok(Scope::List(list))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Claims decoded into `T`, together with the verified payload exactly as the issuer signed it.
///
/// Use it as the claims type (`layer.claims::<WithPayload<MyClaims>>()` and
/// `Claims<WithPayload<MyClaims>>` in a handler, or `verifier.verify::<WithPayload<MyClaims>>`)
/// when a handler echoes, logs or forwards the claims: [`payload`](Self::payload) is the signed JSON
/// object, and serializing a `WithPayload` writes it verbatim. That is exact (claims that `T` does not
/// model are kept, nothing is reordered or reformatted) and cheap: no second serialization of `T` on
/// every request, since the token cache shares one `WithPayload` between all requests with the same
/// token. go-oidc keeps the same raw payload in its `IDToken` for `Claims`; Envoy's
/// `forward_payload_header` forwards it.
///
/// It dereferences to `T`. A cache miss reads the payload more often than with `T` alone (once to
/// keep it, once into `T`, once for the registered claims), and each cache entry holds the
/// payload's text besides `T`. Serializing writes the text verbatim with serde_json (others see
/// serde_json's private `RawValue` shape). A payload that repeats a member name, at any depth, is
/// refused before it gets here (RFC 7519 §4), so whoever reads the forwarded payload sees the
/// values `T` saw.
///
/// ```
/// use oidc_bearer::claims::WithPayload;
///
/// let payload = r#"{"iss":"https://issuer.example","sub":"alice","aud":"api","exp":2000000000}"#;
/// let claims: WithPayload = serde_json::from_str(payload).unwrap();
/// assert_eq!(claims.subject(), Some("alice")); // DefaultClaims, through Deref
/// assert_eq!(claims.payload().get(), payload);
/// assert_eq!(serde_json::to_string(&claims).unwrap(), payload);
/// ```
#[derive(Clone)]
pub struct WithPayload<T = DefaultClaims> {
    claims: T,
    payload: Box<serde_json::value::RawValue>,
}

impl<T> WithPayload<T> {
    /// The payload: the JSON object the issuer signed, byte for byte.
    pub fn payload(&self) -> &serde_json::value::RawValue {
        &self.payload
    }
}

impl<T> std::ops::Deref for WithPayload<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.claims
    }
}

impl<T: fmt::Debug> fmt::Debug for WithPayload<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload repeats the claims; its length is enough to tell it is there.
        f.debug_struct("WithPayload")
            .field("claims", &self.claims)
            .field("payload_len", &self.payload.get().len())
            .finish()
    }
}

/// Writes the payload verbatim.
impl<T> Serialize for WithPayload<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.payload.serialize(serializer)
    }
}

/// Reads a JSON object: its text is kept, then decoded into `T`. Only serde_json's deserializers
/// can hand out the text (as for any [`RawValue`](serde_json::value::RawValue)); the verifier's is
/// one.
impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for WithPayload<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let payload = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let claims = serde_json::from_str(payload.get()).map_err(de::Error::custom)?;
        Ok(Self { claims, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_one_or_many() {
        let one: Audience = serde_json::from_str(r#""a""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert!(one.contains("a") && !one.contains("b"));
        assert!(many.contains("b"));
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""a""#);
        assert!(serde_json::from_str::<Audience>("3").is_err());
    }

    /// `E` gets the claims `DefaultClaims` does not hold; a map as `E` keeps them all; the scope
    /// claims are a string or an array; a Kubernetes claim of another shape is an error.
    #[test]
    fn default_claims_carry_your_own_claims() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Mine {
            email: String,
            #[serde(default)]
            sub: Option<String>,
        }
        let payload = serde_json::json!({
            "iss": "https://issuer.example", "sub": "alice", "aud": "api",
            "scp": ["read", "write"], "email": "a@example.com",
            "kubernetes.io/serviceaccount/namespace": "prod", "team": "blue",
        });
        let mine: DefaultClaims<Mine> = serde_json::from_value(payload.clone()).unwrap();
        assert_eq!(mine.subject(), Some("alice"));
        assert_eq!(mine.extra.email, "a@example.com");
        assert_eq!(mine.extra.sub, None, "held by DefaultClaims, not seen by E");
        assert_eq!(
            mine.scp.as_ref().unwrap().iter().collect::<Vec<_>>(),
            ["read", "write"]
        );
        assert_eq!(mine.kubernetes_legacy.namespace.as_deref(), Some("prod"));

        let rest: DefaultClaims<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_value(payload.clone()).unwrap();
        let mut keys: Vec<&str> = rest.extra.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "team"]);

        let none: DefaultClaims = serde_json::from_value(payload).unwrap();
        assert_eq!(none.extra, ());
        assert_eq!(none.registered.aud.iter().collect::<Vec<_>>(), ["api"]);

        for (scope, expected) in [
            (
                serde_json::json!("read  write"),
                Some(vec!["read", "write"]),
            ),
            (
                serde_json::json!(["read", "write"]),
                Some(vec!["read", "write"]),
            ),
            (serde_json::json!(null), None),
            (serde_json::json!(3), None),
        ] {
            let claims = serde_json::from_value::<DefaultClaims>(
                serde_json::json!({"iss": "i", "scope": scope}),
            );
            let found = claims
                .ok()
                .and_then(|c| Some(c.scope?.iter().map(str::to_owned).collect::<Vec<_>>()));
            assert_eq!(
                found,
                expected.map(|e| e.into_iter().map(str::to_owned).collect()),
                "{scope}"
            );
        }
        let odd = serde_json::json!({"iss": "i", "kubernetes.io": {"namespace": "prod"}});
        assert!(serde_json::from_value::<DefaultClaims>(odd).is_err());
    }

    #[test]
    fn numeric_date_accepts_numbers_only() {
        let cases = [
            ("1700000000", Some(1_700_000_000)),
            ("1700000000.9", Some(1_700_000_000)),
            ("\"1700000000\"", None),
            ("null", None),
            ("1e300", None),
        ];
        for (json, expected) in cases {
            assert_eq!(
                serde_json::from_str::<NumericDate>(json)
                    .ok()
                    .map(NumericDate::as_secs),
                expected,
                "{json}"
            );
        }
    }
}
