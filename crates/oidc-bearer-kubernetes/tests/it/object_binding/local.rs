//! Object binding: a limit or a stall of this process is never the API server's outage (no grace
//! period opens for it): our own token file stalled, a name lookup waiting for a blocking thread,
//! no file descriptors left, a runtime that sat idle or a worker that was busy past a review's
//! deadline while the answer waited in the socket. And the other side: a real outage (refused
//! connection, hung API server) still opens the grace period.

use super::*;
use oidc_bearer_kubernetes::ReviewError;
/// A read of our own token file that stalls (a network mount that stops answering, or every
/// blocking thread busy: the check of the file runs on Tokio's blocking pool) is a limit of this
/// process, never the API server's failure: it must open no grace period, as a review that found
/// no slot opens none. Here the API server is up and would refuse the deleted pod's token.
///
/// Review finding (s3-review-file): `InCluster`'s credential is awaited inside the review's
/// timeout (`Reviewer::call`), and the token read is given up only after `READ_TIMEOUT` (5 s, the
/// same as the default review timeout), so the stalled read surfaces as
/// `Fetch(Timeout)`, which `is_api_server_failure()` counts as an outage.
#[test]
fn a_stalled_read_of_our_own_token_file_opens_no_grace_period() {
    // One blocking thread, which the test holds: the token file's check waits for it, as it waits
    // on a stalled mount.
    let runtime = crate::support::one_blocking_thread_runtime();
    runtime.block_on(async {
        let (cluster, _clock, verifier) = Cluster::with_binding().await;
        // The API server is up: a review answers, and the keys are loaded.
        verify(&verifier, &cluster.token().sign()).await.unwrap();
        let revoked = cluster.token().sign();
        cluster.reviews.delete_bound_object(&revoked);
        let sent = cluster.reviews.calls();

        let result =
            crate::support::with_the_blocking_thread_held(verify(&verifier, &revoked)).await;

        let reviews_sent = cluster.reviews.calls() - sent;
        match &result {
            Ok(()) => panic!(
                "a deleted pod's token was accepted ({reviews_sent} review(s) sent): the stalled \
                 read of our own token counted as an API-server outage and opened the grace period"
            ),
            Err(error @ VerifyError::ReviewUnavailable { .. }) => {
                let source = ReviewError::of(error).expect("a ReviewError");
                assert!(
                    !source.is_api_server_failure(),
                    "a local stall recorded as the API server's failure: {source:?}"
                )
            }
            Err(_) => {}
        }
    });
}

/// A verifier of `cluster`'s tokens with its keys loaded and no review sent yet (so that the
/// review client has no connection pooled), wrapped in an object-binding check of `api`.
async fn loaded_without_a_review(
    cluster: &Cluster,
    clock: &ManualClock,
    api: ApiServer,
    settings: TokenReviewSettings,
) -> ObjectBinding<Verifier> {
    let inner = cluster.builder(clock).build().unwrap();
    verify(&inner, &cluster.token().sign()).await.unwrap();
    ObjectBindingCheck::new(INTERVAL)
        .with_api_server(api)
        .with_settings(settings)
        .wrap(inner)
        .unwrap()
}

/// What a deleted pod's token must get while the API server is up: anything but an acceptance,
/// and never a failure counted as the API server's (which is what opens the grace period).
fn assert_not_accepted(result: &Result<(), VerifyError>, cause: &str) {
    match result {
        Ok(()) => panic!(
            "a deleted pod's token was accepted while the API server was up: {cause} counted as \
             an API-server outage and opened the grace period"
        ),
        Err(error @ VerifyError::ReviewUnavailable { .. }) => {
            let source = ReviewError::of(error).expect("a ReviewError");
            assert!(
                !source.is_api_server_failure(),
                "{cause} recorded as the API server's failure: {source:?}"
            )
        }
        Err(_) => {}
    }
}

/// The API server by name — as `InCluster` names it when the kubelet's service variables are not
/// both set (`kubernetes.default.svc`), and as `ApiServer`'s own example does — is looked up by the
/// HTTP client on Tokio's blocking threads (getaddrinfo). Every blocking thread busy is a limit of
/// this process, the very one `a_stalled_read_of_our_own_token_file_opens_no_grace_period` covers
/// for the token file: it must open no grace period either. The API server is up (on loopback)
/// and would refuse the deleted pod's token.
///
/// Review finding (s3-review-file2): the name lookup runs inside the review's timeout, so waiting
/// for a blocking thread surfaces as `Fetch(Timeout)`, which `is_api_server_failure()` counts as
/// an outage.
#[test]
fn a_name_lookup_waiting_for_a_blocking_thread_opens_no_grace_period() {
    // The API server on loopback answers in microseconds; the default 5 s would only slow the
    // test down.
    name_lookup_waiting_for_a_blocking_thread(Duration::from_millis(500));
}

