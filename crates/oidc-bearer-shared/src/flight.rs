//! The one detached single-flight task: work that many callers wait for — a key set's fetch, a
//! TokenReview, a token source's load — runs as a task of its own on the caller's Tokio runtime, and
//! its outcome is published to every waiter through a `watch` channel (Go's
//! `singleflight.Group.DoChan`, where a caller may leave and the work goes on).
//!
//! The rules, the same for every user:
//!
//! - **No runtime is a configuration error.** Outside a Tokio runtime, [`FlightGroup::prepare`]
//!   answers [`FlightError::NoRuntime`]; nothing is spawned and nothing needs undoing.
//! - **Admission per spawned task.** A group runs at most `max` tasks at once. A task takes its place
//!   when it is prepared and gives it back when it ends, however it ends; there is no other way to
//!   spawn, so no path runs past the bound ([`FlightError::Full`]).
//! - **Spawn with no lock held.** Prepare under the caller's lock (decide, mark the work in flight),
//!   release the lock, then [`Launch::spawn`]: on a runtime that is shutting down, tokio drops the task
//!   inside `spawn`, and its guard then runs the caller's `on_end`, which takes that lock.
//! - **A guard that publishes "interrupted".** A task dropped before it finishes (its runtime shut
//!   down, it panicked, or its [`Launch`] was dropped unspawned) runs `on_end(Ending::Interrupted)`,
//!   and its waiters get [`FlightError::Interrupted`]. No waiter waits forever.
//! - **Cancel safety.** [`Flight::outcome`] only reads the channel: a waiter that is dropped neither
//!   aborts, restarts nor repeats the work (tokio's cancel-safety rule for `select!`).
//!
//! ```
//! use oidc_bearer_shared::flight::{FlightError, FlightGroup};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let group = FlightGroup::new(1);
//! let launch = group.prepare(|ending| println!("ended: {ending:?}")).unwrap();
//! let (first, second) = (launch.flight(), launch.flight());
//! launch.spawn(async { 42 });
//! assert_eq!(first.outcome().await, Ok(42));
//! assert_eq!(second.outcome().await, Ok(42));
//! assert_eq!(group.running(), 0);
//! # });
//! // Outside a runtime: nothing runs, and the error says why.
//! assert_eq!(
//!     FlightGroup::new(1).prepare::<u32>(|_| {}).err(),
//!     Some(FlightError::NoRuntime),
//! );
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::watch;

/// Why a flight gave no outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlightError {
    /// The caller is not running on a Tokio runtime, on which the work must be spawned (so that no
    /// caller owns it): a configuration error. Nothing was started.
    NoRuntime,
    /// As many tasks of this kind are running as the group allows; this one was not started.
    Full {
        /// The group's bound.
        max: usize,
    },
    /// The task ended without an outcome: its Tokio runtime shut down, or it panicked.
    Interrupted,
}

impl FlightError {
    /// Whether this is a deployment mistake rather than a passing condition: no Tokio runtime.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::NoRuntime)
    }
}

impl fmt::Display for FlightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRuntime => f.write_str(
                "there is no Tokio runtime to run the task on: call from within one \
                 (e.g. #[tokio::main])",
            ),
            Self::Full { max } => write!(f, "{max} tasks of this kind are already running"),
            Self::Interrupted => f.write_str(
                "the task ended without an outcome (its Tokio runtime shut down, or it panicked)",
            ),
        }
    }
}

impl std::error::Error for FlightError {}

/// How a flight's task ended, as told to the `on_end` given to [`FlightGroup::prepare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The work returned; its outcome is published right after `on_end`.
    Finished,
    /// The task was dropped first; its waiters get [`FlightError::Interrupted`] right after
    /// `on_end`.
    Interrupted,
}

/// The detached tasks of one kind (a key set's fetches, a verifier's reviews, a token source's
/// loads), at most `max` of them running at once.
#[derive(Debug)]
pub struct FlightGroup {
    running: Arc<Running>,
}

#[derive(Debug)]
struct Running {
    count: AtomicUsize,
    max: usize,
}

