//! A key set that follows an issuer's published JWKS, with a cache built so that a request with a
//! known key never waits on the network.
//!
//! The rules, after go-oidc's `jwks.go` (its `inflight` single flight) and jose's `cooldownDuration`:
//! - reads take a `std::sync::RwLock` for a pointer copy; no lock is ever held across I/O on the read
//!   path;
//! - an unknown `kid` triggers at most one shared fetch, and at most one per cooldown window, so a
//!   flood of forged `kid`s cannot flood the issuer (go-oidc refetches on every unknown `kid`; we add
//!   the cooldown); while the cooldown forbids a fetch, [`Refresh::retry_after`] says when one will
//!   be allowed, so that the verifier answers 503 with `Retry-After` instead of a final 401 to a
//!   token signed by a key published since the last fetch;
//! - a fetch runs detached from the requests that wait for it (the crate's one single-flight task,
//!   [`flight`](oidc_bearer_shared::flight), as Go's `singleflight.Group.DoChan`): a request that is
//!   dropped mid-fetch neither aborts it nor causes another, and the cooldown and backoff count from
//!   when a fetch *starts*;
//! - the set lives as long as the JWKS response's `Cache-Control: max-age` says, clamped, and is
//!   refreshed in the background ahead of expiry;
//! - a failed refresh keeps the keys we have (stale-if-error, RFC 5861 in spirit) up to a maximum
//!   staleness, retrying with exponential backoff; keys missing from a successful refresh are dropped;
//! - a failure is logged once per attempt (attempts are paced by the backoff): at ERROR with what to
//!   change when it is a configuration mistake ([`KeysError::is_configuration`]), at WARN when it is
//!   an outage.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oidc_bearer_shared::flight::{Ending, Flight, FlightGroup, Launch};
use oidc_bearer_shared::log_limit;
use url::Url;

use super::{Jwks, KeySet, Refresh};
use crate::clock::SharedClock;
use crate::discovery;
use crate::error::{ConfigError, FetchError, KeysError};
use crate::fetch::{Fetcher, HttpSettings};

/// How a verifier caches the keys it fetches from its issuer (the key cache, set with
/// [`VerifierBuilder::with_key_cache`](crate::VerifierBuilder::with_key_cache); the cache of
/// verified tokens is [`TokenCacheSettings`](crate::cache::TokenCacheSettings)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCacheSettings {
    /// The least time between two fetches triggered by unknown `kid`s. Default 30 s.
    pub cooldown: Duration,
    /// The key set's lifetime when the JWKS response has no `max-age`. Default 10 min.
    pub default_ttl: Duration,
    /// The shortest lifetime a `max-age` may give. Default 1 min.
    pub min_ttl: Duration,
    /// The longest lifetime a `max-age` may give. Default 24 h.
    pub max_ttl: Duration,
    /// How long past their lifetime keys are still used while refreshes fail. Default 24 h.
    pub max_stale: Duration,
    /// The first retry delay after a failed fetch; it doubles per failure. Default 1 s.
    pub initial_backoff: Duration,
    /// The longest retry delay. Default 60 s.
    pub max_backoff: Duration,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(30),
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl KeyCacheSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, reason| Err(ConfigError::invalid(name, reason));
        if self.min_ttl > self.max_ttl {
            return bad("min_ttl", "must not exceed max_ttl");
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            return bad(
                "initial_backoff",
                "must be positive and at most max_backoff",
            );
        }
        Ok(())
    }

    pub(crate) fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Where the keys are found.
#[derive(Debug, Clone)]
enum Source {
    /// Discovery at `url`, checked against `issuer`; `jwks_override` replaces the advertised JWKS URL
    /// (discovery still runs, for the issuer check).
    Discovery {
        issuer: String,
        url: Url,
        jwks_override: Option<Url>,
    },
    /// A JWKS URL, without discovery.
    Jwks(Url),
}

