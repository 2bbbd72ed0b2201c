//! `server NAME resolve`: names looked up again while running, against a name server the
//! test controls (`common::dns`). Every address of a name is a server; a changed answer
//! is followed within its TTL; NXDOMAIN, empty, failed and timed-out answers keep the last
//! addresses (warning, metric, `/status`); a vanished address finishes its requests;
//! a new address joins only after a passing health check.

mod common;

use common::dns::{DnsServer, Records, backends, ip};
use common::load::Load;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const NAME: &str = "app.pinlb.test";

/// A JSON config whose upstream `web` is the name `NAME` on the backends' port, looked
/// up at `dns`; `upstream` is merged into the upstream.
fn resolving(dns: &DnsServer, port: u16, upstream: Value) -> Value {
    let mut cfg = config(
        json!([{ "name": "app", "addr": format!("{NAME}:{port}"), "resolve": true }]),
        json!({}),
        json!({ "resolver": { "servers": [dns.addr.to_string()], "timeout_ms": 500 } }),
    );
    merge(&mut cfg["upstreams"]["web"], upstream);
    cfg
}

/// The backend names (`b2`...) that answered `n` requests.
fn answered_by(lb: &Pinlb, n: usize) -> BTreeSet<String> {
    let mut client = lb.client();
    (0..n)
        .map(|_| {
            let r = client.get("/", &[]).expect("request through pinlb");
            assert_eq!(r.status, 200, "body: {}; log:\n{}", r.body, lb.log());
            r.text().trim().to_string()
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The labels of the servers upstream `web` takes requests with, from `/status`.
fn serving(lb: &Pinlb) -> Vec<String> {
    let status = lb.status();
    let servers = status["upstreams"]["web"]["servers"].as_array().cloned();
    let label = |s: &Value| s["label"].as_str().unwrap_or("").to_string();
    servers.unwrap_or_default().iter().map(label).collect()
}

/// The `resolve` entry of upstream `web` in `/status`.
fn name_state(lb: &Pinlb) -> Value {
    lb.status()["upstreams"]["web"]["resolve"][0].clone()
}

#[test]
fn every_address_of_a_name_is_a_server() {
    let b = backends(3);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2), ip(3), ip(4)], 60));
    let lb = Pinlb::start(&resolving(&dns, b[0].addr.port(), json!({})));
    assert_eq!(answered_by(&lb, 9), set(&["b2", "b3", "b4"]));
    let status = lb.status();
    let servers = status["upstreams"]["web"]["servers"].as_array().unwrap();
    let labels: Vec<&str> = servers
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    let port = b[0].addr.port();
    assert_eq!(
        labels,
        [2, 3, 4].map(|i| format!("app@127.0.0.{i}:{port}")),
        "{status}"
    );
    // Each address is its own server: X-Served-By names the address that answered.
    let r = lb.client().get("/", &[]).unwrap();
    assert!(r.header("x-served-by").unwrap().starts_with("app@127.0.0."));
}

#[test]
fn a_changed_answer_is_followed_within_its_ttl_without_failed_requests() {
    let b = backends(2);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2)], 1));
    let lb = Pinlb::start(&resolving(&dns, b[0].addr.port(), json!({})));
    assert_eq!(answered_by(&lb, 3), set(&["b2"]));
    let load = Load::start(lb.addr, 2, 1, Duration::from_secs(20));
    let changed = Instant::now();
    dns.set(NAME, Records::A(vec![ip(3)], 1));
    // The TTL is 1 s: the new answer is seen within it plus one lookup and a rebuild.
    let moved = poll_until(Duration::from_secs(4), || b[1].requests() > 0);
    let took = changed.elapsed();
    assert!(moved, "127.0.0.3 got no request; log:\n{}", lb.log());
    let before = b[0].requests();
    assert!(poll_until(Duration::from_secs(5), || load.sent() > 100));
    let outcome = load.stop();
    assert!(
        outcome.failures.is_empty(),
        "{} failed: {:?}",
        outcome.failures.len(),
        &outcome.failures[..outcome.failures.len().min(5)]
    );
    // 127.0.0.2 got nothing new once 127.0.0.3 took over (a request or two in flight
    // at the swap may still land).
    assert!(
        b[0].requests() <= before + 3,
        "127.0.0.2 kept getting requests"
    );
    assert!(took < Duration::from_millis(2_500), "took {took:?}");
    assert!(
        lb.log().contains(&format!(
            "\"{NAME}:{}\" now has 1 address(es): 127.0.0.3",
            b[0].addr.port()
        )),
        "{}",
        lb.log()
    );
}

