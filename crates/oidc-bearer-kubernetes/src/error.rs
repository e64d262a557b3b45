//! [`ReviewError`]: why a token could not be reviewed (the answer is then a 503, never an
//! acceptance).

use std::fmt;
use std::time::Duration;

use oidc_bearer_shared::fetch::{FetchError, LocalCause};
use oidc_bearer_shared::flight::FlightError;

use oidc_bearer::{ReviewSource, VerifyError};

/// A TokenReview could not be done: the token may well be valid, so an HTTP server answers 503
/// with `Retry-After` ([`VerifyError::ReviewUnavailable`](oidc_bearer::VerifyError::ReviewUnavailable)).
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
    /// The HTTP exchange with the API server failed: another non-success status (429 and 5xx,
    /// overloaded or down, or an unexpected one: 404, the URL does not serve TokenReviews;
    /// redirects are not followed), a connection that failed or was reset, no answer within the
    /// review's timeout, or an answer over the size cap.
    Fetch(FetchError),
    /// Not sent: no review slot came free within the timeout (as many reviews as
    /// `max_concurrent_reviews` allows were in flight all that time).
    QueueTimeout {
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The answer is not a TokenReview, or says `authenticated` without naming a user.
    InvalidResponse {
        /// What is wrong with it.
        message: String,
    },
    /// There is no credential to send: the token file could not be read, ever, or what it holds
    /// cannot be sent in a header (a control character inside).
    NoCredentials,
    /// The review could not be run as a task of its own (reviews run as spawned tasks, so that no
    /// caller owns them): [`FlightError::Full`], as many reviews are already pending (waiting for
    /// a slot or in flight) as `max_pending_reviews` allows, so this one was not attempted;
    /// [`FlightError::NoRuntime`], the caller is not running on a Tokio runtime;
    /// [`FlightError::Interrupted`], the review ended without an answer (the runtime is shutting
    /// down).
    Flight(FlightError),
}

