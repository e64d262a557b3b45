//! [`KeysError`]: an issuer's keys could not be fetched or used.

use std::fmt;
use std::time::Duration;

use oidc_bearer_shared::fetch::{FetchError, LocalCause};
use oidc_bearer_shared::flight::FlightError;

/// An issuer's discovery document or key set could not be fetched or used.
///
/// Its `Debug` form carries the message and, for a configuration mistake, the fix (as
/// `std::io::Error`'s carries its message), so that `verifier.ready().await?` in `main` prints
/// what to change.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeysError {
    /// The HTTP exchange failed: a non-success status (redirects are not followed, so 3xx lands
    /// here), a connection that failed or was reset, no answer within the timeout, or a body over
    /// the size cap.
    Fetch {
        /// The URL fetched.
        url: String,
        /// What failed.
        source: FetchError,
    },
    /// The document is not valid JSON of the expected shape.
    InvalidDocument {
        /// The URL fetched.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The discovery document names another issuer (OpenID Connect Discovery 1.0 §4.3).
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `issuer` of the document.
        found: String,
    },
    /// A URL from the discovery document is not acceptable (plain http off loopback, or unparsable).
    InsecureUrl {
        /// The offending URL.
        url: String,
    },
    /// The key set holds no key this library can use.
    NoUsableKeys {
        /// The URL fetched.
        url: String,
        /// How many keys the set held (all skipped).
        skipped: usize,
    },
    /// Cached keys exist but are older than the maximum staleness and could not be refreshed.
    Stale {
        /// How old the cached keys are.
        age: Duration,
    },
    /// No fetch has succeeded yet and the next attempt is waiting for its backoff.
    Backoff {
        /// The error of the last attempt.
        last: Box<KeysError>,
    },
    /// A fetch could not be run as a task of its own: above all
    /// [`FlightError::NoRuntime`], keys had to be fetched but the caller is not running on a Tokio
    /// runtime, on which fetches run as spawned tasks (so that no caller owns them). Keys already
    /// loaded keep working. (A fetch cut short by its runtime shutting down is recorded as a
    /// [`Fetch`](Self::Fetch) failure, [`FetchError::Transport`].)
    Flight(FlightError),
}

