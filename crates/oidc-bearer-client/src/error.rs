//! Errors: [`TokenError`] when a token cannot be had, [`MetadataConfigError`] when a
//! `MetadataTokenSource` is set up wrong.

use std::{error::Error, fmt, io, path::PathBuf, sync::Arc};

use http::StatusCode;
use oidc_bearer_shared::{fetch::FetchError, flight::FlightError};

use crate::InvalidToken;

/// Why a [`TokenSource`](crate::TokenSource) could not produce a token.
///
/// Sources that already hold a good token keep handing it out when a refresh fails (and trace a
/// warning), so this error means there is no token to send at all. The messages never contain a token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file could not be read (the first read; later failures keep the last good token).
    ReadFile {
        /// The file's path, as configured.
        path: PathBuf,
        /// What went wrong, e.g. [`io::ErrorKind::NotFound`] or [`io::ErrorKind::PermissionDenied`].
        kind: io::ErrorKind,
    },
    /// The token path is not a regular file (after following symlinks): a FIFO, a device, a
    /// socket or a directory is never read.
    NotAFile {
        /// The file's path, as configured.
        path: PathBuf,
    },
    /// The token file was read but does not hold a usable token.
    InvalidFile {
        /// The file's path, as configured.
        path: PathBuf,
        /// What is wrong with its content.
        reason: InvalidToken,
    },
    /// The metadata server could not be reached, or did not answer in time.
    MetadataUnavailable {
        /// The URL requested (it holds the audience, never a token).
        url: String,
        /// What failed: [`FetchError::Transport`] (with what the HTTP client reported) or
        /// [`FetchError::Timeout`].
        source: FetchError,
    },
    /// The metadata server answered with an error status.
    MetadataStatus {
        /// The URL requested.
        url: String,
        /// The status, e.g. 404 when the instance has no service account.
        status: StatusCode,
        /// The start of the response body, which says why (e.g. "non-empty audience parameter
        /// required"); printable characters only.
        body: String,
    },
    /// The metadata server answered 200, but the body is not a usable token.
    InvalidMetadataResponse {
        /// The URL requested.
        url: String,
        /// What is wrong with the body.
        reason: InvalidToken,
    },
    /// A load could not run as a task of its own: [`FlightError::NoRuntime`], a token had to be
    /// loaded outside a Tokio runtime, which the sources load on (call them from within one; a
    /// token already held is still served); [`FlightError::Interrupted`], the load this call waited
    /// for ended without an outcome, because its Tokio runtime shut down or it panicked (the next
    /// load starts after the usual pause).
    Flight(FlightError),
    /// A user-provided source failed; see [`TokenError::other`].
    Other(Arc<dyn Error + Send + Sync>),
}

impl TokenError {
    /// Wraps the error of a user-provided [`TokenSource`](crate::TokenSource).
    pub fn other(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::Other(Arc::from(error.into()))
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadFile { path, kind } => {
                write!(f, "could not read token file {}: {kind}", path.display())
            }
            Self::NotAFile { path } => {
                write!(f, "token path {} is not a regular file", path.display())
            }
            Self::InvalidFile { path, reason } => {
                write!(f, "token file {} is unusable: {reason}", path.display())
            }
            Self::MetadataUnavailable { url, source } => match source {
                FetchError::Timeout { timeout } => write!(
                    f,
                    "metadata server request to {url} timed out after {timeout:?}"
                ),
                FetchError::Transport { message } => {
                    write!(f, "metadata server request to {url} failed: {message}")
                }
                other => write!(f, "metadata server request to {url} failed: {other}"),
            },
            Self::MetadataStatus { url, status, body } => {
                write!(f, "metadata server answered {status} for {url}")?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            Self::InvalidMetadataResponse { url, reason } => {
                write!(f, "metadata server answer for {url} is unusable: {reason}")
            }
            Self::Flight(FlightError::NoRuntime) => f.write_str(
                "no Tokio runtime to load a token on: call the token source from within a Tokio runtime",
            ),
            Self::Flight(FlightError::Interrupted) => f.write_str(
                "the token load ended without an outcome (its Tokio runtime shut down, or it panicked)",
            ),
            Self::Flight(error) => write!(f, "the token load could not run: {error}"),
            Self::Other(error) => write!(f, "token source failed: {error}"),
        }
    }
}

impl Error for TokenError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::InvalidFile { reason, .. } | Self::InvalidMetadataResponse { reason, .. } => {
                Some(reason)
            }
            Self::Other(error) => Some(&**error),
            _ => None,
        }
    }
}

/// Why a `MetadataTokenSource` could not be set up (its audience or the metadata server's URL).
///
/// Its `Debug` form carries the message (as `std::io::Error`'s does), so that `main` returning it
/// with `?` prints what to change.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataConfigError {
    /// The audience is empty; the metadata server would refuse it, and a token for no audience is one
    /// any service would accept.
    EmptyAudience,
    /// The base URL could not be parsed, or is not `http` or `https`.
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
}

impl fmt::Display for MetadataConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyAudience => f.write_str("the audience must not be empty"),
            Self::InvalidBaseUrl { url, reason } => {
                write!(f, "invalid metadata server base URL {url:?}: {reason}")
            }
        }
    }
}

/// The kind and the message: what `main` prints for an error it returns.
impl fmt::Debug for MetadataConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::EmptyAudience => "EmptyAudience",
            Self::InvalidBaseUrl { .. } => "InvalidBaseUrl",
        };
        f.debug_struct("MetadataConfigError")
            .field("kind", &format_args!("{kind}"))
            .field("message", &self.to_string())
            .finish()
    }
}

impl Error for MetadataConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_where() {
        let cases = [
            (
                TokenError::ReadFile {
                    path: "/var/run/secrets/tokens/api".into(),
                    kind: io::ErrorKind::NotFound,
                },
                "could not read token file /var/run/secrets/tokens/api: entity not found",
            ),
            (
                TokenError::NotAFile { path: "/t".into() },
                "token path /t is not a regular file",
            ),
            (
                TokenError::InvalidFile {
                    path: "/t".into(),
                    reason: InvalidToken::Empty,
                },
                "token file /t is unusable: the token is empty",
            ),
            (
                TokenError::MetadataStatus {
                    url: "http://m/x".into(),
                    status: StatusCode::BAD_REQUEST,
                    body: "non-empty audience parameter required".into(),
                },
                "metadata server answered 400 Bad Request for http://m/x: non-empty audience parameter required",
            ),
            (TokenError::other("boom"), "token source failed: boom"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    /// `main` returning it with `?` prints its `Debug` form: the message must be there.
    #[test]
    fn a_config_error_debug_form_carries_its_message() {
        let errors = [
            MetadataConfigError::EmptyAudience,
            MetadataConfigError::InvalidBaseUrl {
                url: "metadata:80".into(),
                reason: "relative URL without a base".into(),
            },
        ];
        for error in errors {
            let debug = format!("{error:?}");
            assert!(
                debug.contains(&format!("{:?}", error.to_string())),
                "{debug}"
            );
        }
    }
}
