//! The one bounded HTTP fetch: how every HTTP client of `oidc-bearer` and `oidc-bearer-client` is
//! built, how a request is sent under a timeout, how a body is read under a size cap (feature
//! `fetch`), and the one transport-level error, [`FetchError`], that their errors wrap (always).
//!
//! The rules:
//! - **No redirects.** A redirect could move a request, and the credential or token it carries, to
//!   a host nobody vetted (RFC 9110 §15.4 leaves following them to the client); a 3xx is a
//!   [`FetchError::Status`].
//! - **Timeouts.** A connect timeout per client (`ClientSettings::connect_timeout`) and a total
//!   one per request (`Request::send`), which covers reading the body too. A name lookup gets
//!   half the request's; it, a timeout seen late, a refused certificate and a resource limit of
//!   this process are [`FetchError::Local`], never the server's failure. When the total timeout
//!   fires, the exchange gets a short window more to read an answer already in the socket before
//!   it counts as the server's [`FetchError::Timeout`].
//! - **Roots.** The system's roots plus extra PEM roots, or exactly the given roots
//!   (`ClientSettings::system_roots` `false`: a cluster's own API server, trusted only through its
//!   CA, as client-go's `rest.InClusterConfig` does). Trusting nothing at all is refused.
//! - **Bounded bodies.** `Response::body` refuses a body over its cap by its `Content-Length`
//!   before reading, else as the bytes arrive: no server can make us buffer without end.
//!
//! Which URLs may be fetched (`https`, or plain `http` on loopback) is the verifier's rule and
//! stays in `oidc-bearer`; the metadata server a token source asks is plain `http` by design.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
pub use self::client::{Client, ClientError, ClientSettings, Request, Response, client, proxied};

/// One HTTP exchange failed below the protocol on top of it (a discovery document, a JWKS, a
/// TokenReview, a token): what `KeysError`, `ReviewError` and `TokenError` wrap.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The server answered a status its caller does not accept (3xx included: redirects are never
    /// followed).
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed or broke (refused, reset, TLS refused the server's certificate…).
    Transport {
        /// What went wrong, every cause included.
        message: String,
    },
    /// No complete answer (body included) within the request's timeout.
    Timeout {
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The body is longer than its cap.
    TooLarge {
        /// The cap, in bytes.
        max_bytes: usize,
    },
    /// The exchange failed on this side, for a reason that says nothing about the server: see
    /// [`LocalCause`]. (When in doubt, a failure is the server's `Transport` or `Timeout` only if
    /// nothing here explains it.)
    Local {
        /// What failed here.
        cause: LocalCause,
        /// What went wrong, every cause included.
        message: String,
    },
}

/// Why an exchange failed on this side ([`FetchError::Local`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalCause {
    /// TLS refused the server's certificate (not signed by a trusted root — the configured CA —,
    /// expired, or for another name): a setting to change (the roots, the URL), or someone
    /// between us and the server; never the server being down. The request was not sent.
    Certificate,
    /// A limit or rule of this process or host (out of file descriptors, socket buffers, memory or
    /// local ports; a local firewall rule; an address family this host lacks): the request was not
    /// sent.
    Resources,
    /// This side did not do its part in time: the request's own credential not ready, or the
    /// answer not looked at before the timeout (the process stalled).
    Stalled,
    /// The server refused our side of the TLS handshake with a fatal alert (a client certificate
    /// it requires, one it does not accept, a TLS version or cipher suite we do not offer), or
    /// offered nothing we accept: a setting to change, as a 401 or 403 is; never the server
    /// being down. The request was not sent.
    TlsRefused,
    /// The server's name was not resolved: the lookup failed, or did not end within its share of
    /// the request's timeout (every blocking thread busy, a resolver that does not answer). The
    /// request was not sent.
    NameResolution,
    /// The connection goes through a proxy (the environment's `HTTPS_PROXY`, `ALL_PROXY`…), whose
    /// refusals and failures (a `CONNECT` answered 407, 403 or 502) cannot be told from the
    /// server's: none of them is counted as the server's.
    Proxy,
}