impl KeysError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Fetch { source, .. } => match source {
                FetchError::Status { .. } => "http_status",
                FetchError::Timeout { .. } => "timeout",
                FetchError::TooLarge { .. } => "response_too_large",
                _ => "transport",
            },
            Self::InvalidDocument { .. } => "invalid_document",
            Self::IssuerMismatch { .. } => "discovery_issuer_mismatch",
            Self::InsecureUrl { .. } => "insecure_url",
            Self::NoUsableKeys { .. } => "no_usable_keys",
            Self::Stale { .. } => "keys_stale",
            Self::Backoff { .. } => "backoff",
            Self::Flight(FlightError::NoRuntime) => "no_runtime",
            Self::Flight(FlightError::Full { .. }) => "fetch_overloaded",
            Self::Flight(_) => "fetch_interrupted",
        }
    }

    /// Whether the failure is a configuration mistake that retrying will not fix until someone
    /// changes a setting or the issuer: a discovery document naming another issuer, a 4xx other than
    /// 408 and 429 (a wrong URL), a redirect (never followed), a body that is not a discovery
    /// document or a JWKS, a JWKS with no usable key, an insecure URL, a body over the size cap, a
    /// server certificate that our roots refuse, no Tokio runtime. The rest — connection failures,
    /// timeouts, 5xx, 408, 429, limits of this process — are outages that end on their own.
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Fetch { source, .. } => match source {
                FetchError::Status { status } => !matches!(status, 408 | 429 | 500..),
                FetchError::TooLarge { .. } => true,
                FetchError::Local { cause, .. } => {
                    matches!(cause, LocalCause::Certificate | LocalCause::TlsRefused)
                }
                _ => false,
            },
            Self::InvalidDocument { .. }
            | Self::IssuerMismatch { .. }
            | Self::InsecureUrl { .. }
            | Self::NoUsableKeys { .. } => true,
            Self::Flight(error) => error.is_configuration(),
            Self::Backoff { last } => last.is_configuration(),
            Self::Stale { .. } => false,
        }
    }

    /// What to change, for a configuration error: one sentence for the operator's log.
    /// `issuer` is the configured issuer, when discovery is used.
    pub fn hint(&self, issuer: Option<&str>) -> String {
        match self {
            Self::IssuerMismatch { found, .. } => format!(
                "the discovery document names issuer {found:?}; configure exactly that string, \
                 including any trailing slash (OpenID Connect Discovery 1.0 §4.3 requires an exact match)"
            ),
            Self::Fetch {
                url,
                source: FetchError::Status { status: 404 | 410 },
            } => match issuer {
                Some(issuer) => format!(
                    "nothing is published at {url}: check the issuer URL {issuer:?} (the discovery \
                     document is read from <issuer>/.well-known/openid-configuration), or set the \
                     discovery or JWKS URL explicitly"
                ),
                None => format!("nothing is published at {url}: check the JWKS URL"),
            },
            Self::Fetch {
                url,
                source: FetchError::Status { status: 401 | 403 },
            } => format!(
                "{url} refuses us: the issuer requires credentials (configure a fetch bearer token) \
                 or a network policy blocks it"
            ),
            Self::Fetch {
                url,
                source: FetchError::Status { status },
            } if (300..400).contains(status) => format!(
                "{url} redirects, and redirects are never followed: configure the final URL"
            ),
            Self::Fetch {
                url,
                source: FetchError::Status { .. },
            } => format!("check the URL {url}"),
            Self::InvalidDocument { url, .. } => format!(
                "{url} does not serve the expected JSON document: check that the issuer (or JWKS) \
                 URL points at an OpenID provider"
            ),
            Self::NoUsableKeys { url, .. } => format!(
                "the key set at {url} holds no key this library can use: check the algorithms the \
                 issuer signs with (the skipped keys and why are logged at WARN)"
            ),
            Self::InsecureUrl { url } => format!(
                "{url:?} is not https: serve the issuer over https, or (never in production) allow \
                 plain http"
            ),
            Self::Fetch {
                url,
                source:
                    FetchError::Local {
                        cause: LocalCause::Certificate,
                        ..
                    },
            } => format!(
                "the TLS certificate of {url} was refused: trust the CA that signed it (extra root \
                 certificates), or check the URL"
            ),
            Self::Fetch {
                url,
                source:
                    FetchError::Local {
                        cause: LocalCause::TlsRefused,
                        ..
                    },
            } => format!(
                "{url} refused our TLS handshake (it requires a client certificate, which this \
                 library does not send, or a TLS version we do not offer): serve the issuer's \
                 documents without client authentication, or check the URL"
            ),
            Self::Fetch {
                source: FetchError::TooLarge { max_bytes },
                ..
            } => format!(
                "the response exceeds {max_bytes} bytes: check the URL, or raise the maximum \
                 response size"
            ),
            Self::Flight(FlightError::NoRuntime) => {
                "verify from inside a Tokio runtime (keys are fetched by spawned tasks), or load \
                 the keys once from one with `ready()`"
                    .to_owned()
            }
            Self::Backoff { last } => last.hint(issuer),
            _ => "retrying with backoff".to_owned(),
        }
    }
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch { url, source } => match source {
                FetchError::Status { status } => write!(f, "GET {url} answered HTTP {status}"),
                FetchError::Transport { message } => write!(f, "GET {url} failed: {message}"),
                FetchError::Timeout { timeout } => {
                    write!(f, "GET {url} timed out after {timeout:?}")
                }
                FetchError::TooLarge { max_bytes } => {
                    write!(f, "GET {url}: response larger than {max_bytes} bytes")
                }
                other => write!(f, "GET {url}: {other}"),
            },
            Self::InvalidDocument { url, message } => {
                write!(f, "invalid document at {url}: {message}")
            }
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "discovery document names issuer {found:?}, expected {expected:?} \
                 (OpenID Connect Discovery 1.0 §4.3)"
            ),
            Self::InsecureUrl { url } => write!(f, "refusing insecure or invalid URL {url:?}"),
            Self::NoUsableKeys { url, skipped } => {
                write!(f, "key set at {url} has no usable key ({skipped} skipped)")
            }
            Self::Stale { age } => write!(
                f,
                "cached keys are {}s old, past the maximum staleness, and could not be refreshed",
                age.as_secs()
            ),
            Self::Backoff { last } => write!(f, "waiting to retry after: {last}"),
            Self::Flight(FlightError::NoRuntime) => write!(
                f,
                "keys must be fetched but there is no Tokio runtime to fetch them on"
            ),
            Self::Flight(error) => write!(f, "the key fetch could not run: {error}"),
        }
    }
}

/// The code, the message and, for a configuration mistake, the fix: what `main` prints for an
/// error it returns.
impl fmt::Debug for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("KeysError");
        debug
            .field("code", &self.code())
            .field("message", &self.to_string());
        if self.is_configuration() {
            debug.field("fix", &self.hint(None));
        }
        debug.finish()
    }
}

impl std::error::Error for KeysError {}
