// Run: `cargo run -p resource-server` (offline: embedded issuers for both client identities, prints curl
// commands), or `ID_ISSUER=https://… JWT_AUDIENCE=my-service cargo run -p resource-server` against a real issuer.
//! The resource server of Google's "Kubernetes Workload Identity for client-server authorization"
//! tutorial, with oidc-bearer in place of go-oidc: `GET /` is open, `GET /private` needs a bearer token
//! from `ID_ISSUER` for `JWT_AUDIENCE`.
//!
//! Environment: `ID_ISSUER` (issuer URL; unset = the embedded offline mode below), `JWT_AUDIENCE`
//! (default `resource-server`), `PORT` (default 8080; 0 picks a free port), `HOST` (default 127.0.0.1;
//! containers set 0.0.0.0), `JWT_TYP` (with `ID_ISSUER`: require this header `typ`, e.g. `at+jwt`,
//! RFC 9068 §4; unset: any).
//!
//! `DPOP` (`required`, `allowed` or `off`, the default): DPoP-bound tokens (RFC 9449) on `/private`,
//! with proofs naming `DPOP_BASE_URL` (default: the address listened on; behind a proxy, the URL
//! clients use). `/private` then also answers the proof key's thumbprint as `dpop_jkt`.
//!
//! `GET /metrics` serves the library's metrics as Prometheus text (docs/metrics.md).
//!
//! Log lines on stderr, plain text (coloured only on a terminal) or JSON with `LOG_FORMAT=json`.
//! Log levels (`RUST_LOG`, default `info`): a refused token is INFO (`bearer token rejected`, with its
//! code, at most one line per 10 s with a `suppressed` count), a request without a token DEBUG, a 503
//! WARN (rate-limited likewise), a key fetch that fails for a configuration reason ERROR with the fix,
//! an outage WARN; each verification has a DEBUG span `oidc_bearer.verify`.
//!
//! Offline mode (no `ID_ISSUER`), for both identities of `examples/workload-client`:
//! - `cluster`: a Kubernetes test issuer's token is written to `TOKEN_FILE` (default
//!   `$TMPDIR/oidc-bearer-demo/token`) and rewritten every `ROTATE_SECS` (default 30), as the kubelet
//!   does;
//! - `google`: a stand-in for `https://accounts.google.com` and the GKE metadata server, which listens
//!   on `METADATA_PORT` (default 8081; 0 picks a free port) and mints Google-shaped ID tokens;
//! - both issuers are trusted through one `IssuerRegistry`; minted tokens live `TOKEN_SECS` (default
//!   3600).
//!
//! With `ID_ISSUER` it trusts that one issuer, as the tutorial does. To accept Google ID tokens as well
//! (which the tutorial leaves to Cloud Run), serve `app` with a registry of both instead:
//! `IssuerRegistry::builder().with_verifier(verifier).with_issuer(issuers::google::id_token_verifier(audience)).build()?`
//! (`oidc_bearer::issuers`). `/private` then answers with the Google account's `sub` and, in
//! `claims`, its `email`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use oidc_bearer::{Dpop, DpopMode, Verifier};
use resource_server::app::{app_with_dpop, install_metrics, with_metrics};
use resource_server::embedded::{Embedded, Settings};
use tokio::net::TcpListener;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A whole number of seconds from the environment, at least 1.
fn env_secs(name: &str, default: u64) -> Result<Duration, String> {
    match env(name) {
        None => Ok(Duration::from_secs(default)),
        Some(text) => match text.parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(format!(
                "{name}={text:?} is not a whole number of seconds above 0"
            )),
        },
    }
}

/// The DPoP settings of `DPOP` and `DPOP_BASE_URL` for a server listening on `addr`; `None` when off.
fn dpop(addr: SocketAddr) -> Result<Option<Dpop>, Box<dyn std::error::Error>> {
    let mode = match env("DPOP").as_deref() {
        None | Some("off") => return Ok(None),
        Some("required") => DpopMode::Required,
        Some("allowed") => DpopMode::Allowed,
        Some(other) => return Err(format!("DPOP={other:?} is not required, allowed or off").into()),
    };
    let base = env("DPOP_BASE_URL").unwrap_or_else(|| format!("http://{addr}"));
    println!("DPoP {mode:?}: proofs must name {base}");
    Ok(Some(Dpop::new(mode, &base)?))
}

