//! Review R4 (session 4) of the last window (`LAST_WINDOW` in oidc-bearer-shared's fetch.rs,
//! commit 70ecadb): past a review's deadline the exchange gets 100 ms more, so that a stall of
//! this process that ends just past the deadline does not turn an answer the API server gives into
//! its `Timeout`. The connect's own timer (reqwest's `connect_timeout`, 2 s for reviews, TLS
//! handshake included) gets no such window.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    Cluster, ManualClock, TokenReviewSettings, VerifyError, assert_not_accepted,
    loaded_without_a_review, verify,
};
use oidc_bearer_kubernetes::ApiServer;

/// A review's connect timeout (`CONNECT_TIMEOUT` in tokenreview/api.rs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The refusal, as the API server words it for a deleted pod's token.
pub(super) const REFUSAL: &str = "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\
    \"status\":{\"authenticated\":false,\"error\":\"[invalid bearer token, service account \
    token has been invalidated]\"}}";

/// A CA generated for the test and a certificate it issued for 127.0.0.1.
pub(super) struct Certified {
    pub(super) ca_pem: String,
    pub(super) ca_der: rustls::pki_types::CertificateDer<'static>,
    pub(super) chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub(super) key: rustls::pki_types::PrivateKeyDer<'static>,
}

pub(super) fn ca_and_certificate() -> Certified {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "review R4's cluster CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Certified {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// Completes the handshake, reads one request (head, then a `Content-Length` body) and answers
/// it with [`REFUSAL`], then closes.
pub(super) fn answer_with_the_refusal(mut tls: impl std::io::Read + std::io::Write) {
    if !crate::support::read_http_request(&mut tls) {
        return; // the handshake failed (its alert sent), or the client left
    }
    let _ = tls.write_all(
        format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{REFUSAL}",
            REFUSAL.len()
        )
        .as_bytes(),
    );
    let _ = tls.flush();
}

/// An HTTPS TokenReview API server on 127.0.0.1 (a certificate from a CA of the test's) that
/// refuses every token. Its TLS handshake needs two round trips: it offers only the key-exchange
/// group secp384r1, for which the client sends no key share in its first ClientHello, so it
/// answers a HelloRetryRequest (RFC 8446 §4.1.4) and the client must send a second ClientHello.
/// Each connection, once it has the first ClientHello, says so (`hello`) and waits for a
/// `release` before answering it; `answered` says when that answer is in the socket.
struct TwoRoundTripApiServer {
    url: String,
    ca_pem: String,
    hello: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: std::sync::mpsc::Sender<()>,
    answered: std::sync::mpsc::Receiver<()>,
}

impl TwoRoundTripApiServer {
    fn start() -> Self {
        let certified = ca_and_certificate();
        let config = hello_retry_config(&certified);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let (hello_tx, hello) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let (answered_tx, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, hello_tx) = (config.clone(), hello_tx.clone());
                let (released, answered_tx) = (released.clone(), answered_tx.clone());
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut connection = rustls::ServerConnection::new(config).unwrap();
                    if !read_the_first_client_hello(&mut connection, &mut stream) {
                        return;
                    }
                    let _ = hello_tx.send(());
                    if released.lock().unwrap().recv().is_err() {
                        return;
                    }
                    while connection.wants_write() {
                        if connection.write_tls(&mut stream).is_err() {
                            return;
                        }
                    }
                    let _ = answered_tx.send(());
                    // The rest of the handshake, then the request head and body (Content-Length).
                    answer_with_the_refusal(rustls::StreamOwned::new(connection, stream));
                });
            }
        });
        Self {
            url,
            ca_pem: certified.ca_pem,
            hello,
            release,
            answered,
        }
    }

    fn api_server(&self, cluster: &Cluster) -> ApiServer {
        let caller = cluster.reviews.caller_token();
        ApiServer::builder(self.url.clone())
            .with_bearer_token(move || Some(caller.clone()))
            .with_ca_pem(self.ca_pem.clone())
            .build()
            .unwrap()
    }
}

