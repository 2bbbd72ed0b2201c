//! The `app` pin by header and cookie, and what happens when the pinned server is down.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const PIN: &str = r#"{ "pin": { "header": "app", "cookie": "app" } }"#;

fn three() -> (Backend, Backend, Backend) {
    (
        Backend::start("app1"),
        Backend::start("app2"),
        Backend::start("app3"),
    )
}

fn pinned_lb(backends: &[&Backend], route: serde_json::Value, extra: serde_json::Value) -> Pinlb {
    Pinlb::start(&config(servers(backends), route, extra))
}

#[test]
fn header_pins_every_request_to_the_named_server() {
    let (a, b, c) = three();
    let lb = pinned_lb(&[&a, &b, &c], serde_json::from_str(PIN).unwrap(), json!({}));
    let got = served_by(&mut lb.client(), 6, &[("app", "app2")]);
    assert_eq!(got, vec!["app2"; 6]);
    assert_eq!((a.requests(), b.requests(), c.requests()), (0, 6, 0));
}

#[test]
fn cookie_pins_every_request_to_the_named_server() {
    let (a, b, c) = three();
    let lb = pinned_lb(&[&a, &b, &c], serde_json::from_str(PIN).unwrap(), json!({}));
    let got = served_by(&mut lb.client(), 6, &[("Cookie", "theme=dark; app=app3")]);
    assert_eq!(got, vec!["app3"; 6]);
}

#[test]
fn header_beats_cookie() {
    let (a, b, c) = three();
    let lb = pinned_lb(&[&a, &b, &c], serde_json::from_str(PIN).unwrap(), json!({}));
    let got = served_by(
        &mut lb.client(),
        4,
        &[("Cookie", "app=app3"), ("app", "app1")],
    );
    assert_eq!(got, vec!["app1"; 4]);
}

#[test]
fn unknown_pin_falls_back_to_balancing() {
    let (a, b, c) = three();
    let lb = pinned_lb(&[&a, &b, &c], serde_json::from_str(PIN).unwrap(), json!({}));
    let got = served_by(&mut lb.client(), 6, &[("app", "app9")]);
    assert_eq!(got.concat(), "app1app2app3app1app2app3");
}

#[test]
fn pins_do_not_move_the_rotation_of_other_requests() {
    let (a, b, c) = three();
    let lb = pinned_lb(&[&a, &b, &c], serde_json::from_str(PIN).unwrap(), json!({}));
    let mut client = lb.client();
    let mut order = Vec::new();
    for _ in 0..3 {
        order.extend(served_by(&mut client, 1, &[]));
        served_by(&mut client, 2, &[("app", "app3")]);
    }
    assert_eq!(order.concat(), "app1app2app3");
}

/// Marks app2 down through its health endpoint and waits until pinlb says so.
fn with_app2_down(on_unhealthy: &str) -> (Pinlb, Backend, Backend, Backend) {
    let (a, b, c) = three();
    let route =
        json!({ "pin": { "header": "app", "cookie": "app", "on_unhealthy": on_unhealthy } });
    let check = json!({ "upstreams": { "web": { "health_check": {
        "type": "http", "path": "/health", "interval_ms": 100, "fails": 1, "passes": 1
    } } } });
    let lb = pinned_lb(&[&a, &b, &c], route, check);
    b.set_healthy(false);
    assert!(
        lb.wait_for_log("server \"app2\"", Duration::from_secs(5))
            && lb.log().contains("becomes unhealthy"),
        "app2 was not marked down; log:\n{}",
        lb.log()
    );
    (lb, a, b, c)
}

#[test]
fn pin_to_a_down_server_falls_back_to_the_healthy_ones_by_default() {
    let (lb, _a, b, _c) = with_app2_down("fallback");
    let mut got = served_by(&mut lb.client(), 4, &[("app", "app2")]);
    got.sort();
    assert_eq!(got, ["app1", "app1", "app3", "app3"]);
    assert_eq!(b.requests(), 0);
}

#[test]
fn pin_to_a_down_server_is_refused_with_503_when_configured() {
    let (lb, _a, b, _c) = with_app2_down("refuse");
    let r = lb.client().get("/", &[("app", "app2")]).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "503 Service Unavailable: server \"app2\" of upstream \"web\" is down\n"
    );
    assert_eq!(b.requests(), 0);
    // Unpinned traffic still flows.
    assert_eq!(lb.client().get("/", &[]).unwrap().status, 200);
}

#[test]
fn pin_to_a_down_server_is_used_anyway_when_configured() {
    let (lb, _a, b, _c) = with_app2_down("use");
    let got = served_by(&mut lb.client(), 3, &[("Cookie", "app=app2")]);
    assert_eq!(got, vec!["app2"; 3]);
    assert_eq!(b.requests(), 3);
}
