//! The layer end to end: hyper-util's client, wrapped in `AddBearerLayer`, sends a token file's
//! token to a real HTTP server on 127.0.0.1, and the rotated token after the kubelet rotates the file.

use std::{net::SocketAddr, path::Path};

use axum::{Router, http::HeaderMap, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use oidc_bearer_client::{
    AddBearerLayer, BoxError, FileTokenSource, TokenError,
    clock::{Clock as _, ManualClock},
};
use tower::{Service, ServiceBuilder, ServiceExt as _};

/// Answers with the Authorization header it received, or 401 without one.
async fn serve_echo() -> SocketAddr {
    let app = Router::new().route(
        "/private",
        get(|headers: HeaderMap| async move {
            match headers.get("authorization") {
                Some(value) => (StatusCode::OK, value.to_str().unwrap().to_owned()),
                None => (StatusCode::UNAUTHORIZED, String::new()),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// GET /private through `client`; the status and the body (the Authorization header the server saw).
async fn get_private<S>(client: S, addr: SocketAddr) -> (StatusCode, String)
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<Incoming>, Error = BoxError>,
{
    let request = Request::get(format!("http://{addr}/private"))
        .body(Empty::new())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn jwt(sub: &str, exp: u64) -> String {
    let claims = serde_json::json!({"sub": sub, "aud": "demo", "exp": exp});
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The kubelet's atomic writer: a new `..<timestamp>` directory, a `..data_tmp` symlink to it renamed
/// over `..data`, and `token -> ..data/token`.
#[cfg(unix)]
fn kubelet_write(dir: &Path, timestamp: &str, token: &str) {
    use std::os::unix::fs::symlink;

    std::fs::create_dir(dir.join(timestamp)).unwrap();
    std::fs::write(dir.join(timestamp).join("token"), format!("{token}\n")).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(timestamp, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if std::fs::symlink_metadata(dir.join("token")).is_err() {
        symlink("..data/token", dir.join("token")).unwrap();
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn hyper_client_sends_the_file_token_and_the_rotated_one() {
    let addr = serve_echo().await;
    let dir = tempfile::tempdir().unwrap();

    // A clock the test moves, so the source's poll interval passes without sleeping.
    let clock = ManualClock::new();
    let exp = clock.now().as_secs() + 600;
    let first = jwt("first", exp);
    let second = jwt("second", exp + 480);
    kubelet_write(dir.path(), "..2026_01_01_00_00_00.000000001", &first);

    let source = FileTokenSource::new(dir.path().join("token")).with_clock(clock.clone());
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let (status, sent) = get_private(client.clone(), addr).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent, format!("Bearer {first}"));

    kubelet_write(dir.path(), "..2026_01_01_00_08_00.000000002", &second);
    clock.advance(oidc_bearer_client::DEFAULT_POLL_INTERVAL);
    let (status, sent) = get_private(client, addr).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent, format!("Bearer {second}"));
}

#[tokio::test]
async fn missing_token_file_fails_the_request_before_it_is_sent() {
    let addr = serve_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-mounted");
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(FileTokenSource::new(&path)))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let request = Request::get(format!("http://{addr}/private"))
        .body(Empty::new())
        .unwrap();
    let error = client.oneshot(request).await.unwrap_err();
    match error.downcast_ref::<TokenError>() {
        Some(TokenError::ReadFile { path: p, kind }) => {
            assert_eq!(p, &path);
            assert_eq!(*kind, std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a ReadFile token error, got {other:?} from {error}"),
    }
}