impl ReviewError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "review_unauthorized",
            Self::Fetch(FetchError::Status { .. }) => "review_http_status",
            Self::Fetch(FetchError::Timeout { .. }) => "review_timeout",
            Self::Fetch(FetchError::TooLarge { .. }) => "review_response_too_large",
            Self::Fetch(FetchError::Local {
                cause: LocalCause::Certificate,
                ..
            }) => "review_certificate_refused",
            Self::Fetch(FetchError::Local {
                cause: LocalCause::TlsRefused,
                ..
            }) => "review_tls_refused",
            Self::Fetch(FetchError::Local {
                cause: LocalCause::Resources,
                ..
            }) => "review_local_resources",
            Self::Fetch(FetchError::Local {
                cause: LocalCause::Stalled,
                ..
            }) => "review_stalled",
            Self::Fetch(FetchError::Local {
                cause: LocalCause::NameResolution,
                ..
            }) => "review_name_resolution",
            Self::Fetch(FetchError::Local {
                cause: LocalCause::Proxy,
                ..
            }) => "review_proxy",
            Self::Fetch(_) => "review_transport",
            Self::QueueTimeout { .. } => "review_queue_timeout",
            Self::InvalidResponse { .. } => "review_invalid_response",
            Self::NoCredentials => "review_no_credentials",
            Self::Flight(FlightError::Full { .. }) => "review_overloaded",
            Self::Flight(FlightError::NoRuntime) => "review_no_runtime",
            Self::Flight(_) => "review_aborted",
        }
    }

    /// Whether the API server itself failed: unreachable or the connection broke
    /// ([`FetchError::Transport`]), 5xx or 429 ([`FetchError::Status`]), or no answer within the
    /// timeout ([`FetchError::Timeout`]) — and nothing on this side explains it
    /// ([`FetchError::Local`] never counts: when in doubt, not the API server's). Only these open the
    /// object-binding check's grace period
    /// (`tokenreview::ObjectBindingCheck`): a local limit, our own configuration
    /// or an answer we cannot trust says nothing about whether the API server would refuse the
    /// token, and accepting it then would let a deleted pod's token through while the API server
    /// is up.
    pub fn is_api_server_failure(&self) -> bool {
        // No `_` arm: a new variant must be placed on one side or the other. (A kind of fetch
        // failure added later is not one until it is placed here: no grace period for it.)
        match self {
            Self::Fetch(FetchError::Status { status }) => *status == 429 || *status >= 500,
            Self::Fetch(FetchError::Transport { .. } | FetchError::Timeout { .. }) => true,
            Self::Fetch(FetchError::Local { .. }) => false,
            Self::Fetch(_)
            | Self::Unauthorized { .. }
            | Self::InvalidResponse { .. }
            | Self::QueueTimeout { .. }
            | Self::NoCredentials
            | Self::Flight(_) => false,
        }
    }

    /// Whether the review was not sent, or not finished, because of a limit of this process:
    /// no free slot in time (`QueueTimeout`), a review that could not run as a task of its own
    /// (`Flight`: too many tokens pending, no Tokio runtime, or the runtime shutting down), or a
    /// failure on this side other than a TLS refusal either way ([`FetchError::Local`]: out of file
    /// descriptors, …).
    pub fn is_local_limit(&self) -> bool {
        match self {
            Self::QueueTimeout { .. } | Self::Flight(_) => true,
            Self::Fetch(FetchError::Local { cause, .. }) => {
                !matches!(cause, LocalCause::Certificate | LocalCause::TlsRefused)
            }
            Self::Unauthorized { .. }
            | Self::Fetch(_)
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
    /// permissions refused, no credentials at all, a status that says the URL is wrong, or the
    /// API server's certificate refused (the configured CA did not sign it).
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Unauthorized { .. } | Self::NoCredentials => true,
            Self::Flight(error) => error.is_configuration(),
            Self::Fetch(FetchError::Status { status }) => *status != 429 && *status < 500,
            // The cluster CA we trust did not sign the API server's certificate, or the API
            // server refused our handshake (a client certificate it requires).
            Self::Fetch(FetchError::Local { cause, .. }) => {
                matches!(cause, LocalCause::Certificate | LocalCause::TlsRefused)
            }
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
            Self::Fetch(FetchError::Status { status }) => {
                write!(f, "the API server answered HTTP {status}")
            }
            Self::Fetch(FetchError::Transport { message }) => {
                write!(f, "TokenReview request failed: {message}")
            }
            Self::Fetch(FetchError::Timeout { timeout }) => write!(
                f,
                "the API server did not answer the TokenReview within {timeout:?}"
            ),
            Self::Fetch(FetchError::TooLarge { max_bytes }) => {
                write!(f, "TokenReview answer larger than {max_bytes} bytes")
            }
            Self::Fetch(FetchError::Local {
                cause: LocalCause::Certificate,
                message,
            }) => write!(
                f,
                "the API server's TLS certificate was refused ({message}): give the CA that \
                 signed it (`InCluster::with_ca_path`, default the pod's `ca.crt`; or \
                 `ApiServerBuilder::with_ca_pem`)"
            ),
            Self::Fetch(FetchError::Local {
                cause: LocalCause::TlsRefused,
                message,
            }) => write!(
                f,
                "the API server (or a proxy or load balancer before it) refused our TLS handshake \
                 ({message}): it requires a client certificate, which this library does not send, \
                 or a TLS version we do not offer; point the URL at the API server itself \
                 (`InCluster::with_api_server`, `ApiServer::builder`)"
            ),
            Self::Fetch(FetchError::Local { cause, message }) => {
                write!(f, "TokenReview failed on our side ({cause}): {message}")
            }
            Self::Fetch(other) => write!(f, "TokenReview request failed: {other}"),
            Self::QueueTimeout { timeout } => write!(
                f,
                "no TokenReview slot came free within {timeout:?}; this review was not sent \
                 (raise max_concurrent_reviews if the API server can take more)"
            ),
            Self::InvalidResponse { message } => {
                write!(f, "invalid TokenReview answer: {message}")
            }
            Self::Flight(FlightError::Full { max }) => write!(
                f,
                "{max} TokenReviews are already pending; this one was not sent"
            ),
            Self::NoCredentials => write!(
                f,
                "no usable credential for the API server: the service-account token file was \
                 never read, or holds a character a header cannot carry"
            ),
            Self::Flight(FlightError::NoRuntime) => write!(
                f,
                "a TokenReview must be sent but there is no Tokio runtime to send it on"
            ),
            Self::Flight(_) => write!(f, "the TokenReview ended without an answer"),
        }
    }
}

impl std::error::Error for ReviewError {}

impl ReviewError {
    /// The review error inside `error`, if it is a
    /// [`ReviewUnavailable`](VerifyError::ReviewUnavailable) whose source is one (read by
    /// downcast of its [`ReviewSource`]).
    ///
    /// ```
    /// use oidc_bearer::VerifyError;
    /// use oidc_bearer_kubernetes::ReviewError;
    ///
    /// let error = VerifyError::from(ReviewError::NoCredentials);
    /// assert_eq!(ReviewError::of(&error), Some(&ReviewError::NoCredentials));
    /// assert!(!ReviewError::of(&error).unwrap().is_api_server_failure());
    /// ```
    pub fn of(error: &VerifyError) -> Option<&Self> {
        match error {
            VerifyError::ReviewUnavailable { source } => source.downcast_ref(),
            _ => None,
        }
    }
}

/// A review that could not be done: [`VerifyError::ReviewUnavailable`] (503, never an acceptance).
impl From<ReviewError> for VerifyError {
    fn from(error: ReviewError) -> Self {
        VerifyError::ReviewUnavailable {
            source: ReviewSource::new(error),
        }
    }
}

/// A review failed because of the API server itself: made only by
/// [`ReviewError::api_server_failure`], and what the TokenReview reviewer takes to
/// record an outage, so that a local limit can never open the grace period.
#[derive(Debug)]
pub(crate) struct ApiServerFailure(());
