//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`, off by
//! default): install any exporter (Prometheus, StatsD, OpenTelemetry) and these appear.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `oidc_bearer_requests_accepted_total` | counter | | requests the layer let through with claims |
//! | `oidc_bearer_requests_refused_total` | counter | `code` | requests the layer refused, by [`AuthRejection::code`](crate::rejection::AuthRejection::code) |
//! | `oidc_bearer_token_cache_hits_total` | counter | | verified-token cache hits |
//! | `oidc_bearer_token_cache_misses_total` | counter | | verified-token cache misses |
//! | `oidc_bearer_token_cache_evictions_total` | counter | | entries evicted to make room |
//! | `oidc_bearer_verify_duration_seconds` | histogram | | time of a verification that missed the token cache (parsing, keys, signature, claims) |
//! | `oidc_bearer_key_fetches_total` | counter | `issuer`, `outcome` | discovery + JWKS fetches: `ok` or the [`KeysError::code`](crate::KeysError::code) |
//! | `oidc_bearer_key_set_fetched_timestamp_seconds` | gauge | `issuer` | when the issuer's keys were last fetched (age = now − this) |
//! | `oidc_bearer_registry_issuers` | gauge | `state` = `proven`, `probation` | an issuer registry's pattern issuers |
//!
//! Labels are bounded: `code` and `outcome` are fixed strings of this library; `issuer` is an issuer
//! whose keys were fetched successfully in this process (so configured or proven, never a value an
//! attacker writes into a token's `iss`), at most 1,000 of them (later ones are labelled `other`), and
//! `unproven` otherwise. No label ever holds a `sub`, a `kid` or anything else taken from a token.
//!
//! Call [`register`] once after installing a global recorder: it describes the metrics and keeps
//! handles to them, so that a request costs an atomic add per metric instead of the facade's lookup
//! (a hash and a lock per increment: about 0.2 µs each with the Prometheus exporter, which would
//! double the cost of a cached request). Without it every metric still works.
//!
//! Without the feature every hook is an empty inline function.

#[cfg(feature = "metrics")]
use std::collections::HashSet;
#[cfg(feature = "metrics")]
use std::sync::RwLock;
use std::time::Duration;

/// The most distinct `issuer` label values; issuers proven after that are labelled `other`.
#[cfg(feature = "metrics")]
const MAX_ISSUER_LABELS: usize = 1000;

/// The codes a refusal can have: [`AuthRejection::code`](crate::rejection::AuthRejection::code),
/// each given a handle by [`register`]. Checked against every `VerifyError` variant by a test; a
/// code missing here is still counted, by the facade's slower lookup.
#[cfg(feature = "metrics")]
const REFUSAL_CODES: &[&str] = &[
    "missing_token",
    "invalid_request",
    "forbidden",
    "misconfigured",
    "token_too_large",
    "malformed",
    "unsupported_algorithm",
    "algorithm_not_allowed",
    "algorithm_key_mismatch",
    "unknown_key",
    "unknown_key_retry",
    "ambiguous_key",
    "unsupported_crit",
    "invalid_typ",
    "invalid_signature",
    "issuer_mismatch",
    "audience_mismatch",
    "missing_claim",
    "invalid_claim",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "claims_decode",
    "keys_unavailable",
    "untrusted_issuer",
    "too_many_new_issuers",
    "review_refused",
    "review_unavailable",
    "dpop_proof_missing",
    "dpop_multiple_proofs",
    "dpop_malformed",
    "dpop_invalid_typ",
    "dpop_algorithm_not_allowed",
    "dpop_invalid_key",
    "dpop_private_key",
    "dpop_invalid_signature",
    "dpop_missing_claim",
    "dpop_htm_mismatch",
    "dpop_htu_mismatch",
    "dpop_iat_out_of_window",
    "dpop_ath_mismatch",
    "dpop_jkt_mismatch",
    "dpop_replayed",
    "dpop_replay_memory_full",
    "use_dpop_nonce",
    "dpop_unbound_token",
    "dpop_bound_token_as_bearer",
    "dpop_required",
];

