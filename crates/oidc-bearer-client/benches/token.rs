//! What a request pays for its token while the cached one is fresh: `FileTokenSource::token` (the
//! refresh engine's fast path: a read lock, a due check, an expiry check, a clone) beside a fixed
//! `BearerToken` (a clone only), in the same run. Each call's future is polled once, without a
//! runtime: the fast path never waits, so this is the source's own cost.
//!
//! `cargo bench -p oidc-bearer-client --bench token`

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use oidc_bearer_client::{BearerToken, FileTokenSource, SharedTokenSource, TokenSource};

/// Longer than the run, so the token stays fresh.
const HOUR: Duration = Duration::from_secs(3600);

/// The output of a future that is ready on its first poll.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the fast path waited"),
    }
}

fn fresh_token(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "a".repeat(1024)).unwrap();
    let file = FileTokenSource::new(&path).with_poll_interval(HOUR);
    runtime.block_on(file.reload()).unwrap();
    let fixed = BearerToken::new("a".repeat(1024)).unwrap();
    let shared = SharedTokenSource::new(FileTokenSource::new(&path).with_poll_interval(HOUR));
    runtime.block_on(shared.token()).unwrap();

    let mut group = c.benchmark_group("fresh token");
    // What every source pays to read the wall clock once.
    group.bench_function("SystemTime::now alone", |b| {
        b.iter(std::time::SystemTime::now)
    });
    group.bench_function("fixed BearerToken", |b| {
        b.iter(|| ready(black_box(&fixed).token()).unwrap())
    });
    group.bench_function("FileTokenSource", |b| {
        b.iter(|| ready(black_box(&file).token()).unwrap())
    });
    group.bench_function("SharedTokenSource(FileTokenSource)", |b| {
        b.iter(|| ready(black_box(&shared).token()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, fresh_token);
criterion_main!(benches);
