//! A broken reload of the token file is traced as a warning that names the file and the reason, and
//! never the token.
//!
//! Alone in its own test binary with a global subscriber: tracing caches callsite interest globally,
//! so per-thread subscribers miss events when other tests hit the same callsite concurrently.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use oidc_bearer_client::{DEFAULT_POLL_INTERVAL, FileTokenSource, TokenSource, clock::ManualClock};

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
    let clock = ManualClock::at_unix(1_700_000_000);
    let source = FileTokenSource::new(&path).with_clock(clock.clone());
    assert_eq!(source.token().await.unwrap().secret(), "secret-token-value");

    std::fs::remove_file(&path).unwrap();
    clock.advance(DEFAULT_POLL_INTERVAL);
    assert_eq!(source.token().await.unwrap().secret(), "secret-token-value");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("keeping the last good token"), "{logs}");
    assert!(logs.contains(&path.display().to_string()), "{logs}");
    assert!(logs.contains("entity not found"), "{logs}");
    assert!(!logs.contains("secret-token-value"), "{logs}");
}