/// Handles to the metrics of the request path, registered once with the global recorder.
#[cfg(feature = "metrics")]
struct Handles {
    accepted: ::metrics::Counter,
    refused: Vec<(&'static str, ::metrics::Counter)>,
    hits: ::metrics::Counter,
    misses: ::metrics::Counter,
    evictions: ::metrics::Counter,
    verify_duration: ::metrics::Histogram,
}

#[cfg(feature = "metrics")]
static HANDLES: std::sync::OnceLock<Handles> = std::sync::OnceLock::new();

#[cfg(feature = "metrics")]
fn handles() -> Option<&'static Handles> {
    HANDLES.get()
}

/// Describes every metric to the installed recorder and keeps handles to those of the request path.
/// Call once, after installing a global recorder (`PrometheusBuilder::install_recorder` or the
/// like); later calls do nothing. Optional: without it the metrics work, a little more slowly.
pub fn register() {
    #[cfg(feature = "metrics")]
    {
        describe();
        HANDLES.get_or_init(|| Handles {
            accepted: ::metrics::counter!("oidc_bearer_requests_accepted_total"),
            refused: REFUSAL_CODES
                .iter()
                .map(|&code| {
                    let counter =
                        ::metrics::counter!("oidc_bearer_requests_refused_total", "code" => code);
                    (code, counter)
                })
                .collect(),
            hits: ::metrics::counter!("oidc_bearer_token_cache_hits_total"),
            misses: ::metrics::counter!("oidc_bearer_token_cache_misses_total"),
            evictions: ::metrics::counter!("oidc_bearer_token_cache_evictions_total"),
            verify_duration: ::metrics::histogram!("oidc_bearer_verify_duration_seconds"),
        });
    }
}

#[cfg(feature = "metrics")]
fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "oidc_bearer_requests_accepted_total",
        "Requests the bearer layer let through with verified claims."
    );
    describe_counter!(
        "oidc_bearer_requests_refused_total",
        "Requests the bearer layer refused, by reason code."
    );
    describe_counter!(
        "oidc_bearer_token_cache_hits_total",
        "Verified-token cache hits."
    );
    describe_counter!(
        "oidc_bearer_token_cache_misses_total",
        "Verified-token cache misses."
    );
    describe_counter!(
        "oidc_bearer_token_cache_evictions_total",
        "Verified-token cache entries evicted to make room."
    );
    describe_histogram!(
        "oidc_bearer_verify_duration_seconds",
        Unit::Seconds,
        "Time of verifications that missed the token cache."
    );
    describe_counter!(
        "oidc_bearer_key_fetches_total",
        "Key fetches (discovery and JWKS) by issuer and outcome."
    );
    describe_gauge!(
        "oidc_bearer_key_set_fetched_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the issuer's last successful key fetch."
    );
    describe_gauge!(
        "oidc_bearer_registry_issuers",
        "Pattern issuers of an issuer registry, proven or on probation."
    );
}

/// A request let through with claims (from the token cache or after verification).
#[inline]
pub(crate) fn request_accepted() {
    #[cfg(feature = "metrics")]
    match handles() {
        Some(h) => h.accepted.increment(1),
        None => ::metrics::counter!("oidc_bearer_requests_accepted_total").increment(1),
    }
}

