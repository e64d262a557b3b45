// Run: `cargo run -p kubernetes` (offline: an embedded test issuer stands in for a GKE cluster and curl
// commands are printed), or `ISSUER=https://… cargo run -p kubernetes` against a real cluster's issuer.
//! A service that accepts bound service-account tokens of one Kubernetes cluster, and only from one
//! namespace: `GET /whoami` answers 200 with the caller's namespace, service account and pod, 403
//! `insufficient_scope` for a service account of another namespace, 401 without a valid token;
//! `GET /healthz` is open.
//!
//! Environment:
//! - `ISSUER`: the cluster's service-account issuer (`kubectl get --raw
//!   /.well-known/openid-configuration`, field `issuer`), e.g. a GKE cluster's
//!   `https://container.googleapis.com/v1/projects/P/locations/L/clusters/C`; plain `http` only on
//!   loopback. Or `GKE_PROJECT`, `GKE_LOCATION` and `GKE_CLUSTER`, which name a GKE cluster's issuer.
//!   Unset: an embedded test issuer on 127.0.0.1 stands in for a GKE cluster.
//! - `IN_CLUSTER=1`: fetch discovery and keys from the API server of the cluster this pod runs in,
//!   with the pod's own token and CA (`ISSUER` still required: it is what tokens carry in `iss`).
//! - `TOKEN_REVIEW`: `off` (default: local verification only), `only` (ask the API server about
//!   every token with a TokenReview, cached 30 s; `ISSUER` not needed), or `binding` (verify
//!   locally and confirm with a TokenReview at most once per `BINDING_INTERVAL_SECS`, default 30,
//!   that the token's pod still exists). Needs `IN_CLUSTER=1` or the embedded issuer (which also
//!   answers TokenReviews); the service account needs the `system:auth-delegator` cluster role.
//! - `AUDIENCE` (default `kubernetes-example`): the audience callers request in their projected
//!   token (`serviceAccountToken.audience`).
//! - `ALLOWED_NAMESPACE` (default `prod`).
//! - `PORT` (default 8080; 0 picks a free port), `HOST` (default 127.0.0.1; in a pod, 0.0.0.0).
//! - `RUST_LOG` (default `info`), `LOG_FORMAT=json` for JSON log lines (plain text otherwise,
//!   coloured only on a terminal).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::issuers::gke::gke_issuer;
use oidc_bearer::policy::{self, AuthorizeLayer};
use oidc_bearer::{BearerAuthLayer, Claims, ConfigError, Verifier, VerifyToken};
use oidc_bearer_kubernetes::InCluster;
use oidc_bearer_kubernetes::{ApiServer, ObjectBindingCheck, TokenReview, TokenReviewClaims};
use oidc_bearer_testing::TestIssuer;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The embedded issuer poses as this GKE cluster, so tokens look like a real cluster's.
const DEMO_CLUSTER: (&str, &str, &str) = ("demo-project", "europe-west1", "demo");

/// The caller, read from the typed claims. Only service accounts of the allowed namespace get here;
/// the policy read the account through `service_account()`, which checks `sub` against the
/// `kubernetes.io` claim.
async fn whoami(Claims(claims): Claims<KubernetesClaims>) -> Json<Value> {
    let account = claims.service_account();
    let bound = claims.kubernetes.as_ref();
    // A token used after `warnafter` is one its client should have replaced: the kubelet rotates
    // projected tokens long before then, so the client reads the file once and keeps the token.
    if let Some(warn_after) = bound.and_then(|k| k.warnafter) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if i64::try_from(now).is_ok_and(|now| now > warn_after.as_secs()) {
            tracing::warn!(
                sub = ?claims.registered.sub,
                "stale token: the client does not reload its projected token"
            );
        }
    }
    Json(json!({
        "issuer": claims.registered.iss,
        "namespace": account.map(|a| a.namespace),
        "service_account": account.map(|a| a.name),
        "service_account_uid": account.map(|a| a.uid),
        "pod": bound.and_then(|k| k.pod.as_ref()).map(|p| &p.name),
        "node": bound.and_then(|k| k.node.as_ref()).map(|n| &n.name),
        "expires_at": claims.registered.exp.map(|e| e.as_secs()),
    }))
}

/// The caller as the API server's TokenReview names it (`TOKEN_REVIEW=only`).
async fn whoami_reviewed(Claims(claims): Claims<TokenReviewClaims>) -> Json<Value> {
    let account = claims.service_account();
    Json(json!({
        "username": claims.username,
        "namespace": account.map(|a| a.namespace),
        "service_account": account.map(|a| a.name),
        "service_account_uid": account.map(|a| a.uid),
        "pod": claims.pod_name(),
        "node": claims.node_name(),
    }))
}

