//! A tonic gRPC server behind the bearer layer and a policy, over real HTTP/2 (h2c) on 127.0.0.1,
//! called by a tonic client: each refusal is a gRPC status the client reads (UNAUTHENTICATED with
//! the RFC 6750 challenge in its `www-authenticate` metadata, PERMISSION_DENIED, UNAVAILABLE with
//! `retry-after`), and the handler reads the typed claims from `Request::extensions()`.
//!
//! No protoc: the messages are protobuf strings (prost's own `Message` for `String`, the
//! `google.protobuf.StringValue` wire form), served with `tonic::server::Grpc` as generated code
//! would.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::policy::{self, Denied, Policy};
use oidc_bearer::rejection::GrpcRejection;
use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
use oidc_bearer_testing::TestIssuer;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

const AUD: &str = "greeter";

/// The service's own claim, beside those the policies read.
#[derive(serde::Deserialize)]
struct Profile {
    email: Option<String>,
}

type GreeterClaims = DefaultClaims<Profile>;

/// `demo.Greeter`, with one method, `Hello`.
#[derive(Clone)]
struct Greeter;

impl NamedService for Greeter {
    const NAME: &'static str = "demo.Greeter";
}

/// `Hello`: names the caller, from the claims the bearer layer verified.
struct Hello;

impl UnaryService<String> for Hello {
    type Response = String;
    type Future = Ready<Result<Response<String>, Status>>;

    fn call(&mut self, request: Request<String>) -> Self::Future {
        ready(match request.extensions().get::<Claims<GreeterClaims>>() {
            Some(Claims(claims)) => Ok(Response::new(format!(
                "hello {} <{}>, you said {:?}",
                claims.subject().unwrap_or_default(),
                claims.extra.email.as_deref().unwrap_or_default(),
                request.get_ref()
            ))),
            None => Err(Status::internal("no claims: the bearer layer did not run")),
        })
    }
}

impl tower::Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            Ok(match request.uri().path() {
                "/demo.Greeter/Hello" => {
                    let mut grpc = Grpc::new(ProstCodec::<String, String>::default());
                    grpc.unary(Hello, request).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// Serves `Greeter` behind the bearer layer (gRPC refusals) and `policy`, on 127.0.0.1.
async fn serve(verifier: Verifier, policy: impl Policy<GreeterClaims>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = BearerAuthLayer::new(verifier)
        .claims::<GreeterClaims>()
        .with_rejection(GrpcRejection::new())
        .authorize(policy);
    let server = Server::builder().layer(layer).add_service(Greeter);
    tokio::spawn(server.serve_with_incoming(TcpIncoming::from(listener)));
    addr
}

/// Calls `Hello` with "hi", with the token (if any) in the `authorization` metadata.
async fn hello(addr: SocketAddr, token: Option<&str>) -> Result<String, Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = Request::new("hi".to_owned());
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let path = PathAndQuery::from_static("/demo.Greeter/Hello");
    let codec = ProstCodec::<String, String>::default();
    grpc.unary(request, path, codec)
        .await
        .map(Response::into_inner)
}

/// The status's code, message and `www-authenticate` metadata.
fn refusal(status: &Status) -> (Code, &str, Option<&str>) {
    let challenge = status.metadata().get("www-authenticate");
    (
        status.code(),
        status.message(),
        challenge.map(|v| v.to_str().unwrap()),
    )
}

#[tokio::test]
async fn a_tonic_server_behind_the_layer_answers_grpc_statuses() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let addr = serve(verifier, policy::scopes(["greet"])).await;

    let status = hello(addr, None).await.unwrap_err();
    assert_eq!(
        refusal(&status),
        (
            Code::Unauthenticated,
            "a bearer token is required",
            Some(r#"Bearer realm="api""#)
        )
    );

    let elsewhere = issuer.token().aud("another-service").sign();
    let status = hello(addr, Some(&elsewhere)).await.unwrap_err();
    assert_eq!(
        refusal(&status),
        (
            Code::Unauthenticated,
            "the token is not meant for this service",
            Some(
                r#"Bearer realm="api", error="invalid_token", error_description="the token is not meant for this service""#
            )
        )
    );

    let reader = issuer.token().aud(AUD).sub("alice").claim("scope", "read");
    let status = hello(addr, Some(&reader.sign())).await.unwrap_err();
    assert_eq!(
        refusal(&status),
        (
            Code::PermissionDenied,
            "the token lacks a required scope",
            Some(
                r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="greet""#
            )
        )
    );

    let greeter = issuer
        .token()
        .aud(AUD)
        .sub("alice")
        .claim("scope", "read greet")
        .claim("email", "alice@example.com")
        .sign();
    assert_eq!(
        hello(addr, Some(&greeter)).await.unwrap(),
        r#"hello alice <alice@example.com>, you said "hi""#
    );
}

/// Keys that cannot be fetched: UNAVAILABLE, with the same `retry-after` an HTTP 503 carries (and
/// gRPC's retry pushback), no challenge (the token may be fine).
#[tokio::test]
async fn an_issuer_that_is_down_is_unavailable() {
    let issuer = TestIssuer::start().await;
    issuer.set_down(true);
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let addr = serve(verifier, policy::scopes(["greet"])).await;
    let token = issuer.token().aud(AUD).claim("scope", "greet").sign();
    let status = hello(addr, Some(&token)).await.unwrap_err();
    assert_eq!(
        refusal(&status),
        (
            Code::Unavailable,
            "the token issuer's keys are not available; try again later",
            None
        )
    );
    let metadata = |name| status.metadata().get(name).map(|v| v.to_str().unwrap());
    assert_eq!(metadata("retry-after"), Some("5"));
    assert_eq!(metadata("grpc-retry-pushback-ms"), Some("5000"));
}

/// A policy's own words reach the client as written: `grpc-message` is percent-encoded (the gRPC
/// HTTP/2 protocol's `Percent-Encoded`), so `%` and non-ASCII text survive.
#[tokio::test]
async fn a_refusal_message_reaches_the_client_as_written() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let reason = "100% reserved for the café team";
    let addr = serve(verifier, move |_: &GreeterClaims| Err(Denied::new(reason))).await;
    let token = issuer.token().aud(AUD).sign();
    let status = hello(addr, Some(&token)).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::PermissionDenied, reason)
    );
}
