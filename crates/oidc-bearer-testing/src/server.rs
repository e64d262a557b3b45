//! The HTTP side: an accept loop on 127.0.0.1 that serves discovery and JWKS documents out of
//! [`Shared`], and that can be stopped (listener and open connections closed) and restarted.
//!
//! We drive hyper's HTTP/1 connections ourselves instead of using `axum::serve`, because
//! `stop_listening` must also cut keep-alive connections: a client's pooled connection that
//! kept working after "the issuer went away" would make outage tests pass for the wrong reason.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::issuer::{Route, Shared};

/// A running accept loop; dropping it (or [`Server::stop`]) shuts the loop down.
pub(crate) struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Spawns the accept loop for `listener` on `runtime`.
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        listener: TcpListener,
        shared: Arc<Shared>,
    ) -> Server {
        let (stop, stopped) = oneshot::channel();
        let task = runtime.spawn(accept_loop(listener, shared, stopped));
        Server { stop, task }
    }

    /// Closes the listener and every open connection, and waits until both are gone.
    pub(crate) async fn stop(self) {
        // The loop may already be gone if its runtime shut down; either way, it is stopped.
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds 127.0.0.1:`port` (0 picks a free port).
pub(crate) async fn bind(port: u16) -> std::io::Result<TcpListener> {
    // tokio sets SO_REUSEADDR on Unix, so re-binding a port whose old connections sit in
    // TIME_WAIT works.
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Fires on stop() and also when the Server is dropped with the last issuer handle.
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Accept errors (e.g. out of file descriptors) are transient; keep serving.
                    continue;
                };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    // A client that hangs up mid-request is not our problem.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Aborts every connection task and waits for them, so their sockets are closed when
    // stop() returns.
    connections.shutdown().await;
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<String> {
    let path = req.uri().path().to_owned();
    let route = shared.route(&path);
    if path == crate::tokenreview::TOKEN_REVIEW_PATH {
        return crate::tokenreview::handle(shared, req).await;
    }
    match &route {
        Route::Discovery => shared.count_discovery(),
        Route::Jwks(_) => {
            // Counted on arrival, before any hold, so tests can wait until a request is
            // parked and then release it.
            shared.count_jwks();
            shared.wait_for_release().await;
        }
        Route::NotFound => {}
    }

    if shared.is_down() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "test issuer is down (set_down)\n",
        );
    }
    if route == Route::NotFound {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return response;
    }

    let (body, cache_control) = match route {
        Route::Discovery => (shared.discovery_document(), None),
        Route::Jwks(kids) => shared.jwks_document(kids.as_deref()),
        Route::NotFound => unreachable!("handled above"),
    };
    let mut response = Response::new(format!("{body:#}"));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = cache_control {
        // Validated in set_cache_control.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(CACHE_CONTROL, value);
        }
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
