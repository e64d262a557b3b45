//! Review R5 (session 4) of 9a9c4b4: the TokenReview client has no connect timer of its own
//! (`CONNECT_TIMEOUT = Duration::MAX` in tokenreview/api.rs: "the review's own timeout bounds the
//! connect"), and the server's fatal TLS alerts about what we offered are
//! `LocalCause::TlsRefused`, a configuration error.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::review_r4::{Certified, REFUSAL, ca_and_certificate};
use super::{
    Cluster, INTERVAL, ManualClock, ObjectBindingCheck, TokenReviewSettings, VerifyError,
    loaded_without_a_review, verify,
};
use oidc_bearer_kubernetes::ApiServer;
use oidc_bearer_kubernetes::ReviewError;

/// The last window (`LAST_WINDOW`) of oidc-bearer-shared's fetch.rs: a review ends by
/// `timeout + LAST_WINDOW` (and a little slack).
const LAST_WINDOW: Duration = Duration::from_millis(100);

/// A TLS server config for `certified`'s certificate, HTTP/1.1 only (no ALPN).
pub(super) fn server_config(certified: &Certified) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certified.chain.clone(), certified.key.clone_key())
            .unwrap(),
    )
}

/// `status` with a JSON `body`, keeping the connection open.
pub(super) fn response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers every request on `tls` with `answer`, keeping the connection open (so that it goes
/// back to the client's pool), until the client leaves.
pub(super) fn answer_every_request(mut tls: impl std::io::Read + std::io::Write, answer: &str) {
    while crate::support::read_http_request(&mut tls) {
        if tls.write_all(answer.as_bytes()).is_err() || tls.flush().is_err() {
            return;
        }
    }
}

/// Answers every request on `tls` with the refusal (see [`answer_every_request`]).
fn refuse_every_request(tls: impl std::io::Read + std::io::Write) {
    answer_every_request(tls, &response("201 Created", REFUSAL));
}

/// A TLS server on 127.0.0.1 with `config` answering `answer` to every request; its base URL.
fn serving(config: Arc<rustls::ServerConfig>, answer: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, answer) = (config.clone(), answer.clone());
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                answer_every_request(rustls::StreamOwned::new(connection, stream), &answer);
            });
        }
    });
    url
}

/// An API server over TLS on 127.0.0.1 (refusing every token) whose first connection holds its
/// first answer until `release`, and whose second connection is accepted and never spoken to
/// (a hung TLS handshake: one replica of the API server, or its front, stuck); it says when it
/// accepted that one (`hung_accepted`) and when the client closed it (`hung_closed`).
struct OneConnectionHungServer {
    url: String,
    ca_pem: String,
    first_request: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: std::sync::mpsc::Sender<()>,
    hung_accepted: tokio::sync::mpsc::UnboundedReceiver<()>,
    hung_closed: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl OneConnectionHungServer {
    fn start() -> Self {
        let certified = ca_and_certificate();
        let config = server_config(&certified);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (first_tx, first_request) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (accepted_tx, hung_accepted) = tokio::sync::mpsc::unbounded_channel();
        let (closed_tx, hung_closed) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut released = Some(released);
            for (n, stream) in listener.incoming().flatten().enumerate() {
                let config = config.clone();
                match n {
                    0 => {
                        let (first_tx, released) = (first_tx.clone(), released.take().unwrap());
                        std::thread::spawn(move || {
                            let connection = rustls::ServerConnection::new(config).unwrap();
                            let mut tls = rustls::StreamOwned::new(connection, stream);
                            if !crate::support::read_http_request(&mut tls) {
                                return;
                            }
                            let _ = first_tx.send(());
                            if released.recv().is_err() {
                                return;
                            }
                            let answer = response("201 Created", REFUSAL);
                            let _ = tls.write_all(answer.as_bytes());
                            let _ = tls.flush();
                            refuse_every_request(tls);
                        });
                    }
                    1 => {
                        let (accepted_tx, closed_tx) = (accepted_tx.clone(), closed_tx.clone());
                        std::thread::spawn(move || {
                            let mut stream = stream;
                            let _ = accepted_tx.send(());
                            // The ClientHello is read and never answered; the client closing
                            // the connection ends the read.
                            let mut buf = [0u8; 4096];
                            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                            let _ = closed_tx.send(());
                        });
                    }
                    _ => {
                        std::thread::spawn(move || {
                            let connection = rustls::ServerConnection::new(config).unwrap();
                            refuse_every_request(rustls::StreamOwned::new(connection, stream));
                        });
                    }
                }
            }
        });
        Self {
            url,
            ca_pem: certified.ca_pem,
            first_request,
            release,
            hung_accepted,
            hung_closed,
        }
    }

    fn api_server(&self, cluster: &Cluster) -> ApiServer {
        api_trusting(cluster, self.url.clone(), self.ca_pem.clone())
    }
}

