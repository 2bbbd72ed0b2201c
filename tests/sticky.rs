//! `sticky cookie`: the cookie names the server that answered with a value derived from
//! its address (the same in every pinlb process, and nginx's); a request carrying it goes
//! back to that server; a cookie for a down or unknown server is balanced and replaced;
//! an explicit pin beats the cookie; a `drain` server only gets sticky requests.

mod common;

use common::*;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// nginx's server ID: the hex MD5 of `ip:port`.
fn sid(b: &Backend) -> String {
    Md5::digest(b.addr.to_string().as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn sticky_config(backends: &[&Backend], sticky: Value) -> Value {
    config(
        servers(backends),
        json!({}),
        json!({ "upstreams": { "web": { "sticky": sticky } } }),
    )
}

/// The value of the `srv` cookie a response sets, if it sets one.
fn set_cookie(r: &Response) -> Option<String> {
    let v = r.header("set-cookie")?;
    let first = v.split(';').next()?;
    first.strip_prefix("srv=").map(str::to_string)
}

fn get_with_cookie(lb: &Pinlb, cookie: &str, extra: &[(&str, &str)]) -> Response {
    let header = format!("srv={cookie}");
    let mut headers = vec![("Cookie", header.as_str())];
    headers.extend_from_slice(extra);
    let r = lb
        .client()
        .get("/", &headers)
        .expect("request through pinlb");
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

#[test]
fn two_processes_give_and_honour_the_same_cookie() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let cfg = sticky_config(&[&a, &b, &c], json!({ "cookie": "srv" }));
    let mut other = cfg.clone();
    other["listeners"][0]["addr"] = json!(free_addr().to_string());
    let (one, two) = (Pinlb::start(&cfg), Pinlb::start(&other));
    let by_name = |n: &str| [&a, &b, &c].into_iter().find(|x| x.name == n).unwrap();
    let mut seen = BTreeSet::new();
    let mut client = one.client();
    for _ in 0..3 {
        // No cookie: balanced, and told which server answered.
        let r = client.get("/", &[]).unwrap();
        let name = r.text().trim().to_string();
        let cookie = set_cookie(&r).expect("a response without a cookie sets one");
        assert_eq!(cookie, sid(by_name(&name)));
        // The other process sends it to the same server, every time, without a new cookie.
        for _ in 0..4 {
            let r2 = get_with_cookie(&two, &cookie, &[]);
            assert_eq!(r2.text().trim(), name);
            assert_eq!(r2.header("set-cookie"), None);
        }
        seen.insert(name);
    }
    assert_eq!(
        seen.len(),
        3,
        "the three servers each gave a cookie: {seen:?}"
    );
}

#[test]
fn a_cookie_for_a_down_or_unknown_server_is_balanced_and_replaced() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let cfg = sticky_config(&[&a, &b], json!({ "cookie": "srv" }));
    let mut cfg = cfg;
    cfg["upstreams"]["web"]["health_check"] =
        json!({ "type": "http", "path": "/health", "interval_ms": 200 });
    let lb = Pinlb::start(&cfg);
    assert_eq!(get_with_cookie(&lb, &sid(&b), &[]).text().trim(), "b");
    b.set_healthy(false);
    assert!(
        poll_until(Duration::from_secs(5), || {
            lb.status()["upstreams"]["web"]["servers"][1]["healthy"] == json!(false)
        }),
        "b never went down"
    );
    for _ in 0..3 {
        let r = get_with_cookie(&lb, &sid(&b), &[]);
        assert_eq!(r.text().trim(), "a");
        assert_eq!(set_cookie(&r), Some(sid(&a)), "the cookie is replaced");
    }
    // Forged, stale and hostile values are balanced and replaced too.
    let long = "x".repeat(4000);
    for forged in [
        "0123456789abcdef0123456789abcdef",
        "",
        "../../etc",
        long.as_str(),
    ] {
        let r = get_with_cookie(&lb, forged, &[]);
        assert_eq!(r.text().trim(), "a");
        assert_eq!(set_cookie(&r), Some(sid(&a)));
    }
    b.set_healthy(true);
    assert!(poll_until(Duration::from_secs(5), || {
        get_with_cookie(&lb, &sid(&b), &[]).text().trim() == "b"
    }));
}

#[test]
fn an_explicit_pin_beats_the_sticky_cookie() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut cfg = sticky_config(&[&a, &b], json!({ "cookie": "srv" }));
    cfg["routes"][0]["pin"] = json!({ "header": "X-App" });
    let lb = Pinlb::start(&cfg);
    let r = get_with_cookie(&lb, &sid(&a), &[("X-App", "b")]);
    assert_eq!(r.text().trim(), "b");
    let r = get_with_cookie(&lb, &sid(&a), &[]);
    assert_eq!(r.text().trim(), "a");
}

#[test]
fn a_draining_server_gets_only_sticky_requests() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut cfg = sticky_config(&[&a, &b], json!({ "cookie": "srv" }));
    cfg["upstreams"]["web"]["servers"][1]["drain"] = json!(true);
    let lb = Pinlb::start(&cfg);
    assert_eq!(served_by(&mut lb.client(), 6, &[]), vec!["a"; 6]);
    assert_eq!(get_with_cookie(&lb, &sid(&b), &[]).text().trim(), "b");
    assert_eq!(b.requests(), 1);
}

#[test]
fn json_sticky_attributes_and_routes() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut cfg = sticky_config(
        &[&a, &b],
        json!({
            "cookie": "srv", "expires_ms": 7_200_000, "domain": "example.com", "path": "/app",
            "httponly": true, "secure": true, "samesite": "strict"
        }),
    );
    cfg["upstreams"]["web"]["servers"][0]["route"] = json!("one");
    let lb = Pinlb::start(&cfg);
    let r = get_with_cookie(&lb, "one", &[]);
    assert_eq!(r.text().trim(), "a");
    let cookie = r.header("set-cookie").expect("expires renews the cookie");
    let (value, attrs) = cookie.split_once("; expires=").unwrap();
    assert_eq!(value, "srv=one");
    assert!(
        attrs.ends_with(
            " GMT; max-age=7200; domain=example.com; httponly; secure; samesite=strict; path=/app"
        ),
        "{cookie}"
    );
    assert_eq!(
        get_with_cookie(&lb, &sid(&b), &[]).text().trim(),
        "b",
        "a server without route= is named by its address"
    );
}
