//! The one safe read of a token file: the projected service-account token that a client sends
//! (`oidc-bearer-client`'s `FileTokenSource`) and the pod's own token that a verifier sends to its
//! API server (`oidc-bearer`'s `InCluster`).
//!
//! A token path is configuration, and a wrong one must cost an error, not a hang or the memory of
//! the process:
//!
//! - [`read_regular`] opens without waiting (a FIFO's open(2) otherwise waits for a writer),
//!   reads only a regular file (asked of the opened file, after symlinks: a device such as
//!   `/dev/zero` answers forever), and never more than a cap;
//! - [`bounded`] runs such a read on Tokio's blocking threads and gives up on it after a timeout,
//!   with at most one read running at a time (and a read queued behind busy blocking threads
//!   never holding back other runtimes' reads), so that a stalled network mount (where open(2),
//!   stat(2) and read(2) block in the kernel whatever the flags) holds one blocking thread, never a
//!   runtime worker, and never one thread per attempt.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The longest a read of a token file may take by default. A local file is read in microseconds; a
/// read that takes seconds is stuck on a stalled network mount, and is given up so that callers
/// get the last good token (or an error) instead of waiting with it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token file was not read. Exhaustive, so that each reader maps every reason to its own error.
#[derive(Debug)]
pub enum Unreadable {
    /// Opening, inspecting or reading it failed (e.g. [`io::ErrorKind::NotFound`]).
    Io(io::Error),
    /// The path leads (after symlinks) to something other than a regular file: a directory, a
    /// FIFO, a socket or a device.
    NotAFile,
    /// The file holds more than `limit` bytes: no token file is that large.
    TooLarge {
        /// The cap the read was given.
        limit: usize,
    },
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => error.fmt(f),
            Self::NotAFile => f.write_str("not a regular file"),
            Self::TooLarge { limit } => {
                write!(f, "larger than {limit} bytes, more than any token")
            }
        }
    }
}

impl std::error::Error for Unreadable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for Unreadable {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Reads the regular file at `path`, at most `limit` bytes of it, and returns them with the opened
/// file's metadata (blocking: call it from [`bounded`] on an async path).
///
/// On Unix the file is opened with `O_NONBLOCK`, so that opening a FIFO returns at once instead of
/// waiting for a writer (open(2)); the flag changes nothing for a regular file. Whether it is one
/// is then asked of the opened file itself (fstat(2)), so that nothing can be swapped in between.
/// A file with more than `limit` bytes is [`Unreadable::TooLarge`], found by reading at most one
/// byte past the cap (a length from `stat` can be stale, or sparse).
pub fn read_regular(path: &Path, limit: usize) -> Result<(Metadata, Vec<u8>), Unreadable> {
    let file = open_nonblocking(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(Unreadable::NotAFile);
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(Unreadable::TooLarge { limit });
    }
    Ok((metadata, bytes))
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // O_NOCTTY: a terminal at the path never becomes this process's controlling terminal.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    options.open(path)
}

/// The most checks of one file queued for a blocking thread and not started (see [`bounded`]).
const MAX_WAITING: usize = 4;

/// What [`bounded`] keeps of one file's reads: whether one is asked for and not ended, how many
/// are queued for a blocking thread and have not started, and whether one runs.
#[derive(Debug, Default)]
pub struct Reads {
    reading: AtomicBool,
    waiting: AtomicUsize,
    running: AtomicBool,
}

impl Reads {
    /// Whether a read is asked for and has not ended: queued for, or running on, a blocking
    /// thread (perhaps past its timeout). For tests that wait for a read to end.
    #[doc(hidden)]
    pub fn is_reading(&self) -> bool {
        self.reading.load(Ordering::Acquire)
    }
}

/// Runs the blocking `read` on Tokio's blocking threads and gives up on it after `timeout`
/// (`None`). A blocking call cannot be cancelled: one that was given up keeps its thread until
/// the call returns, and while it does, the next read is given up at once (`None`) instead of
/// started, so that a stalled mount holds one blocking thread, never one per attempt.
///
/// `reads` marks a read under way from when one is asked for until one ends (or is dropped unrun). A
/// read still queued for a blocking thread holds none: its runtime's blocking threads may all be busy,
/// or the runtime no longer driven, and it may never start. A caller that finds only such reads
/// (no read running) queues its own on its own runtime rather than wait on them — at most
/// `MAX_WAITING` (4) per file queued at once — and, of reads that start while one runs, each ends
/// at once without reading. Needs a Tokio runtime (it panics outside one, as
/// `tokio::task::spawn_blocking` does).
pub async fn bounded<T: Send + 'static>(
    reads: &Arc<Reads>,
    timeout: Duration,
    read: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let claimed = !reads.reading.swap(true, Ordering::AcqRel);
    if !claimed
        && (reads.running.load(Ordering::Acquire) || reads.waiting.load(Ordering::Acquire) == 0)
    {
        // One runs (perhaps past its bound, on a stalled mount), or is about to.
        return None;
    }
    if reads.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
        reads.waiting.fetch_sub(1, Ordering::AcqRel);
        if claimed {
            reads.reading.store(false, Ordering::Release);
        }
        return None;
    }
    let waiting = Waiting {
        reads: Arc::clone(reads),
        started: false,
    };
    let task = tokio::task::spawn_blocking(move || {
        let _running = waiting.start()?;
        Some(read())
    });
    // A task that panicked or whose runtime shut down gave no answer either.
    tokio::time::timeout(timeout, task).await.ok()?.ok()?
}

