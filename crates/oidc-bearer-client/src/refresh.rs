//! The refresh engine both sources run: serve the held token while it is fresh, load once for all
//! callers in a task of its own, keep the last good token when a load fails, wait before retrying.
//!
//! A source supplies only its [`Load`] (read the file, ask the metadata server) and its [`Schedule`].
//!
//! # Cancel safety
//!
//! A load acts for every caller that wants a token, so no caller owns it: it runs as the one detached
//! single-flight task shared with `oidc-bearer` ([`flight`](oidc_bearer_shared::flight)), whose
//! outcome every waiter reads (Go's `singleflight.Group.DoChan`). A caller that is dropped while
//! waiting (a request timeout, a client that hangs up) leaves the load running; the next caller joins
//! it rather than starting another. The pause before the next load is written when a load *starts*,
//! so neither a slow load nor a dropped caller lets loads run back to back.
//!
//! # Without a Tokio runtime
//!
//! Loads use Tokio (`tokio::fs`, reqwest), so they are spawned on the caller's Tokio runtime. Called
//! from elsewhere (another executor, plain `block_on`), a source still serves a held, unexpired token;
//! when it would have to load, it answers [`FlightError::NoRuntime`] and logs that once at ERROR. It
//! never panics and never blocks the thread. A load whose runtime shuts down before it finishes (or
//! before its task first runs) is abandoned cleanly: its waiters get [`FlightError::Interrupted`], and
//! after the usual pause the next caller starts a new load.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::future::Either;
use oidc_bearer_shared::clock::{Clock, SystemClock};
use oidc_bearer_shared::flight::{Ending, Flight, FlightGroup, Launch};

use crate::{BearerToken, FlightError, TokenError};

/// The result of one load, shared by everyone who waited for it.
type Outcome = Result<BearerToken, TokenError>;

/// [`Refresher::token`]'s future: ready at once while the token is fresh, else the (boxed) wait for
/// a load.
pub(crate) type TokenFuture<'a> =
    Either<std::future::Ready<Outcome>, Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>>;

/// One attempt to obtain a token: what differs between sources.
pub(crate) trait Load: Send + Sync + 'static {
    /// Reads the file, asks the server... once, without retrying.
    fn load(&self) -> impl Future<Output = Outcome> + Send;
}

/// When a source loads again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// The longest a token is served before loading again, whatever its `exp` (a file's poll
    /// interval); `None`: until its refresh point.
    pub(crate) max_age: Option<Duration>,
    /// The shortest wait before loading again after a success (a token whose refresh point is near or
    /// past, e.g. because this host's clock is ahead, must not cause a load per call).
    pub(crate) min_age: Duration,
    /// The wait after a failed load, or after loading a token already past its refresh point.
    pub(crate) retry_after: Duration,
    /// How long a token without a readable `exp` is served.
    pub(crate) no_expiry_ttl: Duration,
}

impl Schedule {
    /// When the load that started at `started` and brought a token refreshing at `refresh_at` is
    /// followed by the next one. Counted from the start, so a slow load does not stretch the period.
    fn next_load(&self, started: SystemTime, refresh_at: Option<SystemTime>) -> SystemTime {
        let next = match refresh_at {
            None => started + self.no_expiry_ttl,
            Some(at) if at > started => at.max(started + self.min_age),
            // Past its refresh point and still the same token (the kubelet has not rotated the file
            // yet): keep loading at the retry pace rather than on every call.
            Some(_) => started + self.retry_after,
        };
        match self.max_age {
            Some(max_age) => next.min(started + max_age),
            None => next,
        }
    }
}

/// The engine: a [`Load`], a [`Schedule`], a clock, and the state they share.
pub(crate) struct Refresher<L> {
    inner: Arc<Inner<L>>,
}

struct Inner<L> {
    loader: L,
    schedule: Schedule,
    clock: Arc<dyn Clock>,
    state: RwLock<State>,
    /// The load running: one at a time (also decided under `state`'s lock).
    flights: FlightGroup,
}

#[derive(Default)]
struct State {
    /// The last good token.
    held: Option<Held>,
    /// When the last load started; `None` before the first.
    started_at: Option<SystemTime>,
    /// When the next load may start (`UNIX_EPOCH` before the first: due at once).
    next_load: Option<SystemTime>,
    /// The last load's error; cleared by a success.
    failure: Option<TokenError>,
    /// The load in flight, if any: its outcome arrives here.
    inflight: Option<Flight<Outcome>>,
}

