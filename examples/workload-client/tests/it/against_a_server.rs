//! Runs the example binary against a stand-in resource server on 127.0.0.1.

use axum::{Router, http::HeaderMap, http::StatusCode, routing::get};

/// `/` answers anyone; `/private` answers with the bearer token it got, or 401.
async fn serve() -> std::net::SocketAddr {
    let app = Router::new()
        .route("/", get(|| async { "hello, anyone" }))
        .route(
            "/private",
            get(|headers: HeaderMap| async move {
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some(value) => (StatusCode::OK, format!("hello, {value}")),
                    None => (StatusCode::UNAUTHORIZED, "no token".to_owned()),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn run_client(addr: std::net::SocketAddr, token_file: &std::path::Path) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_workload-client"))
        .env_remove("IDENTITY")
        .env("SERVER_URL", format!("http://{addr}"))
        .env("TOKEN_FILE", token_file)
        .env("INTERVAL_SECS", "0.01")
        .env("ITERATIONS", "2")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn calls_both_paths_with_the_token_from_the_file() {
    let addr = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "demo-token\n").unwrap();

    let stdout = run_client(addr, &token_file).await;
    for round in 1..=2 {
        assert!(
            stdout.contains(&format!(
                "[{round}] GET / as cluster -> 200 OK hello, anyone"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "[{round}] GET /private as cluster -> 200 OK hello, Bearer demo-token"
            )),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn a_missing_token_file_is_reported_and_the_client_keeps_going() {
    let addr = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_client(addr, &dir.path().join("absent")).await;
    assert!(
        stdout.contains("[2] GET /private as cluster failed: could not read token file"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_unknown_identity_is_refused_at_start_with_the_valid_ones() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_workload-client"))
        .env("IDENTITY", "kubernetes")
        .env("ITERATIONS", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(r#"IDENTITY="kubernetes" is not an identity this client knows; use one of: cluster, google"#),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no request was made");
}
