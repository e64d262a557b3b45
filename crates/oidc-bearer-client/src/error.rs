//! Errors: [`TokenError`] when a token cannot be had, [`MetadataConfigError`] when a
//! `MetadataTokenSource` is set up wrong.

use std::{error::Error, fmt, io, path::PathBuf, sync::Arc};

use http::StatusCode;

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
        /// Whether the request timed out.
        timed_out: bool,
        /// What the HTTP client reported.
        reason: String,
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
    /// A token had to be loaded outside a Tokio runtime, which the sources load on; call them from
    /// within one. A token already held is still served.
    NoRuntime,
    /// The load this call waited for ended without an outcome: its Tokio runtime shut down, or it
    /// panicked. The next load starts after the usual pause.
    Interrupted,
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
            Self::InvalidFile { path, reason } => {
                write!(f, "token file {} is unusable: {reason}", path.display())
            }
            Self::MetadataUnavailable {
                url,
                timed_out: true,
                reason,
            } => write!(f, "metadata server request to {url} timed out: {reason}"),
            Self::MetadataUnavailable { url, reason, .. } => {
                write!(f, "metadata server request to {url} failed: {reason}")
            }
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
            Self::NoRuntime => f.write_str(
                "no Tokio runtime to load a token on: call the token source from within a Tokio runtime",
            ),
            Self::Interrupted => f.write_str(
                "the token load ended without an outcome (its Tokio runtime shut down, or it panicked)",
            ),
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Error for MetadataConfigError {}

/// An error and its causes as one line ("a: b: c"), for logging a [`TokenError`] or an HTTP
/// client's error, whose own message often leaves the cause out ("error sending request").
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// assert_eq!(oidc_bearer_client::error_chain(&io), "connection refused");
/// ```
pub fn error_chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_every_cause() {
        #[derive(Debug)]
        struct Wrapped(io::Error);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl Error for Wrapped {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let cause = io::Error::other("connection refused");
        assert_eq!(
            error_chain(&Wrapped(io::Error::other("connection refused"))),
            "error sending request: connection refused"
        );
        assert_eq!(error_chain(&cause), "connection refused");
    }

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
}
