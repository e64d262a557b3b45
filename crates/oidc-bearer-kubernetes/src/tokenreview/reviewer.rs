//! The review engine behind [`TokenReview`](super::TokenReview) and the object-binding check: the
//! answer cache, one review in flight per token (the crate's one detached single-flight task, so
//! that no caller owns it, counted against `max_pending_reviews`), a cap on concurrent reviews, and
//! timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oidc_bearer_shared::clock::AtomicTime;
use oidc_bearer_shared::fetch::{self as shared_fetch, LocalCause};
use oidc_bearer_shared::file::READ_TIMEOUT;
use oidc_bearer_shared::flight::{Flight, FlightGroup};
use oidc_bearer_shared::log_limit::LogLimiter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::api::ApiServer;
use super::cache::{Answer, AnswerCache};
use crate::Sha256;
use crate::SharedClock;
use crate::error::{ApiServerFailure, ReviewError};
use oidc_bearer::cache::TokenKey;
use oidc_bearer::{ConfigError, VerifyError};
use oidc_bearer::{FetchError, FlightError};

// The defaults, documented on the fields of `TokenReviewSettings`; the answer cache's bounds are
// the token cache's.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_MAX_ENTRIES: usize = oidc_bearer_shared::map::DEFAULT_MAX_ENTRIES;
const DEFAULT_MAX_BYTES: usize = oidc_bearer_shared::map::DEFAULT_MAX_BYTES;
const DEFAULT_MAX_CONCURRENT_REVIEWS: usize = 8;
const DEFAULT_MAX_PENDING_REVIEWS: usize = 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest review timeout accepted (`TokenReviewSettings::validate`).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// How TokenReview answers are cached and reviews are limited.
///
/// ```
/// use oidc_bearer_kubernetes::TokenReviewSettings;
/// use std::time::Duration;
///
/// let mut settings = TokenReviewSettings::default();
/// settings.cache_ttl = Duration::from_secs(10);
/// assert_eq!(settings.max_concurrent_reviews, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenReviewSettings {
    /// How long an acceptance is kept, never past the token's `exp` (default 30 s). For the
    /// object-binding check, this is its interval.
    ///
    /// It bounds how long a token whose pod was deleted keeps working, which is why one uses
    /// TokenReview at all; the API server's webhook authenticator keeps answers 2 min
    /// (`--authentication-token-webhook-cache-ttl`), which is tuned for load, not revocation. At
    /// 30 s a busy client costs the API server 2 reviews per minute per replica.
    pub cache_ttl: Duration,
    /// How long a refusal is kept (default 5 s, at most `cache_ttl`): shorter than acceptances, as
    /// a refused token rarely becomes valid but a short time bounds the cost of a mistake and of a
    /// `nbf` in the future.
    pub negative_ttl: Duration,
    /// How long "could not review" is kept before the token is reviewed again (default 1 s).
    pub retry_interval: Duration,
    /// The most answers kept (default 10,000).
    pub max_entries: usize,
    /// The most bytes of answers kept, counted as their strings plus a fixed overhead (default
    /// 16 MiB).
    pub max_bytes: usize,
    /// The most reviews in flight at once (default 8); more wait for a slot, within the timeout.
    pub max_concurrent_reviews: usize,
    /// The most reviews started and not finished, waiting for a slot or in flight (default
    /// 1,024); beyond, a new token gets 503 at once.
    pub max_pending_reviews: usize,
    /// The time the API server has to answer a review (default 5 s, at most 60 s); a review also waits at most
    /// this long for a free slot, then gets 503 without being sent. Only the API server's own
    /// timeout counts as its failure (see [`ReviewError::is_api_server_failure`]).
    pub timeout: Duration,
}

