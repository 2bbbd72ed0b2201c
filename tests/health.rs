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
