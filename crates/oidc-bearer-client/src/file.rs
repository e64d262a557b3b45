//! [`FileTokenSource`]: the token file that a Kubernetes projected volume mounts and rotates.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use oidc_bearer_shared::clock::Clock;
use oidc_bearer_shared::file::{READ_TIMEOUT, Reads, Unreadable, bounded, read_regular};

use crate::{
    BearerToken, InvalidToken, MAX_TOKEN_LEN, TokenError, TokenSource,
    refresh::{Load, Refresher, Schedule},
};

/// How often [`FileTokenSource`] re-reads its file by default.
///
/// client-go's `NewCachedFileTokenSource` re-reads every minute, "half of the duration between when the
/// kubelet refreshes a projected service account token and when the original token expires" for the
/// minimum 10-minute token. Ten seconds picks up a rotated file sooner, for the cost of reading a
/// 1 KiB file six times a minute.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The most of a file that is read: a token of [`MAX_TOKEN_LEN`] bytes plus room for the whitespace
/// around it (the newline editors and `echo` add), which is not part of the token.
const READ_LIMIT: usize = MAX_TOKEN_LEN + 4096;

/// A token read from a file, re-read when due: the Kubernetes projected service-account token.
///
/// Kubernetes mounts a token for the audience you ask for at a path you choose, and the kubelet
/// replaces the file before the token expires (once the token is 80% through its life, or 24 hours
/// old; see the `serviceAccountToken` projection's `expirationSeconds` in the Kubernetes API
/// reference). Applications must re-read it, as client-go's `NewBearerAuthWithRefreshRoundTripper` does.
/// This source:
///
/// - reads the file on first use, then serves the token from memory: no file I/O per request;
/// - re-reads it every [poll interval](Self::with_poll_interval) (10 s by default), and early when the
///   token's own `exp` is near (a fifth of its remaining life before, at most a minute), so a rotated
///   file is picked up whether it was rewritten in place or swapped in by the kubelet's symlink rename;
/// - keeps the last good token while it has not expired, and traces a warning, if a re-read fails
///   (file missing, empty, or not a token; not a regular file; a read not done within 5 seconds,
///   as on a stalled mount), and tries again after the poll interval;
/// - re-reads once for all concurrent callers, in a task of its own that a cancelled caller does not
///   stop; callers that hold an unexpired token keep using it meanwhile.
///
/// It needs a Tokio runtime to read the file; outside one it serves the token it holds and otherwise
/// answers [`TokenError::Flight`] ([`FlightError::NoRuntime`](crate::FlightError::NoRuntime)). The
/// token never appears in `Debug` output or in the traced warnings.
///
/// ```
/// use oidc_bearer_client::{FileTokenSource, TokenSource};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("token");
/// std::fs::write(&path, "first-token\n")?;
///
/// let source = FileTokenSource::new(&path);
/// assert_eq!(source.token().await?.secret(), "first-token");
///
/// // The kubelet rotates the file; the next poll (or an explicit reload) picks it up.
/// std::fs::write(&path, "second-token\n")?;
/// source.reload().await?;
/// assert_eq!(source.token().await?.secret(), "second-token");
/// assert!(!format!("{source:?}").contains("second-token"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct FileTokenSource {
    refresher: Refresher<TokenFile>,
}

/// The file, and how to read it: the source's [`Load`].
#[derive(Debug, Clone)]
struct TokenFile {
    path: PathBuf,
    /// Its reads on blocking threads (see `bounded`): while one runs (perhaps past
    /// [`READ_TIMEOUT`]), no other is started, so a stalled mount holds one blocking thread, not
    /// one per poll.
    reads: Arc<Reads>,
}

/// The schedule of a file polled every `interval`: at most that long between reads, earlier when the
/// token's refresh point comes first, and that long after a failed read.
fn poll_schedule(interval: Duration) -> Schedule {
    Schedule {
        max_age: Some(interval),
        min_age: Duration::ZERO,
        retry_after: interval,
        no_expiry_ttl: interval,
    }
}

