//! TokenReview costs next to the local token cache, in one run:
//!
//! - criterion group `cached_answer`: a request's cost when its answer is cached, each a request
//!   through the bearer layer, which asks its verifier's cache first: `token_cache_hit` (a local
//!   `Verifier`), `review_cache_hit` (the `TokenReview` verifier), `binding_hit` (a local `Verifier`
//!   with the object-binding check), and `review_cache_hit_async` (`TokenReview::verify_token`
//!   alone, the path a miss of the layer's synchronous lookup takes);
//! - a table of the same by interleaved rounds (each variant in turn, the best of several rounds),
//!   with the ratios to `token_cache_hit`;
//! - a simulated load on a moving clock: 100 tokens, 40 requests per token per interval for 10
//!   intervals, counting the reviews the API-server stand-in receives (object binding must send at
//!   most one per token per interval) and the wall time against local verification alone.
//!
//! Run: `cargo bench -p oidc-bearer-kubernetes --bench tokenreview` (about a minute). `-- profile VARIANT N`
//! runs only `N` calls of one variant, for callgrind (see BENCHMARKS.md).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::{Verifier, VerifyToken};
use oidc_bearer_kubernetes::{
    ApiServer, ObjectBinding, ObjectBindingCheck, TokenReview, TokenReviewClaims,
};
use oidc_bearer_testing::{TestIssuer, TokenReviews};

// oidc-bearer's bench helper (benches are not published: the path stays in the repository).
#[path = "../../oidc-bearer/benches/support/layer_hit.rs"]
mod layer_hit;

use layer_hit::LayerHit;

const AUD: &str = "bench-service";
/// Where the Kubernetes API server publishes its keys (what `InCluster` reads).
const API_SERVER_JWKS_PATH: &str = "/openid/v1/jwks";
const INTERVAL: Duration = Duration::from_secs(30);

fn now_or_never<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the cached path waited"),
    }
}

struct Setup {
    issuer: TestIssuer,
    reviews: TokenReviews,
    clock: ManualClock,
    local: Verifier,
    bound: ObjectBinding<Verifier>,
    review: TokenReview,
    token: String,
    local_hit: LayerHit<Verifier, KubernetesClaims>,
    bound_hit: LayerHit<ObjectBinding<Verifier>, KubernetesClaims>,
    review_hit: LayerHit<TokenReview, TokenReviewClaims>,
}

fn api(reviews: &TokenReviews) -> ApiServer {
    let credential = reviews.caller_token();
    ApiServer::builder(reviews.api_server_url())
        .with_bearer_token(move || Some(credential.clone()))
        .build()
        .expect("api server")
}

impl Setup {
    fn new(runtime: &tokio::runtime::Runtime) -> Self {
        let issuer = runtime.block_on(
            TestIssuer::builder()
                .jwks_path(API_SERVER_JWKS_PATH)
                .start(),
        );
        let reviews = issuer.token_reviews();
        let clock = ManualClock::new();
        let local = Verifier::builder(issuer.issuer(), AUD)
            .with_discovery_url(issuer.discovery_url())
            .with_clock(clock.clone())
            .build()
            .expect("verifier");
        let bound = ObjectBindingCheck::new(INTERVAL)
            .with_api_server(api(&reviews))
            .wrap(
                Verifier::builder(issuer.issuer(), AUD)
                    .with_discovery_url(issuer.discovery_url())
                    .with_clock(clock.clone())
                    .build()
                    .expect("verifier"),
            )
            .expect("bound verifier");
        let review = TokenReview::builder(api(&reviews), AUD)
            .with_clock(clock.clone())
            .build()
            .expect("token review");
        let token = issuer.token().kubernetes("prod", "billing").aud(AUD).sign();
        let setup = Setup {
            local_hit: LayerHit::new(local.clone(), &token),
            bound_hit: LayerHit::new(bound.clone(), &token),
            review_hit: LayerHit::new(review.clone(), &token),
            issuer,
            reviews,
            clock,
            local,
            bound,
            review,
            token,
        };
        runtime.block_on(async {
            setup
                .local
                .verify_token::<KubernetesClaims>(&setup.token)
                .await
                .expect("local");
            setup
                .bound
                .verify_token::<KubernetesClaims>(&setup.token)
                .await
                .expect("bound");
            setup
                .review
                .verify_token::<TokenReviewClaims>(&setup.token)
                .await
                .expect("review");
        });
        setup
    }

    #[inline(never)]
    fn token_cache_hit(&self) {
        self.local_hit.hit()
    }

    #[inline(never)]
    fn binding_hit(&self) {
        self.bound_hit.hit()
    }

    #[inline(never)]
    fn review_cache_hit(&self) {
        self.review_hit.hit()
    }