/// [`app`] for the TokenReview verifier: the same namespace policy reads the service account
/// from the reviewed user name.
fn review_app(review: TokenReview, namespace: &str) -> Router {
    Router::new()
        .route("/whoami", get(whoami_reviewed))
        .route_layer(
            AuthorizeLayer::new(policy::namespaces([namespace])).claims::<TokenReviewClaims>(),
        )
        .route_layer(BearerAuthLayer::new(review).claims::<TokenReviewClaims>())
        .route("/healthz", get(|| async { "ok" }))
}

/// How tokens are checked (`TOKEN_REVIEW`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Local,
    Review,
    Binding(Duration),
}

fn mode() -> Result<Mode, String> {
    let interval = match env("BINDING_INTERVAL_SECS") {
        Some(secs) => secs
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("BINDING_INTERVAL_SECS={secs:?} is not a number of seconds"))?,
        None => Duration::from_secs(30),
    };
    match env("TOKEN_REVIEW").as_deref() {
        None | Some("off") => Ok(Mode::Local),
        Some("only") => Ok(Mode::Review),
        Some("binding") => Ok(Mode::Binding(interval)),
        Some(other) => Err(format!("TOKEN_REVIEW={other:?}: use off, only or binding")),
    }
}

/// The object-binding check in `binding` mode: asking `api`, or the pod's own cluster.
fn binding(mode: Mode, api: Option<ApiServer>) -> Result<Option<ObjectBindingCheck>, ConfigError> {
    match (mode, api) {
        (Mode::Binding(interval), Some(api)) => {
            Ok(Some(ObjectBindingCheck::new(interval).with_api_server(api)))
        }
        (Mode::Binding(interval), None) => {
            let api = InCluster::new().api_server()?;
            Ok(Some(ObjectBindingCheck::new(interval).with_api_server(api)))
        }
        _ => Ok(None),
    }
}

/// The app: `/whoami` needs a token of the cluster (401) from a service account of `namespace`
/// (403); `/healthz` is open. With `route_layer`, the layer added last runs first: the bearer layer
/// verifies and stores the claims, then the policy reads them.
fn app(verifier: impl VerifyToken, namespace: &str) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route_layer(
            AuthorizeLayer::new(policy::namespaces([namespace])).claims::<KubernetesClaims>(),
        )
        .route_layer(BearerAuthLayer::new(verifier).claims::<KubernetesClaims>())
        .route("/healthz", get(|| async { "ok" }))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The configured issuer: `ISSUER`, or the GKE cluster named by `GKE_*`, or none.
