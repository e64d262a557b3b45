//! [`ReviewError`]: why a token could not be reviewed (the answer is then a 503, never an
//! acceptance).

use std::fmt;
use std::time::Duration;

/// A TokenReview could not be done: the token may well be valid, so an HTTP server answers 503
/// with `Retry-After` ([`VerifyError::ReviewUnavailable`](crate::VerifyError::ReviewUnavailable)).
///
/// Three kinds, told apart by [`is_api_server_failure`](Self::is_api_server_failure),
/// [`is_local_limit`](Self::is_local_limit) and [`is_configuration`](Self::is_configuration):
/// the API server itself failed (unreachable, 5xx, 429, no answer in time) — the only kind that
/// opens the object-binding check's grace period; a limit of this process (too many reviews
/// pending, no free slot in time, no runtime, shutting down); a deployment mistake (our own
/// credentials refused, a wrong URL). An answer that cannot be trusted (too large, not a
/// TokenReview) is none of them: 503, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReviewError {
    /// The API server refused our own credentials (401) or their permissions (403): grant the
    /// service account `create` on `tokenreviews` (the `system:auth-delegator` cluster role).
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The API server answered another non-success status: 429 and 5xx (overloaded or down), or an
    /// unexpected one (404: the URL does not serve TokenReviews; redirects are not followed).
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed or was reset.
    Transport {
        /// What went wrong.
        message: String,
    },
    /// The API server did not answer within the review's timeout.
    Timeout {
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// Not sent: no review slot came free within the timeout (as many reviews as
    /// `max_concurrent_reviews` allows were in flight all that time).
    QueueTimeout {
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The answer exceeded the size cap.
    TooLarge {
        /// The cap, in bytes.
        max_bytes: usize,
    },
    /// The answer is not a TokenReview, or says `authenticated` without naming a user.
    InvalidResponse {
        /// What is wrong with it.
        message: String,
    },
    /// Not attempted: as many reviews are already pending (waiting for a slot or in flight) as
    /// `max_pending_reviews` allows.
    Overloaded {
        /// The limit reached.
        max_pending: usize,
    },
    /// There is no credential to send: the token file could not be read, ever, or what it holds
    /// cannot be sent in a header (a control character inside).
    NoCredentials,
    /// The review ended without an answer (the runtime is shutting down).
    Aborted,
    /// The caller is not running on a Tokio runtime, on which reviews run as spawned tasks (so
    /// that no caller owns them).
    NoRuntime,
}

impl ReviewError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "review_unauthorized",
            Self::Status { .. } => "review_http_status",
            Self::Transport { .. } => "review_transport",
            Self::Timeout { .. } => "review_timeout",
            Self::QueueTimeout { .. } => "review_queue_timeout",
            Self::TooLarge { .. } => "review_response_too_large",
            Self::InvalidResponse { .. } => "review_invalid_response",
            Self::Overloaded { .. } => "review_overloaded",
            Self::NoCredentials => "review_no_credentials",
            Self::Aborted => "review_aborted",
            Self::NoRuntime => "review_no_runtime",
        }
    }

    /// Whether the API server itself failed: unreachable or the connection broke (`Transport`),
    /// 5xx or 429 (`Status`), or no answer within the timeout (`Timeout`). Only these open the
    /// object-binding check's grace period
    /// (`tokenreview::ObjectBindingCheck`): a local limit, our own configuration
    /// or an answer we cannot trust says nothing about whether the API server would refuse the
    /// token, and accepting it then would let a deleted pod's token through while the API server
    /// is up.
    pub fn is_api_server_failure(&self) -> bool {
        // No `_` arm: a new variant must be placed on one side or the other.
        match self {
            Self::Status { status } => *status == 429 || *status >= 500,
            Self::Transport { .. } | Self::Timeout { .. } => true,
            Self::Unauthorized { .. }
            | Self::TooLarge { .. }
            | Self::InvalidResponse { .. }
            | Self::Overloaded { .. }
            | Self::QueueTimeout { .. }
            | Self::NoCredentials
            | Self::Aborted
            | Self::NoRuntime => false,
        }
    }

    /// Whether the review was not sent, or not finished, because of a limit of this process:
    /// too many tokens pending (`Overloaded`), no free slot in time (`QueueTimeout`), no Tokio
    /// runtime (`NoRuntime`), or the runtime shutting down (`Aborted`).
    pub fn is_local_limit(&self) -> bool {
        match self {
            Self::Overloaded { .. }
            | Self::QueueTimeout { .. }
            | Self::NoRuntime
            | Self::Aborted => true,
            Self::Unauthorized { .. }
            | Self::Status { .. }
            | Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::TooLarge { .. }
            | Self::InvalidResponse { .. }
            | Self::NoCredentials => false,
        }
    }

    /// This failure as the API server's own, if it is one
    /// ([`is_api_server_failure`](Self::is_api_server_failure)): the only thing an outage can be
    /// recorded from.
    pub(crate) fn api_server_failure(&self) -> Option<ApiServerFailure> {
        self.is_api_server_failure().then_some(ApiServerFailure(()))
    }

    /// Whether this is a deployment mistake rather than an outage: our credentials or their
    /// permissions refused, no credentials at all, or a status that says the URL is wrong.
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Unauthorized { .. } | Self::NoCredentials | Self::NoRuntime => true,
            Self::Status { status } => *status != 429 && *status < 500,
            _ => false,
        }
    }
}

impl fmt::Display for ReviewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthorized { status } => write!(
                f,
                "the API server answered {status} to our TokenReview: its credentials or RBAC are \
                 wrong (grant `create` on `tokenreviews.authentication.k8s.io`, e.g. the \
                 `system:auth-delegator` cluster role, to this service's account)"
            ),
            Self::Status { status } => write!(f, "the API server answered HTTP {status}"),
            Self::Transport { message } => write!(f, "TokenReview request failed: {message}"),
            Self::Timeout { timeout } => write!(
                f,
                "the API server did not answer the TokenReview within {timeout:?}"
            ),
            Self::QueueTimeout { timeout } => write!(
                f,
                "no TokenReview slot came free within {timeout:?}; this review was not sent \
                 (raise max_concurrent_reviews if the API server can take more)"
            ),
            Self::TooLarge { max_bytes } => {
                write!(f, "TokenReview answer larger than {max_bytes} bytes")
            }
            Self::InvalidResponse { message } => {
                write!(f, "invalid TokenReview answer: {message}")
            }
            Self::Overloaded { max_pending } => write!(
                f,
                "{max_pending} TokenReviews are already pending; this one was not sent"
            ),
            Self::NoCredentials => write!(
                f,
                "no usable credential for the API server: the service-account token file was \
                 never read, or holds a character a header cannot carry"
            ),
            Self::Aborted => write!(f, "the TokenReview ended without an answer"),
            Self::NoRuntime => write!(
                f,
                "a TokenReview must be sent but there is no Tokio runtime to send it on"
            ),
        }
    }
}

impl std::error::Error for ReviewError {}

/// A review failed because of the API server itself: made only by
/// [`ReviewError::api_server_failure`], and what the TokenReview reviewer takes to
/// record an outage, so that a local limit can never open the grace period.
#[derive(Debug)]
pub(crate) struct ApiServerFailure(());

/// An API server's message in a log line or an error's text: at most 256 characters.
pub(crate) struct Truncated<'a>(pub(crate) &'a str);

impl fmt::Debug for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(256) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}…", &self.0[..end]),
        }
    }
}
