//! A request through the bearer layer, answered from its verifier's cache: how the benches time the
//! HTTP layer's fast path (the verifier's synchronous cache lookup takes a `Presented`, which only
//! the crate makes). Each call builds a request carrying the token, calls the layer and polls its
//! future once: a hit never waits, so the first poll answers.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use oidc_bearer::bearer::AuthorizationHeader;
use oidc_bearer::rejection::DefaultRejection;
use oidc_bearer::{BearerAuth, BearerAuthLayer, VerifyToken};
use serde::de::DeserializeOwned;
use tower::util::ServiceFn;
use tower::{Layer as _, Service as _, service_fn};

type Handler = fn(Request<String>) -> Ready<Result<Response<String>, Infallible>>;

fn ok(_: Request<String>) -> Ready<Result<Response<String>, Infallible>> {
    ready(Ok(Response::new(String::new())))
}

/// The bearer layer over `verifier` (decoding `T`) around a handler that answers 200.
pub(crate) struct LayerHit<V, T> {
    service: RefCell<BearerAuth<ServiceFn<Handler>, V, T, DefaultRejection, AuthorizationHeader>>,
    header: HeaderValue,
}

impl<V: VerifyToken, T: DeserializeOwned + Send + Sync + 'static> LayerHit<V, T> {
    pub(crate) fn new(verifier: V, token: &str) -> Self {
        Self::with_layer(
            BearerAuthLayer::new(verifier).claims::<T>(),
            "Bearer",
            token,
        )
    }

    /// `layer` (its settings, DPoP's say), with `Authorization: <scheme> <token>`.
    #[allow(dead_code)] // Each bench binary compiles this module; not all use every function.
    pub(crate) fn with_layer(layer: BearerAuthLayer<V, T>, scheme: &str, token: &str) -> Self {
        Self {
            service: RefCell::new(layer.layer(service_fn(ok as Handler))),
            header: HeaderValue::from_str(&format!("{scheme} {token}")).expect("header"),
        }
    }

    /// One request: panics unless the layer answers 200 at the first poll.
    pub(crate) fn hit(&self) {
        self.hit_with(Request::new(String::new()));
    }

    /// `request` with the token: panics unless the layer answers 200 at the first poll.
    pub(crate) fn hit_with(&self, mut request: Request<String>) {
        request
            .headers_mut()
            .insert(AUTHORIZATION, black_box(self.header.clone()));
        let future = self.service.borrow_mut().call(request);
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 200),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => panic!("the cached path waited"),
        }
    }
}