impl FileTokenSource {
    /// A source for the token file at `path`, e.g. `/var/run/secrets/tokens/<name>`.
    ///
    /// Nothing is read yet; call [`reload`](Self::reload) at start-up to fail fast on a wrong path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            refresher: Refresher::new(
                TokenFile {
                    path: path.into(),
                    reads: Arc::default(),
                },
                poll_schedule(DEFAULT_POLL_INTERVAL),
            ),
        }
    }

    /// How often the file is re-read ([`DEFAULT_POLL_INTERVAL`] by default); zero re-reads it on every
    /// call.
    #[must_use]
    pub fn with_poll_interval(self, interval: Duration) -> Self {
        let refresher = &self.refresher;
        Self {
            refresher: Refresher::with_clock(
                refresher.loader().clone(),
                poll_schedule(interval),
                refresher.clock(),
            ),
        }
    }

    /// Replaces the wall clock used for reload times and `exp`, so tests can move time (e.g.
    /// [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        let refresher = &self.refresher;
        Self {
            refresher: Refresher::with_clock(
                refresher.loader().clone(),
                refresher.schedule(),
                std::sync::Arc::new(clock),
            ),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.refresher.loader().path
    }

    /// Reads the file now (or joins a read under way) and returns its token.
    ///
    /// Unlike [`token`](TokenSource::token), a failure is returned even when a last good token is held
    /// (that token stays in use), so this is the call to make at start-up or after you know the file
    /// changed.
    pub async fn reload(&self) -> Result<BearerToken, TokenError> {
        self.refresher.reload().await
    }
}

impl Load for TokenFile {
    /// Reads and checks the file's token.
    ///
    /// Opening the path each time (no held file descriptor, no inode watch) follows the kubelet's
    /// atomic update: it writes the new files into a fresh `..<timestamp>` directory and renames a
    /// `..data_tmp` symlink over `..data`, which the visible `token` symlink points through; a
    /// reader that resolves the path again sees the old or the new token, never a mix (Kubernetes
    /// `pkg/volume/util/atomic_writer.go`).
    ///
    /// Only a regular file is read (checked on the opened file, after following symlinks): a FIFO
    /// would block the read until a writer comes, a device could answer forever.
    async fn load(&self) -> Result<BearerToken, TokenError> {
        let invalid = |reason| TokenError::InvalidFile {
            path: self.path.clone(),
            reason,
        };
        let path = self.path.clone();
        let read = bounded(&self.reads, READ_TIMEOUT, move || {
            read_regular(&path, READ_LIMIT)
        });
        let bytes = match read.await {
            Some(Ok((_, bytes))) => bytes,
            Some(Err(Unreadable::NotAFile)) => {
                return Err(TokenError::NotAFile {
                    path: self.path.clone(),
                });
            }
            Some(Err(Unreadable::TooLarge { .. })) => {
                return Err(invalid(InvalidToken::TooLong {
                    limit: MAX_TOKEN_LEN,
                }));
            }
            Some(Err(Unreadable::Io(error))) => return Err(self.read_error(error.kind())),
            None => return Err(self.read_error(io::ErrorKind::TimedOut)),
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            invalid(InvalidToken::InvalidCharacter {
                position: e.valid_up_to(),
            })
        })?;
        BearerToken::new(text.trim()).map_err(invalid)
    }
}

impl TokenFile {
    fn read_error(&self, kind: io::ErrorKind) -> TokenError {
        TokenError::ReadFile {
            path: self.path.clone(),
            kind,
        }
    }
}