/// The API server at `url` (the cluster's caller token as our credential), trusting `ca_pem`.
pub(super) fn api_trusting(cluster: &Cluster, url: String, ca_pem: String) -> ApiServer {
    let caller = cluster.reviews.caller_token();
    ApiServer::builder(url)
        .with_bearer_token(move || Some(caller.clone()))
        .with_ca_pem(ca_pem)
        .build()
        .unwrap()
}

/// A review against a dead API server ended in `took` with `result`: the grace period opened,
/// the review ended within its timeout and last window (and some slack), its task is over.
fn assert_an_outage_in_time(
    result: &Result<(), VerifyError>,
    took: Duration,
    timeout: Duration,
    verifier: &super::ObjectBinding<oidc_bearer::Verifier>,
    what: &str,
) {
    assert!(result.is_ok(), "{what}: no grace period: {result:?}");
    assert!(
        took < timeout + LAST_WINDOW + Duration::from_millis(300),
        "{what}: the review took {took:?}"
    );
    assert_eq!(
        verifier.check().stats().pending,
        0,
        "{what}: {:?}",
        verifier.check().stats()
    );
}

/// Finding (R5): a connect the review does not wait for is bounded by nothing. Two reviews run at
/// once; the second one's connect is accepted by a stuck replica (TCP accepted, the TLS handshake
/// never answered) while it also waits for a pooled connection. The first review's connection
/// comes back to the pool and the second review is answered on it (hyper-util's client races a
/// pool checkout against the connect, and when the checkout wins it spawns the connect in the
/// background "to put it in the pool"). That background connect is outside the review's
/// deadline, its last window and the backstop, and `CONNECT_TIMEOUT` is now `Duration::MAX`:
/// it never ends — one task and one socket (a file descriptor) kept per such race, for as long as
/// the stuck peer keeps the TCP connection open, until the process runs out of descriptors (then
/// every review is `LocalCause::Resources`, 503). Before 9a9c4b4 the 2 s connect timeout ended it.
/// The API server's doc comment says "The review's own timeout bounds the connect".
#[test]
fn r5_a_connect_left_behind_by_a_review_is_bounded_by_the_reviews_timeout() {
    let timeout = Duration::from_millis(300);
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let mut server = OneConnectionHungServer::start();
        let mut settings = TokenReviewSettings::default();
        settings.timeout = timeout;
        let verifier =
            loaded_without_a_review(&cluster, &clock, server.api_server(&cluster), settings).await;
        let (first, second) = (cluster.token().sign(), cluster.token().sign());
        assert_ne!(first, second);

        // The first review holds the first connection, its answer held by the API server.
        let mut first = Box::pin(verify(&verifier, &first));
        tokio::select! {
            result = &mut first => panic!("answered before the API server did: {result:?}"),
            _ = server.first_request.recv() => {}
        }
        // The second review connects to the stuck replica (and waits for the pool too).
        let second_started = Instant::now();
        let mut second = Box::pin(verify(&verifier, &second));
        tokio::select! {
            result = &mut second => panic!("answered before connecting: {result:?}"),
            _ = server.hung_accepted.recv() => {}
        }
        // The first answer comes. (Since R6 the API server's client keeps no idle connection:
        // the second review is not answered on the first's, its own connect to the stuck
        // replica is all it has — a replica that hangs, which the review may take for an
        // outage; what matters here is that nothing it started outlives its bounds.)
        server.release.send(()).unwrap();
        let (first, _second) = tokio::join!(first, second);
        assert!(
            matches!(first, Err(VerifyError::ReviewRefused { .. })),
            "the API server's refusal, not {first:?}"
        );
        assert_eq!(
            verifier.check().stats().pending,
            0,
            "{:?}",
            verifier.check().stats()
        );

        // Everything the second review started must end: the hung connect by the API server
        // client's own connect timeout (2 s; a little slack for this machine). The review could
        // not bound it by its own deadline: hyper-util finishes the raced connect in a task of
        // its own, outside the review.
        let bound = Duration::from_millis(2500);
        let left = bound.saturating_sub(second_started.elapsed());
        let closed = tokio::time::timeout(left, server.hung_closed.recv()).await;
        assert!(
            closed.is_ok(),
            "the connect a review started to a stuck API server is still open {:?} after the \
             review started (review timeout {timeout:?}): nothing bounds a connect left to run in \
             the background; a socket and a task leak per race",
            second_started.elapsed()
        );
    });
}

