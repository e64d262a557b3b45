//! Review R6 (session 4) of b53778d: a `Heartbeat` (a 25 ms interval) beside each exchange in
//! oidc-bearer-shared's `by_deadline`, which turns a `FetchError::Timeout` ending an exchange
//! during which this process stalled more than `STALL_TOLERANCE` into `Local { Stalled }`; the
//! API server's client has its 2 s connect timeout back.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::review_r4::{
    REFUSAL, answer_with_the_refusal, ca_and_certificate, hello_retry_config,
    read_the_first_client_hello,
};
use super::review_r5::{api_trusting, bound_with_grace, response};
use super::{
    Cluster, ManualClock, ObjectBinding, TokenReviewSettings, VerifyError, assert_not_accepted,
    loaded_without_a_review, verify,
};
use oidc_bearer::Verifier;
use oidc_bearer_kubernetes::ApiServer;

/// A current-thread runtime: the review's, not driven between `block_on` calls.
pub(super) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A plain-HTTP TokenReview API server on 127.0.0.1 (loopback) that refuses every token and keeps
/// its connections alive. Each connection, once it has answered one request (`answered`), waits
/// for a `close` and closes — as a server closes a keep-alive connection idle past its idle
/// timeout (Go's `http.Server.IdleTimeout`, a load balancer's) — and says so (`closed`).
struct IdleClosingApiServer {
    url: String,
    answered: std::sync::mpsc::Receiver<()>,
    close: std::sync::mpsc::Sender<()>,
    closed: std::sync::mpsc::Receiver<()>,
}

impl IdleClosingApiServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (answered_tx, answered) = std::sync::mpsc::channel();
        let (close, close_rx) = std::sync::mpsc::channel::<()>();
        let close_rx = Arc::new(Mutex::new(close_rx));
        let (closed_tx, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (answered_tx, closed_tx) = (answered_tx.clone(), closed_tx.clone());
                let close_rx = close_rx.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    if !crate::support::read_http_request(&mut stream) {
                        return;
                    }
                    let answer = response("201 Created", REFUSAL);
                    let _ = stream
                        .write_all(answer.as_bytes())
                        .and_then(|()| stream.flush());
                    let _ = answered_tx.send(());
                    if close_rx.lock().unwrap().recv().is_err() {
                        return;
                    }
                    // Idle past the server's idle timeout: closed (FIN).
                    drop(stream);
                    let _ = closed_tx.send(());
                });
            }
        });
        Self {
            url,
            answered,
            close,
            closed,
        }
    }

    /// Closes the connection that answered last, once it has answered.
    fn close_the_idle_connection(&self) {
        self.answered.recv().unwrap();
        self.close.send(()).unwrap();
        self.closed.recv().unwrap();
    }
}

/// The API server at `url` (plain HTTP on loopback), our credential the cluster's caller token.
fn api_at(cluster: &Cluster, url: String) -> ApiServer {
    let caller = cluster.reviews.caller_token();
    ApiServer::builder(url)
        .with_bearer_token(move || Some(caller.clone()))
        .build()
        .unwrap()
}

/// Finding (R6): a stall of this process before `by_deadline` starts is seen by no heartbeat,
/// and a stall that ends in a `Transport` error is never reclassified anyway. Here the API server
/// is up throughout (it answers every review on a new connection) and closes a keep-alive
/// connection of ours that sat idle while this process did not run (a current-thread runtime
/// between two `block_on` calls; every worker busy does the same). When the process runs again,
/// the next review runs before the runtime's I/O driver has turned, so the pool still takes the
/// connection for open: the request is written into the closed connection and fails
/// ("connection closed before message completed", not retried: the request was written) —
/// `FetchError::Transport`, the API server's failure: the grace period opens. Had the process run,
/// the connection's task would have seen the close and the pool would have dropped it (the
/// control below: the same close with the runtime driven, and the next review is refused). Seen
/// on b53778d: `Transport { "error sending request: client error (SendRequest): connection closed
/// before message completed" }`.
#[test]
fn r6_a_pooled_connection_closed_while_this_process_stalled_opens_no_grace_period() {
    let main = super::one_worker();
    let side = current_thread();
    let cluster = main.block_on(Cluster::start());
    let server = IdleClosingApiServer::start();
    let clock = ManualClock::new();
    let api = api_at(&cluster, server.url.clone());
    let settings = TokenReviewSettings::default();
    let verifier = side.block_on(loaded_without_a_review(&cluster, &clock, api, settings));
    let refused = |result: Result<(), VerifyError>| {
        assert!(
            matches!(result, Err(VerifyError::ReviewRefused { .. })),
            "{result:?}"
        )
    };
    // The control: a first review, refused, leaves its connection in the pool; the API server
    // closes it while the runtime is driven (its connection's task sees the close), and the
    // next review is sent on a new connection and refused.
    refused(side.block_on(verify(&verifier, &cluster.token().sign())));
    server.close_the_idle_connection();
    side.block_on(async {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    });
    refused(side.block_on(verify(&verifier, &cluster.token().sign())));
    // That connection is closed the same way while this process does not run.
    server.close_the_idle_connection();

    let revoked = cluster.token().sign();
    let result = side.block_on(verify(&verifier, &revoked));
    assert_not_accepted(
        &result,
        "a pooled connection the API server closed while this process did not run",
    );
}

