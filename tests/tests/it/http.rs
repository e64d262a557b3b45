//! End to end: test issuer → BearerAuthLayer → axum router, over real HTTP on 127.0.0.1.

use std::time::Duration;

use crate::support::{clocked_verifier, serve};
use axum::routing::get;
use axum::{Json, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::rejection::AuthRejection;
use oidc_bearer::{BearerAuthLayer, Claims, Verifier, VerifyError};
use oidc_bearer_testing::{TestIssuer, now};
use serde_json::{Value, json};
use tower::ServiceExt;

const AUD: &str = "resource-server";

async fn private(Claims(claims): Claims<DefaultClaims>) -> Json<Value> {
    Json(json!({"msg": "hello-private", "sub": claims.subject()}))
}

fn app(verifier: Verifier) -> Router {
    Router::new()
        .route("/private", get(private))
        .route_layer(BearerAuthLayer::new(verifier))
        .route("/", get(|| async { Json(json!({"msg": "hello-exposed"})) }))
}

struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn get_with(url: &str, auth: &[&str]) -> Reply {
    let mut request = reqwest::Client::new().get(url);
    for value in auth {
        request = request.header("authorization", *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (challenge, retry_after) = (header("www-authenticate"), header("retry-after"));
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        retry_after,
        body,
    }
}

#[tokio::test]
async fn rfc_6750_responses_over_http() {
    let issuer = TestIssuer::start().await;
    let base = serve(app(Verifier::new(issuer.issuer(), AUD).unwrap())).await;
    let private = format!("{base}/private");
    let good = issuer.token().aud(AUD).sub("alice").sign();
    let expired = issuer.token().aud(AUD).exp(now() - 3600).sign();
    let other_aud = issuer.token().aud("another-service").sign();

    let open = get_with(&base, &[]).await;
    assert_eq!(
        (open.status, open.body),
        (StatusCode::OK, json!({"msg": "hello-exposed"}))
    );

    let ok = get_with(&private, &[&format!("Bearer {good}")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, json!({"msg": "hello-private", "sub": "alice"}));
    // The scheme is case-insensitive (RFC 7235 §2.1).
    assert_eq!(
        get_with(&private, &[&format!("bearer {good}")])
            .await
            .status,
        StatusCode::OK
    );

    // (case, Authorization values, status, WWW-Authenticate, JSON body)
    type Row<'a> = (&'a str, Vec<String>, StatusCode, Option<&'a str>, Value);
    let rows: Vec<Row<'_>> = vec![
        (
            "no credentials",
            vec![],
            StatusCode::UNAUTHORIZED,
            Some(r#"Bearer realm="api""#),
            json!({"error": "unauthorized", "error_description": "a bearer token is required"}),
        ),
        (
            "another scheme",
            vec!["Basic dXNlcjpwYXNz".into()],
            StatusCode::UNAUTHORIZED,
            Some(r#"Bearer realm="api""#),
            json!({"error": "unauthorized", "error_description": "a bearer token is required"}),
        ),
        (
            "expired",
            vec![format!("Bearer {expired}")],
            StatusCode::UNAUTHORIZED,
            Some(
                r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#,
            ),
            json!({"error": "invalid_token", "error_description": "the token has expired"}),
        ),
        (
            "token for another service",
            vec![format!("Bearer {other_aud}")],
            StatusCode::UNAUTHORIZED,
            Some(
                r#"Bearer realm="api", error="invalid_token", error_description="the token is not meant for this service""#,
            ),
            json!({"error": "invalid_token", "error_description": "the token is not meant for this service"}),
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
            StatusCode::BAD_REQUEST,
            Some(
                r#"Bearer realm="api", error="invalid_request", error_description="more than one Authorization header""#,
            ),
            json!({"error": "invalid_request", "error_description": "more than one Authorization header"}),
        ),
        (
            "two tokens in one header",
            vec![format!("Bearer {good} {good}")],
            StatusCode::BAD_REQUEST,
            Some(
                r#"Bearer realm="api", error="invalid_request", error_description="the bearer token is not a single b64token""#,
            ),
            json!({"error": "invalid_request", "error_description": "the bearer token is not a single b64token"}),
        ),
    ];
    for (name, auth, status, challenge, body) in rows {
        let auth: Vec<&str> = auth.iter().map(String::as_str).collect();
        let reply = get_with(&private, &auth).await;
        assert_eq!(reply.status, status, "{name}");
        assert_eq!(reply.challenge.as_deref(), challenge, "{name}");
        assert_eq!(reply.body, body, "{name}");
    }
    // route_layer guards matched routes only: an unknown path stays 404.
    assert_eq!(
        get_with(&format!("{base}/nope"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn layer_on_the_whole_router_turns_unknown_paths_into_401() {
    let issuer = TestIssuer::start().await;
    let app = Router::new()
        .route("/private", get(private))
        .layer(BearerAuthLayer::new(
            Verifier::new(issuer.issuer(), AUD).unwrap(),
        ));
    let base = serve(app).await;
    assert_eq!(
        get_with(&format!("{base}/nope"), &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn keys_unavailable_is_503_then_recovers() {
    let issuer = TestIssuer::start().await;
    issuer.set_down(true);
    let (clock, verifier) = clocked_verifier(&issuer, AUD);
    let base = serve(app(verifier)).await;
    let token = issuer.token().aud(AUD).sign();
    let auth = format!("Bearer {token}");
    let reply = get_with(&format!("{base}/private"), &[&auth]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.retry_after.as_deref(), Some("5"));
    assert_eq!(reply.challenge, None);
    assert_eq!(reply.body["error"], "temporarily_unavailable");
    issuer.set_down(false);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        get_with(&format!("{base}/private"), &[&auth]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_typed_reason_is_in_the_response_extensions() {
    let issuer = TestIssuer::start().await;
    let app = app(Verifier::new(issuer.issuer(), AUD).unwrap());
    let token = issuer.token().aud("someone-else").sign();
    let request = Request::get("/private")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let reason = response.extensions().get::<AuthRejection>().unwrap();
    assert_eq!(
        reason,
        &AuthRejection::InvalidToken(VerifyError::AudienceMismatch {
            expected: vec![AUD.into()],
            found: vec!["someone-else".into()],
        })
    );
    let response = app
        .oneshot(
            Request::get("/private")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<AuthRejection>(),
        Some(&AuthRejection::MissingToken)
    );
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_but_not_bad_tokens() {
    async fn maybe(claims: Option<Claims<DefaultClaims>>) -> String {
        match claims {
            Some(c) => format!("hello {}", c.subject().unwrap_or_default()),
            None => "hello anonymous".into(),
        }
    }
    let issuer = TestIssuer::start().await;
    let app = Router::new()
        .route("/", get(maybe))
        .layer(BearerAuthLayer::new(Verifier::new(issuer.issuer(), AUD).unwrap()).optional());
    let base = serve(app).await;
    let text = |auth: Option<String>| {
        let base = base.clone();
        async move {
            let mut r = reqwest::Client::new().get(&base);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let response = r.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    assert_eq!(text(None).await, (StatusCode::OK, "hello anonymous".into()));
    let good = issuer.token().aud(AUD).sub("bob").sign();
    assert_eq!(
        text(Some(format!("Bearer {good}"))).await,
        (StatusCode::OK, "hello bob".into())
    );
    let bad = issuer.token().aud("x").sign();
    assert_eq!(
        text(Some(format!("Bearer {bad}"))).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn extractor_without_its_layer_is_a_500_that_names_the_layer() {
    #[derive(serde::Deserialize)]
    struct Other {}
    let issuer = TestIssuer::start().await;
    // No layer at all.
    let no_layer = Router::new().route("/", get(private));
    // A layer configured for another claims type.
    let wrong_type = Router::new().route("/", get(private)).layer(
        BearerAuthLayer::new(Verifier::new(issuer.issuer(), AUD).unwrap()).claims::<Other>(),
    );
    let token = issuer.token().aud(AUD).sign();
    for app in [no_layer, wrong_type] {
        let request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("BearerAuthLayer"), "{text}");
        assert!(
            text.contains("Claims<oidc_bearer::claims::DefaultClaims>"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn works_with_a_plain_tower_service_and_custom_pieces() {
    use oidc_bearer::bearer::HeaderToken;
    use tower::{ServiceBuilder, service_fn};

    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let service = ServiceBuilder::new()
        .layer(
            BearerAuthLayer::new(verifier)
                .with_token_extractor(HeaderToken::new(http::HeaderName::from_static(
                    "x-workload-token",
                )))
                .with_rejection(|r: &AuthRejection| {
                    http::Response::builder()
                        .status(r.status())
                        .body(format!("denied: {}", r.code()))
                        .unwrap()
                }),
        )
        .service(service_fn(|req: Request<String>| async move {
            let claims = req.extensions().get::<Claims<DefaultClaims>>().unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(format!(
                "hi {}",
                claims.subject().unwrap_or_default()
            )))
        }));
    let token = issuer.token().aud(AUD).sub("carol").sign();
    let request = Request::get("/")
        .header("x-workload-token", &token)
        .body(String::new())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.into_body(), "hi carol");
    let expired = issuer.token().aud(AUD).exp(now() - 7200).sign();
    let request = Request::get("/")
        .header("x-workload-token", &expired)
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.into_body(), "denied: expired");
}

/// Cache hits are answered by the layer without a future of their own: they must still share one
/// `Arc` of claims, still re-check the expiry against the clock, and still drop a removed key.
#[tokio::test]
async fn cached_tokens_are_rechecked_on_every_request() {
    let issuer = TestIssuer::start().await;
    let second = issuer.add_key(oidc_bearer_testing::KeyAlg::ES256);
    let (clock, verifier) = clocked_verifier(&issuer, AUD);
    let app = Router::new()
        .route(
            "/private",
            get(|Claims(claims): Claims<DefaultClaims>| async move {
                format!("{:p}", std::sync::Arc::as_ptr(&claims))
            }),
        )
        .route_layer(BearerAuthLayer::new(verifier.clone()));
    let base = serve(app).await;
    let url = format!("{base}/private");
    let client = reqwest::Client::new();
    let fetch = |token: String| {
        let request = client.get(&url).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, challenge, response.text().await.unwrap())
        }
    };

    let exp = now() + 600;
    let token = issuer.token().aud(AUD).exp(exp).sign_with("key-1").sign();
    let other = issuer.token().aud(AUD).exp(exp).sign_with(&second).sign();
    let (status, _, first) = fetch(token.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, again) = fetch(token.clone()).await;
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &first),
        "one Arc of claims"
    );
    assert_eq!(fetch(other.clone()).await.0, StatusCode::OK);
    let stats = verifier.token_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 2));

    // key-1 leaves the key set (refreshed for an unknown kid after the cooldown): its cached
    // token is refused, the other key's token still hits.
    issuer.remove_key("key-1");
    clock.advance(Duration::from_secs(31));
    let unknown = issuer.add_unpublished_key(oidc_bearer_testing::KeyAlg::ES256);
    let forged = issuer.token().aud(AUD).sign_with(&unknown).sign();
    assert_eq!(fetch(forged).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.jwks_fetches(), 2);
    // Its kid is gone from keys fetched within a leeway of its `iat`: "retry" (503) until the next
    // allowed fetch, which shows the key still gone: 401.
    let (status, challenge, _) = fetch(token.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(challenge, None);
    clock.advance(Duration::from_secs(31));
    let (status, challenge, _) = fetch(token.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
    assert_eq!(issuer.jwks_fetches(), 3);
    assert_eq!(fetch(other.clone()).await.0, StatusCode::OK);
    let stats = verifier.token_cache_stats().unwrap();
    assert_eq!((stats.invalidations, stats.hits), (1, 2));

    // Past its `exp` (and the default 60 s leeway) a cached token is refused.
    clock.set(Duration::from_secs(u64::try_from(exp + 61).unwrap()));
    let (status, challenge, _) = fetch(other).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
    assert_eq!(verifier.token_cache_stats().unwrap().invalidations, 2);
}

/// The token cache finds a token by its signature's SHA-256 and compares the rest byte for byte: a
/// cached token's signature over another header or payload is refused as a bad signature, not
/// answered with the cached token's claims, and the cached token keeps hitting.
#[tokio::test]
async fn a_cached_signature_over_another_payload_is_refused() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let base = serve(app(verifier.clone())).await;
    let url = format!("{base}/private");
    let bearer = |token: &str| format!("Bearer {token}");

    let genuine = issuer.token().aud(AUD).sub("alice").sign();
    let reply = get_with(&url, &[&bearer(&genuine)]).await;
    assert_eq!(
        (reply.status, &reply.body["sub"]),
        (StatusCode::OK, &json!("alice"))
    );

    let mallory = issuer.token().aud(AUD).sub("mallory").sign();
    let header = issuer
        .token()
        .aud(AUD)
        .sub("alice")
        .header("note", json!("x"))
        .sign();
    for forged in [
        crate::support::with_signature_of(&genuine, &mallory),
        crate::support::with_signature_of(&genuine, &header),
    ] {
        for _ in 0..2 {
            let reply = get_with(&url, &[&bearer(&forged)]).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
            assert!(
                reply
                    .challenge
                    .unwrap()
                    .contains(r#"error="invalid_token""#)
            );
        }
    }
    let reply = get_with(&url, &[&bearer(&genuine)]).await;
    assert_eq!(
        (reply.status, &reply.body["sub"]),
        (StatusCode::OK, &json!("alice"))
    );
    let stats = verifier.token_cache_stats().unwrap();
    assert_eq!((stats.entries, stats.hits, stats.invalidations), (1, 1, 0));
}

/// `Claims<WithPayload>` hands the handler the payload exactly as signed (keys the claims type does
/// not model, the issuer's order), on the first request and on cache hits alike; a payload the claims
/// type cannot decode is refused without quoting it.
#[tokio::test]
async fn with_payload_gives_the_signed_payload_verbatim() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use oidc_bearer::claims::WithPayload;

    async fn echo(Claims(claims): Claims<WithPayload>) -> String {
        format!(
            "{}\n{}",
            claims.subject().unwrap_or_default(),
            claims.payload().get()
        )
    }
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let app = Router::new()
        .route("/echo", get(echo))
        .layer(BearerAuthLayer::new(verifier.clone()).claims::<WithPayload>());
    let base = serve(app).await;
    let token = issuer
        .token()
        .aud(AUD)
        .sub("alice")
        .claim("zeta", json!({"nested": [1, "two", null]}))
        .claim("alpha", json!("é\u{1F600}"))
        .sign();
    // What the issuer signed: the middle segment, base64url-decoded.
    let segment = token.split('.').nth(1).unwrap();
    let signed = String::from_utf8(URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap();

    let client = reqwest::Client::new();
    for round in ["miss", "hit"] {
        let response = client
            .get(format!("{base}/echo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{round}");
        assert_eq!(
            response.text().await.unwrap(),
            format!("alice\n{signed}"),
            "{round}"
        );
    }
    let stats = verifier.token_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (1, 1));

    // `sub` must be a string for DefaultClaims: refused, and the value is not repeated.
    let bad = issuer
        .token()
        .aud(AUD)
        .claim("sub", json!(4242424242u64))
        .sign();
    let reply = get_with(&format!("{base}/echo"), &[&format!("Bearer {bad}")]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"], "invalid_token");
    let description = reply.body["error_description"].as_str().unwrap();
    assert!(!description.contains("4242424242"), "{description}");
}

/// Cache hits take the fast path with any token source: the standard one (whose unchecked lookup
/// finds a hit before the syntax check) and one of the user's own, which is asked for its token on
/// every request and whose hits are found after its check.
#[tokio::test]
async fn cache_hits_with_any_token_extractor() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use oidc_bearer::bearer::{AuthorizationHeader, BearerError, TokenExtractor};

    /// The standard source, counting the calls to `token` (the unchecked lookup is sealed: a
    /// source of the user's own keeps its default).
    #[derive(Clone)]
    struct Counting {
        calls: Arc<AtomicUsize>,
    }
    impl TokenExtractor for Counting {
        fn token<'a>(&self, headers: &'a http::HeaderMap) -> Result<Option<&'a str>, BearerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            AuthorizationHeader.token(headers)
        }
    }

    let log = crate::support::FastPathLog::install();
    let issuer = TestIssuer::start().await;
    let token = issuer.token().aud(AUD).sub("alice").sign();
    let standard = Verifier::new(issuer.issuer(), AUD).unwrap();
    let own = Verifier::new(issuer.issuer(), AUD).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let source = Counting {
        calls: calls.clone(),
    };
    let app = Router::new()
        .route(
            "/standard",
            get(private).route_layer(BearerAuthLayer::new(standard.clone())),
        )
        .route(
            "/own",
            get(private)
                .route_layer(BearerAuthLayer::new(own.clone()).with_token_extractor(source)),
        );
    let base = serve(app).await;
    for (path, verifier) in [("/standard", standard), ("/own", own)] {
        for _ in 0..3 {
            let reply = get_with(&format!("{base}{path}"), &[&format!("Bearer {token}")]).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
        }
        assert_eq!(log.take(), [false, true, true], "{path}");
        let stats = verifier.token_cache_stats().unwrap();
        assert_eq!((stats.hits, stats.misses), (2, 1), "{path}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
