//! The issuer's routes: discovery, JWKS and TokenReview, as the accept loop serves them.

use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{Route, Shared};
use crate::server::Handler;

impl Handler for Shared {
    async fn handle(&self, req: Request<Incoming>) -> Response<String> {
        serve(self, req).await
    }
}

async fn serve(shared: &Shared, req: Request<Incoming>) -> Response<String> {
    let path = req.uri().path().to_owned();
    let route = shared.route(&path);
    if path == super::tokenreview::TOKEN_REVIEW_PATH {
        return super::tokenreview::handle(shared, req).await;
    }
    match &route {
        Route::Discovery => shared.count_discovery(),
        Route::Jwks(_) => {
            // Counted on arrival, before any hold, so tests can wait until a request is
            // parked and then release it.
            shared.count_jwks();
            shared.wait_for_release().await;
        }
        Route::NotFound => {}
    }

    if shared.is_down() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "test issuer is down (set_down)\n",
        );
    }
    if route == Route::NotFound {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return response;
    }

    let (body, cache_control) = match route {
        Route::Discovery => (shared.discovery_document(), None),
        Route::Jwks(kids) => shared.jwks_document(kids.as_deref()),
        Route::NotFound => unreachable!("handled above"),
    };
    let mut response = Response::new(format!("{body:#}"));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = cache_control {
        // Validated in set_cache_control.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(CACHE_CONTROL, value);
        }
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