impl FlightGroup {
    /// A group that runs at most `max` tasks at once (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            running: Arc::new(Running {
                count: AtomicUsize::new(0),
                max: max.max(1),
            }),
        }
    }

    /// The tasks prepared and not ended (spawned or about to be).
    pub fn running(&self) -> usize {
        self.running.count.load(Ordering::Acquire)
    }

    /// The group's bound.
    pub fn max(&self) -> usize {
        self.running.max
    }

    /// Prepares a task on the current Tokio runtime and takes its place in the group; nothing runs
    /// until [`Launch::spawn`], which the caller calls once it has released its own locks.
    ///
    /// `on_end` runs exactly once, when the task ends however it ends, after its place is given back
    /// and before its waiters are woken: the place to clear the caller's "in flight" marker, and to
    /// record an interruption. It may take the caller's locks (never held by the task itself).
    pub fn prepare<T: Send + Sync + 'static>(
        &self,
        on_end: impl FnOnce(Ending) + Send + 'static,
    ) -> Result<Launch<T>, FlightError> {
        // The runtime first, so that a call from outside one takes no place.
        let runtime = Handle::try_current().map_err(|_| FlightError::NoRuntime)?;
        let running = &self.running;
        running
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < running.max).then_some(n + 1)
            })
            .map_err(|_| FlightError::Full { max: running.max })?;
        let place = Place(Arc::clone(running));
        let (outcome, _) = watch::channel(None);
        Ok(Launch {
            runtime,
            guard: Guard {
                place: Some(place),
                on_end: Some(Box::new(on_end)),
                outcome,
            },
        })
    }
}

/// A task prepared by [`FlightGroup::prepare`]: it holds its place in the group; spawn it with no
/// lock held. Dropped unspawned, it ends as interrupted.
#[must_use = "a prepared task holds its place in the group until it is spawned and ends"]
pub struct Launch<T> {
    runtime: Handle,
    guard: Guard<T>,
}

impl<T: Send + Sync + 'static> Launch<T> {
    /// A waiter for this task's outcome (any number may be made, and cloned).
    pub fn flight(&self) -> Flight<T> {
        Flight {
            outcome: self.guard.outcome.subscribe(),
        }
    }

    /// Spawns `work` on the runtime found by [`FlightGroup::prepare`]; its output is published to
    /// every waiter. Call it with no lock held that `on_end` takes.
    pub fn spawn(self, work: impl Future<Output = T> + Send + 'static) {
        let Self { runtime, guard } = self;
        // Dropped with the task if it never finishes (inside `spawn` itself on a runtime that is
        // shutting down): the guard's drop then ends the flight as interrupted.
        runtime.spawn(async move {
            let value = work.await;
            guard.finish(value);
        });
    }
}

impl<T> fmt::Debug for Launch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launch").finish_non_exhaustive()
    }
}

/// A waiter for one task's outcome. Cheap to clone.
pub struct Flight<T> {
    outcome: watch::Receiver<Option<T>>,
}

impl<T> Clone for Flight<T> {
    fn clone(&self) -> Self {
        Self {
            outcome: self.outcome.clone(),
        }
    }
}

impl<T: Clone> Flight<T> {
    /// The task's outcome, once published; [`FlightError::Interrupted`] if it ended without one.
    /// Cancel safe: dropping this future leaves the task running.
    pub async fn outcome(mut self) -> Result<T, FlightError> {
        match self.outcome.wait_for(Option::is_some).await {
            Ok(value) => value.as_ref().cloned().ok_or(FlightError::Interrupted),
            Err(_) => Err(FlightError::Interrupted),
        }
    }
}

impl<T> fmt::Debug for Flight<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flight").finish_non_exhaustive()
    }
}

