//! The deadline of one exchange (`Request::send`, then `Response::body`): its timer, the last
//! window for an answer already in the socket, and the heartbeat that tells a stall of this
//! process from the server's silence (why: docs/tokenreview.md, "what counts").

use std::time::Duration;

use tokio::time::Instant;

use super::{FetchError, LAST_WINDOW, LocalCause, STALL_TOLERANCE};

/// Runs `exchange` until `timeout` after `started`; past it, gives it [`LAST_WINDOW`] more
/// (see there) before ending it with the timeout as it was seen (`FetchError::timed_out`).
/// Throughout, a [`Heartbeat`] watches this process (`stalled`: the longest stall seen so far
/// in this exchange, in and out): a timeout or broken connection of the exchange (its own
/// timer's, or the connect's) after a stall longer than `STALL_TOLERANCE` (see [`HEARTBEAT`])
/// is the stall's, never the server's. Dropping this drops the exchange, as any timeout does
/// (callers that must not be cancelled run it in a task of their own: the crate's
/// single-flight task).
pub(super) async fn by_deadline<T>(
    timeout: Duration,
    started: Instant,
    stalled: &mut Duration,
    exchange: impl Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    let mut exchange = std::pin::pin!(exchange);
    // One exchange, one record: `Response::body` goes on from what `send` saw (review R6).
    let mut heartbeat = Heartbeat::new(*stalled);
    let done = match started.checked_add(timeout) {
        // A timeout too long to have a deadline (`Duration::MAX`) never fires.
        None => heartbeat.run(exchange.as_mut(), None).await,
        Some(deadline) => heartbeat.run(exchange.as_mut(), Some(deadline)).await,
    };
    let done = match done {
        Some(done) => done,
        None => {
            // Judged when first seen: the window below is this process's time, not the
            // server's.
            let seen = FetchError::timed_out(timeout, started);
            let window = Instant::now();
            // As long as the timeout itself when that is shorter: 10 ms is not made 110.
            let last = LAST_WINDOW.min(timeout);
            match heartbeat.run(exchange.as_mut(), Some(window + last)).await {
                Some(done) => done,
                // A window seen late is a stall of its own: nothing ran the exchange.
                None => Err(match (seen, FetchError::timed_out(last, window)) {
                    (FetchError::Timeout { .. }, stalled @ FetchError::Local { .. }) => stalled,
                    (seen, _) => seen,
                }),
            }
        }
    };
    // After a stall, a failure that would be the server's (a timeout, a broken connection:
    // the server may have given up on us, as on a handshake we left unfinished) is the
    // stall's (review R6). An answer (a status) stays the server's.
    let done = match done {
        Err(error @ (FetchError::Timeout { .. } | FetchError::Transport { .. }))
            if heartbeat.worst > STALL_TOLERANCE - HEARTBEAT =>
        {
            Err(FetchError::Local {
                cause: LocalCause::Stalled,
                message: format!(
                    "{error}, after this process did not run for {:?}",
                    heartbeat.worst
                ),
            })
        }
        done => done,
    };
    *stalled = heartbeat.worst;
    done
}

/// How often an exchange's [`Heartbeat`] ticks. A tick is seen late by a stall's length less
/// up to one period (the stall may begin just after a tick), so a tick seen more than
/// `STALL_TOLERANCE - HEARTBEAT` late counts as a stall: every stall over `STALL_TOLERANCE` is
/// caught, and some a little shorter (on the safe side; review R7).
const HEARTBEAT: Duration = Duration::from_millis(25);

/// A timer ticking beside an exchange, polled before it: how late its ticks are seen is how
/// long this process (the runtime, the worker running the exchange) did not run. A timer
/// seen late says so only for its own deadline (`FetchError::timed_out`); a stall that ended
/// before a deadline — across a connect's timer in the middle of a TLS handshake, before the
/// request was written — left the exchange unread while the server may have answered, and
/// its timeout then says nothing about the server (review R4, session 4). Stalls up to
/// `STALL_TOLERANCE` are ordinary scheduling; on a worker that user code blocks while the
/// exchange's task sits on another, nothing here sees it.
struct Heartbeat {
    ticks: tokio::time::Interval,
    /// The latest a tick was seen, so far.
    worst: Duration,
}

impl Heartbeat {
    /// A heartbeat that has seen a stall of `worst` already.
    fn new(worst: Duration) -> Self {
        let mut ticks = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { ticks, worst }
    }

