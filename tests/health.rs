//! Background health checks: a failing server leaves rotation in time, comes back after
//! enough good checks, checks keep running, and flips are logged by server name.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn checked(backends: &[&Backend], check: serde_json::Value) -> Pinlb {
    Pinlb::start(&config(
        servers(backends),
        json!({}),
        json!({ "upstreams": { "web": { "health_check": check } } }),
    ))
}

/// Sends requests until `n` in a row satisfy `want`; returns the time that took.
fn until_consecutive(
    lb: &Pinlb,
    n: usize,
    timeout: Duration,
    want: impl Fn(&str) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    let mut client = lb.client();
    let mut streak = 0;
    while started.elapsed() < timeout {
        let r = client.get("/", &[]).expect("request through pinlb");
        assert_eq!(r.status, 200);
        streak = if want(r.header("x-served-by").unwrap_or("")) {
            streak + 1
        } else {
            0
        };
        if streak == n {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn failing_server_leaves_rotation_within_interval_times_fails_plus_a_second() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = checked(
        &[&a, &b],
        json!({ "type": "http", "path": "/health", "interval_ms": 300, "fails": 2 }),
    );
    b.set_healthy(false);
    let took = until_consecutive(&lb, 6, Duration::from_secs(5), |s| s == "a")
        .expect("b never left rotation");
    assert!(
        took <= Duration::from_millis(300 * 2 + 1000),
        "took {took:?}"
    );
}

#[test]
fn server_returns_after_passes_good_checks() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = checked(
        &[&a, &b],
        json!({ "type": "http", "path": "/health", "interval_ms": 300, "fails": 1, "passes": 2 }),
    );
    b.set_healthy(false);
    until_consecutive(&lb, 4, Duration::from_secs(5), |s| s == "a").expect("b never left rotation");
    b.set_healthy(true);
    let took =
        until_consecutive(&lb, 1, Duration::from_secs(5), |s| s == "b").expect("b never came back");
    // Two passes are at least one interval apart.
    assert!(
        took >= Duration::from_millis(250),
        "came back after one pass: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(300 * 2 + 1000),
        "took {took:?}"
    );
}

#[test]
fn checks_keep_running_on_their_interval() {
    let a = Backend::start("a");
    let _lb = checked(
        &[&a],
        json!({ "type": "http", "path": "/health", "interval_ms": 100 }),
    );
    assert!(
        poll_until(Duration::from_secs(5), || a.health_checks() >= 8),
        "only {} checks",
        a.health_checks()
    );
}

#[test]
fn statuses_200_to_399_are_healthy_and_others_are_not() {
    for (path, healthy) in [
        ("/status/204", true),
        ("/status/302", true),
        ("/status/404", false),
        ("/status/500", false),
    ] {
        let a = Backend::start("a");
        let lb = checked(
            &[&a],
            json!({ "type": "http", "path": path, "interval_ms": 100, "fails": 1 }),
        );
        assert!(
            poll_until(Duration::from_secs(3), || a.requests() >= 2),
            "no checks on {path}"
        );
        let status = get(lb.addr, "/", &[]).unwrap().status;
        assert_eq!(status, if healthy { 200 } else { 503 }, "check path {path}");
    }
}

#[test]
fn tcp_check_follows_a_killed_and_restarted_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = checked(
        &[&a, &b],
        json!({ "type": "tcp", "interval_ms": 200, "fails": 1, "passes": 1 }),
    );
    let addr = b.addr;
    drop(b);
    assert!(
        lb.wait_for_log("server \"b\" (", Duration::from_secs(3)),
        "log:\n{}",
        lb.log()
    );
    until_consecutive(&lb, 4, Duration::from_secs(3), |s| s == "a").expect("b never left rotation");
    let b = Backend::start_on("b", addr).expect("rebind b's port");
    assert!(
        lb.wait_for_log("becomes healthy", Duration::from_secs(3)),
        "log:\n{}",
        lb.log()
    );
    until_consecutive(&lb, 1, Duration::from_secs(3), |s| s == "b").expect("b never came back");
    drop(b);
}