/// A TLS 1.3 server config for `certified`'s certificate offering only the key-exchange group
/// secp384r1, for which a client sends no key share in its first ClientHello: the handshake takes
/// a HelloRetryRequest and a second ClientHello (RFC 8446 §4.1.4).
pub(super) fn hello_retry_config(certified: &Certified) -> Arc<rustls::ServerConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::SECP384R1];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certified.chain.clone(), certified.key.clone_key())
        .unwrap();
    Arc::new(config)
}

/// Reads and processes the first ClientHello on `stream`: the HelloRetryRequest is ready to write
/// (`false`: the client left or sent no valid hello).
pub(super) fn read_the_first_client_hello(
    connection: &mut rustls::ServerConnection,
    stream: &mut std::net::TcpStream,
) -> bool {
    while !connection.wants_write() {
        match connection.read_tls(stream) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if connection.process_new_packets().is_err() {
            return false;
        }
    }
    true
}

/// A deleted pod's token, reviewed with `timeout` against [`TwoRoundTripApiServer`] (which refuses
/// it) on a current-thread runtime that is not driven from the moment the API server has the
/// first ClientHello until 20 ms past `stall_until` (measured from the review's start). The API
/// server answers the ClientHello long before that, and answers the second one at once.
fn stalled_in_the_tls_handshake(
    timeout: Duration,
    stall_until: Duration,
) -> Result<(), VerifyError> {
    let main = super::one_worker();
    let side = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cluster = main.block_on(Cluster::start());
    let mut server = TwoRoundTripApiServer::start();
    let clock = ManualClock::new();
    let mut settings = TokenReviewSettings::default();
    settings.timeout = timeout;
    let bound = || {
        loaded_without_a_review(
            &cluster,
            &clock,
            server.api_server(&cluster),
            settings.clone(),
        )
    };
    let (verifier, control) = side.block_on(async { (bound().await, bound().await) });
    let token = cluster.token().sign();

    // The control: driven throughout, the handshake completes and the API server refuses it.
    server.release.send(()).unwrap();
    let controlled = side.block_on(verify(&control, &token));
    assert!(
        matches!(controlled, Err(VerifyError::ReviewRefused { .. })),
        "{controlled:?}"
    );
    server.hello.try_recv().unwrap();
    server.answered.recv().unwrap();

    // The review starts; the first call returns once the API server has the first ClientHello,
    // and the review goes on as a task of its own, not driven from here on.
    let started = Instant::now();
    side.block_on(async {
        let mut first = Box::pin(verify(&verifier, &token));
        std::future::poll_fn(|cx| {
            assert!(first.as_mut().poll(cx).is_pending(), "answered at once");
            std::task::Poll::Ready(())
        })
        .await;
        server.hello.recv().await.unwrap();
    });
    // The API server answers it (a HelloRetryRequest), long before the deadline...
    server.release.send(()).unwrap();
    server.answered.recv().unwrap();
    // ...while the runtime sits idle until 20 ms past it (the idle time is the condition under
    // test, not a wait for something).
    let until = started + stall_until + Duration::from_millis(20);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    let result = side.block_on(verify(&verifier, &token));
    assert_not_accepted(
        &result,
        &format!(
            "a runtime idle mid-TLS-handshake until 20 ms past {stall_until:?} (review timeout \
             {timeout:?}), the API server answering every flight at once"
        ),
    );
    result
}

/// Finding (R4): the connect's own timer gets no last window. A review's connect timeout (2 s,
/// the TLS handshake included) is shorter than its total timeout (here 2.5 s; 5 s by default) and
/// is judged against its own deadline (`FetchError::of`). This process stalls in the middle of the
/// TLS handshake (the API server's first answer waiting in the socket) and runs again 20 ms past
/// the connect's deadline: the client reads the HelloRetryRequest, sends its second ClientHello,
/// and in the same poll reqwest's connect timer (`tokio::time::timeout`, already fired) ends the
/// connect: `Timeout { 2s }`, seen 20 ms late, the API server's failure; the grace period opens
/// and the deleted pod's token is accepted. The API server answers every flight at once.
///
/// The `thread::sleep` is the idle period under test, not a wait for something.
#[test]
fn r4_a_stall_in_the_tls_handshake_just_past_the_connect_timeout_opens_no_grace_period() {
    let _ = stalled_in_the_tls_handshake(Duration::from_millis(2500), CONNECT_TIMEOUT);
}

