//! Review R7 (session 4) of e128566: after a stall the heartbeat saw (> `STALL_TOLERANCE`,
//! 100 ms), a `Transport` error is the stall's too; the heartbeat's record goes on from
//! `Request::send` into `Response::body`; reviews use a new connection each; a review timeout is
//! at most 60 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::review_r4::ca_and_certificate;
use super::review_r5::{bound_with_grace, response};
use super::review_r6::{current_thread, handshake_timing_out};
use super::{Cluster, ManualClock, TokenReviewSettings, assert_not_accepted, verify};

/// `STALL_TOLERANCE` of oidc-bearer-shared's `fetch`: a stall longer than this must be seen.
const STALL_TOLERANCE: Duration = Duration::from_millis(100);

/// Finding (R7, low): the heartbeat measures a stall as the lateness of its next tick, but ticks
/// are 25 ms apart and the first is due 25 ms after the exchange starts: a stall that begins just
/// after a tick (or as the exchange starts) is seen up to 25 ms shorter than it was. A stall of
/// 100–125 ms, over `STALL_TOLERANCE`, is taken for ordinary scheduling. Here the API server is up
/// and answers every flight of its handshake at once; this process stalls ~110 ms from the start
/// of the review (the runtime not driven from the API server's HelloRetryRequest on), longer than
/// the API server's handshake timeout (50 ms here), so the API server disconnects us. When the
/// process runs again, the first tick is seen ≤ 95 ms late: no stall, and the handshake's EOF
/// stays `FetchError::Transport`, the API server's failure: the grace period opens.
///
/// The `thread::sleep` is the stall under test; the server's read timeout is its behaviour under
/// test.
#[test]
fn r7_a_stall_over_the_tolerance_but_within_a_heartbeat_of_it_opens_no_grace_period() {
    let main = super::one_worker();
    let side = current_thread();
    let cluster = main.block_on(Cluster::start());
    let (mut server, gave_up) = handshake_timing_out(Duration::from_millis(50));
    let clock = ManualClock::new();
    let timeout = TokenReviewSettings::default().timeout;
    let (verifier, control) = server.verifier_and_control(&side, &cluster, &clock, timeout);
    let token = cluster.token().sign();
    // `started` is taken before the review's first poll, so before its heartbeat exists: its
    // first tick is due at `started + 25 ms` or later.
    let started = server.control_then_start(&side, &control, &verifier, &token);
    let stall_began = std::time::Instant::now();
    let resumed_at = started + Duration::from_millis(120);
    // The API server gives up on us while this process does not run.
    gave_up.recv().unwrap();
    std::thread::sleep(resumed_at.saturating_duration_since(std::time::Instant::now()));
    let stalled = stall_began.elapsed();
    assert!(
        stalled > STALL_TOLERANCE + Duration::from_millis(3),
        "precondition: the stall under test took {stalled:?} (the handshake's first flight was slow)"
    );
    let result = side.block_on(verify(&verifier, &token));
    assert_not_accepted(
        &result,
        &format!(
            "a stall of {stalled:?} (over the 100 ms tolerance) mid-TLS-handshake past the API \
             server's handshake timeout"
        ),
    );
}

/// What a plain-HTTP API server on 127.0.0.1 does with each connection.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// Nothing listens: the connection is refused.
    Refused,
    /// The connection is accepted and, once the request arrives, reset (RST).
    Reset,
    /// The request is answered 503.
    Unavailable,
    /// The connection is accepted and never answered.
    Hung,
}

/// An API server down in the way of `outage`; its URL.
fn down(outage: Outage) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    if let Outage::Refused = outage {
        drop(listener);
        return url;
    }
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            match outage {
                Outage::Refused => unreachable!(),
                Outage::Reset => {
                    // One byte of the request read, the rest left unread: closed so, the
                    // connection is reset (RST, RFC 1122 §4.2.2.13), not closed.
                    use std::io::Read as _;
                    let _ = stream.read(&mut [0; 1]);
                    drop(stream);
                }
                Outage::Unavailable => {
                    if crate::support::read_http_request(&mut stream) {
                        use std::io::Write as _;
                        let _ =
                            stream.write_all(response("503 Service Unavailable", "{}").as_bytes());
                    }
                }
                Outage::Hung => held.push(stream),
            }
        }
    });
    url
}

/// Holds (passes on e128566): with `Transport` now reclassified after a stall, real outages —
/// refused, reset, 503, hung — still open the grace period on an idle runtime and on a moderately
/// busy one (another task takes 30 ms per turn of a current-thread runtime): the heartbeat sees
/// no stall there. The busy task's `thread::sleep` is the load under test.
#[test]
fn r7_real_outages_still_open_the_grace_period_on_idle_and_busy_runtimes() {
    for busy in [false, true] {
        let runtime = current_thread();
        runtime.block_on(async {
            let cluster = Cluster::start().await;
            let clock = ManualClock::new();
            let stop = Arc::new(AtomicBool::new(false));
            let load = busy.then(|| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(30));
                        tokio::task::yield_now().await;
                    }
                })
            });
            for outage in [
                Outage::Refused,
                Outage::Reset,
                Outage::Unavailable,
                Outage::Hung,
            ] {
                let verifier = bound_with_grace(
                    &cluster,
                    &clock,
                    down(outage),
                    ca_and_certificate().ca_pem,
                    Duration::from_millis(300),
                );
                let result = verify(&verifier, &cluster.token().sign()).await;
                assert!(
                    result.is_ok(),
                    "{outage:?} (busy runtime: {busy}) opened no grace period: {result:?}"
                );
            }
            stop.store(true, Ordering::Relaxed);
            if let Some(load) = load {
                load.await.unwrap();
            }
        });
    }
}
