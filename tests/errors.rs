//! Errors users can act on: 503 when no server is usable, 502 when none can be reached,
//! 504 when the server is too slow; each with a one-line body naming the upstream.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn unreachable_servers_give_502_naming_the_upstream() {
    let conf = json!([
        { "name": "x", "addr": free_addr().to_string() },
        { "name": "y", "addr": free_addr().to_string() }
    ]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    let r = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        r.body,
        "502 Bad Gateway: no server of upstream \"web\" could be reached\n"
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn the_only_server_of_an_upstream_is_never_taken_out_by_failures() {
    // nginx ignores max_fails for a single server: each request tries it again and gets
    // its 502, instead of a 503 for fail_timeout after the first failure.
    let conf = json!([{ "name": "x", "addr": free_addr().to_string(), "max_fails": 1 }]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    for _ in 0..4 {
        assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 502);
    }
}

#[test]
fn no_healthy_server_gives_503_naming_the_upstream() {
    let a = Backend::start("a");
    let check = json!({ "upstreams": { "web": { "health_check": {
        "type": "http", "path": "/health", "interval_ms": 100, "fails": 1
    } } } });
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), check));
    a.set_healthy(false);
    assert!(lb.wait_for_log("becomes unhealthy", Duration::from_secs(3)));
    let r = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "503 Service Unavailable: no usable server in upstream \"web\"\n"
    );
}

#[test]
fn a_slow_server_gives_504_after_the_read_timeout() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "proxy": { "read_timeout_ms": 300 } }),
        json!({}),
    ));
    let started = Instant::now();
    let r = get(lb.addr, "/slow/3000", &[]).unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(
        r.body,
        "504 Gateway Timeout: upstream \"web\" did not answer in time\n"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_timeout_moves_the_request_to_the_next_server_like_nginx() {
    let (slow, fast) = (Backend::start("slow"), Backend::start("fast"));
    let lb = Pinlb::start(&config(
        servers(&[&slow, &fast]),
        json!({ "proxy": { "read_timeout_ms": 300 } }),
        json!({}),
    ));
    let r = get(lb.addr, "/slow/slow/1500", &[]).unwrap();
    assert_eq!((r.status, r.text()), (200, "fast"));
    assert_eq!((slow.requests(), fast.requests()), (1, 1));
}

#[test]
fn timeouts_on_every_server_give_504_after_one_try_each() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(
        servers(&[&a, &b]),
        json!({ "proxy": { "read_timeout_ms": 300 } }),
        json!({}),
    ));
    assert_eq!(get(lb.addr, "/slow/800", &[]).unwrap().status, 504);
    assert_eq!((a.requests(), b.requests()), (1, 1));
}

#[test]
fn conflicting_content_lengths_give_400_and_reach_no_server() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let agreeing = lb
        .client()
        .request("PATCH", "/", &[("Content-Length", "0, 0")])
        .unwrap();
    assert_eq!(agreeing.status, 200, "identical values frame the same body");
    assert_eq!(a.requests(), 1);
    for value in ["1, 2", "x", "0, x"] {
        let r = lb
            .client()
            .request("PATCH", "/", &[("Content-Length", value)])
            .unwrap();
        assert_eq!(r.status, 400, "Content-Length: {value}");
    }
    assert_eq!(a.requests(), 1, "no ambiguous request reached the server");
}