impl Default for TokenReviewSettings {
    fn default() -> Self {
        Self {
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_concurrent_reviews: DEFAULT_MAX_CONCURRENT_REVIEWS,
            max_pending_reviews: DEFAULT_MAX_PENDING_REVIEWS,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl TokenReviewSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, reason| Err(ConfigError::invalid(name, reason));
        if self.negative_ttl > self.cache_ttl {
            return bad(
                "token_review.negative_ttl",
                "must not exceed cache_ttl (a refusal is kept for less time than an acceptance)",
            );
        }
        if self.max_entries == 0 || self.max_bytes < 4096 {
            return bad(
                "token_review.max_entries",
                "the cache needs at least one entry and 4 KiB",
            );
        }
        if self.max_concurrent_reviews == 0 || self.max_pending_reviews == 0 {
            return bad(
                "token_review.max_concurrent_reviews",
                "must be positive (as must max_pending_reviews)",
            );
        }
        // Bounded: a review holds a slot and every caller of its token until it ends, and only
        // its timeout ends a request the API server never answers (review R6).
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return bad("token_review.timeout", "must be positive and at most 60 s");
        }
        Ok(())
    }
}

/// Counters of a TokenReview verifier (or of an object-binding check).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenReviewStats {
    /// Reviews sent to the API server.
    pub reviews: u64,
    /// Answers found in the cache.
    pub cache_hits: u64,
    /// Callers that joined a review already in flight for their token.
    pub joined: u64,
    /// Reviews started and not finished (waiting for a slot or in flight).
    pub pending: usize,
    /// Reviews waiting for a slot under the concurrency cap.
    pub waiting_for_slot: usize,
    /// Answers kept in the cache.
    pub cached_answers: usize,
}

/// A review in flight: its id, the signing input it reviews and its answer.
struct InFlight {
    id: u64,
    input: Box<[u8]>,
    answer: Flight<Answer>,
}

/// What [`Reviewer::start`] found: an answer, or a review to wait for.
pub(crate) enum Started {
    Answer(Answer),
    Pending(Flight<Answer>),
}

pub(crate) struct Reviewer {
    api: ApiServer,
    audiences: Arc<[String]>,
    settings: TokenReviewSettings,
    clock: SharedClock,
    cache: AnswerCache,
    /// The review each token joins, by cache key.
    inflight: Mutex<HashMap<Sha256, InFlight>>,
    /// Every review started and not finished — those in `inflight` and those of a token that could
    /// not join one (another payload under a signature in flight) — each counted against
    /// `max_pending_reviews` until its task ends, however it ends.
    flights: FlightGroup,
    next_id: AtomicU64,
    slots: Arc<Semaphore>,
    reviews: AtomicU64,
    hits: AtomicU64,
    joined: AtomicU64,
    waiting: AtomicUsize,
    /// When the current outage began (the first review that failed because of the API server
    /// itself since it last answered), or [`AtomicTime::NEVER`].
    outage_since: AtomicTime,
}

impl Reviewer {
    pub(crate) fn new(
        api: ApiServer,
        audiences: Vec<String>,
        settings: TokenReviewSettings,
        clock: SharedClock,
    ) -> Self {
        Self {
            api,
            audiences: audiences.into(),
            cache: AnswerCache::new(settings.max_entries, settings.max_bytes),
            slots: Arc::new(Semaphore::new(settings.max_concurrent_reviews)),
            flights: FlightGroup::new(settings.max_pending_reviews),
            settings,
            clock,
            inflight: Mutex::default(),
            next_id: AtomicU64::new(0),
            reviews: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            outage_since: AtomicTime::new(AtomicTime::NEVER),
        }
    }

    /// When the current API-server outage began (by the clock): the first review that failed
    /// because of the API server itself since one was last answered. Local limits never set it.
    pub(crate) fn outage_since(&self) -> Option<Duration> {
        let since = self.outage_since.load(Ordering::Relaxed);
        (since != AtomicTime::NEVER).then_some(since)
    }