struct Held {
    token: BearerToken,
    /// Shortly before the token's `exp`, from when it was first loaded; kept while loads return the
    /// same token.
    refresh_at: Option<SystemTime>,
}

impl State {
    fn is_due(&self, now: SystemTime) -> bool {
        let next = self.next_load.unwrap_or(UNIX_EPOCH);
        // A clock that stepped back past the last load would otherwise postpone the next one by as
        // much; count it as due.
        now >= next || self.started_at.is_some_and(|started| now < started)
    }

    /// The held token, if it has not expired at `now`.
    fn usable(&self, now: SystemTime) -> Option<BearerToken> {
        self.held
            .as_ref()
            .map(|held| &held.token)
            .filter(|token| !token.is_expired_at(now))
            .cloned()
    }

    /// The answer while no load is due: the held token, or the last failure during its retry pause.
    fn settled(&self, now: SystemTime) -> Option<Outcome> {
        if let Some(token) = self.usable(now) {
            return Some(Ok(token));
        }
        if let Some(error) = &self.failure {
            return Some(Err(error.clone()));
        }
        // Expired on arrival (this host's clock is ahead of the issuer's): the receiver decides.
        self.held.as_ref().map(|held| Ok(held.token.clone()))
    }
}

/// Until a first token is loaded, failures are retried at least this often: a file that appears or
/// a metadata server that comes up is picked up within a second, whatever the poll interval.
pub(crate) const FIRST_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Logged once per process: a source used outside a Tokio runtime is a setup mistake.
static NO_RUNTIME_LOGGED: AtomicBool = AtomicBool::new(false);

impl<L: Load> Refresher<L> {
    /// An engine that has loaded nothing yet; the clock is the system's until [`with_clock`](Self::with_clock).
    pub(crate) fn new(loader: L, schedule: Schedule) -> Self {
        Self::with_clock(loader, schedule, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(loader: L, schedule: Schedule, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                loader,
                schedule,
                clock,
                state: RwLock::default(),
                flights: FlightGroup::new(1),
            }),
        }
    }

    pub(crate) fn loader(&self) -> &L {
        &self.inner.loader
    }

    pub(crate) fn schedule(&self) -> Schedule {
        self.inner.schedule
    }

    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// The token to send now: the held one while fresh; when due, the outcome of the (single,
    /// shared) load, or the held token if that load fails and the token has not expired.
    pub(crate) fn token(&self) -> TokenFuture<'_> {
        let now = self.inner.now();
        {
            let state = self.inner.read();
            if !state.is_due(now)
                && let Some(answer) = state.settled(now)
            {
                // The fast path, on every request: no load's state machine to build or poll.
                return Either::Left(std::future::ready(answer));
            }
        }
        Either::Right(Box::pin(self.load(now, false)))
    }

    /// Loads now, or joins the load in flight, and returns its outcome, a failure included.
    pub(crate) async fn reload(&self) -> Outcome {
        let now = self.inner.now();
        self.load(now, true).await
    }

    async fn load(&self, now: SystemTime, force: bool) -> Outcome {
        let (outcome, launch, usable) = {
            let mut state = self.inner.write();
            let usable = state.usable(now);
            match &state.inflight {
                Some(outcome) => (outcome.clone(), None, usable),
                None => {
                    // Someone else's load may have finished since we looked.
                    if !force
                        && !state.is_due(now)
                        && let Some(answer) = state.settled(now)
                    {
                        return answer;
                    }
                    match self.prepare(&mut state, now) {
                        Ok(launch) => (launch.flight(), Some(launch), usable),
                        Err(error) => return not_started(error, usable, force),
                    }
                }
            }
        };
        // Spawned with the lock released: on a runtime shutting down, `spawn` drops the task at
        // once, and its end takes the lock.
        let started = launch.map(|launch| self.spawn(launch, now)).is_some();
        // A load is under way. Callers with a good token keep sending it rather than queue behind a
        // load someone else started (go-oidc's remote key set serves cached keys the same way).
        if !started
            && !force
            && let Some(token) = usable
        {
            return Ok(token);
        }
        // The load's task ended without an outcome: its runtime shut down, or it panicked.
        let result = outcome
            .outcome()
            .await
            .unwrap_or_else(|error| Err(TokenError::Flight(error)));
        match result {
            Ok(token) => Ok(token),
            Err(error) if force => Err(error),
            // The issue of a failed refresh is logged once, by the load; here the last good token
            // stays in use while it lasts.
            Err(error) => usable.ok_or(error),
        }
    }

    /// Marks a load in flight on the current Tokio runtime (under the state's write lock, so only
    /// one starts), and writes the pause before the next one.
    fn prepare(&self, state: &mut State, now: SystemTime) -> Result<Launch<Outcome>, FlightError> {
        let inner = Arc::clone(&self.inner);
        let launch = self
            .inner
            .flights
            .prepare(move |ending| inner.end_load(ending))?;
        state.inflight = Some(launch.flight());
        state.started_at = Some(now);
        // Provisional, counted from the start: whatever happens to this load or its callers, the
        // next one waits at least this long (a success replaces it with the token's schedule).
        let pause = match state.held {
            Some(_) => self.inner.schedule.retry_after,
            None => self.inner.schedule.retry_after.min(FIRST_RETRY_AFTER),
        };
        state.next_load = Some(now + pause);
        Ok(launch)
    }

    /// Runs the load that started at `started` as a task of its own.
    fn spawn(&self, launch: Launch<Outcome>, started: SystemTime) {
        let inner = Arc::clone(&self.inner);
        launch.spawn(async move {
            let outcome = inner.loader.load().await;
            inner.finish(started, &outcome);
            outcome
        });
    }
}

