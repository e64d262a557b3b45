//! [`BearerAuthFuture`]: verification, then the inner service's future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{BearerRan, Claims};
use crate::error::VerifyError;
use crate::rejection::{AuthRejection, RejectionResponse};

type VerifyFuture<T> = Pin<Box<dyn Future<Output = Result<Arc<T>, VerifyError>> + Send>>;

pin_project! {
    /// The response future of [`BearerAuth`](super::BearerAuth).
    pub struct BearerAuthFuture<S, ReqBody, T, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, T, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, T, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Verifying {
            verify: VerifyFuture<T>,
            inner: Option<S>,
            req: Option<Request<ReqBody>>,
            rejection: R,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<S::Response>,
        },
    }
}

impl<S, ReqBody, T, R, ResBody> BearerAuthFuture<S, ReqBody, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse<ResBody>,
{
    pub(super) fn call(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(super) fn verifying(
        verify: VerifyFuture<T>,
        inner: S,
        req: Request<ReqBody>,
        rejection: R,
    ) -> Self {
        Self {
            state: State::Verifying {
                verify,
                inner: Some(inner),
                req: Some(req),
                rejection,
            },
        }
    }

    pub(super) fn rejected(rejection: &R, reason: AuthRejection) -> Self {
        Self {
            state: State::Rejected {
                response: Some(reject(rejection, reason)),
            },
        }
    }
}

/// Builds the rejection response, records why in its extensions, and traces it (never the token).
///
/// The lines are rate-limited (one per 10 s per kind, with the count of those suppressed): callers
/// choose how often this runs, and a flood of bad tokens must not fill a disk. The typed reason is
/// in every response's extensions whatever the logging does.
fn reject<B, R: RejectionResponse<B>>(rejection: &R, reason: AuthRejection) -> Response<B> {
    use crate::log_limit::{LogLimiter, PERIOD};
    static UNAVAILABLE: LogLimiter = LogLimiter::new();
    static REJECTED: LogLimiter = LogLimiter::new();
    match &reason {
        AuthRejection::MissingToken => {
            tracing::debug!(
                code = reason.code(),
                "request without bearer token rejected"
            );
        }
        AuthRejection::Unavailable(error) => {
            if tracing::enabled!(tracing::Level::WARN)
                && let Some(suppressed) = UNAVAILABLE.allow(PERIOD)
            {
                tracing::warn!(code = reason.code(), %error, suppressed, "token not verifiable now (503)");
            }
        }
        other => {
            if tracing::enabled!(tracing::Level::INFO)
                && let Some(suppressed) = REJECTED.allow(PERIOD)
            {
                tracing::info!(code = other.code(), status = other.status().as_u16(), reason = %other, suppressed, "bearer token rejected");
            }
        }
    }
    crate::metrics::request_refused(reason.code());
    let mut response = rejection.response(&reason);
    response.extensions_mut().insert(reason);
    response
}

impl<S, ReqBody, T, R, ResBody> Future for BearerAuthFuture<S, ReqBody, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: Send + Sync + 'static,
    R: RejectionResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying {
                    verify,
                    inner,
                    req,
                    rejection,
                } => {
                    let result = ready!(verify.as_mut().poll(cx));
                    match result {
                        Ok(claims) => {
                            crate::metrics::request_accepted();
                            let mut req = req.take().expect("polled after completion");
                            // Decoded once per request, shared with handlers.
                            req.extensions_mut().insert(Claims::<T>(claims));
                            req.extensions_mut().insert(BearerRan);
                            let mut inner = inner.take().expect("polled after completion");
                            let future = inner.call(req);
                            this.state.set(State::Calling { future });
                        }
                        Err(error) => {
                            let response = reject(rejection, AuthRejection::from_verify(error));
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
            }
        }
    }
}
