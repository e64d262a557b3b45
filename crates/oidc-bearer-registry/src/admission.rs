//! Admission of new pattern issuers: probation ([`Trial`]), the new-issuer rate ([`Bucket`]), the
//! probation slot held while an issuer is built ([`Reservation`]), and promotion to the proven set
//! with least-recently-used eviction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oidc_bearer_shared::clock::AtomicTime;

use super::{Inner, IssuerRegistry, Live, Selected, State};
use oidc_bearer::__private::Excerpt;
use oidc_bearer::VerifierBuilder;
use oidc_bearer::{ConfigError, VerifyError};

/// One verification by an issuer on probation. When the last running one ends without proving or
/// failing the issuer (its token was refused before the keys were needed, or the request was
/// cancelled), the issuer leaves probation (nothing negative is remembered), so an abandoned
/// verification never holds a slot; and if none of them asked for the issuer's keys, the
/// admission is given back, since nothing was fetched for it.
pub(super) struct Trial {
    inner: Arc<Inner>,
    pub(super) issuer: String,
    pub(super) live: Arc<Live>,
    /// Set when this verification was refused before it asked for the keys; a trial that ends
    /// without it (cancelled, say) may have started a fetch.
    before_keys: AtomicBool,
}

impl Trial {
    /// Joins the trial of `live`; called with the state locked (read or write), so that the count
    /// cannot change between `Drop`'s decrement and its look at `pending` (done under the write lock).
    pub(super) fn join(inner: &Arc<Inner>, issuer: &str, live: &Arc<Live>) -> Self {
        live.trials.fetch_add(1, Ordering::AcqRel);
        Self {
            inner: inner.clone(),
            issuer: issuer.to_owned(),
            live: live.clone(),
            before_keys: AtomicBool::new(false),
        }
    }

    /// Records that this verification was refused before it asked for the issuer's keys.
    pub(super) fn ended_before_keys(&self) {
        self.before_keys.store(true, Ordering::Relaxed);
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        let mut state = self.inner.write();
        if !self.before_keys.load(Ordering::Relaxed) {
            self.live.asked_keys.store(true, Ordering::Relaxed);
        }
        let last = self.live.trials.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && is_pending(&state, &self.issuer, &self.live) {
            state.pending.remove(&self.issuer);
            oidc_bearer::__private::registry_issuers(state.proven.len(), state.pending.len());
            // Read under the write lock that every trial's drop takes: no trial can set it later.
            let asked_keys = self.live.asked_keys.load(Ordering::Relaxed);
            if !asked_keys {
                let rate = self.inner.limits.rate;
                state.buckets[self.live.pattern].give_back(rate);
            }
            tracing::debug!(
                iss = ?Excerpt(&self.issuer),
                admission_given_back = !asked_keys,
                "issuer left probation undecided (keys never needed)"
            );
        }
    }
}

fn is_pending(state: &State, issuer: &str, live: &Arc<Live>) -> bool {
    state
        .pending
        .get(issuer)
        .is_some_and(|p| Arc::ptr_eq(p, live))
}

/// How fast new pattern issuers may be built.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
    pub(super) burst: u32,
    pub(super) interval: Duration,
}

/// A token bucket: `burst` tokens, one more every `interval`, read against the registry's clock.
#[derive(Clone)]
pub(super) struct Bucket {
    tokens: u32,
    /// When tokens were last added (`None` until first used).
    refilled: Option<Duration>,
}