    /// The API server answered a review (an acceptance or a refusal): any outage is over.
    fn record_answer(&self) {
        if self.outage_since.swap(AtomicTime::NEVER, Ordering::Relaxed) != AtomicTime::NEVER {
            tracing::info!(url = self.api.url(), "TokenReview answers again");
        }
    }

    /// A review failed because of the API server itself: the outage begins now, unless it began
    /// earlier. Nothing but an [`ApiServerFailure`] can start one.
    fn record_outage(&self, _: ApiServerFailure, now: Duration) {
        self.outage_since
            .replace(AtomicTime::NEVER, now, Ordering::Relaxed);
    }

    pub(crate) fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub(crate) fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The cached answer for the token keyed `key`, if current.
    pub(crate) fn cached(&self, key: &TokenKey<'_>, now: Duration) -> Option<Answer> {
        let answer = self.cache.get(key.digest(), key.signing_input(), now)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// The answer for `token` (whose cache key is `key` and unverified `exp` is `exp`): cached, or
    /// from a review this call starts or joins.
    pub(crate) async fn review(
        self: &Arc<Self>,
        key: &TokenKey<'_>,
        token: &str,
        exp: Option<Duration>,
    ) -> Answer {
        if let Some(answer) = self.cached(key, self.now()) {
            return answer;
        }
        match self.start(key, token, exp) {
            Started::Answer(answer) => answer,
            Started::Pending(rx) => wait(rx).await,
        }
    }

    /// Starts a review of `token`, or joins the one in flight; the review runs as a task of its
    /// own and is never cancelled by a caller leaving (Go's `singleflight.DoChan`).
    pub(crate) fn start(
        self: &Arc<Self>,
        token_key: &TokenKey<'_>,
        token: &str,
        exp: Option<Duration>,
    ) -> Started {
        let key = *token_key.digest();
        let input = Box::<[u8]>::from(token_key.signing_input());
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let mut register = true;
        if let Some(pending) = inflight.get(&key) {
            if pending.input == input {
                self.joined.fetch_add(1, Ordering::Relaxed);
                return Started::Pending(pending.answer.clone());
            }
            // Another token with the same signature segment (a valid token's signature over a
            // changed payload): never share its answer; review this one on its own (counted
            // against the cap like any other).
            register = false;
        }
        // A review that finished between the caller's lookup and this lock has cached its answer
        // before leaving `inflight`: look again rather than review twice.
        if let Some(answer) = self.cached(token_key, self.now()) {
            return Started::Answer(answer);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let reviewer = Arc::clone(self);
        // Counted against `max_pending_reviews` from here until the review's task ends (without a
        // runtime, or past the cap, nothing starts: a local limit, 503).
        let launch = match self
            .flights
            .prepare(move |_| reviewer.leave_inflight(key, id))
        {
            Ok(launch) => launch,
            Err(error) => {
                return Started::Answer(Err(ReviewError::Flight(error).into()));
            }
        };
        let answer = launch.flight();
        if register {
            let answer = answer.clone();
            let input = input.clone();
            inflight.insert(key, InFlight { id, input, answer });
        }
        // Spawned with the lock released: on a runtime shutting down, `spawn` drops the task at
        // once, and its end takes the lock.
        drop(inflight);
        let slot = self.take_slot();
        launch.spawn(run(
            Arc::clone(self),
            key,
            slot,
            token.to_owned(),
            input,
            exp,
        ));
        Started::Pending(answer)
    }

    /// The end of review `id` of the token keyed `key`, however it ended: later callers no longer
    /// join it (a finished review has cached its answer first).
    fn leave_inflight(&self, key: Sha256, id: u64) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if inflight.get(&key).is_some_and(|pending| pending.id == id) {
            inflight.remove(&key);
        }
    }

    /// A free review slot, taken now; or, when all are busy, this review counted as waiting for
    /// one (from here, not from when its task first runs, so that the count is exact as soon as
    /// the review is started).
    fn take_slot(self: &Arc<Self>) -> Slot {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Slot::Held(permit),
            Err(_) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                Slot::Waiting(WaitingForSlot(Arc::clone(self)))
            }
        }
    }

    pub(crate) fn stats(&self) -> TokenReviewStats {
        TokenReviewStats {
            reviews: self.reviews.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            pending: self.flights.running(),
            waiting_for_slot: self.waiting.load(Ordering::Relaxed),
            cached_answers: self.cache.size().0,
        }
    }

    /// One review, under the concurrency cap and the timeout.
    ///
    /// Waiting for a slot and the API server's answer have a timeout each: a review that found no
    /// slot in time is a local limit (`QueueTimeout`, never sent), and one that was sent has the
    /// whole timeout for the API server's answer, so that its `Timeout` is the API server's own
    /// slowness and never a share of the budget spent queueing here (which, counted as an outage,
    /// would open the object-binding grace period under local load alone).
    async fn call(
        &self,
        slot: Slot,
        token: &str,
    ) -> Result<Result<super::TokenReviewClaims, VerifyError>, ReviewError> {
        let timeout = self.settings.timeout;
        let _slot = match slot {
            Slot::Held(permit) => permit,
            Slot::Waiting(waiting) => {
                let acquired =
                    tokio::time::timeout(timeout, Arc::clone(&self.slots).acquire_owned()).await;
                drop(waiting);
                match acquired {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; were it, no review could run.
                    Ok(Err(_)) => return Err(ReviewError::Flight(FlightError::Interrupted)),
                    Err(_) => return Err(ReviewError::QueueTimeout { timeout }),
                }
            }
        };
        // Our credential first, outside the API server's timeout (see `ApiServer::authorization`),
        // yet bounded: a token file's check gives up after `READ_TIMEOUT` and sends the last good
        // token, so a credential not ready after that and the review's timeout again is not
        // coming (a future that never completes must not hold a slot and a flight forever). Ours,
        // never the API server's failure.
        let bound = READ_TIMEOUT.saturating_add(timeout);
        let authorization = match tokio::time::timeout(bound, self.api.authorization()).await {
            Ok(authorization) => authorization?,
            Err(_) => {
                return Err(ReviewError::Fetch(FetchError::Local {
                    cause: LocalCause::Stalled,
                    message: format!("our credential was not ready within {bound:?}"),
                }));
            }
        };
        self.reviews.fetch_add(1, Ordering::Relaxed);
        let review = self
            .api
            .review(authorization, token, &self.audiences, timeout);
        // The exchange's own deadline (`fetch::Request::send`, `Response::body`) decides the API
        // server's `Timeout`, after its last turns have looked for an answer already in the socket
        // (docs/tokenreview.md). This timer only guards the whole review, set past that deadline
        // (`backstop`) so that it cannot end the exchange first: seen at all, it is seen late, a
        // stall of this process (`timed_out`), never the API server's failure.
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(shared_fetch::backstop(timeout), review).await {
            Ok(result) => result,
            Err(_) => Err(ReviewError::Fetch(FetchError::timed_out(timeout, started))),
        };
        // One place counts every failure of the exchange, whichever timer or layer ended it.
        result.map_err(|error| self.api.classify(error))
    }

    /// Logs a failed review, at most once a minute per kind, with the count suppressed.
    fn log_failure(&self, error: &ReviewError) {
        static CONFIG: LogLimiter = LogLimiter::new();
        static OUTAGE: LogLimiter = LogLimiter::new();
        static LOCAL: LogLimiter = LogLimiter::new();
        if error.is_local_limit() {
            if let Some(suppressed) = LOCAL.allow(LOG_PERIOD) {
                tracing::warn!(
                    code = error.code(),
                    %error,
                    max_concurrent_reviews = self.settings.max_concurrent_reviews,
                    suppressed,
                    "TokenReview not done because of a limit of this process (see the error); \
                     requests get 503"
                );
            }
        } else if error.is_configuration() {
            if let Some(suppressed) = CONFIG.allow(LOG_PERIOD) {
                tracing::error!(
                    code = error.code(),
                    %error,
                    url = self.api.url(),
                    suppressed,
                    "TokenReview is misconfigured; requests get 503 until it is fixed"
                );
            }
        } else if let Some(suppressed) = OUTAGE.allow(LOG_PERIOD) {
            tracing::warn!(
                code = error.code(),
                %error,
                url = self.api.url(),
                suppressed,
                "TokenReview failed; requests get 503"
            );
        }
    }
}