/// An object-binding check (grace period a minute) of `cluster`'s tokens against `url`, trusting
/// `ca_pem`, with a review timeout of `timeout`.
pub(super) fn bound_with_grace(
    cluster: &Cluster,
    clock: &ManualClock,
    url: String,
    ca_pem: String,
    timeout: Duration,
) -> super::ObjectBinding<oidc_bearer::Verifier> {
    let api = api_trusting(cluster, url, ca_pem);
    let mut settings = TokenReviewSettings::default();
    settings.timeout = timeout;
    let check = ObjectBindingCheck::new(INTERVAL)
        .with_api_server(api)
        .with_grace_period(Duration::from_secs(60))
        .with_settings(settings);
    cluster.bound(clock, check)
}

/// Holds (passes on 9a9c4b4): real outages over TLS still open the grace period, and a hung
/// connect ends the review within its timeout and last window (no connect timer of its own any
/// more, and nothing overflows with `Duration::MAX`): an API server that accepts TCP and never
/// speaks TLS, and one that sends half of its first flight and stalls mid-handshake. The review's
/// single-flight task ends (`pending` back to 0).
#[test]
fn r5_a_hung_tls_handshake_is_an_outage_that_ends_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        for half_a_flight in [false, true] {
            let certified = ca_and_certificate();
            let config = server_config(&certified);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("https://{}", listener.local_addr().unwrap());
            let (held_tx, held) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let mut stream = stream;
                    if half_a_flight {
                        let mut connection = rustls::ServerConnection::new(config.clone()).unwrap();
                        while !connection.wants_write() {
                            match connection.read_tls(&mut stream) {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            }
                            if connection.process_new_packets().is_err() {
                                break;
                            }
                        }
                        let mut flight = Vec::new();
                        while connection.wants_write() {
                            connection.write_tls(&mut flight).unwrap();
                        }
                        let _ = stream.write_all(&flight[..flight.len() / 2]);
                    }
                    let _ = held_tx.send(stream);
                }
            });
            let verifier = bound_with_grace(&cluster, &clock, url, certified.ca_pem, timeout);
            let started = Instant::now();
            let result = verify(&verifier, &cluster.token().sign()).await;
            let what = format!("a hung TLS handshake (half a flight sent: {half_a_flight})");
            assert_an_outage_in_time(&result, started.elapsed(), timeout, &verifier, &what);
            assert!(held.try_recv().is_ok(), "the review never connected");
        }
    });
}

/// Holds (passes on 9a9c4b4): a 503 and a refused connection over `https` are still outages.
#[test]
fn r5_a_503_and_a_refused_connection_still_open_the_grace_period() {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let certified = ca_and_certificate();
        let config = server_config(&certified);
        let unavailable = serving(config, response("503 Service Unavailable", ""));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("https://{}", closed.local_addr().unwrap());
        drop(closed);
        for url in [unavailable, refused] {
            let verifier = bound_with_grace(
                &cluster,
                &clock,
                url.clone(),
                certified.ca_pem.clone(),
                Duration::from_secs(2),
            );
            let result = verify(&verifier, &cluster.token().sign()).await;
            assert!(result.is_ok(), "{url}: no grace period: {result:?}");
        }
    });
}