/// The same with TokenReview's default timeout (5 s), half of which is longer than the connect
/// timeout (2 s) that also covers the lookup: the lookup's bound must be below both, or the
/// connect's timeout fires first and is counted as the API server's.
#[test]
fn a_name_lookup_waiting_for_a_blocking_thread_opens_no_grace_period_with_the_default_timeout() {
    name_lookup_waiting_for_a_blocking_thread(TokenReviewSettings::default().timeout);
}

fn name_lookup_waiting_for_a_blocking_thread(timeout: Duration) {
    let runtime = crate::support::one_blocking_thread_runtime();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let by_name = cluster
            .reviews
            .api_server_url()
            .replace("127.0.0.1", "localhost");
        assert!(by_name.starts_with("http://localhost:"), "{by_name}");
        let api = || {
            let caller = cluster.reviews.caller_token();
            ApiServer::builder(by_name.clone())
                .with_bearer_token(move || Some(caller.clone()))
                .build()
                .unwrap()
        };
        let mut settings = TokenReviewSettings::default();
        settings.timeout = timeout;
        let verifier = loaded_without_a_review(&cluster, &clock, api(), settings.clone()).await;
        let revoked = cluster.token().sign();
        cluster.reviews.delete_bound_object(&revoked);
        // The control: by name, with a blocking thread free, the API server refuses it.
        let control = loaded_without_a_review(&cluster, &clock, api(), settings).await;
        let refused = verify(&control, &revoked).await;
        assert!(
            matches!(refused, Err(VerifyError::ReviewRefused { .. })),
            "{refused:?}"
        );

        let result =
            crate::support::with_the_blocking_thread_held(verify(&verifier, &revoked)).await;
        assert_not_accepted(&result, "a name lookup waiting for a blocking thread");
    });
}

/// Set in the process that `running_out_of_file_descriptors_opens_no_grace_period` starts.
#[cfg(target_os = "linux")]
const FD_CHILD: &str = "OIDC_BEARER_TEST_FDS_EXHAUSTED";

/// This process out of file descriptors (`EMFILE`: as many connections held open to this server
/// as its limit allows, a slow-client flood, or a descriptor leak) is a limit of this process: a
/// review's connect fails before anything reaches the API server, which is up and would refuse
/// the deleted pod's token. It must open no grace period.
///
/// Review finding (s3-review-file2): the connect's `socket(2)` failing with `EMFILE` is a
/// `Fetch(Transport)`, which `is_api_server_failure()` counts as an outage: a flood of idle
/// connections turns into the acceptance of revoked tokens for the grace period.
///
/// Run in a process of its own (the descriptor limit is the process's).
#[cfg(target_os = "linux")]
#[test]
fn running_out_of_file_descriptors_opens_no_grace_period() {
    crate::support::run_child_test(
        "object_binding::local::out_of_file_descriptors_in_a_process_of_its_own",
        |child| {
            child.env(FD_CHILD, "1");
        },
    );
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by running_out_of_file_descriptors_opens_no_grace_period, in a process of its own"]
fn out_of_file_descriptors_in_a_process_of_its_own() {
    if std::env::var_os(FD_CHILD).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let clock = ManualClock::new();
        let api = || cluster.in_cluster().api_server().unwrap();
        let settings = TokenReviewSettings::default;
        let verifier = loaded_without_a_review(&cluster, &clock, api(), settings()).await;
        let revoked = cluster.token().sign();
        cluster.reviews.delete_bound_object(&revoked);
        // The control: with descriptors to spare, the API server refuses it.
        let control = loaded_without_a_review(&cluster, &clock, api(), settings()).await;
        let refused = verify(&control, &revoked).await;
        assert!(
            matches!(refused, Err(VerifyError::ReviewRefused { .. })),
            "{refused:?}"
        );

        // Every descriptor taken: the limit lowered to just above the highest open one, and the
        // holes below it filled.
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        // (prlimit(1): this crate forbids `unsafe`, so no setrlimit(2) here.)
        let prlimit = |soft: &str| {
            let status = std::process::Command::new("prlimit")
                .args(["--pid", &std::process::id().to_string()])
                .arg(format!("--nofile={soft}:"))
                .status()
                .expect("prlimit runs");
            assert!(status.success(), "prlimit --nofile={soft}:");
        };
        let before = std::fs::read_to_string("/proc/self/limits").unwrap();
        let soft = before
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_owned();
        prlimit(&(highest + 1).to_string());
        let mut taken = Vec::new();
        let full = loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => taken.push(file),
                Err(error) => break error,
            }
        };
        assert_eq!(full.raw_os_error(), Some(libc::EMFILE), "{full}");

        let result = verify(&verifier, &revoked).await;
        drop(taken);
        prlimit(&soft);
        assert_not_accepted(&result, "this process out of file descriptors");
    });
}

