//! The routes: `GET /` is open, `GET /private` needs a bearer token that the verifier accepts, and
//! `GET /metrics` serves the library's metrics as Prometheus text (docs/metrics.md).

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use oidc_bearer::claims::WithPayload;
use oidc_bearer::{BearerAuthLayer, Claims, Dpop, DpopThumbprint, VerifyToken};
use serde::Serialize;
use serde_json::{Value, json};

async fn exposed() -> Json<Value> {
    Json(json!({"msg": "hello-exposed"}))
}

/// The `/private` answer. `claims` is the verified payload written verbatim (`WithPayload`): exactly
/// what the issuer signed, and no serialization of the claims on each request.
#[derive(Serialize)]
struct PrivateReply<'a> {
    msg: &'static str,
    sub: Option<&'a str>,
    claims: &'a WithPayload,
    /// With `DPOP` on and a DPoP-bound token: the thumbprint of the key that signed the proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<&'a str>,
}

async fn private(
    Claims(claims): Claims<WithPayload>,
    dpop: Option<Extension<DpopThumbprint>>,
) -> Response {
    Json(PrivateReply {
        msg: "hello-private",
        sub: claims.subject(),
        claims: &claims,
        dpop_jkt: dpop.as_ref().map(|Extension(t)| &*t.0),
    })
    .into_response()
}

/// The app: `/` open, `/private` behind the bearer layer with `verifier`, one issuer's
/// [`Verifier`](oidc_bearer::Verifier) or an [`IssuerRegistry`](oidc_bearer_registry::IssuerRegistry).
///
/// `route_layer` guards only the routes added before it, and keeps unknown paths 404 rather than 401.
pub fn app(verifier: impl VerifyToken) -> Router {
    app_with_dpop(verifier, None)
}

/// [`app`], taking DPoP-bound tokens (RFC 9449) on `/private` as `dpop` says.
pub fn app_with_dpop(verifier: impl VerifyToken, dpop: Option<Dpop>) -> Router {
    let mut layer = BearerAuthLayer::new(verifier).claims::<WithPayload>();
    if let Some(dpop) = dpop {
        layer = layer.with_dpop(dpop);
    }
    Router::new()
        .route("/private", get(private))
        .route_layer(layer)
        .route("/", get(exposed))
}

/// Adds `GET /metrics`: the Prometheus text exposition format (version 0.0.4) of `metrics`.
pub fn with_metrics(router: Router, metrics: PrometheusHandle) -> Router {
    let scrape = move || {
        let text = metrics.render();
        async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
    };
    router.route("/metrics", get(scrape))
}

/// Installs the process's Prometheus recorder, with buckets for the verification-time histogram
/// (a summary otherwise), and keeps its histograms drained. Call once, inside a Tokio runtime.
pub fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("oidc_bearer_verify_duration_seconds".into()),
            &[25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3, 100e-3, 1.0, 10.0],
        )?
        .install_recorder()?;
    oidc_bearer::metrics::register();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