/// An HTTPS server on 127.0.0.1 that requires a client certificate signed by its CA (mutual TLS)
/// and answers `body` to every request; returns its base URL and its CA's PEM.
fn mutual_tls_server(body: &'static str) -> (String, String) {
    let certified = ca_and_certificate();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certified.chain, certified.key)
            .unwrap(),
    );
    let url = serving(config, response("200 OK", body));
    (url, certified.ca_pem)
}

/// Holds (passes on 9a9c4b4): the API server refusing our handshake (mutual TLS, no client
/// certificate of ours) is `review_tls_refused`: a configuration error, not a local limit, not the
/// API server's failure; no grace period opens.
#[test]
fn r5_tls_refused_is_a_configuration_error_of_the_review() {
    let source = refused_by_mutual_tls();
    assert_eq!(source.code(), "review_tls_refused", "{source:?}");
    assert!(source.is_configuration(), "{source:?}");
    assert!(!source.is_local_limit(), "{source:?}");
    assert!(!source.is_api_server_failure(), "{source:?}");
}

/// Why a review against an API server that requires a client certificate (we send none) failed;
/// the grace period (a minute) must not open for it.
fn refused_by_mutual_tls() -> oidc_bearer_kubernetes::ReviewError {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let (url, ca_pem) = mutual_tls_server(REFUSAL);
        let verifier = bound_with_grace(&cluster, &clock, url, ca_pem, Duration::from_secs(2));
        match verify(&verifier, &cluster.token().sign()).await {
            Err(error @ VerifyError::ReviewUnavailable { .. }) => {
                ReviewError::of(&error).cloned().expect("a ReviewError")
            }
            other => panic!("{other:?}"),
        }
    })
}

/// Finding (R5, low): the keys' fetch counts `TlsRefused` as a configuration error
/// (`KeysError::is_configuration`), and `remote.rs` logs it at ERROR as "a configuration error;
/// {hint}" — but `KeysError::hint` has no case for it and says "retrying with backoff": the ERROR
/// line names nothing to change (the brief: "a misconfiguration is logged at ERROR once, naming
/// what to change"). Here the JWKS server requires a client certificate.
#[test]
fn r5_a_jwks_server_refusing_our_handshake_names_what_to_change() {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let (url, ca_pem) = mutual_tls_server("{\"keys\":[]}");
        let verifier = oidc_bearer::Verifier::builder("https://issuer.example", "aud")
            .with_jwks_uri(format!("{url}/jwks"))
            .with_root_certificates_pem(ca_pem)
            .build()
            .unwrap();
        let token =
            "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIn0.c2ln";
        let result = verify(&verifier, token).await;
        let Err(VerifyError::KeysUnavailable { source }) = &result else {
            panic!("{result:?}");
        };
        assert!(source.is_configuration(), "{source:?}");
        let hint = source.hint(None);
        assert_ne!(
            hint, "retrying with backoff",
            "{source}: logged at ERROR as a configuration error whose fix is {hint:?}"
        );
    });
}

/// A listener on 127.0.0.1 whose accept queue is full: a connect to it hangs. Keep both.
fn full_accept_queue() -> (tokio::net::TcpListener, Vec<std::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(0).unwrap();
    // Fill the accept queue until a connect no longer completes (that connect is the probe).
    let mut queued = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(error) => {
                assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
                break;
            }
        }
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    (listener, queued)
}

/// Holds (passes on 9a9c4b4): an API server whose accept queue is full (it never accepts: the
/// connect itself hangs, with no connect timer of its own any more) is an outage: the review ends
/// within its timeout and last window, and the grace period opens.
#[test]
fn r5_a_connect_to_a_full_accept_queue_is_an_outage_that_ends_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let (listener, _queued) = full_accept_queue();
        let addr = listener.local_addr().unwrap();
        let verifier = bound_with_grace(
            &cluster,
            &clock,
            format!("https://{addr}"),
            ca_and_certificate().ca_pem,
            timeout,
        );
        let started = Instant::now();
        let result = verify(&verifier, &cluster.token().sign()).await;
        let what = "a connect to a full accept queue";
        assert_an_outage_in_time(&result, started.elapsed(), timeout, &verifier, what);
    });
}

