//! Test-harness helpers for code that runs on Tokio: a runtime that has shut down, a runtime whose
//! one blocking thread a test holds, and a test of this binary run in a process of its own.

use std::future::Future;
use std::time::Duration;

/// Runs `f` on a thread of its own, entered into a Tokio runtime that has shut down (where `spawn`
/// drops the task at once, and with it whatever guards the task owns), and returns what it returns.
///
/// Panics after 10 s, so that a deadlock (a guard dropped inside `spawn` taking a lock the caller
/// still holds) fails the test instead of hanging it.
pub fn run_on_shut_down_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let handle = runtime.handle().clone();
    runtime.shutdown_background();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _entered = handle.enter();
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("deadlocked (or the thread panicked) on a runtime that shut down")
}

/// A multi-thread runtime (two workers) with one blocking thread, for
/// [`with_the_blocking_thread_held`].
pub fn one_blocking_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("a multi-thread runtime builds")
}

/// Runs `work` while the test holds the one blocking thread of its runtime
/// ([`one_blocking_thread_runtime`]): as every blocking thread busy, or a stalled mount, holds them.
pub async fn with_the_blocking_thread_held<F: Future>(work: F) -> F::Output {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let blocker = tokio::task::spawn_blocking(move || {
        let _ = started.send(());
        let _ = held.recv();
    });
    running.await.expect("the blocking task started");
    let output = work.await;
    release.send(()).expect("the blocking task waits");
    blocker.await.expect("the blocking task ended");
    output
}

/// Runs the ignored test `name` of the current test binary in a process of its own (for what is
/// the process's: its trusted roots, its descriptor limit), its command set up by `configure`, and
/// panics unless it ran and passed.
pub fn run_child_test(name: &str, configure: impl FnOnce(&mut std::process::Command)) {
    let mut command =
        std::process::Command::new(std::env::current_exe().expect("the test binary's path"));
    command.args([name, "--exact", "--ignored", "--nocapture"]);
    configure(&mut command);
    let output = command.output().expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed or did not run:\n{stdout}\n{stderr}"
    );
}