/// A key set fetched from an issuer (by discovery or a direct JWKS URL) and cached.
///
/// Cheap to clone; clones share the cache. Construction never fetches: the first verification (or
/// [`Verifier::ready`](crate::Verifier::ready)) does.
///
/// Fetches run on the Tokio runtime of the caller that starts them, as spawned tasks. Called outside
/// a Tokio runtime (from another executor), a key set that must fetch answers
/// [`KeysError::Flight`] ([`FlightError::NoRuntime`](crate::error::FlightError::NoRuntime)) and
/// fetches nothing; keys already loaded keep working.
#[derive(Clone)]
pub(crate) struct RemoteKeySet {
    shared: Arc<Shared>,
}

struct Shared {
    source: Source,
    fetcher: Fetcher,
    clock: SharedClock,
    settings: KeyCacheSettings,
    state: RwLock<State>,
    /// The fetches running: one at a time (also decided under `state`'s lock).
    flights: FlightGroup,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<Jwks>>,
    /// When the keys were fetched and when they expire (clock time).
    fetched_at: Duration,
    /// When the fetch that brought the keys started, and its number.
    fetch_started: Duration,
    loaded_by: u64,
    expires_at: Duration,
    /// The JWKS URL learnt from discovery.
    jwks_url: Option<Url>,
    /// When the last fetch started, successful or not (for the cooldown).
    last_attempt: Option<Duration>,
    /// No new attempt before this (backoff after failures, counted from the failed fetch's start).
    retry_at: Duration,
    failures: u32,
    last_error: Option<KeysError>,
    /// The fetch running now, if any: every caller that needs it waits on this one.
    inflight: Option<Inflight>,
    /// Counts fetches started, so that a finished fetch clears only its own `inflight`.
    started: u64,
}

/// A fetch in flight: when it started, and its end (published once it has stored its outcome).
#[derive(Clone)]
struct Inflight {
    id: u64,
    started: Duration,
    done: Flight<()>,
}

impl RemoteKeySet {
    pub(crate) fn builder_discovery(
        issuer: &str,
        discovery_url: Option<&str>,
        jwks_override: Option<&str>,
        http: HttpSettings,
    ) -> Result<Pending, ConfigError> {
        let insecure = http.allow_insecure_http;
        let url = crate::fetch::parse_url(
            discovery_url.unwrap_or(&discovery::discovery_url(issuer)),
            insecure,
        )?;
        let jwks_override = jwks_override
            .map(|u| crate::fetch::parse_url(u, insecure))
            .transpose()?;
        // The fetch bearer token goes only where the user pointed us, never to a `jwks_uri` that the
        // discovery document advertises on another host.
        let origins = std::iter::once(&url).chain(&jwks_override).map(Url::origin);
        let fetcher = Fetcher::new(http.with_authorization_origins(origins))?;
        Ok(Pending {
            source: Source::Discovery {
                issuer: issuer.to_owned(),
                url,
                jwks_override,
            },
            fetcher,
        })
    }

    pub(crate) fn builder_jwks(url: &str, http: HttpSettings) -> Result<Pending, ConfigError> {
        let url = crate::fetch::parse_url(url, http.allow_insecure_http)?;
        let fetcher = Fetcher::new(http.with_authorization_origins([url.origin()]))?;
        Ok(Pending {
            source: Source::Jwks(url),
            fetcher,
        })
    }

    /// Fetches the keys now if none are loaded: a warm-up before serving. Verification works without
    /// it (the first token triggers the fetch), and a failure here is not fatal: later requests retry.
    pub(crate) async fn ready(&self) -> Result<(), KeysError> {
        match self.current() {
            Some(_) => Ok(()),
            None => self.refresh_inner().await.map(|_| ()),
        }
    }

