//! The DPoP path of [`BearerAuth`] (RFC 9449 §7.1): a request with `Authorization: DPoP` has its
//! proof checked, then its token verified (from the token cache or in full), then the token bound
//! to the proof's key and the proof recorded against replay; any other request takes the `Bearer`
//! path, with DPoP's rules for it.

use std::mem;
use std::sync::Arc;

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;
use tracing::Instrument;

use super::BearerAuth;
use super::future::BearerAuthFuture;
use super::service::refused;
use crate::bearer::BearerError;
use crate::bearer::{TokenExtractor, scheme_credentials};
use crate::dpop::{DpopCheck, DpopThumbprint};
use crate::rejection::{AuthRejection, RejectionResponse};
use crate::sealed::Presented;
use crate::verify::VerifyToken;

impl<S, V, T, R, Src> BearerAuth<S, V, T, R, Src> {
    pub(super) fn call_dpop<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
        dpop: Arc<DpopCheck>,
    ) -> BearerAuthFuture<S, ReqBody, T, R>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        V: VerifyToken,
        T: DeserializeOwned + Send + Sync + 'static,
        R: RejectionResponse<ResBody>,
        Src: TokenExtractor,
    {
        let layer = &self.layer;
        let token = match scheme_credentials(req.headers(), b"dpop") {
            Ok(Some(token)) => token,
            Ok(None) => {
                // Only a DPoP request carries a thumbprint (whatever an outer layer put there).
                req.extensions_mut().remove::<DpopThumbprint>();
                return self.call_bearer(req, Some(dpop));
            }
            Err(e) => {
                // A malformed `DPoP` credential, or several `Authorization` headers (either way).
                let scheme = matches!(e, BearerError::EmptyToken | BearerError::InvalidToken);
                let reason = AuthRejection::InvalidRequest(e);
                return refused(&layer.rejection, reason, Some((&dpop, scheme)));
            }
        };
        let refuse = |reason| refused(&layer.rejection, reason, Some((&dpop, true)));
        // §4.3: the proof first; it needs no key fetch and refuses a stolen token on its own.
        let proof = dpop.proof_header(req.headers()).and_then(|proof| {
            dpop.check_proof(proof, req.method(), requested_path(&req), token, dpop.now())
        });
        let proof = match proof {
            Ok(proof) => proof,
            Err(error) => return refuse(AuthRejection::Dpop(error)),
        };
        let span = tracing::debug_span!(
            "oidc_bearer.verify",
            cached = tracing::field::Empty,
            code = tracing::field::Empty
        );
        let cached = span.in_scope(|| {
            layer
                .verifier
                .verify_token_cached::<T>(Presented::new(token.as_bytes()))
        });
        if let Some(claims) = cached {
            return match dpop.bind(token, proof) {
                Ok(thumbprint) => {
                    req.extensions_mut().insert(thumbprint);
                    self.call_cached(req, claims, &span)
                }
                Err(error) => refuse(AuthRejection::Dpop(error)),
            };
        }
        let token = token.to_owned();
        // In the request now, seen by the inner service only once the binding below holds (it
        // requires the token's `cnf.jkt` to be this thumbprint).
        let thumbprint = DpopThumbprint(Arc::from(proof.thumbprint.as_str()));
        req.extensions_mut().insert(thumbprint);
        // The service polled ready is the one to call (tower's "clone the inner service").
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let layer = &self.layer;
        let verifier = layer.verifier.clone();
        let check = dpop.clone();
        span.record("cached", false);
        let verify = Box::pin(
            async move {
                let claims = verifier.verify_token::<T>(&token).await.map_err(|error| {
                    tracing::Span::current().record("code", error.code());
                    AuthRejection::from_verify(error)
                })?;
                check.bind(&token, proof).map_err(|error| {
                    tracing::Span::current().record("code", error.code());
                    AuthRejection::Dpop(error)
                })?;
                Ok(claims)
            }
            .instrument(span),
        );
        let rejection = layer.rejection.clone();
        BearerAuthFuture::verifying(verify, inner, req, rejection, Some((dpop, true)))
    }
}

/// The path the client requested (§4.3 check 9 compares `htu` with the request's URI): axum's
/// `OriginalUri` when the layer is on a router nested under a prefix (`Router::nest` strips the
/// prefix from the URI it passes on, and keeps the original there), else the URI's path.
fn requested_path<B>(req: &Request<B>) -> &str {
    #[cfg(feature = "axum")]
    if let Some(original) = req.extensions().get::<axum::extract::OriginalUri>() {
        return original.0.path();
    }
    req.uri().path()
}
