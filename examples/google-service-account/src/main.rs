// Run: `cargo run -p google-service-account` (offline: signJwt and the account keys are served on
// 127.0.0.1), or with `IAM_URL=https://iamcredentials.googleapis.com IAM_ACCESS_TOKEN=… SA_EMAIL=…`.
//! A background service obtains a JWT signed for its Google service account through IAM `signJwt`, with
//! custom claims (`gituser`, `email`), and calls the receiving service with it; the receiver verifies
//! it against the account's own key set and answers with the verified claims. Both run in this
//! process. Once, a second account that the receiver does not trust (`intruder@…`) tries too, and is
//! refused without the receiver fetching any key for it.
//!
//! Environment:
//! - `SA_EMAIL` (default `deployer@demo-project.iam.gserviceaccount.com`): the caller's account, the
//!   one account the receiver trusts.
//! - `GITUSER` (default `octocat`): the custom claim the caller sends.
//! - `AUDIENCE` (default `deploy-receiver`): the receiver's audience.
//! - `IAM_URL`: unset, a local stand-in for `signJwt` runs on 127.0.0.1 and a test issuer serves the
//!   accounts' keys at `/service_accounts/v1/jwk/{email}`. Set to `https://iamcredentials.googleapis.com`
//!   to sign for real: the receiver then fetches keys from Google, and `IAM_ACCESS_TOKEN` must hold an
//!   OAuth access token allowed to sign as `SA_EMAIL` (`roles/iam.serviceAccountTokenCreator`, e.g.
//!   `$(gcloud auth print-access-token)`; it expires within the hour). The intruder runs offline only.
//! - `ITERATIONS`: stop after this many calls (unset: call every `INTERVAL_SECS`, default 10, until
//!   Ctrl-C or SIGTERM). The exit status is non-zero if any call did not end as expected.
//! - `PORT` (default 8080; 0 picks a free port), `HOST` (default 127.0.0.1): the receiver's address.
//! - `RUST_LOG` (default `info`), `LOG_FORMAT=json` for JSON log lines (plain text otherwise,
//!   coloured only on a terminal).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use google_service_account::caller::Caller;
use google_service_account::iam::IamClient;
use google_service_account::receiver::{self, JWKS_PATH};
use google_service_account::stand_in::{IamStandIn, jwks_path};
use oidc_bearer_testing::TestIssuer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// An account the receiver does not trust.
const INTRUDER: &str = "intruder@evil-project.iam.gserviceaccount.com";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
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

    let email =
        env("SA_EMAIL").unwrap_or_else(|| "deployer@demo-project.iam.gserviceaccount.com".into());
    let gituser = env("GITUSER").unwrap_or_else(|| "octocat".into());
    let audience = env("AUDIENCE").unwrap_or_else(|| "deploy-receiver".into());
    let host = env("HOST").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = env("PORT").map_or(Ok(8080), |p| p.parse())?;
    let iterations: Option<u64> = env("ITERATIONS").map(|n| n.parse()).transpose()?;
    let interval = Duration::from_secs(env("INTERVAL_SECS").map_or(Ok(10), |s| s.parse())?);

    // signJwt and the keys: Google's, or a stand-in for each on 127.0.0.1.
    let (iam, jwks_base, embedded) = match env("IAM_URL") {
        Some(url) => {
            let mut iam = IamClient::new(url);
            if let Some(token) = env("IAM_ACCESS_TOKEN") {
                iam = iam.with_access_token(token);
            }
            (iam, None, None)
        }
        None => {
            let issuer = TestIssuer::start().await;
            let mut stand_in = IamStandIn::new(issuer.clone());
            stand_in.add_account(&email);
            stand_in.add_account(INTRUDER);
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let iam_url = format!("http://{}", listener.local_addr()?);
            tokio::spawn(async move { axum::serve(listener, stand_in.router()).await });
            let jwks_base = format!("{}{JWKS_PATH}", issuer.base_url());
            let note = format!(
                "offline: signJwt stand-in on {iam_url}, account keys at {jwks_base}/{{email}}"
            );
            (
                IamClient::new(iam_url),
                Some(jwks_base),
                Some((issuer, note)),
            )
        }
    };

    // The receiver trusts one account. Nothing is fetched before the first token arrives.
    let registry = receiver::registry(&audience, &[&email], jwks_base.as_deref())?;
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("listening on http://{addr} (audience {audience}, trusted account {email})");
    if let Some((_, note)) = &embedded {
        println!("{note}");
    }

    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, receiver::app(registry))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown() => {},
                    _ = stopped => {},
                }
            })
            .await
    });

    let caller = Caller::new(iam, format!("http://{addr}/whoami"), audience, gituser);
    let failures = tokio::select! {
        failures = call_repeatedly(&caller, &email, embedded.as_ref().map(|(issuer, _)| issuer), iterations, interval) => {
            let _ = stop.send(());
            (&mut server).await??;
            failures
        }
        served = &mut server => {
            served??;
            0
        }
    };
    println!("shut down");
    if failures > 0 {
        return Err(format!("{failures} call(s) did not end as expected").into());
    }
    Ok(())
}

/// Calls the receiver as `email` `iterations` times (forever if `None`), and once as the intruder
/// when the stand-in can sign for it. Returns the number of calls that did not end as expected.
async fn call_repeatedly(
    caller: &Caller,
    email: &str,
    embedded: Option<&TestIssuer>,
    iterations: Option<u64>,
    interval: Duration,
) -> u64 {
    let mut failures = 0;
    let mut calls = 0;
    loop {
        calls += 1;
        match caller.call_as(email).await {
            Ok(answer) => {
                println!(
                    "caller: signJwt signed a JWT for {email} with key {}",
                    answer.key_id
                );
                println!("caller: {email} -> {} {}", answer.status, answer.body);
                failures += u64::from(answer.status != 200);
            }
            Err(error) => {
                println!("caller: {email} failed: {error}");
                failures += 1;
            }
        }
        if calls == 1 {
            failures += u64::from(!intrude(caller, embedded).await);
        }
        if Some(calls) == iterations {
            return failures;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The intruder signs a JWT for the receiver with a key of its own account; the receiver must refuse
/// it (401) without fetching that account's keys. Returns whether it did.
async fn intrude(caller: &Caller, embedded: Option<&TestIssuer>) -> bool {
    let Some(issuer) = embedded else {
        println!("caller: (the intruder only runs offline)");
        return true;
    };
    match caller.call_as(INTRUDER).await {
        Ok(answer) => {
            let fetches = issuer.requests_to(&jwks_path(INTRUDER));
            println!(
                "caller: signJwt signed a JWT for {INTRUDER} with key {}",
                answer.key_id
            );
            println!(
                "caller: {INTRUDER} -> {} {} (its keys were fetched {fetches} times)",
                answer.status,
                answer.challenge.as_deref().unwrap_or(&answer.body)
            );
            answer.status == 401 && fetches == 0
        }
        Err(error) => {
            println!("caller: {INTRUDER} failed: {error}");
            false
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
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
