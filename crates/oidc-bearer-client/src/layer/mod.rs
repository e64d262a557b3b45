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

pub use self::{future::AddBearerFuture, layer::AddBearerLayer, service::AddBearer};

/// A type-erased error, as tower uses: the error of [`AddBearer`], the inner service's error or a
/// [`TokenError`](crate::TokenError).
///
/// The inner service's errors pass through unchanged (boxed), and when no token can be had the
/// request is not sent and the error is a `TokenError`, which callers can recover with
/// `downcast_ref`. A boxed error is what tower's own client middleware (`Timeout`, `Buffer`)
/// produces, and what hyper-util's and tonic's client stacks accept (`Into<BoxError>`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