/// An HTTPS API server on 127.0.0.1 whose TLS handshake takes two round trips (see
/// [`hello_retry_config`]): each connection says when it has the first ClientHello (`hello`) and
/// waits for a `release` before answering it; `then` serves the rest of the connection.
pub(super) struct HelloRetryApiServer {
    url: String,
    ca_pem: String,
    hello: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

/// What a [`HelloRetryApiServer`] does with a connection once its HelloRetryRequest is ready.
pub(super) type Then = Arc<dyn Fn(rustls::ServerConnection, std::net::TcpStream) + Send + Sync>;

impl HelloRetryApiServer {
    pub(super) fn start(then: Then) -> Self {
        let certified = ca_and_certificate();
        let config = hello_retry_config(&certified);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (hello_tx, hello) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, hello_tx) = (config.clone(), hello_tx.clone());
                let (released, then) = (released.clone(), then.clone());
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut connection = rustls::ServerConnection::new(config).unwrap();
                    if !read_the_first_client_hello(&mut connection, &mut stream) {
                        return;
                    }
                    let _ = hello_tx.send(());
                    if released.lock().unwrap().recv().is_ok() {
                        then(connection, stream);
                    }
                });
            }
        });
        Self {
            url,
            ca_pem: certified.ca_pem,
            hello,
            release,
        }
    }

    /// A check of `cluster`'s tokens against this server with `timeout`, and its control (the
    /// same, a client of its own), both with their keys loaded and no review sent.
    pub(super) fn verifier_and_control(
        &self,
        side: &tokio::runtime::Runtime,
        cluster: &Cluster,
        clock: &ManualClock,
        timeout: Duration,
    ) -> (ObjectBinding<Verifier>, ObjectBinding<Verifier>) {
        let api = || api_trusting(cluster, self.url.clone(), self.ca_pem.clone());
        let mut settings = TokenReviewSettings::default();
        settings.timeout = timeout;
        side.block_on(async {
            (
                loaded_without_a_review(cluster, clock, api(), settings.clone()).await,
                loaded_without_a_review(cluster, clock, api(), settings.clone()).await,
            )
        })
    }

    /// The control reviews `token` driven throughout (the API server refuses it); then a review
    /// of `token` by `verifier` starts and this returns once the API server has its first
    /// ClientHello (the review goes on as a task of its own, not driven from here on), and the
    /// API server answers that ClientHello at once. Returns when the review started.
    pub(super) fn control_then_start(
        &mut self,
        side: &tokio::runtime::Runtime,
        control: &ObjectBinding<Verifier>,
        verifier: &ObjectBinding<Verifier>,
        token: &str,
    ) -> std::time::Instant {
        self.release.send(()).unwrap();
        let controlled = side.block_on(verify(control, token));
        assert!(
            matches!(controlled, Err(VerifyError::ReviewRefused { .. })),
            "{controlled:?}"
        );
        self.hello.try_recv().unwrap();
        let started = std::time::Instant::now();
        side.block_on(async {
            let mut first = Box::pin(verify(verifier, token));
            std::future::poll_fn(|cx| {
                assert!(first.as_mut().poll(cx).is_pending(), "answered at once");
                std::task::Poll::Ready(())
            })
            .await;
            self.hello.recv().await.unwrap();
        });
        self.release.send(()).unwrap();
        started
    }
}

