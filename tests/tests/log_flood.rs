//! A flood of refused requests logs one line per period (with the count it stands for), while
//! every response still carries its reason. One test in this binary: the limit is per process.

use std::sync::Mutex;

use axum::Router;
use axum::routing::get;
use oidc_bearer::{BearerAuthLayer, Verifier};
use oidc_bearer_testing::TestIssuer;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

const AUD: &str = "resource-server";

static LINES: Mutex<Vec<(tracing::Level, String)>> = Mutex::new(Vec::new());

struct Recorder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if event.metadata().target().starts_with("oidc_bearer::layer") {
            let mut message = Message(String::new());
            event.record(&mut message);
            let level = *event.metadata().level();
            LINES.lock().unwrap().push((level, message.0));
        }
    }
}

fn lines(level: tracing::Level) -> usize {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, _)| *l == level)
        .count()
}

#[tokio::test]
async fn a_flood_of_refusals_logs_one_line_per_period_and_answers_every_request() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder)).unwrap();
    tracing::callsite::rebuild_interest_cache();
    let issuer = TestIssuer::start().await;
    let down = TestIssuer::start().await;
    down.set_down(true);
    let app = Router::new()
        .route("/private", get(|| async { "ok" }))
        .route_layer(BearerAuthLayer::new(
            Verifier::new(issuer.issuer(), AUD).unwrap(),
        ))
        .merge(
            Router::new()
                .route("/down", get(|| async { "ok" }))
                .route_layer(BearerAuthLayer::new(
                    Verifier::new(down.issuer(), AUD).unwrap(),
                )),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();

    for i in 0..500 {
        // Another audience each time: refused after the signature, never cached.
        let token = issuer.token().aud(&format!("other-{i}")).sign();
        let response = client
            .get(format!("http://{addr}/private"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("the token is not meant for this service"));
    }
    assert_eq!(lines(tracing::Level::INFO), 1, "one line for 500 refusals");

    let token = down.token().aud(AUD).sign();
    for _ in 0..200 {
        let response = client
            .get(format!("http://{addr}/down"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
    assert_eq!(
        lines(tracing::Level::WARN),
        1,
        "one line for 200 unavailable answers"
    );
}
