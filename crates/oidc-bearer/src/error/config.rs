//! [`ConfigError`]: a verifier could not be built.

use std::fmt;

/// A verifier could not be built from the configuration it was given.
///
/// These are programmer or deployment errors, reported at construction instead of at the first request.
///
/// Its `Debug` form carries the message (as `std::io::Error`'s does), so that `main` returning it
/// with `?` prints what to change: `Error: ConfigError { code: "no_audience", message: "no audience
/// configured: …" }`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an absolute `https` URL (or loopback `http`), or not a recognised special issuer.
    InvalidIssuer {
        /// The configured value.
        issuer: String,
        /// Why it was refused.
        reason: String,
    },
    /// A URL (discovery or JWKS override) could not be parsed.
    InvalidUrl {
        /// The configured value.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A plain-`http` URL that is not on a loopback address, without the insecure switch.
    InsecureUrl {
        /// The configured value.
        url: String,
    },
    /// No audience was configured (and the audience check was not explicitly skipped).
    NoAudience,
    /// The allowed-algorithm list is empty, or names an algorithm this key source cannot verify.
    InvalidAlgorithms {
        /// Why it was refused.
        reason: String,
    },
    /// A key given for a static key set could not be used.
    InvalidKey {
        /// Why it was refused.
        reason: String,
    },
    /// An extra root certificate could not be parsed.
    InvalidCertificate {
        /// Why it was refused.
        reason: String,
    },
    /// A setting is out of its allowed range.
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP client could not be built.
    HttpClient {
        /// The underlying message.
        message: String,
    },
}

impl ConfigError {
    /// [`InvalidSetting`](Self::InvalidSetting) of `name`, refused for `reason`.
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidSetting {
            name,
            reason: reason.into(),
        }
    }

    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidIssuer { .. } => "invalid_issuer",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::InsecureUrl { .. } => "insecure_url",
            Self::NoAudience => "no_audience",
            Self::InvalidAlgorithms { .. } => "invalid_algorithms",
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidCertificate { .. } => "invalid_certificate",
            Self::InvalidSetting { .. } => "invalid_setting",
            Self::HttpClient { .. } => "http_client",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIssuer { issuer, reason } => {
                write!(f, "invalid issuer {issuer:?}: {reason}")
            }
            Self::InvalidUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Self::InsecureUrl { url } => write!(
                f,
                "refusing plain-http URL {url:?}: https is required off loopback \
                 (use `dangerous_allow_insecure_http` only if you really mean it)"
            ),
            Self::NoAudience => write!(
                f,
                "no audience configured: an audience is required so that tokens meant for another \
                 service are refused (RFC 7519 §4.1.3)"
            ),
            Self::InvalidAlgorithms { reason } => write!(f, "invalid algorithm list: {reason}"),
            Self::InvalidKey { reason } => write!(f, "invalid key: {reason}"),
            Self::InvalidCertificate { reason } => write!(f, "invalid root certificate: {reason}"),
            Self::InvalidSetting { name, reason } => {
                write!(f, "invalid setting `{name}`: {reason}")
            }
            Self::HttpClient { message } => write!(f, "could not build the HTTP client: {message}"),
        }
    }
}

/// The code and the message: what `main` prints for an error it returns.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigError")
            .field("code", &self.code())
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for ConfigError {}
