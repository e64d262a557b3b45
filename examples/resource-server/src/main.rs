// Run: `cargo run -p resource-server` (offline: starts an embedded test issuer and prints curl commands),
// or `ID_ISSUER=https://… JWT_AUDIENCE=my-service cargo run -p resource-server` against a real issuer.
//! The resource server of Google's "Kubernetes Workload Identity for client-server authorization"
//! tutorial, with oidc-bearer in place of go-oidc: `GET /` is open, `GET /private` needs a bearer token
//! from `ID_ISSUER` for `JWT_AUDIENCE`.
//!
//! Environment: `ID_ISSUER` (issuer URL; unset = embedded test issuer on loopback), `JWT_AUDIENCE`
//! (default `resource-server`), `PORT` (default 8080; 0 picks a free port), `HOST` (default 127.0.0.1;
//! containers set 0.0.0.0), `TOKEN_FILE` (embedded mode: where the minted token is written and rewritten
//! every 30 s; default `$TMPDIR/oidc-bearer-demo/token`), `JWT_TYP` (e.g. `at+jwt`: require this header
//! `typ`, RFC 9068 §4; unset: any).
//!
//! `GET /metrics` serves the library's metrics as Prometheus text (docs/metrics.md).
//!
//! Log levels (`RUST_LOG`, default `info`): a refused token is INFO (`bearer token rejected`, with
//! its code), a request without a token DEBUG, issuer keys unavailable WARN, a configuration the
//! library cannot use ERROR; each verification has a DEBUG span `oidc_bearer.verify`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use oidc_bearer::claims::WithPayload;
use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
use oidc_bearer_testing::TestIssuer;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

async fn exposed() -> Json<Value> {
    Json(json!({"msg": "hello-exposed"}))
}

/// The `/private` answer. `claims` is the verified payload written verbatim (`WithPayload`): exactly
/// what the issuer signed, and no serialization of the claims on each request.
#[derive(Serialize)]
struct PrivateReply<'a> {
    msg: &'static str,
    sub: &'a str,
    claims: &'a WithPayload,
}

async fn private(Claims(claims): Claims<WithPayload>) -> Response {
    Json(PrivateReply {
        msg: "hello-private",
        sub: claims.subject(),
        claims: &claims,
    })
    .into_response()
}

/// The app: `/` open, `/private` behind the bearer layer, `/metrics` for Prometheus. `route_layer`
/// guards only the routes added before it, and keeps unknown paths 404 rather than 401.
fn app(verifier: Verifier, metrics: PrometheusHandle) -> Router {
    // The Prometheus text exposition format, version 0.0.4.
    let scrape = move || {
        let text = metrics.render();
        async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
    };
    Router::new()
        .route("/private", get(private))
        .route_layer(BearerAuthLayer::new(verifier).claims::<WithPayload>())
        .route("/", get(exposed))
        .route("/metrics", get(scrape))
}

/// Installs the Prometheus recorder, with buckets for the verification-time histogram (a summary
/// otherwise), and keeps its histograms drained.
fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("oidc_bearer_verify_duration_seconds".into()),
            &[25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3, 100e-3, 1.0, 10.0],
        )?
        .install_recorder()?;
    oidc_bearer::metrics::register();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,oidc_bearer=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let metrics = install_metrics()?;
    let audience = env("JWT_AUDIENCE").unwrap_or_else(|| "resource-server".to_owned());
    let typ = env("JWT_TYP");
    let host = env("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port: u16 = env("PORT").map_or(Ok(8080), |p| p.parse())?;

    // With no issuer configured, run one on loopback so the example works offline.
    let (issuer_url, embedded) = match env("ID_ISSUER") {
        Some(url) => (url, None),
        None => {
            let issuer = TestIssuer::start().await;
            (issuer.issuer(), Some(issuer))
        }
    };

    // Construction never contacts the issuer: the server starts even when it is down.
    let mut builder = Verifier::builder(issuer_url.clone(), audience.clone());
    if let Some(typ) = &typ {
        // RFC 9068 §4: an access token says `typ: at+jwt`; requiring it keeps the provider's ID
        // tokens, which may carry the same audience, out.
        builder = builder.with_required_typ(typ);
    }
    let verifier = builder.build()?;
    // Warm the key cache in the background, retrying until the issuer answers, so the server starts
    // accepting tokens as soon as the issuer is reachable (requests meanwhile get 503).
    let warm = verifier.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            match warm.ready().await {
                Ok(()) => break tracing::info!("issuer keys loaded"),
                Err(error) => tracing::warn!(%error, "issuer keys not loaded yet; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    });

    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("listening on http://{addr} (issuer {issuer_url}, audience {audience})");

    if let Some(issuer) = &embedded {
        let token_file = env("TOKEN_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("oidc-bearer-demo").join("token"));
        let token = mint(issuer, &audience, typ.as_deref(), &token_file)?;
        println!();
        println!(
            "Embedded test issuer at {issuer_url}; a token for audience {audience:?} is in {}",
            token_file.display()
        );
        println!("Try:");
        println!("  curl -s http://{addr}/");
        println!("  curl -s http://{addr}/private");
        println!("  curl -s -H \"Authorization: Bearer {token}\" http://{addr}/private");
        println!();
        // Rotate the token file as the kubelet would, for examples/workload-client.
        let issuer = issuer.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(error) = mint(&issuer, &audience, typ.as_deref(), &token_file) {
                    tracing::warn!(%error, "could not rewrite the token file");
                }
            }
        });
    }

    axum::serve(listener, app(verifier, metrics))
        .with_graceful_shutdown(shutdown())
        .await?;
    println!("shut down");
    Ok(())
}

/// Mints a token (with header `typ` if given) and writes it atomically (write a temporary file,
/// rename over the old one).
fn mint(
    issuer: &TestIssuer,
    audience: &str,
    typ: Option<&str>,
    path: &std::path::Path,
) -> std::io::Result<String> {
    let mut token = issuer
        .token()
        .kubernetes("default", "workload-client")
        .aud(audience);
    if let Some(typ) = typ {
        token = token.header("typ", typ.into());
    }
    let token = token.sign();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &token)?;
    std::fs::rename(&tmp, path)?;
    Ok(token)
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