/// The answer when no load could be started: the held token, unless the caller forces a load. No
/// runtime is a setup mistake, logged once per process.
fn not_started(error: FlightError, usable: Option<BearerToken>, force: bool) -> Outcome {
    if error == FlightError::NoRuntime && !NO_RUNTIME_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::error!(
            "a token source had to load a token outside a Tokio runtime; call it from within one \
             (e.g. #[tokio::main]); until then it serves the token it holds, if any"
        );
    }
    match usable {
        Some(token) if !force => Ok(token),
        _ => Err(TokenError::Flight(error)),
    }
}

impl<L> Inner<L> {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.clock.now()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The end of the load in flight, however it ended: it is no longer in flight; one dropped
    /// before it finished (its runtime shut down, or it panicked) is recorded as interrupted, and
    /// the next one starts after the pause written when it started.
    fn end_load(&self, ending: Ending) {
        let mut state = self.write();
        state.inflight = None;
        if ending == Ending::Interrupted {
            state.failure = Some(TokenError::Flight(FlightError::Interrupted));
        }
    }

    /// Records the outcome of the load that started at `started`.
    fn finish(&self, started: SystemTime, outcome: &Outcome) {
        let mut state = self.write();
        match outcome {
            Ok(token) => {
                let refresh_at = match &state.held {
                    Some(held) if held.token == *token => held.refresh_at,
                    held => {
                        if held.is_some() {
                            tracing::debug!(expires_at = ?token.expires_at(), "token rotated");
                        }
                        token.refresh_at(started)
                    }
                };
                state.next_load = Some(self.schedule.next_load(started, refresh_at));
                state.held = Some(Held {
                    token: token.clone(),
                    refresh_at,
                });
                state.failure = None;
            }
            Err(error) => {
                // The error names the file or URL and the reason, never a token. Once per load, and
                // loads are at least `retry_after` apart.
                let retry_in = state
                    .next_load
                    .and_then(|next| next.duration_since(started).ok());
                match &state.held {
                    Some(held) => tracing::warn!(
                        %error,
                        last_token_expired = held.token.is_expired_at(self.now()),
                        ?retry_in,
                        "could not refresh the token; keeping the last good token"
                    ),
                    None => tracing::warn!(%error, ?retry_in, "could not load a token yet"),
                }
                state.failure = Some(error.clone());
            }
        }
    }
}