impl TokenSource for FileTokenSource {
    fn token(&self) -> impl std::future::Future<Output = Result<BearerToken, TokenError>> + Send {
        self.refresher.token()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    use crate::{refresh::FIRST_RETRY_AFTER, token::tests::jwt};

    fn token_with(clock: &ManualClock, exp_in: u64, sub: &str) -> String {
        let now = clock.now().as_secs();
        jwt(&serde_json::json!({"sub": sub, "iat": now, "exp": now + exp_in}))
    }

    fn source(path: &Path, clock: &ManualClock) -> FileTokenSource {
        FileTokenSource::new(path).with_clock(clock.clone())
    }

    // That a broken reload is traced as a warning, without the token, is tested in
    // tests/reload_warning.rs: alone in its own process, since tracing's per-thread subscribers race with
    // other tests hitting the same callsite.

    /// Writes through a temporary file and a rename, as a careful writer does.
    fn write_atomically(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[tokio::test]
    async fn token_is_read_once_and_served_from_memory_until_the_poll_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        std::fs::write(&path, "token-a\n").unwrap();
        let source = source(&path, &clock);

        assert_eq!(source.token().await.unwrap().secret(), "token-a");
        std::fs::write(&path, "token-b\n").unwrap();
        clock.advance(DEFAULT_POLL_INTERVAL - Duration::from_millis(1));
        assert_eq!(
            source.token().await.unwrap().secret(),
            "token-a",
            "the file must not be read again before the poll interval"
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(source.token().await.unwrap().secret(), "token-b");
    }

    #[tokio::test]
    async fn rewritten_file_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        let first = token_with(&clock, 3600, "first");
        let second = token_with(&clock, 7200, "second");
        std::fs::write(&path, &first).unwrap();
        let source = source(&path, &clock);
        assert_eq!(source.token().await.unwrap().secret(), first);

        // In place (same inode, same length) and by rename (new inode).
        std::fs::write(&path, &second).unwrap();
        clock.advance(DEFAULT_POLL_INTERVAL);
        assert_eq!(source.token().await.unwrap().secret(), second);

        write_atomically(&path, &first);
        clock.advance(DEFAULT_POLL_INTERVAL);
        assert_eq!(source.token().await.unwrap().secret(), first);
    }

    /// Lays out a projected volume as the kubelet's atomic writer does:
    /// `token -> ..data/token`, `..data -> ..<timestamp>`, the real file in `..<timestamp>/token`.
    #[cfg(unix)]
    fn kubelet_write(dir: &Path, timestamp: &str, token: &str) {
        use std::os::unix::fs::symlink;

        let data_dir = dir.join(timestamp);
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::write(data_dir.join("token"), token).unwrap();
        let old = std::fs::read_link(dir.join("..data")).ok();
        symlink(timestamp, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        if !dir.join("token").exists() {
            symlink("..data/token", dir.join("token")).unwrap();
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(dir.join(old)).unwrap();
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn kubelet_symlink_swap_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let first = token_with(&clock, 600, "first");
        let second = token_with(&clock, 600, "second");
        kubelet_write(dir.path(), "..2026_01_01_00_00_00.000000001", &first);
        let source = source(&dir.path().join("token"), &clock);
        assert_eq!(source.token().await.unwrap().secret(), first);

        kubelet_write(dir.path(), "..2026_01_01_00_08_00.000000002", &second);
        clock.advance(DEFAULT_POLL_INTERVAL);
        assert_eq!(source.token().await.unwrap().secret(), second);
    }

    /// Makes a FIFO at `path` with the system's `mkfifo`.
    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success(), "mkfifo {}", path.display());
    }

    /// Opens `path` for writing without waiting for a reader, so that a read blocked opening the
    /// FIFO (as on unfixed code) is released and the runtime can shut down; with no reader, nothing
    /// happens.
    #[cfg(unix)]
    fn release_fifo_readers(path: &Path) {
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
    }

    /// A FIFO at the token path (behind the symlink a projected volume uses) is refused at once,
    /// not waited on: an open(2) of a FIFO for reading blocks until a writer comes, forever if
    /// none does. The last good token stays in use.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fifo_at_the_token_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let (path, target) = (dir.path().join("token"), dir.path().join("data"));
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let clock = ManualClock::new();
        std::fs::write(&target, "good-token").unwrap();
        let source = source(&path, &clock);
        assert_eq!(source.token().await.unwrap().secret(), "good-token");

        std::fs::remove_file(&target).unwrap();
        mkfifo(&target);
        clock.advance(DEFAULT_POLL_INTERVAL);
        // Far above any read of a local file, far below forever.
        let bound = Duration::from_secs(20);
        let token = tokio::time::timeout(bound, source.token()).await;
        let reload = tokio::time::timeout(bound, source.reload()).await;
        release_fifo_readers(&target);
        let token = token.expect("token() waited on the FIFO");
        assert_eq!(token.unwrap().secret(), "good-token");
        match reload.expect("reload() waited on the FIFO") {
            Err(TokenError::NotAFile { path: p }) => assert_eq!(p, path),
            other => panic!("expected NotAFile, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn broken_reload_keeps_the_last_good_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        std::fs::write(&path, "good-token").unwrap();
        let source = source(&path, &clock);
        assert_eq!(source.token().await.unwrap().secret(), "good-token");

        // (what, new content; None removes the file)
        let breakages: [(&str, Option<&[u8]>); 4] = [
            ("empty", Some(b"")),
            ("whitespace", Some(b" \n")),
            ("not utf-8", Some(b"abc\xff")),
            ("missing", None),
        ];
        for (what, content) in breakages {
            match content {
                Some(content) => std::fs::write(&path, content).unwrap(),
                None => std::fs::remove_file(&path).unwrap(),
            }
            clock.advance(DEFAULT_POLL_INTERVAL);
            assert_eq!(
                source.token().await.unwrap().secret(),
                "good-token",
                "{what}"
            );
            assert!(source.reload().await.is_err(), "{what}: reload reports it");
            assert_eq!(
                source.token().await.unwrap().secret(),
                "good-token",
                "{what}"
            );
        }

        std::fs::write(&path, "new-token").unwrap();
        clock.advance(DEFAULT_POLL_INTERVAL);
        assert_eq!(source.token().await.unwrap().secret(), "new-token");
    }

    #[tokio::test]
    async fn failed_reload_is_retried_after_the_poll_interval_not_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        std::fs::write(&path, "good-token").unwrap();
        let source = source(&path, &clock);
        source.reload().await.unwrap();

        std::fs::write(&path, "").unwrap();
        clock.advance(DEFAULT_POLL_INTERVAL);
        assert_eq!(source.token().await.unwrap().secret(), "good-token");
        // Fixed right after the failed read: not seen until the next poll.
        std::fs::write(&path, "fixed-token").unwrap();
        assert_eq!(source.token().await.unwrap().secret(), "good-token");
        clock.advance(DEFAULT_POLL_INTERVAL);
        assert_eq!(source.token().await.unwrap().secret(), "fixed-token");
    }

    #[tokio::test]
    async fn first_read_failure_is_an_error_naming_the_path_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let clock = ManualClock::new();
        let source = source(&path, &clock);
        match source.token().await {
            Err(TokenError::ReadFile { path: p, kind }) => {
                assert_eq!(p, path);
                assert_eq!(kind, std::io::ErrorKind::NotFound);
            }
            other => panic!("expected ReadFile, got {other:?}"),
        }

        // Retried after a second, not on every call, while no token was ever read.
        std::fs::write(&path, "two words").unwrap();
        assert!(matches!(
            source.token().await,
            Err(TokenError::ReadFile { .. })
        ));
        clock.advance(FIRST_RETRY_AFTER);
        match source.token().await {
            Err(TokenError::InvalidFile { reason, .. }) => {
                assert_eq!(reason, InvalidToken::InvalidCharacter { position: 3 });
            }
            other => panic!("expected InvalidFile, got {other:?}"),
        }

        std::fs::write(&path, "a".repeat(READ_LIMIT + 1)).unwrap();
        clock.advance(FIRST_RETRY_AFTER);
        assert!(matches!(
            source.token().await,
            Err(TokenError::InvalidFile {
                reason: InvalidToken::TooLong { .. },
                ..
            })
        ));
    }