    /// Loads the keys in the background until they are loaded: one fetch now, then one each time
    /// the backoff allows after a failure. Each attempt is this key set's own fetch, shared with any
    /// request that arrives meanwhile and logged once by [`store`](Self::store) (ERROR with the fix,
    /// or WARN): no retry schedule or log line of its own. The task holds the key set weakly, so it
    /// ends when the key set is dropped.
    fn spawn_warm_up(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            static OUTSIDE: log_limit::LogLimiter = log_limit::LogLimiter::new();
            if let Some(suppressed) = OUTSIDE.allow(log_limit::PERIOD) {
                tracing::error!(
                    suppressed,
                    "warm_up called outside a Tokio runtime: nothing is loaded until the first \
                     request; call it from within the runtime that serves requests"
                );
            }
            return;
        };
        let set = Arc::downgrade(&self.shared);
        runtime.spawn(async move {
            loop {
                let Some(shared) = set.upgrade() else { return };
                let set = RemoteKeySet { shared };
                if set.ready().await.is_ok() {
                    return;
                }
                // The key set's own backoff: no fetch is allowed before `retry_at` (a fetch that
                // outlasted its backoff may be retried at once).
                let wait = set.read().retry_at.saturating_sub(set.now());
                drop(set);
                tokio::time::sleep(wait).await;
            }
        });
    }

    fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the cooldown and the backoff next allow a fetch.
    fn next_fetch_at(&self, state: &State) -> Duration {
        let cooled = state.last_attempt.map_or(Duration::ZERO, |t| {
            t.saturating_add(self.shared.settings.cooldown)
        });
        cooled.max(state.retry_at)
    }

    /// Newer keys for a caller that found a `kid` missing (or no keys at all): joins the fetch in
    /// flight, starts one if the cooldown and backoff allow, or else answers with the keys we have
    /// and when the next fetch may start.
    async fn refresh_inner(&self) -> Result<Refresh, KeysError> {
        let arrived = self.now();
        let wait = {
            let state = self.read();
            match self.decide(&state, arrived) {
                Decision::Answer(answer) => return answer,
                Decision::Wait(inflight) => Some(inflight),
                Decision::Start => None,
            }
        };
        let inflight = match wait {
            Some(inflight) => inflight,
            None => {
                // Decided under the read lock; decided again under the write lock, where the fetch
                // starts, so that concurrent callers start one fetch.
                let mut state = self.write();
                match self.decide(&state, arrived) {
                    Decision::Answer(answer) => return answer,
                    Decision::Wait(inflight) => inflight,
                    Decision::Start => {
                        let (inflight, task) = self.start_fetch(&mut state, arrived)?;
                        drop(state);
                        task.spawn();
                        inflight
                    }
                }
            }
        };
        // Err only if the task ended without publishing (its runtime shut down): its `on_end`
        // cleared `inflight` and recorded the failure, so the state below is still the answer.
        let _ = inflight.done.clone().outcome().await;
        let now = self.now();
        let state = self.read();
        match usable(&state, now, &self.shared.settings) {
            Some(keys) => {
                // A fetch that started before this caller arrived could not bring a key published
                // since, and a failed one brought nothing: the caller may be told to come back when
                // the next fetch is allowed.
                let brought = state.loaded_by >= inflight.id;
                let retry_after = (inflight.started < arrived || !brought)
                    .then(|| self.next_fetch_at(&state).saturating_sub(now));
                Ok(Refresh {
                    keys,
                    retry_after,
                    keys_as_of: Some(state.fetch_started),
                })
            }
            // This caller saw the attempt: its own error, not a `Backoff` wrapping it.
            None if state.keys.is_none() => Err(state
                .last_error
                .clone()
                .unwrap_or_else(|| unavailable(&state, now))),
            None => Err(unavailable(&state, now)),
        }
    }

    fn decide(&self, state: &State, now: Duration) -> Decision {
        if let Some(inflight) = &state.inflight {
            return Decision::Wait(inflight.clone());
        }
        let next = self.next_fetch_at(state);
        match usable(state, now, &self.shared.settings) {
            // An unknown kid: at most one fetch per cooldown window (and none while backing off).
            Some(keys) if now < next => Decision::Answer(Ok(Refresh {
                keys,
                retry_after: Some(next - now),
                keys_as_of: Some(state.fetch_started),
            })),
            None if now < state.retry_at => Decision::Answer(Err(unavailable(state, now))),
            _ => Decision::Start,
        }
    }

    /// Marks a fetch in flight on the current Tokio runtime, recording its start (the cooldown and
    /// the backoff count from here). Called with the state locked for writing and no fetch in
    /// flight; the caller releases the lock, then [spawns](FetchTask::spawn) the task: on a runtime
    /// that is shutting down, `spawn` drops the task at once, and its end takes the lock.
    fn start_fetch(
        &self,
        state: &mut State,
        now: Duration,
    ) -> Result<(Inflight, FetchTask), KeysError> {
        let id = state.started + 1;
        let set = self.clone();
        // Nothing is recorded without a runtime: a later call from inside one may fetch at once.
        let launch = self
            .shared
            .flights
            .prepare(move |ending| set.end_fetch(id, now, ending))
            .map_err(KeysError::Flight)?;
        state.started = id;
        let inflight = Inflight {
            id,
            started: now,
            done: launch.flight(),
        };
        state.inflight = Some(inflight.clone());
        state.last_attempt = Some(now);
        let task = FetchTask {
            set: self.clone(),
            id,
            started: now,
            launch,
        };
        Ok((inflight, task))
    }

    /// The end of fetch `id`, however it ended: a fetch dropped before it stored its outcome (its
    /// runtime shut down) is recorded as a failure, so that the next one waits for the backoff;
    /// then the fetch is no longer in flight.
    fn end_fetch(&self, id: u64, started: Duration, ending: Ending) {
        if ending == Ending::Interrupted {
            self.store(
                id,
                started,
                Err(KeysError::Fetch {
                    url: String::new(),
                    source: FetchError::Transport {
                        message: "the key fetch was cancelled: its Tokio runtime shut down".into(),
                    },
                }),
            );
        }
        let mut state = self.write();
        if state.inflight.as_ref().is_some_and(|f| f.id == id) {
            state.inflight = None;
        }
    }

    /// Stores a fetch's outcome and logs it (once per attempt: attempts are paced by the cooldown and
    /// the backoff, so an outage or a misconfiguration cannot flood the logs).
    fn store(&self, id: u64, started: Duration, result: Result<(Jwks, Duration, Url), KeysError>) {
        let shared = &self.shared;
        let now = self.now();
        let label = self.metrics_label();
        crate::metrics::key_fetch(label, result.as_ref().map(|_| ()));
        let mut state = self.write();
        match result {
            Ok((keys, ttl, jwks_url)) => {
                crate::metrics::key_set_fetched(label, now);
                // Once at INFO when the first keys arrive (what an operator waits for at start,
                // with or without `warm_up`), and when they arrive again after failures.
                if state.keys.is_none() {
                    tracing::info!(
                        issuer = label,
                        keys = keys.len(),
                        failures = state.failures,
                        "issuer keys loaded"
                    );
                } else if state.failures > 0 {
                    tracing::info!(
                        keys = keys.len(),
                        failures = state.failures,
                        "issuer keys loaded again after failed fetches"
                    );
                }
                tracing::debug!(
                    keys = keys.len(),
                    skipped = keys.skipped(),
                    ttl_secs = ttl.as_secs(),
                    "fetched JWKS"
                );
                let keys = Arc::new(keys);
                state.keys = Some(keys);
                state.fetched_at = now;
                state.fetch_started = started;
                state.loaded_by = id;
                state.expires_at = now.saturating_add(ttl);
                state.jwks_url = Some(jwks_url);
                state.failures = 0;
                state.retry_at = started;
                state.last_error = None;
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                state.retry_at = started.saturating_add(shared.settings.backoff(state.failures));
                // Re-discover next time: the JWKS URL may have moved.
                state.jwks_url = None;
                let retry_in = state.retry_at.saturating_sub(now).as_secs();
                let failures = state.failures;
                // Honest wording: whether we still serve with older keys, and how old.
                let age = now.saturating_sub(state.fetched_at).as_secs();
                let keys = match (&state.keys, usable(&state, now, &shared.settings)) {
                    (None, _) => "no keys loaded yet".to_owned(),
                    (Some(_), Some(_)) => format!("keeping keys loaded {age} s ago"),
                    (Some(_), None) => {
                        format!("keys loaded {age} s ago are past their maximum staleness")
                    }
                };
                if error.is_configuration() {
                    let issuer = match &shared.source {
                        Source::Discovery { issuer, .. } => Some(issuer.as_str()),
                        Source::Jwks(_) => None,
                    };
                    let fix = error.hint(issuer);
                    tracing::error!(code = error.code(), %error, failures, retry_in_secs = retry_in, "cannot load the issuer's keys: a configuration error; {fix} ({keys})");
                } else {
                    tracing::warn!(code = error.code(), %error, failures, retry_in_secs = retry_in, "cannot load the issuer's keys ({keys})");
                }
                state.last_error = Some(error);
            }
        }
    }

    /// The issuer (or, without discovery, the JWKS URL) this key set was configured with: a bounded
    /// metrics label, never anything a token says.
    fn metrics_label(&self) -> &str {
        match &self.shared.source {
            Source::Discovery { issuer, .. } => issuer,
            Source::Jwks(url) => url.as_str(),
        }
    }

    async fn fetch(&self, known_jwks_url: Option<Url>) -> Result<(Jwks, Duration, Url), KeysError> {
        let shared = &self.shared;
        let jwks_url = match (&shared.source, known_jwks_url) {
            (Source::Jwks(url), _) => url.clone(),
            (Source::Discovery { .. }, Some(url)) => url,
            (
                Source::Discovery {
                    issuer,
                    url,
                    jwks_override,
                },
                None,
            ) => {
                let advertised = discovery::discover(&shared.fetcher, url, issuer).await?.1;
                // An override still goes through discovery, which checks the issuer: inside a
                // cluster, keys come from the API server whatever URL the document advertises.
                jwks_override.clone().unwrap_or(advertised)
            }
        };
        let fetched = shared.fetcher.get(&jwks_url).await?;
        let jwks = Jwks::parse(&fetched.body).map_err(|message| KeysError::InvalidDocument {
            url: jwks_url.to_string(),
            message,
        })?;
        if jwks.skipped() > 0 {
            // Once per load (loads are paced by the cache), at WARN: an operator must learn which of
            // the issuer's keys will never be accepted, and why (RFC 7517 §4.2/§4.3, RFC 7518 §3.3…).
            let kept: Vec<String> = jwks
                .skipped_keys()
                .iter()
                .map(ToString::to_string)
                .collect();
            tracing::warn!(
                url = %jwks_url,
                skipped = jwks.skipped(),
                usable = jwks.len(),
                keys = %kept.join("; "),
                "JWKS keys skipped as unusable"
            );
        }
        if jwks.is_empty() {
            return Err(KeysError::NoUsableKeys {
                url: jwks_url.to_string(),
                skipped: jwks.skipped(),
            });
        }
        Ok((jwks, shared.settings.ttl(fetched.max_age), jwks_url))
    }

    /// Whether the keys are due for a background refresh: three quarters of their lifetime have
    /// passed (so no request meets expired keys), and no fetch is running or forbidden by the backoff.
    fn refresh_due(state: &State, now: Duration) -> bool {
        let lifetime = state.expires_at.saturating_sub(state.fetched_at);
        let due = state.fetched_at.saturating_add(lifetime.mul_f64(0.75));
        now >= due && now >= state.retry_at && state.inflight.is_none()
    }

    /// Starts a background refresh if one is still due (checked again under the write lock). Without
    /// a Tokio runtime, none starts: the keys are served until their maximum staleness.
    fn refresh_in_background(&self, now: Duration) {
        let task = {
            let mut state = self.write();
            Self::refresh_due(&state, now)
                .then(|| self.start_fetch(&mut state, now).ok())
                .flatten()
        };
        if let Some((_, task)) = task {
            task.spawn();
        }
    }
}

