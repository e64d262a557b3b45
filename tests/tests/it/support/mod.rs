//! Helpers shared by the end-to-end tests: serving an app, and what the tests observe of the layer
//! through tracing. Each test binary uses a part of them.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

thread_local! {
    static LOG: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

/// The `cached` field of each `oidc_bearer.verify` span recorded on this thread, in order: `true`
/// when the layer answered from its fast path (a token cache hit without a future), `false` when
/// it verified the token.
///
/// One global subscriber records for every test of the binary (a per-test default subscriber
/// would race with the callsite interest cache of tests running at the same time), into the
/// recording thread's log: use it from current-thread tests, where the layer runs on the test's
/// thread.
pub(crate) struct FastPathLog(());

impl FastPathLog {
    /// Installs the subscriber (once per binary) and clears this thread's log.
    pub(crate) fn install() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
                .expect("no other global subscriber in the test binary");
            // A callsite first seen by another test while the subscriber was being set may have
            // cached "not interested"; ask every callsite again.
            tracing::callsite::rebuild_interest_cache();
        });
        LOG.with(|log| log.borrow_mut().clear());
        Self(())
    }

    /// What was recorded on this thread since the last call.
    pub(crate) fn take(&self) -> Vec<bool> {
        LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))
    }
}

struct Recorder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_record(&self, _: &span::Id, values: &span::Record<'_>, _: Context<'_, S>) {
        struct Cached;
        impl Visit for Cached {
            fn record_bool(&mut self, field: &Field, value: bool) {
                if field.name() == "cached" {
                    LOG.with(|log| log.borrow_mut().push(value));
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
        }
        values.record(&mut Cached);
    }
}

/// `onto`'s header and payload with `signed`'s signature: a token whose signature segment is that of
/// a token the server may have cached, over another signing input (RFC 7515 §5.2). It must be
/// refused, and must not disturb the cached token.
pub(crate) fn with_signature_of(signed: &str, onto: &str) -> String {
    let (_, signature) = signed.rsplit_once('.').unwrap();
    let (signing_input, _) = onto.rsplit_once('.').unwrap();
    format!("{signing_input}.{signature}")
}

/// Serves `app` on 127.0.0.1:0 and returns its base URL.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A verifier of `issuer`'s tokens for `aud` that reads `clock`, which the test moves.
pub(crate) fn clocked_verifier(
    issuer: &oidc_bearer_testing::TestIssuer,
    aud: &str,
) -> (oidc_bearer::clock::ManualClock, oidc_bearer::Verifier) {
    let clock = oidc_bearer::clock::ManualClock::new();
    let verifier = oidc_bearer::Verifier::builder(issuer.issuer(), aud)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    (clock, verifier)
}
