//! The response future of [`AddDpop`](super::AddDpop): the token, the first call, and at most one
//! retry with the server's nonce.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{Prover, nonce};
use crate::{BearerToken, BoxError, layer::TokenFuture};

pin_project! {
    /// Response future of [`AddDpop`](super::AddDpop).
    pub struct AddDpopFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, S::Future>,
    }
}

/// What a retry needs: the inner service to ready again, the request as the caller made it (a
/// clone, before any header was added), the token, and the prover.
struct Retry<S, B> {
    inner: S,
    request: Request<B>,
    token: BearerToken,
    prover: Arc<Prover>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        /// Waiting for the token; the readied inner service and the request wait with it.
        FetchToken {
            token: TokenFuture,
            pending: Option<(S, Request<B>, Arc<Prover>)>,
        },
        /// The first attempt is with the inner service; `retry` is what a nonce retry needs.
        First {
            #[pin]
            future: F,
            retry: Option<Retry<S, B>>,
            origin: String,
        },
        /// The server asked for a nonce: waiting for the inner service to be ready again.
        Ready {
            retry: Option<Retry<S, B>>,
            origin: String,
        },
        /// The last attempt; its response goes to the caller whatever it is. `nonces` files the
        /// response's nonce, when the layer made the request.
        Last {
            #[pin]
            future: F,
            nonces: Option<(Arc<Prover>, String)>,
        },
    }
}

impl<S, B> AddDpopFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn fetch_token(
        token: TokenFuture,
        prover: Arc<Prover>,
        inner: S,
        request: Request<B>,
    ) -> Self {
        Self {
            state: State::FetchToken {
                token,
                pending: Some((inner, request, prover)),
            },
        }
    }

    /// A request the layer leaves alone.
    pub(super) fn send(future: S::Future) -> Self {
        Self {
            state: State::Last {
                future,
                nonces: None,
            },
        }
    }
}

impl<S, B, ResBody> Future for AddDpopFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    B: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::FetchToken { token, pending } => {
                    let token = ready!(token.as_mut().poll(cx));
                    let (mut inner, request, prover) = pending
                        .take()
                        .expect("AddDpopFuture polled after completion");
                    // Dropping the readied service on error releases whatever it reserved.
                    let token = token.map_err(BoxError::from)?;
                    let mut first = request.clone();
                    let origin = prover.prepare(&mut first, &token)?;
                    let future = inner.call(first);
                    let retry = Retry {
                        inner,
                        request,
                        token,
                        prover,
                    };
                    this.state.set(State::First {
                        future,
                        retry: Some(retry),
                        origin,
                    });
                }
                StateProj::First {
                    future,
                    retry,
                    origin,
                } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let retry = retry.take().expect("AddDpopFuture polled after completion");
                    // RFC 9449 §8.2, §9: keep a nonce sent with any response.
                    let has_nonce = retry.prover.nonces.observe(origin, response.headers());
                    // RFC 9449 §9: a resource server asks for a nonce with 401 and
                    // `WWW-Authenticate: DPoP error="use_dpop_nonce"`, giving it in `DPoP-Nonce`.
                    // Without a nonce to send, a retry would fail the same way.
                    if response.status() == StatusCode::UNAUTHORIZED
                        && has_nonce
                        && nonce::asks_for_nonce(response.headers())
                    {
                        let origin = std::mem::take(origin);
                        this.state.set(State::Ready {
                            retry: Some(retry),
                            origin,
                        });
                    } else {
                        return Poll::Ready(Ok(response));
                    }
                }
                StateProj::Ready { retry, origin } => {
                    let pending = retry
                        .as_mut()
                        .expect("AddDpopFuture polled after completion");
                    ready!(pending.inner.poll_ready(cx)).map_err(Into::into)?;
                    let Retry {
                        mut inner,
                        mut request,
                        token,
                        prover,
                    } = retry.take().expect("checked above");
                    // A new proof: a new `jti` and `iat`, and the nonce just received.
                    prover.prepare(&mut request, &token)?;
                    let future = inner.call(request);
                    let origin = std::mem::take(origin);
                    this.state.set(State::Last {
                        future,
                        nonces: Some((prover, origin)),
                    });
                }
                StateProj::Last { future, nonces } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if let Some((prover, origin)) = nonces {
                        prover.nonces.observe(origin, response.headers());
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