/// Holds (passes on 9a9c4b4): a named API server (`localhost`: the bounded resolver runs, its
/// bound `Duration::MAX / 2` min'd with half the review's timeout) is reviewed normally, with the
/// default timeout and with `Duration::MAX` (no overflow, no panic in the resolver's bound, in
/// hyper-util's per-address connect timeout or in tokio's timers).
#[test]
fn r5_a_named_api_server_is_reviewed_with_no_connect_timeout_and_any_review_timeout() {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let url = cluster
            .reviews
            .api_server_url()
            .replace("127.0.0.1", "localhost");
        assert!(url.contains("localhost"), "{url}");
        for timeout in [Duration::from_secs(5), Duration::from_secs(60)] {
            let caller = cluster.reviews.caller_token();
            let api = ApiServer::builder(url.clone())
                .with_bearer_token(move || Some(caller.clone()))
                .build()
                .unwrap();
            let mut settings = TokenReviewSettings::default();
            settings.timeout = timeout;
            let verifier = loaded_without_a_review(&cluster, &clock, api, settings).await;
            let result = verify(&verifier, &cluster.token().sign()).await;
            assert!(result.is_ok(), "{timeout:?}: {result:?}");
            let revoked = cluster.token().sign();
            cluster.reviews.delete_bound_object(&revoked);
            let result = verify(&verifier, &revoked).await;
            assert!(
                matches!(result, Err(VerifyError::ReviewRefused { .. })),
                "{timeout:?}: {result:?}"
            );
        }
    });
}

/// Finding (R5, low): the API server refusing our TLS handshake is logged at ERROR as
/// "TokenReview is misconfigured" with the error's text, which for `TlsRefused` is only the
/// generic "TokenReview failed on our side (the server refused our TLS handshake): …received fatal
/// alert: CertificateRequired": unlike a refused certificate ("give the CA that signed it
/// (`InCluster::with_ca_path` …)"), it names nothing to change — and `ApiServerBuilder` has no
/// client-certificate setting, so the operator cannot tell what would fix it (the API server's or
/// its front's mutual TLS, our TLS versions).
#[test]
fn r5_the_api_server_refusing_our_handshake_is_reported_naming_what_to_change() {
    let logged = refused_by_mutual_tls().to_string();
    assert!(
        !logged.starts_with("TokenReview failed on our side"),
        "logged at ERROR as a misconfiguration, naming nothing to change: {logged}"
    );
}

/// Finding (R5, low): `TokenReviewSettings::validate` takes any positive timeout (`Duration::MAX`
/// included: review3's test accepts that it "works"), and a review's connect now has no timer of
/// its own: against an API server whose accept queue is full (a hung connect) the review never
/// ends — its single-flight task, its slot and its place under `max_pending_reviews` are held
/// forever, and every caller of that token waits forever. Before 9a9c4b4 the 2 s connect timeout
/// ended it (the API server's `Timeout`, an outage). Waits at most 2.5 s.
#[test]
fn r5_a_hung_connect_with_the_longest_review_timeout_still_ends() {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let (listener, _queued) = full_accept_queue();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let ca_pem = ca_and_certificate().ca_pem;
        // The longest timeout accepted (`Duration::MAX` is refused since R6): the connect's own
        // timer (2 s) ends it.
        let verifier = bound_with_grace(&cluster, &clock, url, ca_pem, Duration::from_secs(60));
        let waited = Duration::from_millis(2500);
        let ended = tokio::time::timeout(waited, verify(&verifier, &cluster.token().sign())).await;
        assert!(
            ended.is_ok(),
            "a review with a {:?} timeout and a hung connect is still pending after {waited:?} \
             (nothing bounds the connect): {:?}",
            Duration::from_secs(60),
            verifier.check().stats()
        );
    });
}
