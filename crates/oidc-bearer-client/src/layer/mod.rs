//! [`AddBearerLayer`]: adds `Authorization: Bearer <token>` from a [`TokenSource`](crate::TokenSource)
//! to the requests a tower client sends.
//!
//! The service's error type is [`BoxError`]: the inner service's errors pass through unchanged (boxed),
//! and when no token can be had the request is not sent and the error is a
//! [`TokenError`](crate::TokenError), which callers can recover with `downcast_ref`. A boxed error is what
//! tower's own client middleware (`Timeout`, `Buffer`) produces, and what hyper-util's and tonic's
//! client stacks accept (`Into<BoxError>`).

mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub(crate) use self::future::TokenFuture;
pub use self::{future::AddBearerFuture, layer::AddBearerLayer, service::AddBearer};

/// A type-erased error, as tower uses: the error of [`AddBearer`], the inner service's error or a
/// [`TokenError`](crate::TokenError).
///
/// The inner service's errors pass through unchanged (boxed), and when no token can be had the
/// request is not sent and the error is a `TokenError`, which callers can recover with
/// `downcast_ref`. A boxed error is what tower's own client middleware (`Timeout`, `Buffer`)
/// produces, and what hyper-util's and tonic's client stacks accept (`Into<BoxError>`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The readied inner service and the token to send with it, for a middleware whose call waits on a
/// token ([`AddBearer`], and `AddDpop`).
///
/// The token may take I/O to get, so the inner service is called later, from the future. This takes
/// the instance that `poll_ready` readied and leaves a clone in its place, as tower's `Service` docs
/// advise.
pub(crate) fn readied_with_token<S: Clone, T: crate::TokenSource>(
    inner: &mut S,
    source: &std::sync::Arc<T>,
) -> (S, TokenFuture) {
    let clone = inner.clone();
    let readied = std::mem::replace(inner, clone);
    let source = std::sync::Arc::clone(source);
    (readied, Box::pin(async move { source.token().await }))
}
