//! Helpers shared by this crate's integration tests (each test binary uses a part of them).
#![allow(dead_code)]

use oidc_bearer::VerifyError;
use oidc_bearer::keys::Jwks;
use oidc_bearer_testing::{KeyAlg, TestIssuer};

/// `"ok"`, or the error's stable code: what a verification table compares.
pub(crate) fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    result.map_or_else(|e| e.code(), |_| "ok")
}

/// The keys `issuer` publishes now, parsed as a verifier would.
pub(crate) fn jwks_of(issuer: &TestIssuer) -> Jwks {
    Jwks::from_json(&serde_json::to_vec(&issuer.jwks_json()).unwrap()).unwrap()
}

/// `(discovery, JWKS)` requests `issuer` has seen.
pub(crate) fn fetches(issuer: &TestIssuer) -> (usize, usize) {
    (issuer.discovery_fetches(), issuer.jwks_fetches())
}

/// Every algorithm of [`KeyAlg::ALL`] this build verifies (ML-DSA needs the `ml-dsa` feature).
pub(crate) fn verifiable_algs() -> impl Iterator<Item = KeyAlg> {
    KeyAlg::ALL
        .into_iter()
        .filter(|alg| !alg.is_ml_dsa() || cfg!(feature = "ml-dsa"))
}

/// Runs the ignored test `name` of this test binary in a process of its own (for what is the
/// process's: its trusted roots, its descriptor limit), its command set up by `configure`, and
/// fails unless it ran and passed.
pub(crate) fn run_child_test(name: &str, configure: impl FnOnce(&mut std::process::Command)) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([name, "--exact", "--ignored", "--nocapture"]);
    configure(&mut command);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed or did not run:\n{stdout}\n{stderr}"
    );
}

/// A runtime with one blocking thread, for [`with_the_blocking_thread_held`].
pub(crate) fn one_blocking_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `work` while the test holds the one blocking thread of its runtime
/// ([`one_blocking_thread_runtime`]): as every blocking thread busy, or a stalled mount, holds them.
pub(crate) async fn with_the_blocking_thread_held<F: std::future::Future>(work: F) -> F::Output {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let blocker = tokio::task::spawn_blocking(move || {
        let _ = started.send(());
        let _ = held.recv();
    });
    running.await.unwrap();
    let output = work.await;
    release.send(()).unwrap();
    blocker.await.unwrap();
    output
}
