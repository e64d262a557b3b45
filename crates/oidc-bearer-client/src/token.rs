//! The bearer token that a source hands out, and the little a client may read from it unverified.

use std::{
    error::Error,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use http::HeaderValue;

/// The longest token accepted, in bytes.
///
/// Kubernetes service-account tokens and Google ID tokens are 1–2 KiB. The cap keeps a wrong path (a log
/// file, say) or a misbehaving server from turning into a huge header on every request.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The most a cached token is replaced ahead of its `exp`.
///
/// golang.org/x/oauth2 refreshes 10 s early (`defaultExpiryDelta`) and client-go's cached file source
/// 10 s early (`leeway`); a minute leaves room for the clock skew between this host and the verifier.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A bearer token: a secret that never shows up in `Debug` output.
///
/// It is cheap to clone (one reference count) and already holds the `Authorization` header value, marked
/// sensitive, so adding it to a request copies nothing.
///
/// A `BearerToken` is also a [`TokenSource`](crate::TokenSource) that always returns itself, for fixed
/// tokens and tests.
///
/// ```
/// use oidc_bearer_client::BearerToken;
///
/// let token = BearerToken::new("abc.def.ghi")?;
/// assert_eq!(token.secret(), "abc.def.ghi");
/// assert_eq!(token.header_value(), "Bearer abc.def.ghi");
/// assert!(token.header_value().is_sensitive());
/// assert!(!format!("{token:?}").contains("abc"));
/// # Ok::<(), oidc_bearer_client::InvalidToken>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    inner: Arc<Inner>,
}

#[derive(PartialEq, Eq)]
struct Inner {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    expires_at: Option<SystemTime>,
}

const SCHEME_PREFIX: &str = "Bearer ";

impl BearerToken {
    /// Wraps a token, checking that it is an RFC 6750 `b64token` so it can go into a header as is.
    ///
    /// The text must be exactly the token: surrounding whitespace is an error here (the sources trim the
    /// newline that token files usually end with). If the token is a JWT, its `exp` is read, unverified,
    /// into [`expires_at`](Self::expires_at).
    pub fn new(secret: impl AsRef<str>) -> Result<Self, InvalidToken> {
        let secret = secret.as_ref();
        check_b64token(secret)?;
        let mut header = HeaderValue::try_from(format!("{SCHEME_PREFIX}{secret}"))
            .expect("a b64token is a valid header value");
        // Sensitive values are kept out of HPACK tables and shown as "Sensitive" by the header's Debug.
        header.set_sensitive(true);
        Ok(Self {
            inner: Arc::new(Inner {
                header,
                expires_at: unverified_expiry(secret),
            }),
        })
    }

    /// The token itself, for the rare API that wants it raw. Keep it out of logs.
    pub fn secret(&self) -> &str {
        let header = self
            .inner
            .header
            .to_str()
            .expect("built from a b64token, which is ASCII");
        &header[SCHEME_PREFIX.len()..]
    }

    /// The token's `exp` claim, if it is a JWT that has one.
    ///
    /// Read without verifying the signature: a client only uses it to know when to fetch a new token;
    /// the server that receives the token is the one that verifies it.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }

    /// `Bearer <token>` for the `Authorization` header (RFC 6750 §2.1), marked sensitive.
    pub fn header_value(&self) -> HeaderValue {
        self.inner.header.clone()
    }

    /// When a cache should replace this token, given when it was obtained.
    ///
    /// Shortly before `exp`: a fifth of the time the token had left when it was obtained, at most a
    /// minute. `None` when the token has no known expiry.
    pub(crate) fn refresh_at(&self, obtained_at: SystemTime) -> Option<SystemTime> {
        let exp = self.expires_at()?;
        let remaining = exp.duration_since(obtained_at).unwrap_or_default();
        Some(exp - (remaining / 5).min(MAX_REFRESH_MARGIN))
    }

    /// Whether `exp` has passed at `now`. A token without a known expiry never expires here.
    pub(crate) fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at().is_some_and(|exp| exp <= now)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("secret", &format_args!("**redacted**"))
            .field("expires_at", &self.inner.expires_at)
            .finish()
    }
}

/// Why a text cannot be used as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The text is empty (for a file: empty or only whitespace).
    Empty,
    /// The text is longer than [`MAX_TOKEN_LEN`].
    TooLong {
        /// The accepted maximum, in bytes.
        limit: usize,
    },
    /// The text has a character that RFC 6750 §2.1 does not allow in a `b64token`. The character itself
    /// is not kept, as it is part of a secret.
    InvalidCharacter {
        /// The byte offset of the first such character.
        position: usize,
    },
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the token is empty"),
            Self::TooLong { limit } => write!(f, "the token is longer than {limit} bytes"),
            Self::InvalidCharacter { position } => write!(
                f,
                "the token has a character at byte {position} that RFC 6750 §2.1 does not allow"
            ),
        }
    }
}

