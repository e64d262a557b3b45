//! The layer around a tonic `Channel`: a gRPC call carries the token (tonic's generated clients take
//! any service like this one; `tonic::client::Grpc` is what they call).

use std::net::SocketAddr;

use axum::{Router, http::HeaderMap, routing::post};
use bytes::{Buf as _, BufMut as _, Bytes};
use http::uri::PathAndQuery;
use oidc_bearer_client::{AddBearerLayer, BearerToken};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Endpoint,
};
use tower::ServiceBuilder;

/// A gRPC endpoint (over h2c) that refuses every call with UNAUTHENTICATED and echoes the
/// Authorization header it got in the status metadata: a trailers-only response, as gRPC allows.
async fn serve_grpc_echo() -> SocketAddr {
    let app = Router::new().route(
        "/demo.Echo/Authorization",
        post(|headers: HeaderMap| async move {
            let seen = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            (
                [
                    ("content-type", "application/grpc".to_owned()),
                    ("grpc-status", (Code::Unauthenticated as i32).to_string()),
                    ("x-seen-authorization", seen),
                ],
                "",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Sends and receives raw bytes; no protobuf needed for this test.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[tokio::test]
async fn tonic_channel_wrapped_in_the_layer_sends_the_token() {
    let addr = serve_grpc_echo().await;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let channel = ServiceBuilder::new()
        .layer(AddBearerLayer::new(BearerToken::new("grpc-token").unwrap()))
        .service(channel);

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary(
            tonic::Request::new(Bytes::from_static(b"hello")),
            PathAndQuery::from_static("/demo.Echo/Authorization"),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status.metadata().get("x-seen-authorization").unwrap(),
        "Bearer grpc-token"
    );
}