/// The counterpart that holds (passes on 9abf2cd): the same stall in the TLS handshake, ending
/// 20 ms past the review's total deadline (300 ms, under the connect timeout), is rescued by the
/// last window: the handshake, the request and the refusal all complete within it. So
/// docs/tokenreview.md's residual ("a stall ... in the middle of the TLS handshake ... ends less
/// than 100 ms past the deadline ... is still taken for the API server's timeout") is not true of
/// the total deadline when the API server answers within the window; it is true of the connect's.
#[test]
fn r4_a_stall_in_the_tls_handshake_just_past_the_total_timeout_is_rescued_by_the_window() {
    let timeout = Duration::from_millis(300);
    let result = stalled_in_the_tls_handshake(timeout, timeout);
    assert!(
        matches!(result, Err(VerifyError::ReviewRefused { .. })),
        "the API server's refusal, not {result:?}"
    );
}

/// Finding (R4), the same with a total timeout just under the connect's (1.95 s): the stall ends
/// 20 ms past the connect's deadline, 70 ms past the exchange's (inside `STALL_TOLERANCE`). The
/// exchange's first poll after the stall, inside `by_deadline`'s `timeout_at` (which polls the
/// exchange before its timer), already ends with reqwest's connect timeout: no last window is
/// given, and `FetchError::of` judges it against the total deadline, 70 ms late: the API server's
/// `Timeout`.
///
/// The `thread::sleep` is the idle period under test, not a wait for something.
#[test]
fn r4_a_stall_in_the_tls_handshake_past_both_deadlines_is_not_rescued_by_the_window() {
    let _ = stalled_in_the_tls_handshake(Duration::from_millis(1950), CONNECT_TIMEOUT);
}

/// An HTTPS TokenReview API server on 127.0.0.1 that refuses every token; with
/// `require_client_certificate`, it also requires a client certificate signed by its CA (mutual
/// TLS, as an API server started with `--client-ca-file` may be fronted): a client that has none
/// is refused with a TLS alert (`certificate_required`, RFC 8446 §4.4.2.4). Returns its base URL
/// and the CA's PEM.
fn refusing_https_server(require_client_certificate: bool) -> (String, String) {
    let certified = ca_and_certificate();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.ca_der).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = Arc::new(
        builder
            .with_single_cert(certified.chain, certified.key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                answer_with_the_refusal(rustls::StreamOwned::new(connection, stream));
            });
        }
    });
    (url, certified.ca_pem)
}

/// Finding (R4, outside the window; low): the API server is up and refuses us at the TLS layer
/// for a credential of ours — it requires a client certificate and we send none (an API server,
/// or a front of it, with mutual TLS) — the TLS analogue of a 401/403, which docs/tokenreview.md
/// says records no outage ("our own credentials refused"). The client's handshake completes
/// (TLS 1.3: the server judges the client's certificate after the client's Finished) and the
/// server's `certificate_required` alert surfaces while the answer is read: `FetchError::Transport`
/// (`local_cause_of` knows only `InvalidCertificate`), the API server's failure: the grace period
/// opens and the deleted pod's token is accepted.
#[test]
fn r4_our_missing_client_certificate_refused_by_tls_opens_no_grace_period() {
    let runtime = super::one_worker();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let api = |(url, ca_pem): (String, String)| {
            let caller = cluster.reviews.caller_token();
            ApiServer::builder(url)
                .with_bearer_token(move || Some(caller.clone()))
                .with_ca_pem(ca_pem)
                .build()
                .unwrap()
        };
        let settings = TokenReviewSettings::default;
        let token = cluster.token().sign();
        // The control: the same server without mutual TLS refuses the token.
        let control = api(refusing_https_server(false));
        let control = loaded_without_a_review(&cluster, &clock, control, settings()).await;
        let refused = verify(&control, &token).await;
        assert!(
            matches!(refused, Err(VerifyError::ReviewRefused { .. })),
            "{refused:?}"
        );

        let mutual = api(refusing_https_server(true));
        let verifier = loaded_without_a_review(&cluster, &clock, mutual, settings()).await;
        let result = verify(&verifier, &token).await;
        assert_not_accepted(
            &result,
            "the API server refusing, at the TLS layer, our missing client certificate",
        );
    });
}