/// Waits for a review's answer; a review that ended without one is "unavailable".
pub(crate) async fn wait(answer: Flight<Answer>) -> Answer {
    answer
        .outcome()
        .await
        .unwrap_or_else(|error| Err(ReviewError::Flight(error).into()))
}

/// The detached review: its answer is cached before it leaves `inflight` and is published.
async fn run(
    reviewer: Arc<Reviewer>,
    key: Sha256,
    slot: Slot,
    token: String,
    input: Box<[u8]>,
    exp: Option<Duration>,
) -> Answer {
    let settings = &reviewer.settings;
    let result = reviewer.call(slot, &token).await;
    drop(token);
    let now = reviewer.now();
    match &result {
        Ok(_) => reviewer.record_answer(),
        Err(error) => {
            if let Some(failure) = error.api_server_failure() {
                reviewer.record_outage(failure, now);
            }
        }
    }
    let (answer, expires_at) = match result {
        Ok(Ok(claims)) => {
            let until = now.saturating_add(settings.cache_ttl);
            // Never past the token's own expiry: the API server would refuse it then.
            (
                Ok(Arc::new(claims)),
                exp.map_or(until, |exp| until.min(exp)),
            )
        }
        Ok(Err(refusal)) => (Err(refusal), now.saturating_add(settings.negative_ttl)),
        Err(error) => {
            reviewer.log_failure(&error);
            let until = now.saturating_add(settings.retry_interval);
            (Err(error.into()), until)
        }
    };
    reviewer
        .cache
        .insert(key, Some(input), answer.clone(), expires_at, now);
    answer
}