fn configured_issuer() -> Result<Option<String>, String> {
    let gke = [env("GKE_PROJECT"), env("GKE_LOCATION"), env("GKE_CLUSTER")];
    let gke = match gke {
        [Some(project), Some(location), Some(cluster)] => {
            Some(gke_issuer(&project, &location, &cluster))
        }
        [None, None, None] => None,
        _ => return Err("set GKE_PROJECT, GKE_LOCATION and GKE_CLUSTER together".into()),
    };
    match (env("ISSUER"), gke) {
        (Some(_), Some(_)) => {
            Err("set ISSUER or GKE_PROJECT/GKE_LOCATION/GKE_CLUSTER, not both".into())
        }
        (issuer, gke) => Ok(issuer.or(gke)),
    }
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
async fn main() -> ExitCode {
    // Errors are printed with Display (`Result` from `main` would print their Debug form).
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();

    let audience = env("AUDIENCE").unwrap_or_else(|| "kubernetes-example".to_owned());
    let namespace = env("ALLOWED_NAMESPACE").unwrap_or_else(|| "prod".to_owned());
    let host = env("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port: u16 = env("PORT").map_or(Ok(8080), |p| p.parse())?;
    let in_cluster = env("IN_CLUSTER").is_some_and(|v| v == "1" || v == "true");
    let mode = mode()?;

    // TokenReview only: the API server checks every token (cached 30 s); no issuer needed.
    if mode == Mode::Review {
        let (review, embedded) = if in_cluster {
            (
                TokenReview::builder(InCluster::new().api_server()?, audience.clone()).build()?,
                None,
            )
        } else if configured_issuer()?.is_none() {
            let issuer = demo_issuer().await;
            let review =
                TokenReview::builder(embedded_api_server(&issuer)?, audience.clone()).build()?;
            (review, Some(issuer))
        } else {
            return Err(NEEDS_API_SERVER.into());
        };
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        let addr: SocketAddr = listener.local_addr()?;
        println!(
            "listening on http://{addr} (TokenReview, audience {audience}, namespace {namespace})"
        );
        if let Some(issuer) = &embedded {
            print_demo(issuer, addr, &audience, &namespace, mode);
        }
        axum::serve(listener, review_app(review, &namespace))
            .with_graceful_shutdown(shutdown())
            .await?;
        println!("shut down");
        return Ok(());
    }

    // Construction never contacts the issuer; a bad issuer URL, or IN_CLUSTER=1 outside a pod, fails
    // here rather than at the first request.
    let (verifier, embedded, check) = match configured_issuer()? {
        Some(issuer) if in_cluster => {
            let builder = InCluster::new().verifier_builder(issuer, audience.clone())?;
            (builder.build()?, None, binding(mode, None)?)
        }
        Some(_) if matches!(mode, Mode::Binding(_)) => return Err(NEEDS_API_SERVER.into()),
        Some(issuer) => (Verifier::new(issuer, audience.clone())?, None, None),
        None if in_cluster => {
            return Err("IN_CLUSTER=1 needs ISSUER (or GKE_PROJECT/GKE_LOCATION/GKE_CLUSTER): \
                        the cluster's issuer, from `kubectl get --raw /.well-known/openid-configuration`"
                .into());
        }
        None => {
            // No cluster: a local issuer whose tokens carry a GKE cluster's `iss`. Discovery is
            // fetched from it on 127.0.0.1, and its document must still name that issuer.
            let issuer = demo_issuer().await;
            let builder = Verifier::builder(issuer.issuer(), audience.clone())
                .with_discovery_url(issuer.discovery_url());
            let api = embedded_api_server(&issuer)?;
            (builder.build()?, Some(issuer), binding(mode, Some(api))?)
        }
    };

    // Keys load in the background from now on, retried until the issuer answers (each attempt
    // logged once by the library); requests meanwhile get 503, and the server starts even when the
    // issuer is down.
    verifier.warm_up();

    let issuer_url = verifier.issuer().to_owned();
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!(
        "listening on http://{addr} (issuer {issuer_url}, audience {audience}, namespace {namespace})"
    );

    if let Some(issuer) = &embedded {
        print_demo(issuer, addr, &audience, &namespace, mode);
    }

    let router = match check {
        Some(check) => app(check.wrap(verifier)?, &namespace),
        None => app(verifier, &namespace),
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await?;
    println!("shut down");
    Ok(())
}

const NEEDS_API_SERVER: &str = "TOKEN_REVIEW=only or binding needs an API server to ask: set \
                                IN_CLUSTER=1 in a pod, or leave ISSUER unset for the embedded demo";

/// The embedded issuer, posing as a GKE cluster so that tokens look like a real cluster's.
async fn demo_issuer() -> TestIssuer {
    let (project, location, cluster) = DEMO_CLUSTER;
    TestIssuer::builder()
        .issuer(&gke_issuer(project, location, cluster))
        .start()
        .await
}

/// The embedded issuer's TokenReview endpoint, with a credential it accepts (in a pod:
/// `InCluster::api_server`, which sends the pod's own token).
fn embedded_api_server(issuer: &TestIssuer) -> Result<ApiServer, oidc_bearer::ConfigError> {
    let reviews = issuer.token_reviews();
    let credential = reviews.caller_token();
    ApiServer::builder(reviews.api_server_url())
        .with_bearer_token(move || Some(credential.clone()))
        .build()
}

/// Mints a token for a service account of the allowed namespace, one of another namespace, and one
/// whose pod was deleted, and prints a curl command for each.
fn print_demo(issuer: &TestIssuer, addr: SocketAddr, audience: &str, namespace: &str, mode: Mode) {
    let other = if namespace == "default" {
        "kube-system"
    } else {
        "default"
    };
    let token = |ns: &str| {
        issuer
            .token()
            .kubernetes(ns, "billing")
            .aud(audience)
            .sign()
    };
    let url = format!("http://{addr}/whoami");
    println!();
    println!(
        "Embedded test issuer standing in for the GKE cluster {} (keys on {}).",
        issuer.issuer(),
        issuer.base_url()
    );
    println!("Tokens for audience {audience:?}, valid for an hour. Try:");
    println!("  curl -s {url}    # 401: no token");
    println!(
        "  curl -s -H \"Authorization: Bearer {}\" {url}    # 200: {namespace}/billing",
        token(namespace)
    );
    println!(
        "  curl -si -H \"Authorization: Bearer {}\" {url}    # 403: {other}/billing, namespace not allowed",
        token(other)
    );
    let revoked = token(namespace);
    issuer.token_reviews().delete_bound_object(&revoked);
    let outcome = match mode {
        Mode::Local => {
            "# 200: its pod was deleted, but a local check cannot know before exp (try TOKEN_REVIEW=binding)"
        }
        Mode::Review => "# 401: its pod was deleted, and TokenReview says so",
        Mode::Binding(_) => "# 401: its pod was deleted; the object-binding check asks TokenReview",
    };
    println!("  curl -si -H \"Authorization: Bearer {revoked}\" {url}    {outcome}");
    println!();
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
