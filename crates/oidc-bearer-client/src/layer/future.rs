//! The response future of [`AddBearer`](super::AddBearer): first the token, then the inner call.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::BoxError;
use crate::{BearerToken, TokenError};

pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<BearerToken, TokenError>> + Send>>;

pin_project! {
    /// Response future of [`AddBearer`](super::AddBearer).
    pub struct AddBearerFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        /// Waiting for the token; the readied inner service and the request wait with it.
        FetchToken {
            token: TokenFuture,
            pending: Option<(S, Request<B>)>,
        },
        /// The request is with the inner service.
        Send {
            #[pin]
            future: F,
        },
    }
}

impl<S, B> AddBearerFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn fetch_token(token: TokenFuture, inner: S, request: Request<B>) -> Self {
        Self {
            state: State::FetchToken {
                token,
                pending: Some((inner, request)),
            },
        }
    }

    pub(super) fn send(future: S::Future) -> Self {
        Self {
            state: State::Send { future },
        }
    }
}

impl<S, B> Future for AddBearerFuture<S, B>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::FetchToken { token, pending } => {
                    let token = ready!(token.as_mut().poll(cx));
                    let (mut inner, mut request) = pending
                        .take()
                        .expect("AddBearerFuture polled after completion");
                    // Dropping the readied service on error releases whatever it reserved.
                    let token = token.map_err(BoxError::from)?;
                    // RFC 6750 §2.1: `Authorization: Bearer <b64token>`; the value is marked
                    // sensitive so HTTP/2 keeps it out of HPACK tables and `Debug` hides it.
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header_value());
                    let future = inner.call(request);
                    this.state.set(State::Send { future });
                }
                StateProj::Send { future } => return future.poll(cx).map_err(Into::into),
            }
        }
    }
}