/// A task's place in its group, given back when dropped.
struct Place(Arc<Running>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

type OnEnd = Box<dyn FnOnce(Ending) + Send>;

/// Owned by the task: ends the flight when the work returns, or, dropped first, as interrupted.
struct Guard<T> {
    place: Option<Place>,
    on_end: Option<OnEnd>,
    outcome: watch::Sender<Option<T>>,
}

impl<T> Guard<T> {
    /// Gives the place back, then tells the owner. The place first: by the time the owner clears its
    /// "in flight" marker, a caller that sees it cleared can be admitted.
    fn end(&mut self, ending: Ending) {
        drop(self.place.take());
        if let Some(on_end) = self.on_end.take() {
            on_end(ending);
        }
    }

    fn finish(mut self, value: T) {
        self.end(Ending::Finished);
        // `send_replace` stores the value even while no waiter is subscribed.
        self.outcome.send_replace(Some(value));
    }
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        if self.on_end.is_some() {
            self.end(Ending::Interrupted);
        }
        // The sender is dropped after this: waiters wake and see no outcome (interrupted).
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use tokio::sync::Semaphore;

    use super::*;

    type Log = Arc<Mutex<Vec<Ending>>>;

    fn logging(log: &Log) -> impl FnOnce(Ending) + Send + 'static {
        let log = Arc::clone(log);
        move |ending| log.lock().unwrap().push(ending)
    }

    #[test]
    fn outside_a_runtime_nothing_is_prepared_and_no_place_is_taken() {
        let group = FlightGroup::new(1);
        let log = Log::default();
        let error = group.prepare::<()>(logging(&log)).unwrap_err();
        assert_eq!(error, FlightError::NoRuntime);
        assert!(error.is_configuration());
        assert_eq!(group.running(), 0);
        assert!(log.lock().unwrap().is_empty(), "nothing to end");
    }

    /// Every waiter gets the one outcome; waiters that leave early neither stop nor repeat the work.
    #[tokio::test(flavor = "current_thread")]
    async fn the_outcome_reaches_every_waiter_and_dropped_waiters_leave_the_work_alone() {
        let group = FlightGroup::new(1);
        let log = Log::default();
        let gate = Arc::new(Semaphore::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let launch = group.prepare(logging(&log)).unwrap();
        let waiters: Vec<_> = (0..10).map(|_| launch.flight()).collect();
        let leaving: Vec<_> = (0..10).map(|_| launch.flight()).collect();
        launch.spawn({
            let (gate, runs) = (Arc::clone(&gate), Arc::clone(&runs));
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                "done"
            }
        });
        for flight in leaving {
            let mut outcome = std::pin::pin!(flight.outcome());
            let poll = outcome
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()));
            assert!(poll.is_pending());
        }
        tokio::task::yield_now().await;
        assert_eq!(group.running(), 1);
        gate.add_permits(1);
        for flight in waiters {
            assert_eq!(flight.outcome().await, Ok("done"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(*log.lock().unwrap(), [Ending::Finished]);
        assert_eq!(group.running(), 0);
    }

    /// Each spawned task counts until its guard ends it; past the bound, preparing is refused.
    #[tokio::test(flavor = "current_thread")]
    async fn admission_counts_every_task_until_its_guard_ends_it() {
        let group = FlightGroup::new(2);
        let gate = Arc::new(Semaphore::new(0));
        let mut flights = Vec::new();
        for _ in 0..2 {
            let launch = group.prepare(|_| {}).unwrap();
            flights.push(launch.flight());
            let gate = Arc::clone(&gate);
            launch.spawn(async move { gate.acquire().await.unwrap().forget() });
        }
        assert_eq!(
            group.prepare::<()>(|_| {}).unwrap_err(),
            FlightError::Full { max: 2 }
        );
        // A launch dropped unspawned gives its place back, as interrupted.
        gate.add_permits(1);
        let first = flights.remove(0);
        let _ = first.outcome().await;
        let log = Log::default();
        let unspawned = group.prepare::<()>(logging(&log)).unwrap();
        let waiter = unspawned.flight();
        assert_eq!(group.running(), 2);
        drop(unspawned);
        assert_eq!(*log.lock().unwrap(), [Ending::Interrupted]);
        assert_eq!(waiter.outcome().await, Err(FlightError::Interrupted));
        assert_eq!(group.running(), 1);
        gate.add_permits(1);
        assert_eq!(flights.remove(0).outcome().await, Ok(()));
        assert_eq!(group.running(), 0);
    }

    /// A task spawned on a runtime that is shutting down is dropped inside `spawn`: `on_end` runs
    /// there (it may take the caller's lock, which the caller no longer holds), the place is given
    /// back, and the waiters learn it was interrupted.
    #[test]
    fn a_task_dropped_by_a_runtime_shutting_down_ends_as_interrupted() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        runtime.shutdown_background();
        let _entered = handle.enter();
        let group = FlightGroup::new(1);
        let state = Arc::new(Mutex::new("in flight"));
        let launch = group
            .prepare::<()>({
                let state = Arc::clone(&state);
                move |ending| {
                    assert_eq!(ending, Ending::Interrupted);
                    *state.lock().unwrap() = "interrupted";
                }
            })
            .unwrap();
        let flight = launch.flight();
        launch.spawn(async {});
        assert_eq!(*state.lock().unwrap(), "interrupted");
        assert_eq!(group.running(), 0);
        let mut outcome = std::pin::pin!(flight.outcome());
        assert_eq!(
            outcome
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Err(FlightError::Interrupted))
        );
    }

    /// A task that panics ends as interrupted too: no waiter waits forever.
    #[tokio::test(flavor = "current_thread")]
    async fn a_task_that_panics_ends_as_interrupted() {
        let group = FlightGroup::new(1);
        let log = Log::default();
        let launch = group.prepare::<()>(logging(&log)).unwrap();
        let flight = launch.flight();
        launch.spawn(async { panic!("the work failed") });
        assert_eq!(flight.outcome().await, Err(FlightError::Interrupted));
        assert_eq!(*log.lock().unwrap(), [Ending::Interrupted]);
        assert_eq!(group.running(), 0);
    }
}