/// A request refused, with the rejection's stable code.
#[inline]
pub(crate) fn request_refused(code: &'static str) {
    #[cfg(feature = "metrics")]
    match handles().and_then(|h| h.refused.iter().find(|(c, _)| *c == code)) {
        Some((_, counter)) => counter.increment(1),
        None => {
            ::metrics::counter!("oidc_bearer_requests_refused_total", "code" => code).increment(1)
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = code;
}

/// A verified-token cache hit.
#[inline]
pub(crate) fn token_cache_hit() {
    #[cfg(feature = "metrics")]
    match handles() {
        Some(h) => h.hits.increment(1),
        None => ::metrics::counter!("oidc_bearer_token_cache_hits_total").increment(1),
    }
}

/// A verified-token cache miss.
#[inline]
pub(crate) fn token_cache_miss() {
    #[cfg(feature = "metrics")]
    match handles() {
        Some(h) => h.misses.increment(1),
        None => ::metrics::counter!("oidc_bearer_token_cache_misses_total").increment(1),
    }
}

/// A verified-token cache entry evicted to make room.
#[inline]
pub(crate) fn token_cache_eviction() {
    #[cfg(feature = "metrics")]
    match handles() {
        Some(h) => h.evictions.increment(1),
        None => ::metrics::counter!("oidc_bearer_token_cache_evictions_total").increment(1),
    }
}

/// Times a verification that missed the token cache; records when dropped (so a verification that
/// returns early, fails or is abandoned while waiting for keys is timed too).
pub(crate) struct VerifyTimer {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl VerifyTimer {
    /// Starts timing.
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for VerifyTimer {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed().as_secs_f64();
        match handles() {
            Some(h) => h.verify_duration.record(elapsed),
            None => ::metrics::histogram!("oidc_bearer_verify_duration_seconds").record(elapsed),
        }
    }
}

/// The issuers that may appear as a label: those whose keys were fetched successfully.
#[cfg(feature = "metrics")]
static PROVEN_ISSUERS: RwLock<Option<HashSet<String>>> = RwLock::new(None);

/// The `issuer` label for `issuer`: itself once proven (a successful fetch, `proves`), `unproven`
/// before, `other` past `MAX_ISSUER_LABELS`. An issuer registry's pattern can make a verifier
/// for any `iss` a token names; only a fetch that succeeded shows the issuer is real (and trusted by
/// the pattern), so only then may its name become a label value.
#[cfg(feature = "metrics")]
fn issuer_label(issuer: &str, proves: bool) -> String {
    let known = |set: &Option<HashSet<String>>| set.as_ref().is_some_and(|s| s.contains(issuer));
    if known(&PROVEN_ISSUERS.read().unwrap_or_else(|e| e.into_inner())) {
        return issuer.to_owned();
    }
    if !proves {
        return "unproven".to_owned();
    }
    let mut set = PROVEN_ISSUERS.write().unwrap_or_else(|e| e.into_inner());
    let set = set.get_or_insert_with(HashSet::new);
    if set.len() >= MAX_ISSUER_LABELS && !set.contains(issuer) {
        return "other".to_owned();
    }
    set.insert(issuer.to_owned());
    issuer.to_owned()
}

/// A key fetch (discovery and JWKS, as one) for `issuer` ended: `Ok` or its error. To be called by
/// the remote key set once per fetch attempt, with the issuer (or, without discovery, the JWKS URL)
/// it was configured with.
#[inline]
pub(crate) fn key_fetch(issuer: &str, result: Result<(), &crate::KeysError>) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match result {
            Ok(()) => "ok",
            Err(e) => e.code(),
        };
        let issuer = issuer_label(issuer, result.is_ok());
        ::metrics::counter!("oidc_bearer_key_fetches_total", "issuer" => issuer, "outcome" => outcome)
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, result);
}

/// The keys of `issuer` were fetched successfully at `fetched_at` (time since the Unix epoch, from
/// the key set's clock). To be called by the remote key set when it stores fetched keys.
#[inline]
pub(crate) fn key_set_fetched(issuer: &str, fetched_at: Duration) {
    #[cfg(feature = "metrics")]
    {
        let issuer = issuer_label(issuer, true);
        ::metrics::gauge!("oidc_bearer_key_set_fetched_timestamp_seconds", "issuer" => issuer)
            .set(fetched_at.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, fetched_at);
}

#[cfg(test)]
#[cfg(feature = "metrics")]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    /// Runs `f` with a Prometheus recorder of its own and returns the rendered text.
    fn rendered(f: impl FnOnce()) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, f);
        handle.render()
    }

    #[test]
    fn an_issuer_becomes_a_label_only_once_its_keys_were_fetched() {
        let unavailable = crate::KeysError::Fetch {
            url: "https://x".into(),
            source: crate::FetchError::Status { status: 503 },
        };
        let text = rendered(|| {
            key_fetch("https://attacker.example/1", Err(&unavailable));
            key_fetch("https://attacker.example/2", Err(&unavailable));
            key_fetch("https://real.example", Ok(()));
            key_fetch("https://real.example", Err(&unavailable));
            key_set_fetched("https://real.example", Duration::from_secs(1_700_000_000));
        });
        assert!(
            text.contains(
                r#"oidc_bearer_key_fetches_total{issuer="unproven",outcome="http_status"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"oidc_bearer_key_fetches_total{issuer="https://real.example",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"oidc_bearer_key_fetches_total{issuer="https://real.example",outcome="http_status"} 1"#), "{text}");
        assert!(text.contains(r#"oidc_bearer_key_set_fetched_timestamp_seconds{issuer="https://real.example"} 1700000000"#), "{text}");
        assert!(!text.contains("attacker"), "{text}");
    }

    #[test]
    fn every_refusal_code_has_a_registered_handle() {
        use crate::error::DpopError;
        use crate::rejection::AuthRejection;
        let errors = crate::error::tests::one_of_each();
        let rejections = errors.into_iter().map(AuthRejection::from_verify).chain([
            AuthRejection::MissingToken,
            AuthRejection::Forbidden {
                reason: String::new(),
                scope: None,
            },
            AuthRejection::InvalidRequest(crate::bearer::BearerError::EmptyToken),
            AuthRejection::Misconfigured(String::new()),
        ]);
        let s = String::new;
        let dpop = [
            DpopError::MissingProof,
            DpopError::MultipleProofs,
            DpopError::Malformed { reason: "" },
            DpopError::InvalidType { found: None },
            DpopError::AlgorithmNotAllowed { alg: s() },
            DpopError::InvalidKey { reason: s() },
            DpopError::PrivateKey,
            DpopError::InvalidSignature,
            DpopError::MissingClaim { claim: "" },
            DpopError::MethodMismatch {
                expected: s(),
                found: s(),
            },
            DpopError::UriMismatch {
                expected: s(),
                found: s(),
            },
            DpopError::IssuedAtOutOfWindow { iat: 0, now: 0 },
            DpopError::AccessTokenHashMismatch,
            DpopError::KeyMismatch,
            DpopError::Replayed,
            DpopError::ReplayMemoryFull,
            DpopError::UseNonce { nonce: s() },
            DpopError::UnboundToken,
            DpopError::BoundTokenAsBearer,
            DpopError::DpopRequired,
        ];
        // Exhaustive: a new variant must be listed above (and get a handle).
        for error in &dpop {
            match error {
                DpopError::MissingProof
                | DpopError::MultipleProofs
                | DpopError::Malformed { .. }
                | DpopError::InvalidType { .. }
                | DpopError::AlgorithmNotAllowed { .. }
                | DpopError::InvalidKey { .. }
                | DpopError::PrivateKey
                | DpopError::InvalidSignature
                | DpopError::MissingClaim { .. }
                | DpopError::MethodMismatch { .. }
                | DpopError::UriMismatch { .. }
                | DpopError::IssuedAtOutOfWindow { .. }
                | DpopError::AccessTokenHashMismatch
                | DpopError::KeyMismatch
                | DpopError::Replayed
                | DpopError::ReplayMemoryFull
                | DpopError::UseNonce { .. }
                | DpopError::UnboundToken
                | DpopError::BoundTokenAsBearer
                | DpopError::DpopRequired => {}
            }
        }
        let rejections = rejections.chain(dpop.into_iter().map(AuthRejection::Dpop));
        for rejection in rejections {
            assert!(
                REFUSAL_CODES.contains(&rejection.code()),
                "{}",
                rejection.code()
            );
        }
    }

    #[test]
    fn refusals_are_counted_by_code() {
        let text = rendered(|| {
            request_refused("expired");
            request_refused("expired");
            request_refused("invalid_signature");
            request_accepted();
            crate::__private::registry_issuers(3, 1);
        });
        assert!(
            text.contains(r#"oidc_bearer_requests_refused_total{code="expired"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"oidc_bearer_requests_refused_total{code="invalid_signature"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("oidc_bearer_requests_accepted_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"oidc_bearer_registry_issuers{state="probation"} 1"#),
            "{text}"
        );
    }
}
