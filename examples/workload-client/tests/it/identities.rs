//! The client binary with each identity against the offline resource server (its issuers, metadata
//! server and app, run in this process): `/private` answers 200 with the identity's subject, a rotated
//! token is picked up in each mode, and a metadata server that is down at first is waited for.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use resource_server::app::app;
use resource_server::embedded::{Embedded, Settings};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long a test waits for the line it expects before it fails (a bound, not a pause).
const PATIENCE: Duration = Duration::from_secs(60);

/// The offline server: both issuers, the app on 127.0.0.1, tokens that live 4 s and a token file
/// rewritten every second.
struct Offline {
    embedded: Embedded,
    server: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Offline {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Embedded::start(Settings {
            audience: "resource-server".to_owned(),
            token_file: dir.path().join("token"),
            rotate_every: Duration::from_secs(1),
            token_lifetime: Duration::from_secs(4),
        })
        .await
        .unwrap();
        embedded.write_token_file().unwrap();
        embedded.spawn_rotation();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let router = app(embedded.registry.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            embedded,
            server,
            _dir: dir,
        }
    }

    fn serve_metadata(&self, listener: TcpListener) {
        let router = self.embedded.google.metadata_router();
        tokio::spawn(async move { axum::serve(listener, router).await });
    }

    async fn start_metadata(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        self.serve_metadata(listener);
        addr
    }
}

/// A line the client printed, on stdout or stderr.
#[derive(Debug)]
enum Line {
    Out(String),
    Err(String),
}

/// The client binary, running until dropped, its output read line by line as it comes.
struct Client {
    _child: Child,
    lines: mpsc::UnboundedReceiver<Line>,
}

impl Client {
    fn spawn(server: SocketAddr, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_workload-client"));
        command
            .env_remove("IDENTITY")
            .env_remove("GCE_METADATA_HOST")
            .env_remove("TOKEN_FILE")
            .env("SERVER_URL", format!("http://{server}"))
            .env("INTERVAL_SECS", "0.1")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let (sender, lines) = mpsc::unbounded_channel();
        forward(child.stdout.take().unwrap(), sender.clone(), Line::Out);
        forward(child.stderr.take().unwrap(), sender, Line::Err);
        Self {
            _child: child,
            lines,
        }
    }

    /// Reads lines until `wanted` accepts one, and returns it; every line read is checked by `each`.
    async fn until(&mut self, mut wanted: impl FnMut(&Line) -> bool) -> Line {
        let read = async {
            loop {
                let line = self.lines.recv().await.expect("the client exited");
                if wanted(&line) {
                    return line;
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the client did not print the expected line in time")
    }

    /// The next `/private` answer.
    async fn private(&mut self) -> String {
        match self
            .until(|line| matches!(line, Line::Out(text) if text.contains("GET /private")))
            .await
        {
            Line::Out(text) => text,
            Line::Err(_) => unreachable!(),
        }
    }
}

fn forward<R: AsyncRead + Unpin + Send + 'static>(
    stream: R,
    sender: mpsc::UnboundedSender<Line>,
    wrap: fn(String) -> Line,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(wrap(line)).is_err() {
                break;
            }
        }
    });
}

/// The JSON body of a 200 answer printed as `[n] GET /private as <identity> -> 200 OK {...}`.
fn ok_body(line: &str, identity: &str) -> Value {
    let prefix = format!(" GET /private as {identity} -> 200 OK ");
    let (_, body) = line
        .split_once(&prefix)
        .unwrap_or_else(|| panic!("not a 200 answer as {identity}: {line}"));
    serde_json::from_str(body).unwrap()
}

/// Reads `/private` answers until two tokens (told apart by `key`) have been accepted; every answer
/// must be a 200 for the right subject.
async fn until_rotated(client: &mut Client, identity: &str, check: impl Fn(&Value), key: &str) {
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let body = ok_body(&client.private().await, identity);
        check(&body);
        let value = body["claims"][key].clone();
        assert!(!value.is_null(), "no {key} in {body}");
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
}

#[tokio::test]
async fn cluster_identity_sends_the_token_file_and_its_rotations() {
    let offline = Offline::start().await;
    let token_file = offline.embedded.settings().token_file.clone();
    let mut client = Client::spawn(
        offline.server,
        &[("TOKEN_FILE", token_file.to_str().unwrap())],
    );
    let check = |body: &Value| {
        assert_eq!(body["sub"], "system:serviceaccount:default:workload-client");
        assert_eq!(body["claims"]["iss"], offline.embedded.kubernetes.issuer());
    };
    // Each Kubernetes token has its own `jti`.
    until_rotated(&mut client, "cluster", check, "jti").await;
}

#[tokio::test]
async fn google_identity_sends_metadata_server_id_tokens_and_their_renewals() {
    let offline = Offline::start().await;
    let metadata = offline.start_metadata().await;
    let mut client = Client::spawn(
        offline.server,
        &[
            ("IDENTITY", "google"),
            ("GCE_METADATA_HOST", &metadata.to_string()),
        ],
    );
    let account = offline.embedded.google.account().clone();
    let check = |body: &Value| {
        assert_eq!(body["sub"], account.unique_id);
        assert_eq!(body["claims"]["email"], account.email);
        assert_eq!(body["claims"]["email_verified"], true);
        assert_eq!(body["claims"]["azp"], account.unique_id);
        assert_eq!(body["claims"]["iss"], "https://accounts.google.com");
        assert_eq!(body["claims"]["aud"], "resource-server");
        // Asked with format=full.
        assert_eq!(
            body["claims"]["google"]["compute_engine"]["project_id"],
            "demo-project"
        );
    };
    // Tokens live 4 s and are renewed a fifth of that before they expire, so `iat` moves on.
    until_rotated(&mut client, "google", check, "iat").await;
}

#[tokio::test]
async fn google_identity_waits_for_a_metadata_server_that_is_down_at_first() {
    let offline = Offline::start().await;
    // A port with nothing listening on it yet: connection refused.
    let metadata = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut client = Client::spawn(
        offline.server,
        &[
            ("IDENTITY", "google"),
            ("GCE_METADATA_HOST", &metadata.to_string()),
        ],
    );

    // Each round says why it sent nothing; the source logs each failed fetch, and keeps fetching.
    let failure = client.private().await;
    assert!(
        failure.contains(&format!(
            "GET /private as google failed: metadata server request to http://{metadata}/computeMetadata/v1/"
        )) && failure.contains("Connection refused"),
        "{failure}"
    );
    for _ in 0..2 {
        let logged = client
            .until(|line| matches!(line, Line::Err(text) if text.contains("could not load a token yet")))
            .await;
        let Line::Err(logged) = logged else {
            unreachable!()
        };
        assert!(logged.contains("WARN"), "{logged}");
        assert!(logged.contains("Connection refused"), "{logged}");
    }

    offline.serve_metadata(TcpListener::bind(metadata).await.unwrap());
    let answer = client
        .until(|line| matches!(line, Line::Out(text) if text.contains("GET /private as google -> 200 OK")))
        .await;
    let Line::Out(answer) = answer else {
        unreachable!()
    };
    assert_eq!(
        ok_body(&answer, "google")["claims"]["email"],
        offline.embedded.google.account().email
    );
}