#[test]
fn failed_empty_and_nxdomain_answers_keep_the_last_addresses() {
    let b = backends(2);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2), ip(3)], 1));
    let lb = Pinlb::start(&resolving(&dns, b[0].addr.port(), json!({})));
    let load = Load::start(lb.addr, 2, 1, Duration::from_secs(60));
    for (records, result, error) in [
        (Records::NxDomain, "nxdomain", "NXDOMAIN"),
        (Records::Empty, "empty", "no address"),
        (Records::ServFail, "error", ""),
        (Records::Silent, "error", "timed out"),
    ] {
        let metric = format!(
            "pinlb_dns_resolutions_total{{name=\"{NAME}:{}\",result=\"{result}\",upstream=\"web\"}}",
            b[0].addr.port()
        );
        let count = |lb: &Pinlb| {
            let text = lb.admin_get("/metrics").body;
            text.lines()
                .find_map(|l| l.strip_prefix(&metric))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let seen = count(&lb);
        dns.set(NAME, records.clone());
        assert!(
            poll_until(Duration::from_secs(8), || count(&lb) > seen),
            "no {result} lookup counted for {records:?}; log:\n{}",
            lb.log()
        );
        let state = name_state(&lb);
        assert_eq!(
            state["addresses"].as_array().map(Vec::len),
            Some(2),
            "{state}"
        );
        let last_error = state["last_error"].as_str().unwrap_or("");
        assert!(last_error.contains(error), "{records:?}: {state}");
        assert!(state["failures"].as_u64() >= Some(1), "{state}");
        // (The load's requests interleave with these: which server each gets varies.)
        assert!(answered_by(&lb, 4).is_subset(&set(&["b2", "b3"])));
        let serving = lb.status()["upstreams"]["web"]["servers"].clone();
        assert_eq!(serving.as_array().map(Vec::len), Some(2), "{serving}");
    }
    assert!(lb.log().contains("could not be resolved"), "{}", lb.log());
    assert!(lb.log().contains("keeping 127.0.0.2:"), "{}", lb.log());
    // A good answer again clears the error.
    dns.set(NAME, Records::A(vec![ip(2), ip(3)], 1));
    assert!(poll_until(Duration::from_secs(40), || {
        name_state(&lb)["last_error"].is_null()
    }));
    let outcome = load.stop();
    let port = b[0].addr.port();
    let labels: BTreeSet<&str> = outcome.answers.iter().map(|(_, s)| s.as_str()).collect();
    let both = [2, 3].map(|i| format!("app@127.0.0.{i}:{port}"));
    assert!(
        both.iter().all(|l| labels.contains(l.as_str())),
        "{labels:?}"
    );
    assert!(
        outcome.failures.is_empty(),
        "{} failed: {:?}",
        outcome.failures.len(),
        &outcome.failures[..outcome.failures.len().min(5)]
    );
}

#[test]
fn a_vanished_address_finishes_its_requests_in_flight() {
    let b = backends(2);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2)], 1));
    let lb = Pinlb::start(&resolving(&dns, b[0].addr.port(), json!({})));
    let addr = lb.addr;
    let held = std::thread::spawn(move || {
        let mut c = common::Client::connect(addr).unwrap();
        c.get("/hold", &[])
            .map(|r| (r.status, r.text().to_string()))
    });
    assert!(poll_until(Duration::from_secs(5), || b[0].held() == 1));
    dns.set(NAME, Records::A(vec![ip(3)], 1));
    // The answer is recorded first and the pools are rebuilt after it: wait for the pool.
    let only_new = [format!("app@127.0.0.3:{}", b[0].addr.port())];
    assert!(
        poll_until(Duration::from_secs(5), || serving(&lb) == only_new),
        "{:?} {}",
        serving(&lb),
        lb.log()
    );
    assert_eq!(answered_by(&lb, 3), set(&["b3"]));
    b[0].release();
    let (status, body) = held.join().unwrap().expect("the held request answered");
    assert_eq!((status, body.trim()), (200, "b2"));
}