impl fmt::Display for LocalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Certificate => "the server's TLS certificate was refused",
            Self::TlsRefused => "the server refused our TLS handshake",
            Self::Resources => "not sent: a resource limit of this process or host",
            Self::Stalled => "this process did not do its part in time",
            Self::NameResolution => "not sent: the server's name was not resolved",
            Self::Proxy => "through a proxy",
        })
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status } => write!(f, "the server answered HTTP {status}"),
            Self::Transport { message } => write!(f, "the request failed: {message}"),
            Self::Timeout { timeout } => write!(f, "no answer within {timeout:?}"),
            Self::TooLarge { max_bytes } => write!(f, "response larger than {max_bytes} bytes"),
            Self::Local { cause, message } => write!(f, "{cause}: {message}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// How late past its deadline a timeout may be seen and still be the server's. A runtime that is
/// driven sees an expired timer within a few milliseconds (Tokio's timer ticks by the
/// millisecond; a worker yields to its timers between tasks); seen later than that, no worker
/// looked at the exchange for that long, its answer perhaps already waiting in the socket: this
/// process stalled (a runtime not driven, every worker busy, the process suspended), which says
/// nothing about the server. Fixed and small, on the safe side: a runtime so loaded that its run
/// queue takes longer than this to go round records a real outage as its own stall (no grace
/// period: 503), rather than a stall as the server's outage (a deleted pod's token accepted).
/// Still needed beside the exchange's last window (`LAST_WINDOW`), which only finds an answer
/// that is there: a stall that kept the request from reaching the server leaves none to find.
const STALL_TOLERANCE: Duration = Duration::from_millis(100);

/// How long an exchange whose deadline has passed is still given, from when its timer is seen,
/// before it counts as the server's `Timeout` (or as long as its timeout, when that is shorter).
///
/// Why: the answer is read from the socket by the connection's own task (hyper's dispatcher),
/// not by the task waiting for it. When this process did not run for a while (a runtime not
/// driven, every worker busy), the expired timer and the socket's readiness are found together,
/// and the tasks they wake run in an order nothing sets (on a multi-threaded runtime, on
/// different workers): the waiting task, run first, would record the answer waiting in the
/// socket as the server's `Timeout` (an outage, which opens object binding's grace period)
/// whenever the stall ended less than `STALL_TOLERANCE` past the deadline. A window of time, not a
/// number of turns: a turn of another worker, or an answer in many chunks (hyper hands one frame
/// per turn), is not bounded by turns of this one. An answer that comes in the window is used, on
/// its merits (a real answer, even a late one, is never unsafe to use); a real outage costs this
/// window once more. The timeout is judged as first seen (the window is this process's time),
/// and a window itself seen more than `STALL_TOLERANCE` late is a stall (review R1, session 4).
#[cfg(feature = "fetch")]
const LAST_WINDOW: Duration = STALL_TOLERANCE;

/// How far past an exchange's own deadline the timers that only guard it are set: the HTTP
/// client's total timeout (`Request::send`) and any a caller puts around the whole exchange
/// ([`backstop`]). Past the latest moment the exchange's own timer can decide the server's
/// `Timeout` (seen up to `STALL_TOLERANCE` late, then `LAST_WINDOW`, itself seen up to
/// `STALL_TOLERANCE` late), so that such a timer, seen at all, is seen more than
/// `STALL_TOLERANCE` past the exchange's deadline: always this process's stall
/// ([`FetchError::timed_out`]), never the server's `Timeout`, which only the exchange's own timer
/// (`Request::send`'s and `Response::body`'s, after its last window) decides.
const BACKSTOP: Duration = Duration::from_millis(400);

/// `timeout` pushed past by the backstop margin: the timeout of a timer that guards an exchange
/// which has `timeout` of its own (`Request::send` and `Response::body`), so that
/// the exchange's timer, and its last window, decide first. Classify its expiry with
/// [`FetchError::timed_out`]`(timeout, started)`: it is then always a stall.
pub fn backstop(timeout: Duration) -> Duration {
    timeout.saturating_add(BACKSTOP)
}

impl FetchError {
    /// The timeout `timeout`, started at `started`, has fired: the server's
    /// [`Timeout`](Self::Timeout), unless it is seen more than 100 ms (`STALL_TOLERANCE`) past its
    /// deadline, when the delay is this
    /// process's ([`LocalCause::Stalled`]). Every timeout of an exchange is classified here (the
    /// exchange's own, in `Request::send` and `Response::body`, after its last window; the HTTP
    /// client's, and any a caller puts around them, at [`backstop`]).
    pub fn timed_out(timeout: Duration, started: tokio::time::Instant) -> Self {
        // A timeout too long to have a deadline (`Duration::MAX`) cannot have fired late.
        let late = started
            .checked_add(timeout)
            .map_or(Duration::ZERO, |deadline| {
                tokio::time::Instant::now().saturating_duration_since(deadline)
            });
        if late > STALL_TOLERANCE {
            Self::Local {
                cause: LocalCause::Stalled,
                message: format!(
                    "the timeout of {timeout:?} was seen {late:?} late: this process stalled"
                ),
            }
        } else {
            Self::Timeout { timeout }
        }
    }
}

#[cfg(feature = "fetch")]
mod deadline;

#[cfg(feature = "fetch")]
mod client {
    use std::fmt;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, LengthLimitError, Limited};
    use tokio::time::Instant;

    use super::deadline::by_deadline;
    use super::{FetchError, LocalCause};
    use crate::error_chain;

    /// How an HTTP client connects: what [`client`] builds from.
    #[derive(Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct ClientSettings {
        /// The time to establish a connection.
        pub connect_timeout: Duration,
        /// Extra root certificates, each a PEM bundle of one or more.
        pub root_certificates: Vec<Vec<u8>>,
        /// Whether the system's roots are trusted besides `root_certificates` (`false`: exactly
        /// those).
        pub system_roots: bool,
        /// Whether the `HTTP(S)_PROXY` environment settings apply (`false` for a link-local server
        /// that no proxy must see).
        pub proxy: bool,
        /// The `User-Agent` sent.
        pub user_agent: &'static str,
        /// Whether idle connections are kept for the next request (`false`: a new connection
        /// per request, so that none is sent into a connection the server closed while it sat
        /// idle — a failure no timer or heartbeat of the request can tell from the server's).
        pub reuse_connections: bool,
    }

    impl ClientSettings {
        /// Settings that trust the system's roots, use the environment's proxy and send
        /// `user_agent`.
        pub fn new(connect_timeout: Duration, user_agent: &'static str) -> Self {
            Self {
                connect_timeout,
                root_certificates: Vec::new(),
                system_roots: true,
                proxy: true,
                user_agent,
                reuse_connections: true,
            }
        }
    }

    impl fmt::Debug for ClientSettings {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ClientSettings")
                .field("connect_timeout", &self.connect_timeout)
                .field("root_certificates", &self.root_certificates.len())
                .field("system_roots", &self.system_roots)
                .field("proxy", &self.proxy)
                .field("user_agent", &self.user_agent)
                .field("reuse_connections", &self.reuse_connections)
                .finish()
        }
    }

    /// Why an HTTP client could not be built.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum ClientError {
        /// A root certificate could not be used (not PEM, no certificate in it), or there is none
        /// to trust at all.
        InvalidCertificate {
            /// Why it was refused.
            reason: String,
        },
        /// The TLS or HTTP stack could not be set up.
        Build {
            /// What went wrong.
            message: String,
        },
    }

    impl fmt::Display for ClientError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::InvalidCertificate { reason } => {
                    write!(f, "invalid root certificate: {reason}")
                }
                Self::Build { message } => write!(f, "could not build the HTTP client: {message}"),
            }
        }
    }

    impl std::error::Error for ClientError {}

    /// Builds an HTTP client with the rules above.
    pub fn client(settings: &ClientSettings) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            // A redirect could move the request to a host (or scheme) we never vetted.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .dns_resolver(BoundedResolver {
                bound: settings.connect_timeout / 2,
            })
            .user_agent(settings.user_agent);
        if !settings.proxy {
            builder = builder.no_proxy();
        }
        if !settings.reuse_connections {
            builder = builder.pool_max_idle_per_host(0);
        }
        let mut certs = Vec::new();
        for pem in &settings.root_certificates {
            let parsed = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                ClientError::InvalidCertificate {
                    reason: e.to_string(),
                }
            })?;
            if parsed.is_empty() {
                return Err(ClientError::InvalidCertificate {
                    reason: "no certificate found in PEM".into(),
                });
            }
            certs.extend(parsed);
        }
        if !settings.system_roots {
            if certs.is_empty() {
                return Err(ClientError::InvalidCertificate {
                    reason: "no root certificate to trust: give the CA's PEM".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        } else if !certs.is_empty() {
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| ClientError::Build {
            message: error_chain(&e),
        })?;
        Ok(Client {
            client,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// An HTTP client built by [`client`], with the connect timeout it was built with, so that a
    /// timeout of its connect is judged against its own deadline ([`FetchError::timed_out`]).
    #[derive(Debug, Clone)]
    pub struct Client {
        client: reqwest::Client,
        connect_timeout: Duration,
    }

    impl Client {
        /// A GET of `url`, to send with [`Request::send`].
        pub fn get(&self, url: impl reqwest::IntoUrl) -> Request {
            self.request(self.client.get(url))
        }

        /// A POST to `url`, to send with [`Request::send`].
        pub fn post(&self, url: impl reqwest::IntoUrl) -> Request {
            self.request(self.client.post(url))
        }

        fn request(&self, builder: reqwest::RequestBuilder) -> Request {
            Request {
                builder,
                connect_timeout: self.connect_timeout,
            }
        }
    }

    /// A request of a [`Client`], not sent yet.
    #[derive(Debug)]
    pub struct Request {
        builder: reqwest::RequestBuilder,
        connect_timeout: Duration,
    }

    impl FetchError {
        /// An error of the HTTP client: its timeout, a failure on this side found in its causes
        /// ([`LocalCause`]), or else a transport failure with every cause (the URL left out: the
        /// caller's message names it).
        fn of(error: reqwest::Error, timeouts: Timeouts, started: Instant) -> Self {
            let error = error.without_url();
            if error.is_timeout() {
                // The connect's own timer (`connect_timeout`, lookup and TLS included) is due
                // before the request's: judged late against its own deadline. The client's total
                // timer is only `Request::send`'s backstop: seen, it is late, a stall.
                let connect = timeouts.connect;
                return if error.is_connect() && connect < timeouts.total {
                    Self::timed_out(connect, started)
                } else {
                    Self::timed_out(timeouts.total, started)
                };
            }
            let message = error_chain(&error);
            match local_cause(&error) {
                Some(cause) => Self::Local { cause, message },
                None => Self::Transport { message },
            }
        }
    }

    /// The first cause of `error` that is this side's, looking through every source, and into
    /// each `io::Error` (whose `source()` skips the error it wraps: tokio-rustls's TLS errors and
    /// the connector's own are carried that way).
    fn local_cause(error: &(dyn std::error::Error + 'static)) -> Option<LocalCause> {
        let mut next = Some(error);
        while let Some(cause) = next {
            if let Some(found) = local_cause_of(cause) {
                return Some(found);
            }
            next = match cause.downcast_ref::<std::io::Error>() {
                Some(io) => io.get_ref().map(|inner| inner as _),
                None => cause.source(),
            };
        }
        None
    }

    /// Whether `error` itself (not its causes) is this side's.
    fn local_cause_of(error: &(dyn std::error::Error + 'static)) -> Option<LocalCause> {
        // A certificate refused by our verifier (webpki against our roots, RFC 5280 path
        // validation): a CA that did not sign the server's certificate is our configuration (or
        // an interception), never an outage — client-go fails `rest.InClusterConfig` requests the
        // same way, without retrying them as the server's failure.
        match error.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(_)) => return Some(LocalCause::Certificate),
            // The server's fatal alerts about what we offered (RFC 8446 §6.2: our certificate
            // missing or refused, our version or suites), and no common ground: the TLS
            // counterpart of a 401/403, never an outage (review R4, session 4).
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::UnsupportedCertificate
                | rustls::AlertDescription::CertificateRevoked
                | rustls::AlertDescription::CertificateExpired
                | rustls::AlertDescription::CertificateUnknown
                | rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::AccessDenied
                | rustls::AlertDescription::HandshakeFailure
                | rustls::AlertDescription::ProtocolVersion
                | rustls::AlertDescription::InsufficientSecurity,
            ))
            | Some(rustls::Error::PeerIncompatible(_)) => return Some(LocalCause::TlsRefused),
            _ => {}
        }
        if error.is::<NameNotResolved>() {
            return Some(LocalCause::NameResolution);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some_and(is_resource_limit)
        {
            return Some(LocalCause::Resources);
        }
        None
    }

    /// Whether an OS error is a limit or rule of this process or host, which says nothing about
    /// the server: no descriptor left (EMFILE, ENFILE: a flood of idle connections or a leak), no
    /// buffer space or memory (ENOBUFS, ENOMEM), no local port to bind (EADDRNOTAVAIL: ephemeral
    /// ports exhausted), a local firewall rule (EPERM, EACCES: connect(2) "failed because of a
    /// local firewall rule"), an address family this host lacks (EAFNOSUPPORT), no route from this
    /// host (ENETUNREACH: a pod network not set up yet; a router's ICMP answer gives it too, and in
    /// doubt it is not the server's). socket(2), connect(2).
    #[cfg(unix)]
    fn is_resource_limit(code: i32) -> bool {
        matches!(
            code,
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EADDRNOTAVAIL
                | libc::EPERM
                | libc::EACCES
                | libc::EAFNOSUPPORT
                | libc::ENETUNREACH
        )
    }

    /// Elsewhere, no OS error is known to be one (a failure stays the server's `Transport`).
    #[cfg(not(unix))]
    fn is_resource_limit(_: i32) -> bool {
        false
    }

    tokio::task_local! {
        /// The bound of a name lookup for the request [`Request::send`] is sending: half its
        /// timeout.
        static LOOKUP_BOUND: Duration;
    }

    /// The one name resolver of every client built here: getaddrinfo(3) on a blocking thread, as
    /// reqwest's default resolver does, but bounded by half the request's timeout and half the
    /// connect timeout (which covers the lookup too), so that a lookup waiting for a
    /// blocking thread (all busy) or for a resolver that does not answer fails as this side's
    /// ([`LocalCause::NameResolution`]) before the request's timeout, which is the server's, can
    /// fire. A name that does not resolve is no failure of the server either. (An IP address in
    /// the URL is never looked up.)
    #[derive(Debug)]
    struct BoundedResolver {
        bound: Duration,
    }

    impl reqwest::dns::Resolve for BoundedResolver {
        fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            // Read when the connect starts, inside `send`'s scope. Below half the connect
            // timeout as well: that timeout covers the lookup too, and fires as the server's.
            let bound = LOOKUP_BOUND
                .try_with(|bound| *bound)
                .map_or(self.bound, |bound| bound.min(self.bound));
            let host = name.as_str().to_owned();
            Box::pin(async move {
                let lookup = tokio::task::spawn_blocking({
                    let host = host.clone();
                    // Port 0: reqwest puts the URL's port in.
                    move || std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0))
                });
                let reason = match tokio::time::timeout(bound, lookup).await {
                    Ok(Ok(Ok(addrs))) => return Ok(Box::new(addrs) as reqwest::dns::Addrs),
                    Ok(Ok(Err(error))) => error.to_string(),
                    Ok(Err(_)) => "the lookup was cancelled".to_owned(),
                    Err(_) => format!("no address within {bound:?}"),
                };
                Err(Box::new(NameNotResolved { host, reason }) as _)
            })
        }
    }

    /// What [`BoundedResolver`] fails with, found in the error chain by [`FetchError::of`].
    #[derive(Debug)]
    struct NameNotResolved {
        host: String,
        reason: String,
    }

    impl fmt::Display for NameNotResolved {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "name {:?} not resolved: {}", self.host, self.reason)
        }
    }

    impl std::error::Error for NameNotResolved {}

    /// Whether a client built from `settings` sends requests to `url` through a proxy: the
    /// environment's, by the rules reqwest applies (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`…; the
    /// matcher is reqwest's own, from hyper-util). Read from the environment now.
    pub fn proxied(settings: &ClientSettings, url: &str) -> bool {
        settings.proxy
            && url.parse::<http::Uri>().is_ok_and(|uri| {
                hyper_util::client::proxy::matcher::Matcher::from_system()
                    .intercept(&uri)
                    .is_some()
            })
    }

    impl Request {
        /// Adds a header (a name or value that is not one fails the request when sent).
        pub fn header<K, V>(self, name: K, value: V) -> Self
        where
            http::HeaderName: TryFrom<K>,
            <http::HeaderName as TryFrom<K>>::Error: Into<http::Error>,
            http::HeaderValue: TryFrom<V>,
            <http::HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
        {
            Self {
                builder: self.builder.header(name, value),
                ..self
            }
        }

        /// Sets the body.
        pub fn body(self, body: Vec<u8>) -> Self {
            Self {
                builder: self.builder.body(body),
                ..self
            }
        }

        /// Sends the request with a total `timeout` (body included); an error before the status
        /// line is a [`FetchError::Timeout`] or [`FetchError::Transport`].
        pub async fn send(self, timeout: Duration) -> Result<Response, FetchError> {
            let timeouts = Timeouts {
                total: timeout,
                connect: self.connect_timeout,
            };
            // The exchange's deadline starts with `send` and covers the body too (`Response::body`).
            let started = Instant::now();
            // The HTTP client's own total timer (which its `PendingRequest` polls before the
            // response) only backs ours up: set `BACKSTOP` later, it cannot end the exchange before
            // our timer and its last window have looked for an answer already in the socket, and its
            // expiry, if ever seen, is a stall (`FetchError::of`, `timed_out`).
            let sent = self.builder.timeout(super::backstop(timeout)).send();
            let sent = async { sent.await.map_err(|e| FetchError::of(e, timeouts, started)) };
            let mut stalled = Duration::ZERO;
            let exchange = LOOKUP_BOUND.scope(timeout / 2, sent);
            let response = by_deadline(timeout, started, &mut stalled, exchange).await?;
            Ok(Response {
                response,
                timeouts,
                started,
                stalled,
            })
        }
    }

    /// The timeouts of one exchange: `total` (body included) and its client's `connect`, so that
    /// a timeout of either is judged against its own deadline ([`FetchError::timed_out`]).
    #[derive(Debug, Clone, Copy)]
    struct Timeouts {
        total: Duration,
        connect: Duration,
    }

    /// A response whose status and headers have arrived; its body is read with
    /// [`body`](Self::body).
    #[derive(Debug)]
    pub struct Response {
        response: reqwest::Response,
        timeouts: Timeouts,
        started: Instant,
        /// The longest stall of this process `send` saw (its heartbeat), for the body's.
        stalled: Duration,
    }

    impl Response {
        /// The status.
        pub fn status(&self) -> http::StatusCode {
            self.response.status()
        }

        /// The headers.
        pub fn headers(&self) -> &http::HeaderMap {
            self.response.headers()
        }

        /// This response if its status is a success (2xx), else [`FetchError::Status`] without
        /// reading the body.
        pub fn success(self) -> Result<Self, FetchError> {
            let status = self.status();
            if status.is_success() {
                Ok(self)
            } else {
                Err(FetchError::Status {
                    status: status.as_u16(),
                })
            }
        }

        /// Reads the body whole, refusing one over `max_bytes` without reading on: by its
        /// `Content-Length` when it states one, else as the bytes arrive.
        pub async fn body(self, max_bytes: usize) -> Result<Bytes, FetchError> {
            let too_large = FetchError::TooLarge { max_bytes };
            if self
                .response
                .content_length()
                .is_some_and(|len| len > max_bytes as u64)
            {
                return Err(too_large);
            }
            let (timeouts, started, mut stalled) = (self.timeouts, self.started, self.stalled);
            let body = http::Response::from(self.response).into_body();
            let read = async {
                match Limited::new(body, max_bytes).collect().await {
                    Ok(collected) => Ok(collected.to_bytes()),
                    Err(error) if error.is::<LengthLimitError>() => Err(too_large),
                    Err(error) => Err(match error.downcast::<reqwest::Error>() {
                        Ok(error) => FetchError::of(*error, timeouts, started),
                        Err(error) => FetchError::Transport {
                            message: error_chain(&*error),
                        },
                    }),
                }
            };
            // The same deadline as `send`'s: the whole exchange has `timeouts.total`.
            by_deadline(timeouts.total, started, &mut stalled, read).await
        }
    }

    /// Review tests (s3-review-grace).
    #[cfg(all(test, unix))]
    mod review_tests {
        use super::*;

        /// connect(2): "EACCES, EPERM ... the connection request failed because of a local
        /// firewall rule" (and EAFNOSUPPORT from socket(2): this host without the address family,
        /// IPv6 disabled). Each is this host's configuration, said before anything reaches the
        /// server; `local_cause` leaves them `Transport`, an outage that opens object binding's
        /// grace period. (Wrapped as hyper-util wraps a connect's io::Error.)
        #[test]
        fn a_local_firewall_refusal_is_not_the_servers_failure() {
            #[derive(Debug)]
            struct ConnectError(std::io::Error);
            impl fmt::Display for ConnectError {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("tcp connect error")
                }
            }
            impl std::error::Error for ConnectError {
                fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                    Some(&self.0)
                }
            }
            for code in [libc::EPERM, libc::EACCES, libc::EAFNOSUPPORT] {
                let error = ConnectError(std::io::Error::from_raw_os_error(code));
                assert!(
                    local_cause(&error).is_some(),
                    "{}: counted as the server's failure",
                    std::io::Error::from_raw_os_error(code)
                );
            }
        }

        /// Review 4 (s3-review-grace4): connect(2) fails at once with ENETUNREACH when this host's
        /// routing table has no route to the address (a pod network not set up yet, a route
        /// removed): this host's configuration, said before any packet left. `is_resource_limit`
        /// leaves it `Transport`, the API server's failure that opens the grace period. (A
        /// router's ICMP "net unreachable" to our SYN gives the same code: when in doubt, not the
        /// server's.)
        #[test]
        fn review4_no_route_to_the_server_is_not_the_servers_failure() {
            let error = std::io::Error::from_raw_os_error(libc::ENETUNREACH);
            assert!(
                local_cause(&error).is_some(),
                "{error}: counted as the server's failure"
            );
        }
    }
}
