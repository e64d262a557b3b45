//! The example server run as a process, configured by environment as in the tutorial.

use std::process::Stdio;
use std::time::Duration;

use oidc_bearer_testing::{TestIssuer, now};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

struct Server {
    child: Child,
    base: String,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts the binary with `env` and waits for its "listening on" line.
async fn start(env: &[(&str, &str)]) -> Server {
    spawn(env, Stdio::null()).await
}

/// [`start`], with its log lines (stderr) going to `stderr`.
async fn spawn(env: &[(&str, &str)], stderr: Stdio) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resource-server"));
    command
        .env_remove("ID_ISSUER")
        .env_remove("JWT_AUDIENCE")
        .env_remove("DPOP")
        .env_remove("DPOP_BASE_URL")
        .env("PORT", "0")
        .env("METADATA_PORT", "0")
        .env("RUST_LOG", "warn")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start resource-server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("server did not start in 30 s")
        .unwrap()
        .expect("server exited before listening");
    let base = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server {
        child,
        base,
        stdout,
    }
}

async fn get(url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status().as_u16(),
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_route_with_an_external_issuer() {
    let issuer = TestIssuer::start().await;
    let mut server = start(&[("ID_ISSUER", &issuer.issuer()), ("JWT_AUDIENCE", "my-api")]).await;
    let base = &server.base;
    assert_eq!(
        get(base, None).await,
        (200, None, json!({"msg": "hello-exposed"}))
    );

    let token = issuer
        .token()
        .kubernetes("ns1", "client")
        .aud("my-api")
        .sign();
    let (status, _, body) = get(&format!("{base}/private"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["msg"], "hello-private");
    assert_eq!(body["sub"], "system:serviceaccount:ns1:client");
    assert_eq!(body["claims"]["kubernetes.io"]["namespace"], "ns1");

    let (status, challenge, _) = get(&format!("{base}/private"), None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some(r#"Bearer realm="api""#))
    );

    let expired = issuer.token().aud("my-api").exp(now() - 3600).sign();
    let (status, challenge, _) = get(&format!("{base}/private"), Some(&expired)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains(r#"error="invalid_token""#));

    let other = issuer.token().aud("another-api").sign();
    assert_eq!(get(&format!("{base}/private"), Some(&other)).await.0, 401);

    // Graceful shutdown on SIGTERM.
    let pid = server.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    while let Ok(Some(line)) = server.stdout.next_line().await {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l == "shut down"), "{rest:?}");
}

#[tokio::test]
async fn starts_with_the_issuer_down_and_recovers() {
    let issuer = TestIssuer::start().await;
    issuer.stop_listening().await;
    let server = start(&[("ID_ISSUER", &issuer.issuer()), ("JWT_AUDIENCE", "my-api")]).await;
    let url = format!("{}/private", server.base);
    let token = issuer.token().aud("my-api").sign();
    assert_eq!(
        get(&server.base, None).await.0,
        200,
        "the open route works while the issuer is down"
    );
    assert_eq!(get(&url, Some(&token)).await.0, 503);
    issuer.resume_listening().await;
    // The server's warm-up retries by itself; once it has fetched the keys, tokens are accepted.
    issuer.wait_for_jwks_fetches(1).await;
    let (status, _, body) = get(&url, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
}

/// The log lines on stderr, where `kubectl logs` reads them: plain text without colour codes (stderr
/// is no terminal here), or one JSON object per line with `LOG_FORMAT=json`. The warm-up of an issuer
/// whose discovery document names another is the library's one ERROR line per attempt, naming the
/// fix, and no other warning.
#[tokio::test]
async fn logs_are_plain_text_off_a_terminal_or_json_lines() {
    let issuer = TestIssuer::start().await;
    issuer.set_discovery_issuer("https://elsewhere.example");
    for format in ["text", "json"] {
        let env = [
            ("ID_ISSUER", issuer.issuer()),
            ("RUST_LOG", "info".into()),
            ("LOG_FORMAT", format.into()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = spawn(&env, Stdio::piped()).await;
        let mut stderr = BufReader::new(server.child.stderr.take().unwrap()).lines();
        // (level, message) of each line, until two attempts failed (1 s apart: the key cache's
        // backoff).
        let mut lines = Vec::new();
        while lines.iter().filter(|(level, _)| level == "ERROR").count() < 2 {
            let line = tokio::time::timeout(Duration::from_secs(30), stderr.next_line())
                .await
                .expect("two failed attempts within 30 s")
                .unwrap()
                .expect("the server exited");
            assert!(!line.contains('\u{1b}'), "colour codes: {line:?}");
            lines.push(if format == "json" {
                let line: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                let text = |v: &Value| v.as_str().unwrap().to_owned();
                (text(&line["level"]), text(&line["fields"]["message"]))
            } else {
                // `<time> <LEVEL> <target>: <message and fields>`
                let level = line.split_whitespace().nth(1).unwrap_or_default();
                (level.to_owned(), line.clone())
            });
        }
        for (level, message) in &lines {
            if level == "ERROR" || level == "WARN" {
                assert!(
                    message.contains("cannot load the issuer's keys: a configuration error")
                        && message.contains("configure exactly that string"),
                    "{format}: {level} {message}"
                );
            }
        }
    }
}

#[tokio::test]
async fn embedded_issuer_prints_working_curl_commands() {
    let dir = std::env::temp_dir().join(format!("oidc-bearer-rs-test-{}", std::process::id()));
    let token_file = dir.join("token");
    let mut server = start(&[("TOKEN_FILE", token_file.to_str().unwrap())]).await;
    let mut lines = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(10), server.stdout.next_line()).await
    {
        let done = line.contains("Authorization: Bearer");
        lines.push(line);
        if done {
            break;
        }
    }
    let curl = lines
        .iter()
        .find(|l| l.contains("Authorization: Bearer"))
        .unwrap_or_else(|| panic!("no curl command in {lines:?}"));
    let token = curl
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let (status, _, body) = get(&format!("{}/private", server.base), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], "system:serviceaccount:default:workload-client");
    let _ = std::fs::remove_dir_all(dir);
}

/// Reads the offline banner up to its last command.
async fn banner(server: &mut Server) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(10), server.stdout.next_line()).await
    {
        let done = line.contains("IDENTITY=google");
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}

#[tokio::test]
async fn embedded_metadata_server_mints_google_id_tokens_the_server_accepts() {
    let dir = std::env::temp_dir().join(format!("oidc-bearer-rs-google-{}", std::process::id()));
    let mut server = start(&[("TOKEN_FILE", dir.join("token").to_str().unwrap())]).await;
    let lines = banner(&mut server).await;
    let metadata = lines
        .iter()
        .find_map(|l| l.split("(GCE_METADATA_HOST=").nth(1))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no metadata address in {lines:?}"))
        .to_owned();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("IDENTITY=google cargo run -p workload-client")),
        "{lines:?}"
    );

    let identity =
        format!("http://{metadata}/computeMetadata/v1/instance/service-accounts/default/identity");
    let client = reqwest::Client::new();
    // The metadata server's guards: the header, then the audience.
    let no_header = client
        .get(format!("{identity}?audience=resource-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 403);
    let no_audience = client
        .get(&identity)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(no_audience.status(), 400);

    let token = id_token(
        &client,
        &format!("{identity}?audience=resource-server&format=full"),
    )
    .await;
    let (status, _, body) = get(&format!("{}/private", server.base), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"]["iss"], "https://accounts.google.com");
    assert_eq!(
        body["claims"]["email"],
        "workload-client@demo-project.iam.gserviceaccount.com"
    );
    assert_eq!(body["sub"], body["claims"]["azp"]);
    assert_eq!(
        body["claims"]["google"]["compute_engine"]["project_id"],
        "demo-project"
    );

    // For another audience the token is minted, and refused here.
    let other = id_token(&client, &format!("{identity}?audience=another-service")).await;
    assert_eq!(
        get(&format!("{}/private", server.base), Some(&other))
            .await
            .0,
        401
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The value of the sample `series` (name and labels exactly as rendered) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let issuer = TestIssuer::start().await;
    let server = start(&[("ID_ISSUER", &issuer.issuer()), ("JWT_AUDIENCE", "my-api")]).await;
    let private = format!("{}/private", server.base);
    let token = issuer.token().aud("my-api").sign();
    let (head, sig) = token.rsplit_once('.').unwrap();
    let bad_signature = format!(
        "{head}.{}{}",
        if sig.starts_with('A') { 'B' } else { 'A' },
        &sig[1..]
    );
    let other_audience = issuer.token().aud("another-api").sign();
    // Three accepted (one verification, then two cache hits), four refused for three reasons.
    for _ in 0..3 {
        assert_eq!(get(&private, Some(&token)).await.0, 200);
    }
    assert_eq!(get(&private, None).await.0, 401);
    assert_eq!(get(&private, None).await.0, 401);
    assert_eq!(get(&private, Some(&bad_signature)).await.0, 401);
    assert_eq!(get(&private, Some(&other_audience)).await.0, 401);

    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let rows = [
        ("oidc_bearer_requests_accepted_total", 3.0),
        (
            r#"oidc_bearer_requests_refused_total{code="missing_token"}"#,
            2.0,
        ),
        (
            r#"oidc_bearer_requests_refused_total{code="invalid_signature"}"#,
            1.0,
        ),
        (
            r#"oidc_bearer_requests_refused_total{code="audience_mismatch"}"#,
            1.0,
        ),
        ("oidc_bearer_token_cache_hits_total", 2.0),
        // The first use of the good token, the bad signature and the other audience.
        ("oidc_bearer_token_cache_misses_total", 3.0),
        ("oidc_bearer_verify_duration_seconds_count", 3.0),
    ];
    for (series, expected) in rows {
        assert_eq!(sample(&text, series), Some(expected), "{series}:\n{text}");
    }
    assert!(
        text.contains("# HELP oidc_bearer_requests_refused_total"),
        "{text}"
    );
    // Nothing from the tokens becomes a label.
    assert!(
        !text.contains("another-api") && !text.contains(&issuer.signing_kid()),
        "{text}"
    );
}

#[tokio::test]
async fn jwt_typ_requires_rfc_9068_access_tokens() {
    let issuer = TestIssuer::start().await;
    let server = start(&[
        ("ID_ISSUER", &issuer.issuer()),
        ("JWT_AUDIENCE", "my-api"),
        ("JWT_TYP", "at+jwt"),
    ])
    .await;
    let private = format!("{}/private", server.base);
    let id_token = issuer.token().aud("my-api").sign();
    let (status, challenge, _) = get(&private, Some(&id_token)).await;
    assert_eq!(status, 401);
    assert!(
        challenge
            .unwrap()
            .contains("the token's type is not accepted"),
        "an ID token with the same audience is refused"
    );
    let access_token = issuer
        .token()
        .aud("my-api")
        .header("typ", json!("at+jwt"))
        .sign();
    assert_eq!(get(&private, Some(&access_token)).await.0, 200);
}

#[tokio::test]
async fn dpop_required_takes_bound_tokens_with_proofs_only() {
    use oidc_bearer_testing::{DpopKey, KeyAlg};
    let issuer = TestIssuer::start().await;
    let server = start(&[
        ("ID_ISSUER", &issuer.issuer()),
        ("JWT_AUDIENCE", "my-api"),
        ("DPOP", "required"),
    ])
    .await;
    let private = format!("{}/private", server.base);
    let key = DpopKey::generate(KeyAlg::ES256);
    let token = issuer.token().aud("my-api").dpop_bound(&key).sign();
    let proof = key.proof("GET", &private).access_token(&token).sign();
    let response = reqwest::Client::new()
        .get(&private)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["dpop_jkt"], key.thumbprint());
    // The same token as `Bearer`, and a bearer token: refused, with a DPoP challenge.
    for bearer in [token, issuer.token().aud("my-api").sign()] {
        let (status, challenge, _) = get(&private, Some(&bearer)).await;
        assert_eq!(status, 401);
        let challenge = challenge.unwrap();
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(challenge.contains("algs=\""), "{challenge}");
    }
}

/// An ID token from the metadata server stand-in's identity endpoint (`url` with its query).
async fn id_token(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}