/// A review whose runtime is not driven while the API server answers — a current-thread runtime
/// between two `block_on` calls (a synchronous wrapper), or workers all busy — finds, when it runs
/// again, its timeout past and the answer waiting in the socket. The API server answered in time:
/// the delay is this process's, and must open no grace period (the outage it would record opens
/// it for every token, on every runtime sharing the check).
///
/// Review finding (s3-review-file2): when the runtime runs again, the review's expired timers are
/// seen before the answer (reqwest's `PendingRequest` polls its total timeout first, and
/// `ApiServer::review` runs under `tokio::time::timeout` too), so the answer in hand becomes
/// `Fetch(Timeout)`, which `is_api_server_failure()` counts as an outage.
#[test]
fn a_review_resumed_after_its_runtime_sat_idle_opens_no_grace_period() {
    // The API server on loopback answers in microseconds; the default 5 s would only slow the
    // test down.
    let timeout = Duration::from_millis(300);
    review_resumed_after_the_runtime_sat_idle(timeout, timeout * 2);
}

/// The review is sent with `timeout`, the API server answers at once, and the runtime sits idle
/// for `idle` (from the answer on): no grace period may open.
fn review_resumed_after_the_runtime_sat_idle(timeout: Duration, idle: Duration) {
    resumed_after_the_runtime_sat_idle(timeout, idle, true);
}

/// [`review_resumed_after_the_runtime_sat_idle`] for a token whose pod was deleted (`deleted`),
/// or else for a live pod's token, which must be accepted on the API server's answer, with no
/// outage recorded: a deleted pod's token verified next must be refused.
fn resumed_after_the_runtime_sat_idle(timeout: Duration, idle: Duration, deleted: bool) {
    let main = one_worker();
    let side = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The API server on a runtime that runs throughout.
    let cluster = main.block_on(Cluster::start());
    let clock = ManualClock::new();
    let mut settings = TokenReviewSettings::default();
    settings.timeout = timeout;
    let api = || cluster.in_cluster().api_server().unwrap();
    let (verifier, control) = side.block_on(async {
        (
            loaded_without_a_review(&cluster, &clock, api(), settings.clone()).await,
            loaded_without_a_review(&cluster, &clock, api(), settings.clone()).await,
        )
    });
    let token = cluster.token().sign();
    if deleted {
        cluster.reviews.delete_bound_object(&token);
    }
    // The control: driven throughout, the review is answered (refused, or accepted).
    let controlled = side.block_on(verify(&control, &token));
    assert!(
        match deleted {
            true => matches!(controlled, Err(VerifyError::ReviewRefused { .. })),
            false => controlled.is_ok(),
        },
        "{controlled:?}"
    );

    // The first call drives the review until the API server has it, then returns (its caller's
    // deadline); the review goes on as a task of its own.
    let held = sent_and_held(&side, &cluster, &verifier, &token);
    // The API server answers at once, long before the review's timeout...
    drop(held);
    // ...while the runtime sits idle past it (the idle time is what is tested, not a wait for
    // something).
    std::thread::sleep(idle);
    // The next call joins the review in flight, which runs again and ends.
    let result = side.block_on(verify(&verifier, &token));
    let what =
        format!("a runtime not driven for {idle:?} past an answer, with a {timeout:?} timeout");
    if deleted {
        assert_not_accepted(&result, &what);
        return;
    }
    assert!(
        result.is_ok(),
        "{what}: a live pod's token refused: {result:?}"
    );
    // Accepted on the answer, not by a grace period: none is open.
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    let result = side.block_on(verify(&verifier, &revoked));
    assert_not_accepted(&result, &format!("{what}, then a review"));
}