enum Decision {
    Answer(Result<Refresh, KeysError>),
    Wait(Inflight),
    Start,
}

/// A fetch marked in flight, to be spawned once the state's lock is released.
struct FetchTask {
    set: RemoteKeySet,
    id: u64,
    started: Duration,
    launch: Launch<()>,
}

impl FetchTask {
    fn spawn(self) {
        let Self {
            set,
            id,
            started,
            launch,
        } = self;
        launch.spawn(async move {
            let known_jwks_url = set.read().jwks_url.clone();
            let result = set.fetch(known_jwks_url).await;
            set.store(id, started, result);
        });
    }
}

/// The keys if they are within their lifetime plus the maximum staleness.
fn usable(state: &State, now: Duration, settings: &KeyCacheSettings) -> Option<Arc<Jwks>> {
    let keys = state.keys.as_ref()?;
    (now < state.expires_at.saturating_add(settings.max_stale)).then(|| keys.clone())
}

fn unavailable(state: &State, now: Duration) -> KeysError {
    if state.keys.is_some() {
        return KeysError::Stale {
            age: now.saturating_sub(state.fetched_at),
        };
    }
    match &state.last_error {
        Some(e) if now < state.retry_at => KeysError::Backoff {
            last: Box::new(e.clone()),
        },
        Some(e) => e.clone(),
        None => KeysError::Backoff {
            last: Box::new(KeysError::Fetch {
                url: String::new(),
                source: FetchError::Transport {
                    message: "no fetch attempted yet".into(),
                },
            }),
        },
    }
}