impl Bucket {
    pub(super) fn full(rate: Rate) -> Self {
        Self {
            tokens: rate.burst,
            refilled: None,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Duration, rate: Rate) -> bool {
        let refilled = *self.refilled.get_or_insert(now);
        // A clock moved backwards adds nothing.
        let periods = now.saturating_sub(refilled).as_nanos() / rate.interval.as_nanos().max(1);
        if periods > 0 {
            let tokens = u128::from(self.tokens) + periods;
            match (u32::try_from(tokens), u32::try_from(periods)) {
                (Ok(tokens), Ok(periods)) if tokens < rate.burst => {
                    self.tokens = tokens;
                    // Keep the fraction of a period already elapsed.
                    self.refilled = Some(refilled + rate.interval * periods);
                }
                _ => {
                    self.tokens = rate.burst;
                    self.refilled = Some(now);
                }
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Returns a token taken for nothing (up to the burst).
    fn give_back(&mut self, rate: Rate) {
        self.tokens = self.tokens.saturating_add(1).min(rate.burst);
    }
}

/// A pattern issuer being built: the probation slot of its pattern that it holds, and the gate
/// other first requests for it wait on.
pub(super) struct Building {
    pattern: usize,
    gate: Arc<Mutex<()>>,
}

impl State {
    /// The probation slots of pattern `pattern` in use: its issuers on probation or being built.
    /// A scan, as bounded as probation itself, paid only by a new issuer that passed the keyless
    /// rules.
    fn probation_of(&self, pattern: usize) -> usize {
        let pending = self.pending.values().filter(|l| l.pattern == pattern);
        let building = self.building.values().filter(|b| b.pattern == pattern);
        pending.count() + building.count()
    }
}

impl IssuerRegistry {
    /// Puts a new issuer of pattern `pattern` on probation, if a slot and the rate limit of that
    /// pattern allow.
    ///
    /// Our own hardening, not from a standard (go-oidc has no registry and so no such limit): the
    /// `iss` that leads here is unverified, so without these limits every made-up name would cost a
    /// verifier build and an outbound fetch. The limits are per pattern, so that the made-up names
    /// one pattern lets through (any cluster of a listed project, say) cannot starve another's.
    pub(super) fn admit(
        &self,
        iss: &str,
        pattern: usize,
        builder: VerifierBuilder,
        now: Duration,
    ) -> Result<Selected, VerifyError> {
        let inner = &*self.inner;
        let refuse = |limit: &'static str| {
            tracing::debug!(iss = ?Excerpt(iss), limit, "new issuer refused: too many new issuers");
            VerifyError::TooManyNewIssuers { limit }
        };
        let gate = Arc::new(Mutex::new(()));
        let building = gate.lock().unwrap_or_else(PoisonError::into_inner);
        let reservation = {
            let mut state = inner.write();
            // Another request may have admitted it meanwhile.
            if let Some(known) = self.known(&state, iss, now) {
                return known;
            }
            if let Some(other) = state.building.get(iss).map(|b| b.gate.clone()) {
                // Another request is building this issuer: wait for it (milliseconds, once per
                // issuer) instead of taking a second slot and rate-limit token for the same name.
                drop(state);
                drop(other.lock().unwrap_or_else(PoisonError::into_inner));
                if let Some(known) = self.known(&inner.read(), iss, now) {
                    return known;
                }
                // Its build failed without a negative entry: try again as a first request.
                return self.admit(iss, pattern, builder, now);
            }
            if state.probation_of(pattern) >= inner.limits.max_pending {
                return Err(refuse("max_pending_issuers"));
            }
            if !state.buckets[pattern].take(now, inner.limits.rate) {
                return Err(refuse("new_issuer_rate"));
            }
            let gate = gate.clone();
            state
                .building
                .insert(iss.to_owned(), Building { pattern, gate });
            Reservation { inner, iss }
        };
        // Outside the lock: a build takes milliseconds (an HTTP client, TLS roots).
        let verifier = self.build(iss, builder)?;
        let mut state = inner.write();
        reservation.fill(&mut state);
        if let Some(known) = self.known(&state, iss, now) {
            return known;
        }
        let live = Arc::new(Live {
            verifier,
            pattern,
            last_used: AtomicTime::new(now),
            refuse_until: AtomicTime::new(Duration::ZERO),
            trials: AtomicUsize::new(0),
            asked_keys: AtomicBool::new(false),
        });
        state.pending.insert(iss.to_owned(), live.clone());
        oidc_bearer::__private::registry_issuers(state.proven.len(), state.pending.len());
        let trial = Trial::join(&self.inner, iss, &live);
        tracing::debug!(
            iss = ?Excerpt(iss),
            pending = state.pending.len(),
            "issuer on probation"
        );
        drop(state);
        // Waiting first requests for this issuer now find it on probation.
        drop(building);
        Ok(Selected::Pending(trial))
    }

    /// The refusal of a new issuer of pattern `pattern` whose policy is misconfigured. It is
    /// reported (an ERROR, a negative entry) only as fast as the pattern admits new issuers, as
    /// when such a policy failed its build after admission: made-up names must neither flood the
    /// log nor fill the negative cache, pushing out other issuers' entries, at their sender's pace.
    pub(super) fn misconfigured_pattern(
        &self,
        iss: &str,
        pattern: usize,
        error: &ConfigError,
        now: Duration,
    ) -> VerifyError {
        let inner = &*self.inner;
        let report = inner.write().buckets[pattern].take(now, inner.limits.rate);
        if report {
            return self.misconfigured(iss, error);
        }
        VerifyError::UntrustedIssuer {
            found: Some(iss.to_owned()),
        }
    }

    /// Moves an issuer from probation to the proven set, making room by evicting the proven issuer
    /// used least recently.
    pub(super) fn promote(&self, trial: &Trial) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut state = inner.write();
        if !is_pending(&state, &trial.issuer, &trial.live) {
            return; // proven or failed by a concurrent verification
        }
        state.pending.remove(&trial.issuer);
        while state.proven.len() >= inner.limits.max_live {
            evict_least_recently_used(&mut state.proven);
        }
        trial.live.last_used.store(now, Ordering::Relaxed);
        // Negatively cached meanwhile (by a verification on an earlier, evicted verifier of this
        // issuer): the full path refuses it until then, so the fast path must too.
        if let Some(negative) = state.negative.get(&trial.issuer) {
            trial
                .live
                .refuse_until
                .fetch_max(negative.until, Ordering::AcqRel);
        }
        state
            .proven
            .insert(trial.issuer.clone(), trial.live.clone());
        oidc_bearer::__private::registry_issuers(state.proven.len(), state.pending.len());
        tracing::debug!(iss = ?Excerpt(&trial.issuer), "issuer proven: keys loaded");
    }

    /// Takes an issuer whose keys could not be had off probation and negatively caches it, in one
    /// step, so that no request finds it in neither place and builds it again.
    pub(super) fn withdraw(&self, trial: &Trial, error: VerifyError) {
        let mut state = self.inner.write();
        if is_pending(&state, &trial.issuer, &trial.live) {
            state.pending.remove(&trial.issuer);
        }
        oidc_bearer::__private::registry_issuers(state.proven.len(), state.pending.len());
        // Off probation for good, unless a concurrent trial already proved this very issuer: then it
        // stays in use, and only the negative period below holds its fast path back.
        let proven = state
            .proven
            .get(&trial.issuer)
            .is_some_and(|p| Arc::ptr_eq(p, &trial.live));
        if !proven {
            trial
                .live
                .refuse_until
                .store(AtomicTime::NEVER, Ordering::Release);
        }
        self.remember_failure_in(&mut state, &trial.issuer, error);
    }
}

/// A probation slot held while its issuer is built; given back if the build fails (or panics).
struct Reservation<'a> {
    inner: &'a Inner,
    iss: &'a str,
}

impl Reservation<'_> {
    /// Gives the slot back as its issuer is inserted, under the caller's lock.
    fn fill(self, state: &mut State) {
        state.building.remove(self.iss);
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.inner.write().building.remove(self.iss);
    }
}