/// A multi-threaded runtime with one worker.
fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A review of `token` started on `side` by a first call that returns once the API server has it
/// (its caller's deadline), held there until the returned hold is dropped; the review goes on as a
/// task of its own.
fn sent_and_held(
    side: &tokio::runtime::Runtime,
    cluster: &Cluster,
    verifier: &ObjectBinding<Verifier>,
    token: &str,
) -> oidc_bearer_testing::ReviewHold {
    let sent = cluster.reviews.calls();
    let held = cluster.reviews.hold();
    side.block_on(async {
        let mut first = Box::pin(verify(verifier, token));
        std::future::poll_fn(|cx| {
            assert!(first.as_mut().poll(cx).is_pending(), "answered at once");
            std::task::Poll::Ready(())
        })
        .await;
        cluster.reviews.wait_for_calls(sent + 1).await;
    });
    held
}

/// Review 3 (s3-review-grace3): an object-binding check of this cluster's tokens against `url`
/// (our credential given at once), with a grace period of a minute and these `settings`.
fn review3_bound_to(
    cluster: &Cluster,
    clock: &ManualClock,
    url: String,
    settings: TokenReviewSettings,
) -> ObjectBinding<Verifier> {
    let caller = cluster.reviews.caller_token();
    let api = ApiServer::builder(url)
        .with_bearer_token(move || Some(caller.clone()))
        .build()
        .unwrap();
    let check = ObjectBindingCheck::new(INTERVAL)
        .with_api_server(api)
        .with_grace_period(Duration::from_secs(60))
        .with_settings(settings);
    cluster.bound(clock, check)
}

/// Review 3, sanity: a plain outage still opens the grace period — the API server's port closed
/// on loopback (connection refused: `Transport`).
#[tokio::test]
async fn review3_a_refused_connection_still_opens_the_grace_period() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let verifier = review3_bound_to(&cluster, &clock, url, TokenReviewSettings::default());
    if let Err(error) = verify(&verifier, &cluster.token().sign()).await {
        panic!("a refused connection opened no grace period: {error:?}");
    }
}

/// Review 3, sanity: an API server that accepts the connection and never answers (hung) times
/// the review out (`Timeout`, seen in time): the grace period opens.
#[tokio::test]
async fn review3_a_hung_api_server_still_opens_the_grace_period() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = held_tx.send(stream);
        }
    });
    let mut settings = TokenReviewSettings::default();
    settings.timeout = Duration::from_millis(500);
    let verifier = review3_bound_to(&cluster, &clock, url, settings);
    if let Err(error) = verify(&verifier, &cluster.token().sign()).await {
        panic!("a hung API server opened no grace period: {error:?}");
    }
    assert!(held_rx.try_recv().is_ok(), "the review never connected");
}

/// Review 3 (s3-review-grace3): `TokenReviewSettings::validate` takes any positive timeout, and
/// `fetch::send` (now `Request::send`) computed its deadline as `Instant::now() + timeout`, which panics ("overflow
/// when adding duration to instant") for `Duration::MAX` (reqwest itself saturates). A review
/// then ends in a panicked task instead of a clear configuration error or a working review.
#[tokio::test]
async fn review3_a_huge_review_timeout_is_refused_or_works_never_a_panic() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let mut settings = TokenReviewSettings::default();
    settings.timeout = Duration::MAX;
    let check = cluster.check().with_settings(settings);
    // Refusing it when building is fine; otherwise the review must answer.
    let Ok(verifier) = check.wrap(cluster.builder(&clock).build().unwrap()) else {
        return;
    };
    let result = verify(&verifier, &cluster.token().sign()).await;
    assert!(result.is_ok(), "{result:?}");
}

/// Review 3 (s3-review-grace3): e22fa83 widened the lateness a timeout may be seen with and still
/// be the server's from 100 ms to a quarter of the timeout (1.25 s with the default 5 s). As in
/// `a_review_resumed_after_its_runtime_sat_idle_opens_no_grace_period`, the API server answers at
/// once (it would refuse the deleted pod's token), but this process sits idle 400 ms past the
/// review's 2 s timeout (inside the new 500 ms tolerance, four times the old one): the answer in
/// the socket becomes the server's `Timeout`, an outage, and the grace period opens. A stall of
/// this process is recorded as the API server's failure.
///
/// The `thread::sleep` is the idle period under test, not a wait for something.
#[test]
fn review3_a_runtime_idle_a_fifth_of_the_timeout_past_it_opens_no_grace_period() {
    let timeout = Duration::from_secs(2);
    review_resumed_after_the_runtime_sat_idle(timeout, timeout + Duration::from_millis(400));
}

