//! The HTTP side: an accept loop on 127.0.0.1 that serves what a [`Handler`] answers (the issuer's
//! routes, in `issuer::serve`), and that can be stopped (listener and open connections closed) and
//! restarted.
//!
//! We drive hyper's HTTP/1 connections ourselves instead of using `axum::serve`, because
//! `stop_listening` must also cut keep-alive connections: a client's pooled connection that
//! kept working after "the issuer went away" would make outage tests pass for the wrong reason.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// What the accept loop serves.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The response to one request.
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<String>> + Send;
}

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
        shared: Arc<impl Handler>,
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
    shared: Arc<impl Handler>,
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
                        async move { Ok::<_, Infallible>(shared.handle(req).await) }
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