impl Error for InvalidToken {}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
///
/// Checking the grammar, not just "is a valid header value", keeps whitespace, commas and control
/// characters (header injection) out of the header.
fn check_b64token(token: &str) -> Result<(), InvalidToken> {
    if token.is_empty() {
        return Err(InvalidToken::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(InvalidToken::TooLong {
            limit: MAX_TOKEN_LEN,
        });
    }
    let body_len = token.trim_end_matches('=').len();
    if body_len == 0 {
        return Err(InvalidToken::InvalidCharacter { position: 0 });
    }
    match token.as_bytes()[..body_len]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || b"-._~+/".contains(b)))
    {
        Some(position) => Err(InvalidToken::InvalidCharacter { position }),
        None => Ok(()),
    }
}

/// JWS compact serialization (RFC 7515 §7.1) uses unpadded base64url; accept padding anyway, since
/// nothing is verified here and being strict would only hide the expiry.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reads `exp` from a JWT's payload without verifying anything; `None` for anything else.
///
/// A client cannot verify its own token (it has neither the issuer's keys nor a reason to), and needs
/// the expiry only to refresh in time. A token that is not a three-part JWS (an opaque token, or an
/// encrypted JWE with five parts) has no known expiry, and sources fall back to their reload interval.
fn unverified_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = BASE64URL.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    // RFC 7519 §2: a NumericDate is a JSON number of seconds, possibly with a fraction.
    let exp = claims.get("exp")?.as_f64()?;
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(exp).ok()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned-looking compact JWT with the given claims; clients never verify, so no key is needed.
    pub(crate) fn jwt(claims: &serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiry_is_read_from_a_jwt_payload() {
        let token = BearerToken::new(jwt(&serde_json::json!({"exp": 2_000_000_000}))).unwrap();
        assert_eq!(token.expires_at(), Some(at(2_000_000_000)));
    }

    #[test]
    fn fractional_expiry_is_accepted() {
        let token = BearerToken::new(jwt(&serde_json::json!({"exp": 10.5}))).unwrap();
        assert_eq!(
            token.expires_at(),
            Some(UNIX_EPOCH + Duration::from_millis(10_500))
        );
    }

    #[test]
    fn tokens_without_a_readable_exp_have_no_expiry() {
        let no_exp = jwt(&serde_json::json!({"sub": "x"}));
        let string_exp = jwt(&serde_json::json!({"exp": "2000000000"}));
        let negative_exp = jwt(&serde_json::json!({"exp": -1}));
        for text in [
            "opaque-token",
            "a.b",
            "a.b.c.d.e",
            "a.%%%.c",
            no_exp.as_str(),
            string_exp.as_str(),
            negative_exp.as_str(),
        ] {
            // `%` is not a b64token character, so that case fails earlier; the rest are valid tokens.
            if let Ok(token) = BearerToken::new(text) {
                assert_eq!(token.expires_at(), None, "{text}");
            }
        }
    }

    #[test]
    fn rfc6750_b64token_grammar_is_enforced() {
        let cases: &[(&str, Result<(), InvalidToken>)] = &[
            ("abc.DEF-_~+/123", Ok(())),
            ("abc==", Ok(())),
            ("", Err(InvalidToken::Empty)),
            ("==", Err(InvalidToken::InvalidCharacter { position: 0 })),
            ("a=b", Err(InvalidToken::InvalidCharacter { position: 1 })),
            ("abc\n", Err(InvalidToken::InvalidCharacter { position: 3 })),
            (" abc", Err(InvalidToken::InvalidCharacter { position: 0 })),
            ("ab c", Err(InvalidToken::InvalidCharacter { position: 2 })),
            ("a,b", Err(InvalidToken::InvalidCharacter { position: 1 })),
            ("héllo", Err(InvalidToken::InvalidCharacter { position: 1 })),
        ];
        for (text, expected) in cases {
            assert_eq!(&BearerToken::new(text).map(|_| ()), expected, "{text:?}");
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            BearerToken::new(long).map(|_| ()),
            Err(InvalidToken::TooLong {
                limit: MAX_TOKEN_LEN
            })
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let token = BearerToken::new("very-secret-value").unwrap();
        let debug = format!("{token:?} {:?}", token.header_value());
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn header_value_is_the_bearer_scheme_and_sensitive() {
        let token = BearerToken::new("t0k3n").unwrap();
        assert_eq!(token.header_value(), "Bearer t0k3n");
        assert!(token.header_value().is_sensitive());
        assert_eq!(token.secret(), "t0k3n");
    }

    #[test]
    fn refresh_comes_a_fifth_of_the_remaining_life_early_at_most_a_minute() {
        let cases = [
            // (obtained at, exp, refresh at)
            (0, 3600, 3540),    // an hour left: a minute early
            (0, 100, 80),       // 100 s left: 20 s early
            (50, 100, 90),      // 50 s left: 10 s early
            (200, 100, 100),    // already expired: at exp, which has passed
            (1000, 1000, 1000), // expires now
        ];
        for (obtained, exp, refresh) in cases {
            let token = BearerToken::new(jwt(&serde_json::json!({ "exp": exp }))).unwrap();
            assert_eq!(
                token.refresh_at(at(obtained)),
                Some(at(refresh)),
                "obtained {obtained}, exp {exp}"
            );
        }
        let opaque = BearerToken::new("opaque").unwrap();
        assert_eq!(opaque.refresh_at(at(0)), None);
    }
}
