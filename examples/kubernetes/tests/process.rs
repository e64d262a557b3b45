//! The example run as a process, configured by environment: against an issuer given in `ISSUER`, in
//! embedded mode, and with configurations that must fail at start.

use std::process::Stdio;
use std::time::Duration;

use oidc_bearer_testing::TestIssuer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Every variable the example reads, cleared so the caller's environment cannot leak in.
const CONFIG: [&str; 11] = [
    "TOKEN_REVIEW",
    "BINDING_INTERVAL_SECS",
    "ISSUER",
    "GKE_PROJECT",
    "GKE_LOCATION",
    "GKE_CLUSTER",
    "IN_CLUSTER",
    "AUDIENCE",
    "ALLOWED_NAMESPACE",
    "HOST",
    "PORT",
];

fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubernetes"));
    for name in CONFIG {
        command.env_remove(name);
    }
    command
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

struct Server {
    child: Child,
    base: String,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Starts the binary with `env` and waits for its "listening on" line.
    async fn start(env: &[(&str, &str)]) -> Server {
        let mut child = command(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the kubernetes example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = next_line(&mut stdout)
            .await
            .expect("exited before listening");
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

    fn whoami(&self) -> String {
        format!("{}/whoami", self.base)
    }
}

/// The child's next stdout line, waiting at most 30 s.
async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("no output from the example in 30 s")
        .unwrap()
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
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const FORBIDDEN: &str = r#"Bearer realm="api", error="insufficient_scope", error_description="the token's Kubernetes namespace is not allowed here""#;

#[tokio::test]
async fn only_the_allowed_namespace_gets_through() {
    let issuer = TestIssuer::start().await;
    let mut server = Server::start(&[
        ("ISSUER", &issuer.issuer()),
        ("AUDIENCE", "my-api"),
        ("ALLOWED_NAMESPACE", "prod"),
    ])
    .await;
    let url = server.whoami();

    // Allowed namespace: 200 with the typed fields of the token.
    let token = issuer.token().kubernetes("prod", "billing").aud("my-api");
    let claims = token.claims();
    let (status, challenge, body) = get(&url, Some(&token.sign())).await;
    assert_eq!((status, challenge), (200, None), "{body}");
    let k8s = &claims["kubernetes.io"];
    assert_eq!(
        body,
        json!({
            "issuer": issuer.issuer(),
            "namespace": "prod",
            "service_account": "billing",
            "service_account_uid": k8s["serviceaccount"]["uid"],
            "pod": k8s["pod"]["name"],
            "node": "node-1",
            "expires_at": claims["exp"],
        })
    );

    // Other namespaces, or a token whose `sub` and `kubernetes.io` claim disagree: 403.
    let mut forged = issuer.token().kubernetes("dev", "billing").aud("my-api");
    forged = forged.sub("system:serviceaccount:prod:billing");
    let refused = [
        (
            "other namespace",
            issuer.token().kubernetes("dev", "billing").aud("my-api"),
        ),
        ("sub names prod, kubernetes.io dev", forged),
        (
            "not a service account",
            issuer.token().sub("alice").aud("my-api"),
        ),
    ];
    for (name, token) in refused {
        let (status, challenge, body) = get(&url, Some(&token.sign())).await;
        assert_eq!(status, 403, "{name}");
        assert_eq!(challenge.as_deref(), Some(FORBIDDEN), "{name}");
        assert_eq!(body["error"], "insufficient_scope", "{name}");
    }

    // No token, or one for another audience: 401.
    let (status, challenge, _) = get(&url, None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some(r#"Bearer realm="api""#))
    );
    let other = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud("another-api");
    let (status, challenge, _) = get(&url, Some(&other.sign())).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains(r#"error="invalid_token""#));

    // The health check is open.
    let health = format!("{}/healthz", server.base);
    assert_eq!(get(&health, None).await.0, 200);
    // One key fetch served every request.
    assert_eq!(issuer.jwks_fetches(), 1);

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
    while let Some(line) = next_line(&mut server.stdout).await {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l == "shut down"), "{rest:?}");
}

/// The tokens of the embedded demo's curl commands: allowed, other namespace, deleted pod.
async fn demo_tokens(server: &mut Server) -> (Option<String>, Option<String>, String) {
    let mut allowed = None;
    let mut refused = None;
    let mut seen = Vec::new();
    loop {
        let line = next_line(&mut server.stdout)
            .await
            .unwrap_or_else(|| panic!("no curl commands in {seen:?}"));
        let token = line
            .split("Bearer ")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned);
        if line.contains("pod was deleted") {
            return (allowed, refused, token.unwrap());
        } else if line.contains("# 200") {
            allowed = token;
        } else if line.contains("# 403") {
            refused = token;
        }
        seen.push(line);
    }
}

#[tokio::test]
async fn embedded_mode_prints_working_curl_commands() {
    let mut server = Server::start(&[("ALLOWED_NAMESPACE", "payments")]).await;
    let (allowed, refused, revoked) = demo_tokens(&mut server).await;
    let url = server.whoami();
    // Locally verified only: a deleted pod's token works until it expires.
    assert_eq!(get(&url, Some(&revoked)).await.0, 200);

    let (status, _, body) = get(&url, allowed.as_deref()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["namespace"], "payments");
    assert_eq!(body["service_account"], "billing");
    assert_eq!(
        body["issuer"],
        "https://container.googleapis.com/v1/projects/demo-project/locations/europe-west1/clusters/demo"
    );

    let (status, challenge, _) = get(&url, refused.as_deref()).await;
    assert_eq!((status, challenge.as_deref()), (403, Some(FORBIDDEN)));
    assert_eq!(get(&url, None).await.0, 401);
}

#[tokio::test]
async fn token_review_modes_refuse_a_deleted_pods_token() {
    for mode in ["only", "binding"] {
        let mut server =
            Server::start(&[("TOKEN_REVIEW", mode), ("ALLOWED_NAMESPACE", "prod")]).await;
        let (allowed, refused, revoked) = demo_tokens(&mut server).await;
        let url = server.whoami();
        let (status, _, body) = get(&url, allowed.as_deref()).await;
        assert_eq!(status, 200, "{mode}: {body}");
        assert_eq!(
            (&body["namespace"], &body["service_account"]),
            (&json!("prod"), &json!("billing"))
        );
        assert_eq!(body["pod"], "billing-7d4b9c8f6-x2k9q", "{mode}");
        let (status, challenge, _) = get(&url, refused.as_deref()).await;
        assert_eq!(
            (status, challenge.as_deref()),
            (403, Some(FORBIDDEN)),
            "{mode}"
        );
        let (status, challenge, _) = get(&url, Some(&revoked)).await;
        assert_eq!(status, 401, "{mode}");
        assert!(
            challenge.unwrap().contains("refused by the cluster"),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn bad_configurations_fail_at_start() {
    let mut rows = vec![
        (vec![("TOKEN_REVIEW", "maybe")], "use off, only or binding"),
        (
            vec![
                ("TOKEN_REVIEW", "binding"),
                ("ISSUER", "https://issuer.example"),
            ],
            "needs an API server to ask",
        ),
        (
            vec![
                ("TOKEN_REVIEW", "binding"),
                ("BINDING_INTERVAL_SECS", "soon"),
            ],
            "not a number of seconds",
        ),
        (vec![("IN_CLUSTER", "1")], "IN_CLUSTER=1 needs ISSUER"),
        (
            vec![("GKE_PROJECT", "p"), ("GKE_CLUSTER", "c")],
            "GKE_PROJECT, GKE_LOCATION and GKE_CLUSTER together",
        ),
        (
            vec![
                ("ISSUER", "https://issuer.example"),
                ("GKE_PROJECT", "p"),
                ("GKE_LOCATION", "l"),
                ("GKE_CLUSTER", "c"),
            ],
            "not both",
        ),
        (
            vec![("ISSUER", "http://issuer.example")],
            "https is required off loopback",
        ),
    ];
    // Outside a pod, the service-account token is missing and IN_CLUSTER=1 cannot work.
    // Where the kubelet mounts the pod's token (what `InCluster::new` reads).
    let in_a_pod =
        std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists();
    if !in_a_pod {
        rows.push((
            vec![
                ("IN_CLUSTER", "1"),
                ("ISSUER", "https://kubernetes.default.svc.cluster.local"),
            ],
            "cannot read the service-account token",
        ));
    }
    for (env, expected) in rows {
        let child = command(&env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{env:?}: still running after 30 s"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{env:?}: started listening");
    }
}