#[test]
fn a_new_address_joins_after_a_passing_health_check() {
    let b = backends(2);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2)], 1));
    let check =
        json!({ "health_check": { "type": "http", "path": "/health", "interval_ms": 200 } });
    let lb = Pinlb::start(&resolving(&dns, b[0].addr.port(), check));
    b[1].set_healthy(false);
    dns.set(NAME, Records::A(vec![ip(2), ip(3)], 1));
    assert!(
        poll_until(Duration::from_secs(5), || {
            name_state(&lb)["pending"]
                .as_array()
                .is_some_and(|p| p.len() == 1)
        }),
        "127.0.0.3 is not waiting for its check: {}",
        name_state(&lb)
    );
    assert!(b[1].health_checks() > 0, "127.0.0.3 was not checked");
    assert_eq!(answered_by(&lb, 6), set(&["b2"]));
    b[1].set_healthy(true);
    assert!(
        poll_until(Duration::from_secs(5), || b[1].requests() > 0 || {
            answered_by(&lb, 2).contains("b3")
        }),
        "127.0.0.3 never joined: {}",
        name_state(&lb)
    );
    assert_eq!(answered_by(&lb, 6), set(&["b2", "b3"]));
}

#[test]
fn a_pin_by_name_reaches_the_addresses_of_that_name() {
    let b = backends(3);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2), ip(3)], 60));
    let other = Backend::start("other");
    let mut cfg = resolving(&dns, b[0].addr.port(), json!({}));
    cfg["upstreams"]["web"]["servers"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "other", "addr": other.addr.to_string() }));
    cfg["routes"][0]["pin"] = json!({ "header": "X-App" });
    let lb = Pinlb::start(&cfg);
    let mut client = lb.client();
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let r = client.get("/", &[("X-App", "app")]).unwrap();
        assert_eq!(r.status, 200);
        seen.insert(r.text().trim().to_string());
    }
    assert_eq!(seen, set(&["b2", "b3"]));
    let r = client.get("/", &[("X-App", "other")]).unwrap();
    assert_eq!(r.text().trim(), "other");
}

#[test]
fn a_resolve_name_that_does_not_resolve_at_start_is_served_once_it_does() {
    let b = backends(1);
    let dns = DnsServer::start();
    let lb = Pinlb::start(&resolving(&dns, b[0].addr.port(), json!({})));
    // No address yet: 503 rather than a refusal to start, as nginx starts with resolve.
    let r = lb.client().get("/", &[]).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    dns.set(NAME, Records::A(vec![ip(2)], 1));
    assert!(
        poll_until(Duration::from_secs(5), || {
            lb.client().get("/", &[]).is_ok_and(|r| r.status == 200)
        }),
        "{}",
        lb.log()
    );
}

#[test]
fn valid_ms_looks_names_up_again_sooner_than_their_ttl() {
    let b = backends(2);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2)], 300));
    let mut cfg = resolving(&dns, b[0].addr.port(), json!({}));
    cfg["resolver"]["valid_ms"] = json!(1000);
    let lb = Pinlb::start(&cfg);
    assert_eq!(answered_by(&lb, 3), set(&["b2"]));
    dns.set(NAME, Records::A(vec![ip(3)], 300));
    assert!(
        poll_until(Duration::from_secs(4), || answered_by(&lb, 1)
            .contains("b3")),
        "the TTL of 300 s was followed instead of valid_ms: {}",
        name_state(&lb)
    );
}

#[test]
fn ipv4_and_ipv6_choose_the_records_asked_for() {
    let b = backends(1);
    let dns = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2)], 1));
    // ipv6 off: only A queries.
    let mut cfg = resolving(&dns, b[0].addr.port(), json!({}));
    cfg["resolver"]["ipv6"] = json!(false);
    let lb = Pinlb::start(&cfg);
    assert_eq!(answered_by(&lb, 2), set(&["b2"]));
    assert!(poll_until(Duration::from_secs(5), || dns.queries() >= 3));
    assert_eq!(dns.aaaa_queries(), 0);
    drop(lb);
    // ipv4 off: only AAAA queries, so the name's A records give it no address.
    let mut cfg = resolving(&dns, b[0].addr.port(), json!({}));
    cfg["resolver"]["ipv4"] = json!(false);
    let lb = Pinlb::start(&cfg);
    assert!(dns.aaaa_queries() > 0);
    let state = name_state(&lb);
    assert_eq!(state["addresses"], json!([]), "{state}");
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no address")),
        "{state}"
    );
}
