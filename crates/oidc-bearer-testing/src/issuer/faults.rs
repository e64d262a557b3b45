//! The ways the issuer misbehaves (down, not listening, holding JWKS requests) and the counters a
//! test watches it with.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::{Shared, TestIssuer};
use crate::server::{self, Server};

/// How long the `wait_for_*` methods wait before panicking, so a broken test fails instead of
/// hanging.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

impl Shared {
    pub(crate) fn count_discovery(&self) {
        self.discovery_fetches.send_modify(|n| *n += 1);
    }

    pub(crate) fn count_jwks(&self) {
        self.jwks_fetches.send_modify(|n| *n += 1);
    }

    pub(crate) async fn wait_for_release(&self) {
        let mut holds = self.holds.subscribe();
        // The sender lives as long as `self`, so this only returns once no hold is left.
        let _ = holds.wait_for(|n| *n == 0).await;
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

impl TestIssuer {
    /// While down, every request is answered `503 Service Unavailable` (still counted as a
    /// fetch).
    pub fn set_down(&self, down: bool) {
        self.shared().down.store(down, Ordering::SeqCst);
    }

    /// Closes the listener and every open connection: new requests get "connection refused".
    /// Keys, settings and counters are kept. Does nothing if already stopped.
    pub async fn stop_listening(&self) {
        // Held until the server is gone, so that a `resume_listening` waits for the port.
        let _switching = self.inner.switching.lock().await;
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.stop().await;
        }
    }

    /// Listens again on the same port after [`Self::stop_listening`]. Does nothing if already
    /// listening.
    ///
    /// # Panics
    /// If the port cannot be bound again (another process took it meanwhile).
    pub async fn resume_listening(&self) {
        // Waits for a `stop_listening` under way: once it has returned, the old listener and its
        // connections are closed, and tokio sets SO_REUSEADDR, so the port binds at the first try.
        let _switching = self.inner.switching.lock().await;
        if self.is_listening() {
            return;
        }
        let port = self.addr().port();
        let listener = server::bind(port).await.unwrap_or_else(|e| {
            panic!("oidc-bearer-testing: resume_listening: cannot bind port {port}: {e}")
        });
        let new = Server::spawn(
            &self.inner.runtime,
            listener,
            Arc::clone(&self.inner.shared),
        );
        *self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(new);
    }

    /// Whether the issuer is accepting connections (false between [`Self::stop_listening`] and
    /// [`Self::resume_listening`]).
    pub fn is_listening(&self) -> bool {
        self.inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Makes JWKS requests wait until the returned guard is dropped (or
    /// [`JwksHold::release`]d). Requests are counted in [`Self::jwks_fetches`] on arrival, so
    /// `wait_for_jwks_fetches(n)` tells when they are parked; they are answered with the state at
    /// release time. Holds nest: requests wait until every hold is gone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # use oidc_bearer_testing::TestIssuer;
    /// let issuer = TestIssuer::start().await;
    /// let hold = issuer.hold_jwks();
    /// let addr = issuer.addr();
    /// let fetch = tokio::spawn(async move {
    ///     // Any HTTP client will do; raw HTTP/1.1 keeps the example free of dependencies.
    ///     use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///     let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    ///     stream.write_all(b"GET /keys HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    ///     let mut response = String::new();
    ///     stream.read_to_string(&mut response).await.unwrap();
    ///     response
    /// });
    /// issuer.wait_for_jwks_fetches(1).await; // the request is parked
    /// assert!(!fetch.is_finished());
    /// drop(hold);
    /// assert!(fetch.await.unwrap().starts_with("HTTP/1.1 200"));
    /// # }
    /// ```
    pub fn hold_jwks(&self) -> JwksHold {
        self.shared().holds.send_modify(|n| *n += 1);
        JwksHold {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Requests that reached the discovery path, answered or not (503s count).
    pub fn discovery_fetches(&self) -> usize {
        *self.shared().discovery_fetches.borrow()
    }

    /// Requests that reached a JWKS path (the main one and those of [`Self::serve_jwks_at`]),
    /// counted on arrival, answered or not (503s and held requests count).
    pub fn jwks_fetches(&self) -> usize {
        *self.shared().jwks_fetches.borrow()
    }

    /// Requests for `path` of any kind, including 404s.
    pub fn requests_to(&self, path: &str) -> usize {
        self.shared()
            .lock()
            .requests
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Resolves once [`Self::jwks_fetches`] is at least `n`.
    ///
    /// # Panics
    /// After 30 seconds (of real time, so a paused tokio clock does not cut it short), with
    /// the count reached so far, rather than hang a broken test.
    pub async fn wait_for_jwks_fetches(&self, n: usize) {
        wait_for_count(
            &self.shared().jwks_fetches,
            n,
            "wait_for_jwks_fetches",
            "JWKS",
        )
        .await;
    }

    /// Resolves once [`Self::discovery_fetches`] is at least `n`.
    ///
    /// # Panics
    /// After 30 seconds of real time, like [`Self::wait_for_jwks_fetches`].
    pub async fn wait_for_discovery_fetches(&self, n: usize) {
        let counter = &self.shared().discovery_fetches;
        wait_for_count(counter, n, "wait_for_discovery_fetches", "discovery").await;
    }
}

/// Waits until `counter` reaches `n`, or panics after [`WAIT_LIMIT`] of real time.
pub(crate) async fn wait_for_count(
    counter: &watch::Sender<usize>,
    n: usize,
    method: &str,
    what: &str,
) {
    let mut rx = counter.subscribe();
    if *rx.borrow() >= n {
        return;
    }
    // A std thread keeps the time: tokio's clock may be paused in the caller's test, and would
    // then jump straight to a tokio deadline while the requests are still on their way. The thread
    // waits on a channel whose sender this function holds, so it ends as soon as the wait does.
    let (expired_tx, expired) = tokio::sync::oneshot::channel::<()>();
    let (_done, done) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(WAIT_LIMIT) {
            let _ = expired_tx.send(());
        }
    });
    tokio::select! {
        // The sender lives in `Shared`, which the caller's handle keeps alive.
        _ = rx.wait_for(|count| *count >= n) => {}
        _ = expired => {
            let reached = *counter.borrow();
            panic!(
                "oidc-bearer-testing: {method}({n}) timed out after {WAIT_LIMIT:?}: \
                 only {reached} {what} requests arrived"
            );
        }
    }
}

/// While this guard lives, JWKS requests wait; see [`TestIssuer::hold_jwks`].
#[must_use = "dropping the hold releases the JWKS requests at once"]
pub struct JwksHold {
    shared: Arc<Shared>,
}

impl JwksHold {
    /// Releases the held requests (the same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for JwksHold {
    fn drop(&mut self) {
        self.shared.holds.send_modify(|n| *n -= 1);
    }
}

impl fmt::Debug for JwksHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksHold").finish_non_exhaustive()
    }
}