/// A review's place under the concurrency cap.
enum Slot {
    Held(OwnedSemaphorePermit),
    Waiting(WaitingForSlot),
}

/// A review counted in `waiting_for_slot`, uncounted when it gets a slot, times out or is dropped.
struct WaitingForSlot(Arc<Reviewer>);

impl Drop for WaitingForSlot {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often the review failures' log lines may appear (a caller can trigger a review per token).
pub(crate) const LOG_PERIOD: Duration = Duration::from_secs(60);

#[cfg(test)]
impl Reviewer {
    /// Takes every review slot, as reviews in flight would (tests).
    pub(crate) fn take_all_slots(&self) -> OwnedSemaphorePermit {
        let n = self.settings.max_concurrent_reviews as u32;
        Arc::clone(&self.slots).try_acquire_many_owned(n).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A review started on a runtime that is shutting down: tokio drops its task inside `spawn`,
    /// and the task's guards (its place in `inflight`, its wait for a slot) take the reviewer's
    /// lock. Started with that lock released, the call returns `Aborted` and every count is back to
    /// zero; a later start returns too (a deadlock fails the test instead of hanging it).
    #[test]
    fn a_review_started_while_the_runtime_shuts_down_is_aborted_and_leaves_no_count() {
        use std::future::Future as _;
        use std::task::{Context, Poll, Waker};

        let api = ApiServer::builder("http://127.0.0.1:1")
            .with_bearer_token(|| None)
            .build()
            .unwrap();
        let settings = TokenReviewSettings {
            max_concurrent_reviews: 1,
            max_pending_reviews: 1,
            ..TokenReviewSettings::default()
        };
        let reviewer = Arc::new(Reviewer::new(
            api,
            vec!["aud".into()],
            settings,
            Arc::new(oidc_bearer::clock::ManualClock::new()),
        ));
        let (answers, stats) = oidc_bearer_testing::harness::run_on_shut_down_runtime(move || {
            // Every slot busy: each review is counted as waiting for one until its task is
            // dropped. The second start is for the key whose review was just aborted.
            let _slots = reviewer.take_all_slots();
            let mut answers = Vec::new();
            for token in ["h.p.1", "h.p.1", "h.p.2"] {
                let key = TokenKey::new(token.as_bytes()).unwrap();
                let answer = match reviewer.start(&key, token, None) {
                    Started::Answer(answer) => Some(answer),
                    Started::Pending(rx) => {
                        let mut wait = std::pin::pin!(wait(rx));
                        match wait.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                            Poll::Ready(answer) => Some(answer),
                            Poll::Pending => None,
                        }
                    }
                };
                answers.push(answer.map(|answer| match answer {
                    Err(error @ VerifyError::ReviewUnavailable { .. }) => {
                        Err(ReviewError::of(&error).unwrap().code())
                    }
                    other => Ok(other.map(|_| ()).map_err(|e| e.code())),
                }));
            }
            (answers, reviewer.stats())
        });
        assert_eq!(answers, [Some(Err("review_aborted")); 3]);
        assert_eq!(
            (stats.pending, stats.waiting_for_slot, stats.reviews),
            (0, 0, 0)
        );
    }

