//! The routes: `GET /` is open, `GET /private` needs a bearer token that the verifier accepts.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oidc_bearer::claims::WithPayload;
use oidc_bearer::{BearerAuthLayer, Claims, VerifyToken};
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
    sub: &'a str,
    claims: &'a WithPayload,
}

async fn private(Claims(claims): Claims<WithPayload>) -> Response {
    Json(PrivateReply {
        msg: "hello-private",
        sub: claims.subject(),
        claims: &claims,
    })
    .into_response()
}

/// The app: `/` open, `/private` behind the bearer layer with `verifier`, one issuer's
/// [`Verifier`](oidc_bearer::Verifier) or an [`IssuerRegistry`](oidc_bearer::issuers::IssuerRegistry).
///
/// `route_layer` guards only the routes added before it, and keeps unknown paths 404 rather than 401.
pub fn app(verifier: impl VerifyToken) -> Router {
    Router::new()
        .route("/private", get(private))
        .route_layer(BearerAuthLayer::new(verifier).claims::<WithPayload>())
        .route("/", get(exposed))
}
