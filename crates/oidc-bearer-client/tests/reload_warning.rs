//! A broken reload of the token file is traced as a warning that names the file and the reason, and
//! never the token.
//!
//! Alone in its own test binary with a global subscriber: tracing caches callsite interest globally,
//! so per-thread subscribers miss events when other tests hit the same callsite concurrently.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, UNIX_EPOCH},
};

use oidc_bearer_client::{DEFAULT_POLL_INTERVAL, FileTokenSource, TokenSource};

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn broken_reload_warns_with_the_path_but_without_the_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "secret-token-value\n").unwrap();
    let millis = Arc::new(AtomicU64::new(1_700_000_000_000));
    let now = {
        let millis = Arc::clone(&millis);
        move || UNIX_EPOCH + Duration::from_millis(millis.load(Ordering::SeqCst))
    };
    let source = FileTokenSource::new(&path).with_clock(now);
    assert_eq!(source.token().await.unwrap().secret(), "secret-token-value");

    std::fs::remove_file(&path).unwrap();
    millis.fetch_add(DEFAULT_POLL_INTERVAL.as_millis() as u64, Ordering::SeqCst);
    assert_eq!(source.token().await.unwrap().secret(), "secret-token-value");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("keeping the last good token"), "{logs}");
    assert!(logs.contains(&path.display().to_string()), "{logs}");
    assert!(logs.contains("entity not found"), "{logs}");
    assert!(!logs.contains("secret-token-value"), "{logs}");
}