/// A read queued for a blocking thread: counted in `Reads::waiting` until it starts, or until it
/// is dropped unrun (its runtime shut down), which ends the claim on `Reads::reading` unless
/// another read runs or waits.
struct Waiting {
    reads: Arc<Reads>,
    started: bool,
}

impl Waiting {
    /// The read starts: [`Running`] until it ends, or `None` when another read runs (this one then
    /// ends without reading: one blocking thread at most).
    fn start(mut self) -> Option<Running> {
        self.started = true;
        self.reads.waiting.fetch_sub(1, Ordering::AcqRel);
        if self.reads.running.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Running(Arc::clone(&self.reads)))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let reads = &self.reads;
        if !self.started {
            reads.waiting.fetch_sub(1, Ordering::AcqRel);
            if !reads.running.load(Ordering::Acquire) && reads.waiting.load(Ordering::Acquire) == 0
            {
                reads.reading.store(false, Ordering::Release);
            }
        }
    }
}

/// The read running on a blocking thread: its end clears `running` and `reading`.
struct Running(Arc<Reads>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.reading.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads queued behind busy blocking threads do not hold back the next caller (each queues its
    /// own), but at most `MAX_WAITING` of one file wait at once: past them, a caller gives up at
    /// once and queues nothing.
    #[test]
    fn reads_queued_behind_busy_blocking_threads_are_bounded() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let reads = Arc::new(Reads::default());
            // Another file's read, stuck, holds the one blocking thread (given up after 10 ms).
            let (release, held) = std::sync::mpsc::channel::<()>();
            let (started, running) = tokio::sync::oneshot::channel::<()>();
            let other = Arc::default();
            let stuck = bounded(&other, Duration::from_millis(10), move || {
                let _ = started.send(());
                let _ = held.recv();
            });
            assert!(stuck.await.is_none());
            running.await.unwrap();
            let done = Arc::new(AtomicUsize::new(0));
            for _ in 0..MAX_WAITING + 2 {
                let done = Arc::clone(&done);
                // Given up (the blocking thread is held): each waits its bound, or not at all.
                let read = bounded(&reads, Duration::from_millis(10), move || {
                    done.fetch_add(1, Ordering::SeqCst);
                });
                assert!(read.await.is_none());
            }
            assert_eq!(reads.waiting.load(Ordering::SeqCst), MAX_WAITING);
            release.send(()).unwrap();
            // The queue runs in order: this runs after every read queued above.
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            assert_eq!(done.load(Ordering::SeqCst), MAX_WAITING);
            assert_eq!(reads.waiting.load(Ordering::SeqCst), 0);
            assert!(
                !reads.reading.load(Ordering::SeqCst),
                "the claim ends with the last read"
            );
        });
    }

    /// A read that outlives its bound is given up (a stalled mount, where open(2) or read(2) block
    /// in the kernel whatever the flags), and no second one starts while it still runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_read_is_given_up_and_holds_one_thread_at_most() {
        let reads = Arc::new(Reads::default());
        let (unblock, blocked) = std::sync::mpsc::channel::<()>();
        let (finished, ended) = tokio::sync::oneshot::channel::<()>();
        let stuck = bounded(&reads, Duration::from_millis(20), move || {
            let _ = blocked.recv();
            let _ = finished.send(());
        });
        assert!(stuck.await.is_none(), "given up");
        let started = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&started);
        let second = bounded(&reads, Duration::from_secs(60), move || {
            flag.store(true, Ordering::SeqCst)
        });
        assert!(second.await.is_none(), "refused while the first still runs");
        assert!(!started.load(Ordering::SeqCst), "and not started");
        // Released, the stuck read ends (and with it, its guard clears the flag).
        unblock.send(()).unwrap();
        ended.await.unwrap();
    }

    /// Only a regular file is read, and no more of it than the cap: a directory and a device that
    /// answers forever are refused, a file over the cap is refused. (That a FIFO is refused without
    /// waiting for a writer is tested where it is read: the client's `FileTokenSource` and the
    /// verifier's `InCluster`.)
    #[cfg(unix)]
    #[test]
    fn only_a_regular_file_within_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "0123456789").unwrap();

        let (metadata, bytes) = read_regular(&file, 10).unwrap();
        assert_eq!((metadata.len(), bytes.as_slice()), (10, &b"0123456789"[..]));
        assert!(matches!(
            read_regular(&file, 9),
            Err(Unreadable::TooLarge { limit: 9 })
        ));
        for path in [dir.path(), Path::new("/dev/zero")] {
            let refused = read_regular(path, 10);
            assert!(
                matches!(refused, Err(Unreadable::NotAFile)),
                "{}: {refused:?}",
                path.display()
            );
        }
        match read_regular(&dir.path().join("missing"), 10) {
            Err(Unreadable::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }
}