impl<L: fmt::Debug> fmt::Debug for Refresher<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.read();
        f.debug_struct("Refresher")
            .field("loader", &self.inner.loader)
            .field("schedule", &self.inner.schedule)
            // BearerToken's Debug redacts the secret.
            .field("token", &state.held.as_ref().map(|held| &held.token))
            .field("next_load", &state.next_load)
            .field("loading", &state.inflight.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Mutex,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Context, Poll, Wake, Waker},
    };

    use crate::clock::ManualClock;
    use tokio::sync::{Notify, Semaphore};

    use super::*;
    use crate::token::tests::jwt;

    /// Counts its loads, holds each until the test lets it go, and answers what the test set.
    struct Scripted {
        loads: AtomicUsize,
        started: Notify,
        gate: Semaphore,
        answer: Mutex<Option<Outcome>>,
    }

    impl Load for Arc<Scripted> {
        async fn load(&self) -> Outcome {
            self.loads.fetch_add(1, Ordering::SeqCst);
            self.started.notify_one();
            self.gate.acquire().await.unwrap().forget();
            self.answer.lock().unwrap().clone().unwrap()
        }
    }

    impl Default for Scripted {
        fn default() -> Self {
            Self {
                loads: AtomicUsize::new(0),
                started: Notify::new(),
                gate: Semaphore::new(0),
                answer: Mutex::new(None),
            }
        }
    }

    const SCHEDULE: Schedule = Schedule {
        max_age: None,
        min_age: Duration::from_secs(1),
        retry_after: Duration::from_secs(1),
        no_expiry_ttl: Duration::from_secs(60),
    };

    fn engine(clock: &ManualClock) -> (Arc<Scripted>, Arc<Refresher<Arc<Scripted>>>) {
        let loader = Arc::new(Scripted::default());
        let refresher =
            Refresher::with_clock(Arc::clone(&loader), SCHEDULE, Arc::new(clock.clone()));
        (loader, Arc::new(refresher))
    }

    fn token(clock: &ManualClock, n: u64) -> BearerToken {
        let now = clock.now().as_secs();
        BearerToken::new(jwt(&serde_json::json!({"n": n, "exp": now + 3600}))).unwrap()
    }

    #[test]
    fn schedule_counts_from_the_start_of_a_load() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        let file = Schedule {
            max_age: Some(Duration::from_secs(10)),
            min_age: Duration::ZERO,
            retry_after: Duration::from_secs(10),
            no_expiry_ttl: Duration::from_secs(10),
        };
        let cases = [
            // (schedule, started, refresh at, next load)
            (SCHEDULE, 100, Some(200), 200),
            (SCHEDULE, 100, Some(100), 101), // at its refresh point already: the retry pace
            (SCHEDULE, 100, None, 160),
            (file, 100, Some(105), 105),
            (file, 100, Some(200), 110), // the poll interval comes first
            (file, 100, Some(50), 110),
            (file, 100, None, 110),
        ];
        for (schedule, started, refresh_at, next) in cases {
            assert_eq!(
                schedule.next_load(at(started), refresh_at.map(at)),
                at(next),
                "{schedule:?} {started} {refresh_at:?}"
            );
        }
    }

    /// Aborting every caller while the shared load is held neither cancels it nor starts another: the
    /// load completes on its own, and later callers get its token without loading again.
    #[tokio::test(flavor = "current_thread")]
    async fn aborted_callers_neither_cancel_nor_repeat_the_load() {
        let clock = ManualClock::new();
        let (loader, refresher) = engine(&clock);
        let first = token(&clock, 1);
        *loader.answer.lock().unwrap() = Some(Ok(first.clone()));

        let started = loader.started.notified();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let refresher = Arc::clone(&refresher);
            callers.spawn(async move { refresher.token().await });
        }
        // On this one thread, every caller has run up to its wait for the load by the time the load
        // has started and this task runs again.
        started.await;
        callers.abort_all();
        while let Some(joined) = callers.join_next().await {
            assert!(joined.is_err_and(|e| e.is_cancelled()));
        }
        // More callers arrive and leave (here: after one poll) while the load is still held.
        for _ in 0..20 {
            let mut token = std::pin::pin!(refresher.token());
            let mut context = Context::from_waker(Waker::noop());
            assert!(token.as_mut().poll(&mut context).is_pending());
        }
        assert_eq!(loader.loads.load(Ordering::SeqCst), 1);

        loader.gate.add_permits(1);
        assert_eq!(refresher.token().await.unwrap(), first);
        assert_eq!(loader.loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_load_pauses_the_next_one_from_its_start() {
        let clock = ManualClock::new();
        let (loader, refresher) = engine(&clock);
        *loader.answer.lock().unwrap() = Some(Err(TokenError::other("down")));
        let started = loader.started.notified();
        let caller = tokio::spawn({
            let refresher = Arc::clone(&refresher);
            async move { refresher.token().await }
        });
        started.await;
        // The load takes 600 ms, then fails.
        clock.advance(Duration::from_millis(600));
        loader.gate.add_permits(100);
        assert!(caller.await.unwrap().is_err());

        // Within the pause, the failure is the answer, without a load.
        clock.advance(Duration::from_millis(399));
        assert!(refresher.token().await.is_err());
        assert_eq!(loader.loads.load(Ordering::SeqCst), 1);
        // The pause ends a second after the load started, not after it ended.
        let good = token(&clock, 2);
        *loader.answer.lock().unwrap() = Some(Ok(good.clone()));
        clock.advance(Duration::from_millis(1));
        assert_eq!(refresher.token().await.unwrap(), good);
        assert_eq!(loader.loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_token_until_it_expires() {
        let clock = ManualClock::new();
        let (loader, refresher) = engine(&clock);
        loader.gate.add_permits(100);
        let good = token(&clock, 1);
        *loader.answer.lock().unwrap() = Some(Ok(good.clone()));
        refresher.token().await.unwrap();

        *loader.answer.lock().unwrap() = Some(Err(TokenError::other("down")));
        clock.advance(Duration::from_secs(3590));
        assert_eq!(refresher.token().await.unwrap(), good);
        assert!(refresher.reload().await.is_err(), "reload reports it");
        clock.advance(Duration::from_secs(10));
        assert!(
            refresher.token().await.is_err(),
            "expired: no token to send"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_load_whose_runtime_shuts_down_is_started_again() {
        let clock = ManualClock::new();
        let (loader, refresher) = engine(&clock);
        let good = token(&clock, 1);
        *loader.answer.lock().unwrap() = Some(Ok(good.clone()));

        // A runtime that starts a load and shuts down while it is held.
        let other = Arc::clone(&refresher);
        let loader_for_thread = Arc::clone(&loader);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let started = loader_for_thread.started.notified();
                let caller = tokio::spawn(async move { other.token().await });
                started.await;
                caller.abort();
            });
        })
        .join()
        .unwrap();

        // Its waiters were told it was interrupted; after the usual pause, counted from its start, the
        // next caller loads again.
        assert!(matches!(
            refresher.token().await,
            Err(TokenError::Flight(FlightError::Interrupted))
        ));
        clock.advance(SCHEDULE.retry_after);
        loader.gate.add_permits(1);
        assert_eq!(refresher.token().await.unwrap(), good);
        assert_eq!(loader.loads.load(Ordering::SeqCst), 2);
    }

    /// A load whose task is dropped before it first ran (its runtime shut down with the task still
    /// queued) is not left marked in flight: its waiters are told it was interrupted, and after the
    /// usual pause, counted from its start, the next caller loads.
    #[test]
    fn a_load_dropped_before_its_task_ran_is_started_again() {
        let clock = ManualClock::new();
        let (loader, refresher) = engine(&clock);
        let good = token(&clock, 1);
        *loader.answer.lock().unwrap() = Some(Ok(good.clone()));
        loader.gate.add_permits(1);

        // A caller starts the load and leaves; the runtime shuts down before the load's task runs.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut token = std::pin::pin!(refresher.token());
            let mut context = Context::from_waker(Waker::noop());
            assert!(token.as_mut().poll(&mut context).is_pending());
        });
        drop(runtime);
        assert_eq!(loader.loads.load(Ordering::SeqCst), 0);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(matches!(
                refresher.token().await,
                Err(TokenError::Flight(FlightError::Interrupted))
            ));
            clock.advance(SCHEDULE.retry_after);
            assert_eq!(refresher.token().await.unwrap(), good);
        });
        assert_eq!(loader.loads.load(Ordering::SeqCst), 1);
    }

    /// Polls a future to completion on this thread, with no Tokio runtime anywhere.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
            std::thread::park();
        }
    }

    #[test]
    fn without_a_runtime_the_held_token_is_served_and_loading_is_an_error() {
        let clock = ManualClock::new();
        let (loader, refresher) = engine(&clock);
        assert!(matches!(
            block_on(refresher.token()),
            Err(TokenError::Flight(FlightError::NoRuntime))
        ));
        assert_eq!(loader.loads.load(Ordering::SeqCst), 0);

        let good = token(&clock, 1);
        *loader.answer.lock().unwrap() = Some(Ok(good.clone()));
        loader.gate.add_permits(1);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        assert_eq!(runtime.block_on(refresher.token()).unwrap(), good);
        drop(runtime);

        // Due again, outside any runtime: the held token is still served.
        clock.advance(Duration::from_secs(3590));
        assert_eq!(block_on(refresher.token()).unwrap(), good);
        assert!(matches!(
            block_on(refresher.reload()),
            Err(TokenError::Flight(FlightError::NoRuntime))
        ));
    }
}