/// Drops the proven issuer used least recently. O(proven issuers): a scan rather than an LRU list, so
/// that a hit stays a read-locked hash lookup. Paid only when an issuer on probation is proven while
/// the proven set is full, which takes keys that really loaded from a trusted issuer and is paced by
/// the new-issuer rate limit; a flood of made-up issuers never gets here.
fn evict_least_recently_used(proven: &mut HashMap<String, Arc<Live>>) {
    let Some(oldest) = proven
        .iter()
        .min_by_key(|(_, live)| live.last_used.load(Ordering::Relaxed))
        .map(|(iss, _)| iss.clone())
    else {
        return;
    };
    tracing::debug!(iss = ?Excerpt(&oldest), "evicting idle issuer");
    if let Some(live) = proven.remove(&oldest) {
        live.refuse_until
            .store(AtomicTime::NEVER, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{example_pattern, lookup, proven, use_};
    use oidc_bearer::clock::ManualClock;

    #[test]
    fn the_least_recently_used_proven_issuer_makes_room() {
        let clock = ManualClock::at_unix(1_000);
        let registry = IssuerRegistry::builder()
            .with_pattern(example_pattern)
            .with_max_live_issuers(2)
            .with_clock(clock.clone())
            .build()
            .unwrap();
        let step = || clock.advance(Duration::from_secs(1));
        for iss in [
            "https://a.example",
            "https://b.example",
            "https://a.example",
        ] {
            use_(&registry, iss); // a is now the most recent
            step();
        }
        // On probation: evicts nothing, even with the proven set full.
        let c = lookup(&registry, "https://c.example", "RS256").unwrap();
        assert_eq!(
            proven(&registry),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(registry.pending_issuers(), 1);
        let Selected::Pending(trial) = &c else {
            panic!("c should be on probation")
        };
        registry.promote(trial); // evicts b
        assert_eq!(
            proven(&registry),
            ["https://a.example", "https://c.example"]
        );
        assert_eq!(registry.proven_issuers(), 2);
        assert_eq!(registry.pending_issuers(), 0);
    }

    #[test]
    fn an_issuer_whose_trials_all_end_undecided_leaves_probation() {
        let registry = IssuerRegistry::builder()
            .with_pattern(example_pattern)
            .build()
            .unwrap();
        let first = lookup(&registry, "https://a.example", "RS256").unwrap();
        let second = lookup(&registry, "https://a.example", "RS256").unwrap();
        assert_eq!(registry.pending_issuers(), 1);
        drop(first);
        assert_eq!(registry.pending_issuers(), 1, "one trial still runs");
        drop(second);
        assert_eq!(registry.pending_issuers(), 0);
        // `alg: none` is refused before anything is built.
        let err = lookup(&registry, "https://b.example", "none")
            .err()
            .unwrap();
        assert_eq!(err.code(), "unsupported_algorithm");
        assert_eq!(registry.pending_issuers(), 0);
    }

    /// A trial refused before it asked for the keys gives its admission back; one that may have
    /// asked (cancelled, or refused later) does not.
    #[test]
    fn an_undecided_trial_gives_its_admission_back_only_if_no_keys_were_asked() {
        let registry = IssuerRegistry::builder()
            .with_pattern(example_pattern)
            .with_new_issuer_rate(1, Duration::from_secs(3600))
            .build()
            .unwrap();
        let header_error = VerifyError::AlgorithmNotAllowed {
            alg: "ES256".into(),
        };
        for iss in ["https://a.example", "https://b.example"] {
            let selected = lookup(&registry, iss, "RS256").unwrap();
            registry.settle(iss, &selected, Some(&header_error));
            drop(selected);
            assert_eq!(registry.pending_issuers(), 0);
        }
        // Cancelled: it may have started a fetch, so the admission stays spent.
        drop(lookup(&registry, "https://c.example", "RS256").unwrap());
        let err = lookup(&registry, "https://d.example", "RS256")
            .err()
            .unwrap();
        assert_eq!(err.code(), "too_many_new_issuers");
    }

    #[test]
    fn the_bucket_refills_one_token_per_interval_up_to_the_burst() {
        let rate = Rate {
            burst: 3,
            interval: Duration::from_secs(10),
        };
        let mut bucket = Bucket::full(rate);
        let t = Duration::from_secs(1_000);
        let taken = |bucket: &mut Bucket, now| (0..5).filter(|_| bucket.take(now, rate)).count();
        assert_eq!(taken(&mut bucket, t), 3);
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(9)), 0);
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(25)), 2);
        // The half period left over from the 25 s counts.
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(30)), 1);
        assert_eq!(taken(&mut bucket, t + Duration::from_secs(3_600)), 3);
        // A clock moved backwards adds nothing.
        assert_eq!(taken(&mut bucket, t), 0);
    }
}
