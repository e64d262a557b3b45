//! The example run as a process with `ITERATIONS=1`: the caller signs through the signJwt stand-in,
//! the receiver verifies, the intruder is refused, and the process exits.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs the binary to its end with `env` (and `ITERATIONS=1`, `PORT=0`); its exit status and stdout
/// lines.
async fn run(env: &[(&str, &str)]) -> (ExitStatus, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_google-service-account"));
    for name in [
        "SA_EMAIL",
        "GITUSER",
        "AUDIENCE",
        "IAM_URL",
        "IAM_ACCESS_TOKEN",
        "HOST",
        "INTERVAL_SECS",
    ] {
        command.env_remove(name);
    }
    command
        .env("ITERATIONS", "1")
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start google-service-account");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    let read_all = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            lines.push(line);
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the example did not finish in 60 s");
    (status, lines)
}

/// The receiver's answer to `email`, from the line `caller: {email} -> {status} {rest}`.
fn answer<'a>(lines: &'a [String], email: &str) -> (u16, &'a str) {
    let prefix = format!("caller: {email} -> ");
    let rest = lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no answer for {email} in {lines:#?}"));
    let (status, rest) = rest.split_once(' ').unwrap();
    (status.parse().unwrap(), rest)
}

fn check_intruder_refused(lines: &[String]) {
    let (status, rest) = answer(lines, "intruder@evil-project.iam.gserviceaccount.com");
    assert_eq!(status, 401);
    assert_eq!(
        rest,
        r#"Bearer realm="api", error="invalid_token", error_description="the token's issuer is not trusted" (its keys were fetched 0 times)"#
    );
}

#[tokio::test]
async fn one_iteration_with_the_defaults() {
    let (status, lines) = run(&[]).await;
    assert!(status.success(), "{status:?}: {lines:#?}");
    assert!(
        lines[0].starts_with("listening on http://127.0.0.1:"),
        "{lines:#?}"
    );

    let deployer = "deployer@demo-project.iam.gserviceaccount.com";
    let (code, body) = answer(&lines, deployer);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"gituser": "octocat", "email": deployer, "issuer": deployer})
    );
    check_intruder_refused(&lines);
    assert_eq!(lines.last().map(String::as_str), Some("shut down"));
}

#[tokio::test]
async fn the_account_user_and_audience_come_from_the_environment() {
    let builder = "builder@other-project.iam.gserviceaccount.com";
    let (status, lines) = run(&[
        ("SA_EMAIL", builder),
        ("GITUSER", "hubot"),
        ("AUDIENCE", "https://deploy.example"),
    ])
    .await;
    assert!(status.success(), "{status:?}: {lines:#?}");
    assert!(
        lines[0].contains("audience https://deploy.example"),
        "{lines:#?}"
    );
    let (code, body) = answer(&lines, builder);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"gituser": "hubot", "email": builder, "issuer": builder})
    );
    check_intruder_refused(&lines);
}

#[tokio::test]
async fn a_sign_jwt_refusal_fails_the_run() {
    // An IAM that refuses, as Google does without the token creator role.
    let iam = axum::Router::new().fallback(|| async {
        let body = json!({"error": {
            "code": 403,
            "message": "Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist).",
            "status": "PERMISSION_DENIED",
        }});
        (axum::http::StatusCode::FORBIDDEN, axum::Json(body))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, iam).await });

    let (status, lines) = run(&[("IAM_URL", &url), ("IAM_ACCESS_TOKEN", "ya29.test")]).await;
    assert!(!status.success(), "{lines:#?}");
    let prefix = "caller: deployer@demo-project.iam.gserviceaccount.com failed: signJwt";
    let failed = lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(failed.contains("HTTP 403"), "{failed}");
    assert!(
        failed.contains("Permission 'iam.serviceAccounts.signJwt' denied"),
        "{failed}"
    );
    // With a real IAM, there is no stand-in to sign for the intruder.
    assert!(
        lines
            .iter()
            .any(|l| l == "caller: (the intruder only runs offline)"),
        "{lines:#?}"
    );
}
