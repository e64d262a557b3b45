//! [`BearerAuthFuture`]: verification, then the inner service's future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{BearerRan, Claims, refuse};
use crate::dpop::DpopCheck;
use crate::rejection::{AuthRejection, RejectionResponse};

/// The verification of a request's token (and, with DPoP, its binding to the proof).
pub(super) type VerifyFuture<T> =
    Pin<Box<dyn Future<Output = Result<Arc<T>, AuthRejection>> + Send>>;

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
            // With DPoP: shapes a refusal's challenge (and whether the request used the scheme).
            dpop: Option<(Arc<DpopCheck>, bool)>,
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
        dpop: Option<(Arc<DpopCheck>, bool)>,
    ) -> Self {
        Self {
            state: State::Verifying {
                verify,
                inner: Some(inner),
                req: Some(req),
                rejection,
                dpop,
            },
        }
    }

    /// A refusal whose response is already built.
    pub(super) fn refused(response: Response<ResBody>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(super) fn rejected(rejection: &R, reason: AuthRejection) -> Self {
        Self::refused(refuse(rejection, reason))
    }
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
                    dpop,
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
                        Err(reason) => {
                            let mut response = refuse(rejection, reason);
                            if let Some((dpop, scheme)) = dpop {
                                dpop.shape_refusal(&mut response, *scheme);
                            }
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