    #[inline(never)]
    fn review_cache_hit_async(&self) -> Arc<TokenReviewClaims> {
        now_or_never(self.review.verify_token(black_box(&self.token))).expect("hit")
    }
}

fn rate(window: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn table(setup: &Setup) {
    const ROUNDS: usize = 7;
    let window = Duration::from_millis(300);
    let names = [
        "token_cache_hit",
        "review_cache_hit",
        "binding_hit",
        "review_cache_hit_async",
    ];
    let mut best = [0f64; 4];
    for _ in 0..ROUNDS {
        let rates = [
            rate(window, || setup.token_cache_hit()),
            rate(window, || setup.review_cache_hit()),
            rate(window, || setup.binding_hit()),
            rate(window, || drop(black_box(setup.review_cache_hit_async()))),
        ];
        for (b, r) in best.iter_mut().zip(rates) {
            *b = b.max(r);
        }
    }
    println!("\ncached answers, best of {ROUNDS} interleaved rounds:");
    println!(
        "{:<26} {:>12} {:>10} {:>8}",
        "variant", "ops/s", "ns/op", "ratio"
    );
    for (name, r) in names.iter().zip(best) {
        println!(
            "{name:<26} {r:>12.0} {:>10.0} {:>8.2}",
            1e9 / r,
            best[0] / r
        );
    }
}

/// 100 tokens, 40 requests each per interval, 10 intervals, on a clock moved by hand.
fn simulated_load(runtime: &tokio::runtime::Runtime, setup: &Setup) {
    const TOKENS: usize = 100;
    const PER_INTERVAL: usize = 40;
    const INTERVALS: usize = 10;
    let tokens: Vec<String> = (0..TOKENS)
        .map(|_| {
            setup
                .issuer
                .token()
                .kubernetes("prod", "billing")
                .aud(AUD)
                .sign()
        })
        .collect();
    fn run<V: VerifyToken>(
        verifier: &V,
        setup: &Setup,
        tokens: &[String],
        runtime: &tokio::runtime::Runtime,
    ) -> (std::time::Duration, usize) {
        let start = Instant::now();
        let before = setup.reviews.calls();
        for _ in 0..INTERVALS {
            for _ in 0..PER_INTERVAL {
                for token in tokens {
                    runtime
                        .block_on(verifier.verify_token::<KubernetesClaims>(token))
                        .expect("accepted");
                }
                setup.clock.advance(INTERVAL / PER_INTERVAL as u32);
            }
        }
        (start.elapsed(), setup.reviews.calls() - before)
    }
    let requests = TOKENS * PER_INTERVAL * INTERVALS;
    let (local_time, local_reviews) = run(&setup.local, setup, &tokens, runtime);
    let (bound_time, bound_reviews) = run(&setup.bound, setup, &tokens, runtime);
    println!(
        "\nsimulated load: {requests} requests, {TOKENS} tokens, {INTERVALS} intervals of {INTERVAL:?}"
    );
    println!(
        "  local only:     {local_reviews:>5} reviews, {:>8.2} ms ({:.0} ns/request)",
        local_time.as_secs_f64() * 1e3,
        local_time.as_nanos() as f64 / requests as f64
    );
    println!(
        "  object binding: {bound_reviews:>5} reviews (bound: {} = tokens x intervals), {:>8.2} ms ({:.0} ns/request, reviews over loopback included)",
        TOKENS * INTERVALS,
        bound_time.as_secs_f64() * 1e3,
        bound_time.as_nanos() as f64 / requests as f64
    );
    assert!(
        bound_reviews <= TOKENS * INTERVALS,
        "more than one review per token per interval"
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let setup = Setup::new(&runtime);
    // `profile VARIANT N`: N calls of one variant and nothing else, for
    // `valgrind --tool=callgrind --toggle-collect='*Setup*VARIANT*'` (instruction counts).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "profile") {
        let n: usize = args[i + 2].parse().expect("profile VARIANT N");
        for _ in 0..n {
            match args[i + 1].as_str() {
                "token_cache_hit" => setup.token_cache_hit(),
                "review_cache_hit" => setup.review_cache_hit(),
                "binding_hit" => setup.binding_hit(),
                other => panic!("no variant {other}"),
            }
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("cached_answer");
    group.bench_function("token_cache_hit", |b| b.iter(|| setup.token_cache_hit()));
    group.bench_function("review_cache_hit", |b| b.iter(|| setup.review_cache_hit()));
    group.bench_function("binding_hit", |b| b.iter(|| setup.binding_hit()));
    group.bench_function("review_cache_hit_async", |b| {
        b.iter(|| setup.review_cache_hit_async())
    });
    group.finish();
    table(&setup);
    simulated_load(&runtime, &setup);
    c.final_summary();
}