    /// Polls `exchange` until it ends (`Some`) or `until` passes (`None`), the ticks first
    /// (a stall is recorded before the result it explains), then the exchange, then the
    /// deadline (an exchange that is ready is never ended by it).
    async fn run<F: Future>(
        &mut self,
        mut exchange: std::pin::Pin<&mut F>,
        until: Option<Instant>,
    ) -> Option<F::Output> {
        let mut deadline = std::pin::pin!(until.map(tokio::time::sleep_until));
        std::future::poll_fn(|cx| {
            while let std::task::Poll::Ready(tick) = self.ticks.poll_tick(cx) {
                self.worst = self
                    .worst
                    .max(Instant::now().saturating_duration_since(tick));
            }
            if let std::task::Poll::Ready(done) = exchange.as_mut().poll(cx) {
                return std::task::Poll::Ready(Some(done));
            }
            match deadline.as_mut().as_pin_mut().map(|d| d.poll(cx)) {
                Some(std::task::Poll::Ready(())) => std::task::Poll::Ready(None),
                _ => std::task::Poll::Pending,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::Poll;

    use super::*;

    /// A fresh record of the longest stall seen: none yet.
    fn no_stall() -> Duration {
        Duration::ZERO
    }

    /// An exchange whose answer is handed over by another task (as hyper's connection task
    /// hands over what it reads from the socket) only once the exchange has been polled at
    /// or past its deadline: woken by the same turn as the timer, but run after it.
    fn answered_in_the_turn_after(
        deadline: Instant,
        answer: u32,
    ) -> impl Future<Output = Result<u32, FetchError>> {
        let (ask, asked) = tokio::sync::oneshot::channel::<()>();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if asked.await.is_ok() {
                let _ = tx.send(answer);
            }
        });
        let mut ask = Some(ask);
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(got) = Pin::new(&mut rx).poll(cx) {
                return Poll::Ready(got.map_err(|_| FetchError::Transport {
                    message: "the connection task went away".into(),
                }));
            }
            if Instant::now() >= deadline
                && let Some(ask) = ask.take()
            {
                let _ = ask.send(());
            }
            Poll::Pending
        })
    }

    /// The answer read by the connection's task in the turn that also fired the exchange's
    /// timer is used, not recorded as the server's `Timeout`: this process's delay in
    /// running that task says nothing about the server (object binding would open its
    /// grace period on that `Timeout`). Paused time: the clock jumps to the deadline.
    #[tokio::test(start_paused = true)]
    async fn an_answer_handed_over_in_the_turn_after_the_deadline_is_used() {
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let exchange = answered_in_the_turn_after(started + timeout, 7);
        assert_eq!(
            by_deadline(timeout, started, &mut no_stall(), exchange).await,
            Ok(7)
        );
    }

    /// An answer that has not come by the end of the last window is missing: the server's
    /// `Timeout`, decided when the window ends.
    #[tokio::test(start_paused = true)]
    async fn a_missing_answer_is_the_servers_timeout_after_the_last_window() {
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let never = std::future::pending::<Result<(), FetchError>>();
        assert_eq!(
            by_deadline(timeout, started, &mut no_stall(), never).await,
            Err(FetchError::Timeout { timeout })
        );
        assert_eq!(Instant::now(), started + timeout + LAST_WINDOW);
    }

    /// An exchange that ends with a timeout of its own (as reqwest's connect timer ends it)
    /// after this process stalled in the middle of it, or after a stall `send` saw (carried
    /// into the body's): the stall's, never the server's `Timeout` (reviews R4 and R6: a
    /// stall across the connect's deadline in a TLS handshake). The `thread::sleep` is the
    /// stall under test.
    #[test]
    fn a_timeout_after_a_stall_in_the_exchange_is_the_stall() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connect_timeout = FetchError::Timeout {
            timeout: Duration::from_secs(2),
        };
        // The exchange's end after `stall` (none: at once), with `seen` recorded before it.
        let ended = |stall: Option<Duration>, mut seen: Duration| {
            let error = connect_timeout.clone();
            let mut polls = 0;
            let exchange = std::future::poll_fn(move |cx| {
                polls += 1;
                if let (1, Some(stall)) = (polls, stall) {
                    // Past a heartbeat's tick, the runtime not driven: a stall.
                    std::thread::sleep(stall);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Err::<(), _>(error.clone()))
            });
            let timeout = Duration::from_secs(5);
            runtime.block_on(by_deadline(timeout, Instant::now(), &mut seen, exchange))
        };
        let stalled = |got: &Result<(), FetchError>| {
            matches!(
                got,
                Err(FetchError::Local {
                    cause: LocalCause::Stalled,
                    ..
                })
            )
        };
        let got = ended(Some(HEARTBEAT + STALL_TOLERANCE), no_stall());
        assert!(stalled(&got), "a stall in the exchange: {got:?}");
        let got = ended(None, STALL_TOLERANCE * 2);
        assert!(stalled(&got), "a stall `send` saw: {got:?}");
        // Without a stall, the same timeout is the server's.
        assert_eq!(ended(None, no_stall()), Err(connect_timeout.clone()));
    }

    /// An answer that comes within the window, past the deadline, is used: a real answer is
    /// never unsafe to use, however late (and an answer in many chunks, or read by another
    /// worker, takes more than one turn).
    #[tokio::test(start_paused = true)]
    async fn an_answer_within_the_last_window_is_used() {
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let late = async {
            tokio::time::sleep(timeout + LAST_WINDOW / 2).await;
            Ok::<_, FetchError>(7)
        };
        assert_eq!(
            by_deadline(timeout, started, &mut no_stall(), late).await,
            Ok(7)
        );
    }

    /// On a multi-threaded runtime too, with the exchange in a task of its own on a worker
    /// (as a review's single-flight task is): the task woken by the same turn is run before
    /// the exchange is polled again. Many rounds, each a new draw of the workers' order.
    #[test]
    fn an_answer_handed_over_after_the_deadline_is_used_on_a_multi_threaded_runtime() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        for round in 0..50 {
            let got = runtime.block_on(runtime.spawn(async {
                let timeout = Duration::from_millis(2);
                let started = Instant::now();
                let exchange = answered_in_the_turn_after(started + timeout, 7);
                by_deadline(timeout, started, &mut no_stall(), exchange).await
            }));
            assert_eq!(got.unwrap(), Ok(7), "round {round}");
        }
    }
}