/// Review 4 (s3-review-grace4): the fixed 100 ms tolerance still leaves a window. As in
/// `a_review_resumed_after_its_runtime_sat_idle_opens_no_grace_period`, the API server answers at
/// once (it would refuse the deleted pod's token) and this process sits idle over the whole
/// timeout; here it runs again 20 ms past it, inside `STALL_TOLERANCE`. The answer has waited in
/// the socket all along, yet the expired timers are seen first (reqwest's `PendingRequest` polls
/// its total timeout before the response): the server's `Timeout`, an outage, the grace period
/// opens. Whether a stall is this process's cannot be judged from the timer's lateness alone: a
/// stall that ends just after the deadline is as much ours as one that ends 100 ms after it.
///
/// The `thread::sleep` is the idle period under test, not a wait for something.
#[test]
fn review4_a_runtime_idle_until_just_past_the_timeout_opens_no_grace_period() {
    let timeout = Duration::from_millis(300);
    review_resumed_after_the_runtime_sat_idle(timeout, timeout + Duration::from_millis(20));
}

/// The answer found in the socket after the timer fired is used on its merits: a live pod's token
/// resumed just past the timeout (as in
/// `review4_a_runtime_idle_until_just_past_the_timeout_opens_no_grace_period`) is accepted on the
/// API server's answer, and no outage is recorded (a deleted pod's token verified next is
/// refused, not let in by a grace period).
///
/// The `thread::sleep` is the idle period under test, not a wait for something.
#[test]
fn a_live_pods_answer_read_just_past_the_timeout_is_used_and_records_no_outage() {
    let timeout = Duration::from_millis(300);
    resumed_after_the_runtime_sat_idle(timeout, timeout + Duration::from_millis(20), false);
}

/// The same on a multi-threaded runtime whose only worker is held busy (a task that blocks it)
/// while the API server answers, and freed 20 ms past the review's timeout: the answer waiting in
/// the socket is read and used (the deleted pod's token refused), not recorded as the API
/// server's `Timeout`.
///
/// The `thread::sleep` is the busy period under test, not a wait for something.
#[test]
fn a_review_resumed_just_past_the_timeout_after_its_worker_was_busy_opens_no_grace_period() {
    let timeout = Duration::from_millis(300);
    let idle = timeout + Duration::from_millis(20);
    let (main, side) = (one_worker(), one_worker());
    let cluster = main.block_on(Cluster::start());
    let (clock, mut settings) = (ManualClock::new(), TokenReviewSettings::default());
    settings.timeout = timeout;
    let api = cluster.in_cluster().api_server().unwrap();
    let verifier = side.block_on(loaded_without_a_review(&cluster, &clock, api, settings));
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    // The review is sent and held by the API server; its task waits on the worker.
    let held = sent_and_held(&side, &cluster, &verifier, &revoked);
    // The worker busy (a blocking call in a task), then the API server answers.
    let (running_tx, running) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    side.spawn(async move {
        running_tx.send(()).unwrap();
        let _ = released.recv();
    });
    running.recv().unwrap();
    drop(held);
    std::thread::sleep(idle);
    release.send(()).unwrap();
    let result = side.block_on(verify(&verifier, &revoked));
    assert_not_accepted(
        &result,
        &format!("the only worker busy for {idle:?} past an answer, with a {timeout:?} timeout"),
    );
}

/// Review R1 (session 4) of the fix that reads an answer waiting in the socket past the deadline.
mod review_r1;

/// Review R4 (session 4) of the last window (70ecadb).
mod review_r4;

/// Review R5 (session 4) of 9a9c4b4 (no connect timer for reviews; TLS alerts as TlsRefused).
mod review_r5;

/// Review R6 (session 4) of b53778d (the heartbeat beside an exchange; the connect timeout back).
mod review_r6;

/// Review R7 (session 4) of e128566 (Transport reclassified after a stall; no pooled connection).
mod review_r7;
