//! Tests' helper: code run inside a Tokio runtime that has shut down, where `spawn` drops the
//! task at once (and with it whatever guards the task owns).

use std::time::Duration;

/// Runs `f` on a thread of its own, entered into a runtime that has shut down, and returns what it
/// returns. Panics after 10 s, so that a deadlock (a guard dropped inside `spawn` taking a lock the
/// caller still holds) fails the test instead of hanging it.
pub(crate) fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
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
