//! Helpers of this crate's integration tests (copies of the few oidc-bearer's tests use too are
//! marked so).
#![allow(dead_code)]

pub(crate) mod cluster;

use oidc_bearer::keys::Jwks;
use oidc_bearer::{BearerAuthLayer, VerifyError, VerifyToken};
use oidc_bearer_testing::TestIssuer;

// Copied from oidc-bearer's tests/it/support (a few lines each, over its types).
/// `"ok"`, or the error's stable code: what a verification table compares.
pub(crate) fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    result.map_or_else(|e| e.code(), |_| "ok")
}

/// The keys `issuer` publishes now, parsed as a verifier would.
pub(crate) fn jwks_of(issuer: &TestIssuer) -> Jwks {
    Jwks::from_json(&serde_json::to_vec(&issuer.jwks_json()).unwrap()).unwrap()
}

/// The status the bearer layer (decoding claims of type `T`) answers a request carrying `token`
/// with. The layer first asks the verifier's synchronous cache lookup, which only the layer can
/// call (it takes a `Presented`, made only in the core): this is how a test sees that lookup
/// answer (200 without a review) or refuse to (the verification then decides).
pub(crate) async fn layer_status<T>(verifier: &impl VerifyToken, token: &str) -> u16
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    use tower::{Layer as _, ServiceExt as _, service_fn};
    let service = BearerAuthLayer::new(verifier.clone())
        .claims::<T>()
        .layer(service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }));
    let request = http::Request::builder()
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    service.oneshot(request).await.unwrap().status().as_u16()
}

/// Makes a FIFO at `path` with the system's `mkfifo`: a path that an open(2) for reading waits on
/// until a writer comes.
#[cfg(unix)]
pub(crate) fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Opens the FIFO at `path` for writing without waiting for a reader, so that a read blocked
/// opening it (a hang under test) is released and the test can end; with no reader, nothing
/// happens.
#[cfg(unix)]
pub(crate) fn release_fifo_readers(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}

/// Reads one HTTP/1.1 request from a blocking stream (a test server's): its head, then its body
/// by `Content-Length` (read whole, so that closing afterwards sends no reset). `false` when the
/// stream ended or failed first (a handshake that failed, or a client that left).
pub(crate) fn read_http_request(stream: &mut impl std::io::Read) -> bool {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return false;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).is_ok()
}

pub(crate) use oidc_bearer_testing::harness::{
    one_blocking_thread_runtime, run_child_test, with_the_blocking_thread_held,
};