    /// Our credential is awaited outside the review's timeout (so that its time is never the
    /// API server's), but it must still be bounded: a credential that never comes (a future
    /// that never completes, on a path added later — a metadata server, a mount read without
    /// `bounded`) must not hold a review slot, a place under `max_pending_reviews` and the
    /// single-flight review of a token forever. It ends as a local failure, never an outage.
    ///
    /// Review finding (s3-review-file2): `Reviewer::call` awaits `ApiServer::authorization`
    /// with no bound of its own; only `TokenFile`'s `READ_TIMEOUT` bounds it today.
    #[tokio::test(start_paused = true)]
    async fn a_credential_that_never_comes_does_not_hold_a_review_forever() {
        let api = ApiServer::builder("http://127.0.0.1:1")
            .with_credential(Arc::new(|| Box::pin(std::future::pending())))
            .build()
            .unwrap();
        let reviewer = Arc::new(Reviewer::new(
            api,
            vec!["aud".into()],
            TokenReviewSettings::default(),
            Arc::new(oidc_bearer::clock::ManualClock::new()),
        ));
        let key = TokenKey::new(b"h.p.s").unwrap();
        let Started::Pending(answer) = reviewer.start(&key, "h.p.s", None) else {
            panic!("a review was started");
        };
        // Paused time: this jumps as soon as nothing else can run. An hour is far past every
        // bound a review has (a slot, the credential file's read, the API server's answer).
        let ended = tokio::time::timeout(Duration::from_secs(3600), wait(answer)).await;
        let stats = reviewer.stats();
        let Ok(answer) = ended else {
            panic!(
                "a review whose credential never comes still holds its slot and its flight after \
                 an hour: {stats:?}"
            );
        };
        match answer {
            Err(error @ VerifyError::ReviewUnavailable { .. }) => {
                let source = ReviewError::of(&error).unwrap();
                assert!(!source.is_api_server_failure(), "{source:?}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reviewer.outage_since(), None);
    }

    #[test]
    fn settings_are_checked() {
        assert!(TokenReviewSettings::default().validate().is_ok());
        let cases: [fn(&mut TokenReviewSettings); 4] = [
            |s| s.negative_ttl = s.cache_ttl + Duration::from_secs(1),
            |s| s.max_entries = 0,
            |s| s.max_concurrent_reviews = 0,
            |s| s.timeout = Duration::ZERO,
        ];
        for change in cases {
            let mut settings = TokenReviewSettings::default();
            change(&mut settings);
            assert_eq!(settings.validate().unwrap_err().code(), "invalid_setting");
        }
    }
}