/// Log lines on stderr, filtered by `RUST_LOG` (default `info`): plain text, coloured only when
/// stderr is a terminal (`kubectl logs` would show the escape codes), or one JSON object per line
/// with `LOG_FORMAT=json`, for log pipelines. (The same function in each example.)
fn init_logging() {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    if format == "json" {
        return logs.json().init();
    }
    logs.with_ansi(std::io::stderr().is_terminal()).init();
    if !matches!(format.as_str(), "" | "text") {
        tracing::warn!("LOG_FORMAT={format:?} is neither `text` nor `json`: logging text");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();

    let audience = env("JWT_AUDIENCE").unwrap_or_else(|| "resource-server".to_owned());
    let host = env("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port: u16 = env("PORT").map_or(Ok(8080), |p| p.parse())?;

    let metrics = install_metrics()?;
    let (listener, router) = match env("ID_ISSUER") {
        // The tutorial's setup: one issuer.
        Some(issuer_url) => {
            // Construction never contacts the issuer: the server starts even when it is down.
            let mut builder = Verifier::builder(issuer_url.clone(), audience.clone());
            if let Some(typ) = env("JWT_TYP") {
                // RFC 9068 §4: an access token says `typ: at+jwt`; requiring it keeps the provider's
                // ID tokens, which may carry the same audience, out.
                builder = builder.with_required_typ(typ);
            }
            let verifier = builder.build()?;
            // Keys load in the background from now on; requests meanwhile get 503.
            verifier.warm_up();
            let listener = TcpListener::bind((host.as_str(), port)).await?;
            let addr = listener.local_addr()?;
            println!("listening on http://{addr} (issuer {issuer_url}, audience {audience})");
            (listener, app_with_dpop(verifier, dpop(addr)?))
        }
        // Offline: both identities' issuers on loopback, trusted through a registry.
        None => {
            let settings = Settings {
                audience: audience.clone(),
                token_file: env("TOKEN_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| std::env::temp_dir().join("oidc-bearer-demo").join("token")),
                rotate_every: env_secs("ROTATE_SECS", 30)?,
                token_lifetime: env_secs("TOKEN_SECS", 3600)?,
            };
            let metadata_port: u16 = env("METADATA_PORT").map_or(Ok(8081), |p| p.parse())?;
            let embedded = Embedded::start(settings).await?;
            embedded.registry.warm_up();
            let listener = TcpListener::bind((host.as_str(), port)).await?;
            let addr = listener.local_addr()?;
            println!(
                "listening on http://{addr} (issuers {} and {}, audience {audience})",
                embedded.kubernetes.issuer(),
                oidc_bearer::issuers::google::GOOGLE_ISSUER,
            );
            let metadata = TcpListener::bind(("127.0.0.1", metadata_port)).await?;
            let metadata_addr = metadata.local_addr()?;
            let router = embedded.google.metadata_router();
            tokio::spawn(async move { axum::serve(metadata, router).await });
            print_offline_help(&embedded, addr, metadata_addr)?;
            embedded.spawn_rotation();
            (
                listener,
                app_with_dpop(embedded.registry.clone(), dpop(addr)?),
            )
        }
    };

    axum::serve(listener, with_metrics(router, metrics))
        .with_graceful_shutdown(shutdown())
        .await?;
    println!("shut down");
    Ok(())
}

/// Writes the first token file and prints how to call the server with each identity.
fn print_offline_help(
    embedded: &Embedded,
    addr: SocketAddr,
    metadata: SocketAddr,
) -> std::io::Result<()> {
    let settings = embedded.settings();
    let audience = &settings.audience;
    let token = embedded.write_token_file()?;
    let account = embedded.google.account();
    println!("metadata server stand-in on http://{metadata} (GCE_METADATA_HOST={metadata})");
    println!();
    println!(
        "cluster identity: a Kubernetes token for audience {audience:?} is in {}, rewritten every {:?}",
        settings.token_file.display(),
        settings.rotate_every
    );
    println!(
        "google identity: the metadata server mints ID tokens of https://accounts.google.com for {}",
        account.email
    );
    println!("Try:");
    println!("  curl -s http://{addr}/");
    println!("  curl -s http://{addr}/private");
    println!("  curl -s -H \"Authorization: Bearer {token}\" http://{addr}/private");
    println!(
        "  curl -s -H \"Authorization: Bearer $(curl -s -H 'Metadata-Flavor: Google' \
         'http://{metadata}/computeMetadata/v1/instance/service-accounts/default/identity?audience={audience}&format=full')\" \
         http://{addr}/private"
    );
    println!("or run the client with either identity:");
    println!("  cargo run -p workload-client");
    println!("  IDENTITY=google cargo run -p workload-client");
    println!();
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