/// A [`HelloRetryApiServer`] that wants the rest of the handshake within `handshake_timeout`
/// (nginx's `ssl_handshake_timeout`, a load balancer's), else disconnects us and says so on the
/// receiver (the timeout is the server's behaviour under test, not a wait for something); a
/// handshake completed is answered with the refusal.
pub(super) fn handshake_timing_out(
    handshake_timeout: Duration,
) -> (HelloRetryApiServer, std::sync::mpsc::Receiver<()>) {
    let (gave_up_tx, gave_up) = std::sync::mpsc::channel();
    let gave_up_tx = Mutex::new(gave_up_tx);
    let server = HelloRetryApiServer::start(Arc::new(move |mut connection, mut stream| {
        stream.set_read_timeout(Some(handshake_timeout)).unwrap();
        if connection.complete_io(&mut stream).is_err() || connection.is_handshaking() {
            drop(stream);
            let _ = gave_up_tx.lock().unwrap().send(());
            return;
        }
        stream.set_read_timeout(None).unwrap();
        answer_with_the_refusal(rustls::StreamOwned::new(connection, stream));
    }));
    (server, gave_up)
}

/// Finding (R6): the heartbeat sees a stall and still the review ends as the API server's
/// failure, because only a `Timeout` is reclassified. The API server is up and answers every
/// flight of its TLS handshake at once; this process stalls in the middle of the handshake (the
/// runtime not driven from the API server's HelloRetryRequest on) for longer than the API
/// server's handshake timeout (300 ms here), so the API server disconnects us. When the process
/// runs again, the heartbeat's tick is seen ~300 ms late, but the handshake ends in EOF: a
/// `FetchError::Transport`, the API server's failure, and the grace period opens. The stall, not
/// the API server, ended the exchange.
#[test]
fn r6_a_stall_past_the_api_servers_handshake_timeout_opens_no_grace_period() {
    let main = super::one_worker();
    let side = current_thread();
    let cluster = main.block_on(Cluster::start());
    let (mut server, gave_up) = handshake_timing_out(Duration::from_millis(300));
    let clock = ManualClock::new();
    let timeout = TokenReviewSettings::default().timeout;
    let (verifier, control) = server.verifier_and_control(&side, &cluster, &clock, timeout);
    let token = cluster.token().sign();
    server.control_then_start(&side, &control, &verifier, &token);
    // The API server gives up on us while this process does not run.
    gave_up.recv().unwrap();
    let result = side.block_on(verify(&verifier, &token));
    assert_not_accepted(
        &result,
        "a stall of this process mid-TLS-handshake past the API server's handshake timeout",
    );
}

/// A hung API server on 127.0.0.1 (plain HTTP): every connection accepted and held, nothing ever
/// answered. Its URL, and the connections it holds.
async fn hung_api_server() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<tokio::net::TcpStream>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (held_tx, held) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = held_tx.send(stream);
        }
    });
    (url, held)
}

/// Holds (passes on b53778d): a hung API server (TCP accepted, the request never answered) on a
/// moderately busy runtime — another task takes 45 ms per turn, a current-thread runtime whose
/// rounds take ~45 ms — still opens the grace period: the heartbeat's ticks are seen at most a
/// round late, under `STALL_TOLERANCE`. The busy task's `thread::sleep` is the load under test.
#[test]
fn r6_a_hung_api_server_on_a_moderately_busy_runtime_still_opens_the_grace_period() {
    let runtime = current_thread();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let (url, mut held) = hung_api_server().await;
        let verifier = bound_with_grace(
            &cluster,
            &clock,
            url,
            ca_and_certificate().ca_pem,
            Duration::from_millis(300),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let busy = tokio::spawn({
            let stop = stop.clone();
            async move {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(45));
                    tokio::task::yield_now().await;
                }
            }
        });
        let result = verify(&verifier, &cluster.token().sign()).await;
        stop.store(true, Ordering::Relaxed);
        busy.await.unwrap();
        assert!(
            result.is_ok(),
            "a hung API server on a runtime whose rounds take ~45 ms opened no grace period: \
             {result:?}"
        );
        assert!(held.try_recv().is_ok(), "the review never connected");
    });
}