    /// Behind the token path's symlink: a device that answers forever, or a directory, is never
    /// read (`NotAFile`); a huge (sparse) regular file is read only up to the limit. The last good
    /// token stays in use meanwhile.
    #[cfg(unix)]
    #[tokio::test]
    async fn devices_directories_and_huge_files_at_the_token_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = (dir.path().join("token"), dir.path().join("data"));
        let clock = ManualClock::new();
        let good = token_with(&clock, 3600, "good");
        std::fs::write(&data, &good).unwrap();
        std::os::unix::fs::symlink(&data, &path).unwrap();
        let source = source(&path, &clock);
        assert_eq!(source.token().await.unwrap().secret(), good);
        let huge = dir.path().join("huge");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let targets = [Path::new("/dev/zero"), dir.path(), &huge];
        for target in targets {
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(target, &path).unwrap();
            match (source.reload().await, target == huge) {
                (Err(TokenError::NotAFile { path: p }), false) => assert_eq!(p, path),
                (
                    Err(TokenError::InvalidFile {
                        reason: InvalidToken::TooLong { .. },
                        ..
                    }),
                    true,
                ) => {}
                (other, _) => panic!("{}: {other:?}", target.display()),
            }
            assert_eq!(source.token().await.unwrap().secret(), good);
        }
    }

    #[tokio::test]
    async fn near_expiry_forces_an_early_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        // 100 s to live: re-read a fifth of that (20 s) before exp, long before the hour-long poll.
        let first = token_with(&clock, 100, "first");
        let second = token_with(&clock, 700, "second");
        std::fs::write(&path, &first).unwrap();
        let source = source(&path, &clock).with_poll_interval(Duration::from_secs(3600));
        assert_eq!(source.token().await.unwrap().secret(), first);

        write_atomically(&path, &second);
        clock.advance(Duration::from_secs(79));
        assert_eq!(source.token().await.unwrap().secret(), first);
        clock.advance(Duration::from_secs(1));
        assert_eq!(source.token().await.unwrap().secret(), second);
    }

    #[tokio::test]
    async fn unrotated_file_near_expiry_is_polled_at_the_normal_pace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        let first = token_with(&clock, 100, "first");
        std::fs::write(&path, &first).unwrap();
        let source = source(&path, &clock);
        source.token().await.unwrap();

        // At the refresh point the file is re-read, finds the same token, and next reads after the
        // poll interval: a rotation just after that is not seen until then.
        clock.advance(Duration::from_secs(80));
        assert_eq!(source.token().await.unwrap().secret(), first);
        let second = token_with(&clock, 600, "second");
        write_atomically(&path, &second);
        clock.advance(DEFAULT_POLL_INTERVAL - Duration::from_millis(1));
        assert_eq!(source.token().await.unwrap().secret(), first);
        clock.advance(Duration::from_millis(1));
        assert_eq!(source.token().await.unwrap().secret(), second);
    }

    #[tokio::test]
    async fn a_clock_stepping_back_triggers_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let clock = ManualClock::new();
        std::fs::write(&path, "token-a").unwrap();
        let source = source(&path, &clock);
        source.token().await.unwrap();
        std::fs::write(&path, "token-b").unwrap();
        clock.set(clock.now() - Duration::from_secs(3600));
        assert_eq!(source.token().await.unwrap().secret(), "token-b");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_all_get_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "shared-token").unwrap();
        let source = Arc::new(FileTokenSource::new(&path).with_poll_interval(Duration::ZERO));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let source = Arc::clone(&source);
            tasks.spawn(async move { source.token().await });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result.unwrap().unwrap().secret(), "shared-token");
        }
    }

    #[tokio::test]
    async fn debug_output_hides_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "hidden-token").unwrap();
        let source = FileTokenSource::new(&path);
        source.token().await.unwrap();
        let debug = format!("{source:?}");
        assert!(!debug.contains("hidden-token"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }
}
