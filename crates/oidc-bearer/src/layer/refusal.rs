//! [`refuse`]: the one place a refusal becomes a response, is counted and is logged — for the bearer
//! layer, the policy layers and the `Claims` extractor's "wired wrong" answer alike.

use http::Response;
use oidc_bearer_shared::log_limit::{LogLimiter, PERIOD};

use crate::rejection::{AuthRejection, RejectionResponse};

/// Builds the response for `reason` with `rejection`, puts the reason into its extensions, counts
/// it (`oidc_bearer_requests_refused_total`) and traces it (never the token).
///
/// The lines are rate-limited (one per 10 s per kind, with the count of those suppressed): callers
/// choose how often this runs, and a flood of bad tokens must not fill a disk. The typed reason is
/// in every response's extensions whatever the logging does. A server wired wrong
/// ([`AuthRejection::Misconfigured`]) is logged at ERROR with the fix; a service that cannot verify
/// now at WARN; a refused token or policy at INFO; a request without credentials at DEBUG only
/// (browsers and probes send those all the time).
pub(crate) fn refuse<B, R: RejectionResponse<B>>(
    rejection: &R,
    reason: AuthRejection,
) -> Response<B> {
    static UNAVAILABLE: LogLimiter = LogLimiter::new();
    static REJECTED: LogLimiter = LogLimiter::new();
    static FORBIDDEN: LogLimiter = LogLimiter::new();
    static MISCONFIGURED: LogLimiter = LogLimiter::new();
    match &reason {
        AuthRejection::MissingToken => {
            tracing::debug!(
                code = reason.code(),
                "request without bearer token rejected"
            );
        }
        AuthRejection::Unavailable(error) => {
            if tracing::enabled!(tracing::Level::WARN)
                && let Some(suppressed) = UNAVAILABLE.allow(PERIOD)
            {
                tracing::warn!(code = reason.code(), %error, suppressed, "token not verifiable now (503)");
            }
        }
        AuthRejection::Misconfigured(fix) => {
            if let Some(suppressed) = MISCONFIGURED.allow(PERIOD) {
                tracing::error!(suppressed, "{fix}");
            }
        }
        other => {
            let (limiter, message) = match other {
                AuthRejection::Forbidden { .. } => (&FORBIDDEN, "request refused by policy"),
                _ => (&REJECTED, "bearer token rejected"),
            };
            if tracing::enabled!(tracing::Level::INFO)
                && let Some(suppressed) = limiter.allow(PERIOD)
            {
                tracing::info!(code = other.code(), status = other.status().as_u16(), reason = %other, suppressed, "{message}");
            }
        }
    }
    crate::metrics::request_refused(reason.code());
    let mut response = rejection.response(&reason);
    response.extensions_mut().insert(reason);
    response
}

#[cfg(test)]
mod tests {
    /// Refusals by a policy and the extractor's "wired wrong" answer go the bearer layer's way:
    /// counted by code, the reason in the response's extensions.
    #[cfg(all(feature = "metrics", feature = "axum"))]
    #[test]
    fn policy_and_extractor_refusals_are_counted_by_code() {
        use std::convert::Infallible;
        use std::sync::Arc;

        use axum::response::IntoResponse as _;
        use tower::{Layer as _, Service as _, service_fn};

        use crate::claims::DefaultClaims;
        use crate::layer::Claims;
        use crate::rejection::AuthRejection;

        let mut service = crate::policy::AuthorizeLayer::new(crate::policy::subjects(["alice"]))
            .layer(service_fn(|_: http::Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(String::new()))
            }));
        let bob: DefaultClaims =
            serde_json::from_value(serde_json::json!({"iss": "https://i", "sub": "bob"})).unwrap();
        let mut responses = Vec::new();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            let mut request = http::Request::new(());
            request.extensions_mut().insert(Claims(Arc::new(bob)));
            let _forbidden = service.call(request);
            let _misconfigured = service.call(http::Request::new(()));
            let missing = crate::axum::MissingClaimsLayer {
                type_name: std::any::type_name::<DefaultClaims>(),
            };
            responses.push(missing.into_response());
        });
        let text = handle.render();
        for code in ["forbidden", "misconfigured"] {
            let line = format!(r#"oidc_bearer_requests_refused_total{{code="{code}"}}"#);
            assert!(text.contains(&line), "{code}: {text}");
        }
        assert!(
            text.contains(r#"oidc_bearer_requests_refused_total{code="misconfigured"} 2"#),
            "{text}"
        );
        let rejection = responses[0].extensions().get::<AuthRejection>();
        assert_eq!(rejection.map(AuthRejection::code), Some("misconfigured"));
    }
}