/// Finding (R6, low): a review timeout of `Duration::MAX` is accepted
/// (`TokenReviewSettings::validate`; review3's test accepts that it "works"), and since b53778d
/// bounds only the connect (2 s), an API server that accepts the request and never answers holds
/// the review forever: its single-flight task, its slot and its place under
/// `max_pending_reviews`, and every caller of that token (the heartbeat ticking 40 times a second
/// all the while). No error names the setting. Waits at most 2.5 s.
///
/// Fixed by refusing such a timeout when the check is built (at most 60 s): the review's timeout is
/// what ends a request the API server never answers, so it must be one.
#[test]
fn r6_a_review_with_the_longest_timeout_against_a_hung_api_server_still_ends() {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let (url, _held) = hung_api_server().await;
        let api = api_trusting(&cluster, url, ca_and_certificate().ca_pem);
        let clock = ManualClock::new();
        for timeout in [Duration::MAX, Duration::from_secs(61)] {
            let mut settings = TokenReviewSettings::default();
            settings.timeout = timeout;
            let built = oidc_bearer_kubernetes::ObjectBindingCheck::new(Duration::from_secs(30))
                .with_api_server(api.clone())
                .with_settings(settings)
                .wrap(cluster.builder(&clock).build().unwrap());
            let Err(error) = built else {
                panic!("a review timeout of {timeout:?} was accepted: a hung API server holds it")
            };
            assert!(
                error.to_string().contains("token_review.timeout"),
                "{error}"
            );
        }
    });
}

/// Finding (R6): the heartbeat that saw a stall is dropped between `Request::send` and
/// `Response::body` (each `by_deadline` has its own), yet both share one deadline. This process
/// stalls in the middle of the TLS handshake (the API server's HelloRetryRequest waiting in the
/// socket) for 700 ms of a 1 s review; when it runs again, the request goes out, the API server
/// answers its headers at once and its body 500 ms later — 500 ms after the request, well within
/// the timeout (the control, driven throughout, is refused). The stall pushed the body past the
/// deadline and its last window: `Response::body` ends in `Timeout`, and its fresh heartbeat saw
/// no stall, so it is the API server's failure and the grace period opens. `send`'s heartbeat saw
/// the ~700 ms stall that caused it.
///
/// The `thread::sleep`s are the stall and the server's time to answer under test.
#[test]
fn r6_a_stall_in_send_that_makes_the_body_late_opens_no_grace_period() {
    let main = super::one_worker();
    let side = current_thread();
    let cluster = main.block_on(Cluster::start());
    // The API server answers a request with its status line and headers at once and its body
    // 500 ms later (its time to produce it, the behaviour under test), as a server that streams
    // its answer does.
    let mut server = HelloRetryApiServer::start(Arc::new(|connection, stream| {
        let mut tls = rustls::StreamOwned::new(connection, stream);
        if !crate::support::read_http_request(&mut tls) {
            return;
        }
        let head = format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            REFUSAL.len()
        );
        let _ = tls.write_all(head.as_bytes()).and_then(|()| tls.flush());
        std::thread::sleep(Duration::from_millis(500));
        let _ = tls.write_all(REFUSAL.as_bytes()).and_then(|()| tls.flush());
    }));
    let clock = ManualClock::new();
    let timeout = Duration::from_millis(1000);
    let (verifier, control) = server.verifier_and_control(&side, &cluster, &clock, timeout);
    let token = cluster.token().sign();
    let started = server.control_then_start(&side, &control, &verifier, &token);
    // This process does not run until 700 ms into the review (the stall under test).
    let until = started + Duration::from_millis(700);
    std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
    let result = side.block_on(verify(&verifier, &token));
    assert_not_accepted(
        &result,
        "a stall of this process in `send` that pushed the body past the deadline",
    );
}

/// Holds (passes on b53778d): with Tokio's time paused (auto-advance, as users' tests run), the
/// heartbeat neither panics nor turns a hung API server's timeout into a stall (auto-advance
/// lands each tick on its deadline: no lateness), and the review ends: the grace period opens.
#[tokio::test(start_paused = true)]
async fn r6_a_hung_api_server_with_time_paused_still_opens_the_grace_period() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let (url, _held) = hung_api_server().await;
    let timeout = TokenReviewSettings::default().timeout;
    let verifier = bound_with_grace(&cluster, &clock, url, ca_and_certificate().ca_pem, timeout);
    let result = verify(&verifier, &cluster.token().sign()).await;
    assert!(
        result.is_ok(),
        "a hung API server with time paused opened no grace period: {result:?}"
    );
}