#[test]
fn flips_are_logged_with_the_server_name() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = checked(
        &[&a, &b],
        json!({ "type": "http", "path": "/health", "interval_ms": 100 }),
    );
    b.set_healthy(false);
    let down = format!(
        "server \"b\" ({}) of upstream \"web\" becomes unhealthy",
        b.addr
    );
    assert!(
        lb.wait_for_log(&down, Duration::from_secs(3)),
        "log:\n{}",
        lb.log()
    );
    b.set_healthy(true);
    let up = format!(
        "server \"b\" ({}) of upstream \"web\" becomes healthy",
        b.addr
    );
    assert!(
        lb.wait_for_log(&up, Duration::from_secs(3)),
        "log:\n{}",
        lb.log()
    );
    let log = lb.log();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap()
            .to_string()
    };
    assert!(line(&down).contains("WARN"), "{}", line(&down));
    assert!(line(&up).contains("INFO"), "{}", line(&up));
}

#[test]
fn a_check_slower_than_its_timeout_fails_and_a_faster_one_passes() {
    // `/slow/400` answers 200 after 400 ms: healthy within 2 s, a failure within 100 ms.
    for (timeout_ms, healthy) in [(2000, true), (100, false)] {
        let a = Backend::start("a");
        let lb = checked(
            &[&a],
            json!({ "type": "http", "path": "/slow/400", "interval_ms": 200, "timeout_ms": timeout_ms, "fails": 1 }),
        );
        // Two checks started: the first one has had its 400 ms.
        assert!(
            poll_until(Duration::from_secs(5), || a.requests() >= 2),
            "no checks"
        );
        let up = lb.status()["upstreams"]["web"]["servers"][0]["healthy"].clone();
        assert_eq!(up, healthy, "timeout_ms {timeout_ms}; log:\n{}", lb.log());
    }
}

#[test]
fn max_fails_failed_requests_take_a_server_out_for_fail_timeout() {
    // Nothing listens on `dead`: each attempt there is refused and retried on `live`.
    let (dead, live) = (free_addr(), Backend::start("live"));
    let conf = json!([
        { "name": "dead", "addr": dead.to_string(), "max_fails": 2, "fail_timeout_ms": 1000 },
        { "name": "live", "addr": live.addr.to_string() }
    ]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    let status = || lb.status()["upstreams"]["web"]["servers"][0].clone();
    let mut failures_seen = 0;
    let mut out_since = None;
    for _ in 0..10 {
        assert_eq!(get(lb.addr, "/", &[]).unwrap().text(), "live");
        let s = status();
        failures_seen = s["failures"].as_u64().unwrap();
        if failures_seen == 1 {
            assert_eq!(s["usable"], true, "out after one failure: {s}");
        }
        if failures_seen == 2 {
            out_since = Some(Instant::now());
            break;
        }
    }
    let out_since = out_since.unwrap_or_else(|| panic!("{failures_seen} failures in 10 requests"));
    assert_eq!(status()["usable"], false, "still in after two failures");
    assert!(poll_until(Duration::from_secs(3), || status()["usable"] == true));
    let out_for = out_since.elapsed();
    assert!(
        out_for >= Duration::from_millis(900),
        "back after {out_for:?}"
    );
}

#[test]
fn fails_and_passes_count_checks_in_a_row() {
    let a = Backend::start("a");
    let lb = checked(
        &[&a],
        json!({ "type": "http", "path": "/health", "interval_ms": 100, "fails": 4, "passes": 4 }),
    );
    let healthy = || lb.status()["upstreams"]["web"]["servers"][0]["healthy"] == true;
    // Checks counted from a flip of the backend to the flip pinlb reports. One check may
    // have been under way at the backend's flip, so at least `fails - 1` (`passes - 1`)
    // of them are new; with a threshold of 1 there would be at most two.
    for now_healthy in [false, true] {
        a.set_healthy(now_healthy);
        let before = a.health_checks();
        assert!(poll_until(Duration::from_secs(5), || healthy() == now_healthy));
        let checks = a.health_checks() - before;
        assert!(
            checks >= 3,
            "flipped to healthy={now_healthy} after {checks} checks"
        );
    }
}