impl KeySet for RemoteKeySet {
    fn current(&self) -> Option<Arc<Jwks>> {
        let now = self.now();
        let (keys, due) = {
            let state = self.read();
            let keys = usable(&state, now, &self.shared.settings)?;
            (keys, Self::refresh_due(&state, now))
        };
        if due {
            self.refresh_in_background(now);
        }
        Some(keys)
    }

    fn refresh(&self) -> impl Future<Output = Result<Refresh, KeysError>> + Send {
        self.refresh_inner()
    }

    fn warm_up(&self) {
        self.spawn_warm_up();
    }
}

impl fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("source", &self.shared.source)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

/// A remote key set whose source is known, waiting for its clock and cache settings.
pub(crate) struct Pending {
    source: Source,
    fetcher: Fetcher,
}

impl Pending {
    pub(crate) fn build(self, clock: SharedClock, settings: KeyCacheSettings) -> RemoteKeySet {
        RemoteKeySet {
            shared: Arc::new(Shared {
                source: self.source,
                fetcher: self.fetcher,
                clock,
                settings,
                state: RwLock::new(State::default()),
                flights: FlightGroup::new(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_follows_max_age_within_bounds() {
        let s = KeyCacheSettings::default();
        assert_eq!(s.ttl(None), Duration::from_secs(600));
        assert_eq!(s.ttl(Some(Duration::from_secs(5))), Duration::from_secs(60));
        assert_eq!(
            s.ttl(Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            s.ttl(Some(Duration::from_secs(10 * 86400))),
            Duration::from_secs(86400)
        );
    }

    /// A fetch started on a runtime that is shutting down: tokio drops the task's future inside
    /// `spawn`, whose guard then stores a failure, which takes the state's lock. Started with that
    /// lock held, this deadlocked the key set; now the call returns the failure, and later calls
    /// return too (a deadlock fails the test instead of hanging it).
    #[test]
    fn a_fetch_started_while_the_runtime_shuts_down_fails_and_later_calls_return() {
        use std::future::Future as _;
        use std::task::{Context, Poll, Waker};

        let set = RemoteKeySet::builder_jwks("http://127.0.0.1:1/jwks", HttpSettings::default())
            .unwrap()
            .build(
                Arc::new(crate::clock::ManualClock::new()),
                KeyCacheSettings::default(),
            );
        let (polled, current) = oidc_bearer_testing::harness::run_on_shut_down_runtime(move || {
            let mut polled = Vec::new();
            for _ in 0..2 {
                let mut refresh = std::pin::pin!(set.refresh());
                let poll = refresh
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()));
                polled.push(match poll {
                    Poll::Ready(result) => Some(result.map(|_| ()).map_err(|e| e.code())),
                    Poll::Pending => None,
                });
            }
            (polled, set.current().is_some())
        });
        // The cancelled fetch is a transport failure; the next call is within its backoff.
        assert_eq!(polled, [Some(Err("transport")), Some(Err("backoff"))]);
        assert!(!current);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = KeyCacheSettings::default();
        let secs: Vec<u64> = (1..=9).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(60));
    }
}
