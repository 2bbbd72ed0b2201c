//! Config reload in place: under load nothing fails and the new weights apply; a broken
//! file leaves the running config serving, with the error logged and counted; health
//! state of unchanged servers survives; listener changes wait for an upgrade.

mod common;

use common::load::Load;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn weighted(backends: &[(&Backend, u32)]) -> Value {
    backends
        .iter()
        .map(|(b, w)| json!({ "name": b.name, "addr": b.addr.to_string(), "weight": w }))
        .collect()
}

/// Rewrites the running config with `change` applied.
fn rewrite(lb: &Pinlb, change: impl FnOnce(&mut Value)) {
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&lb.conf).unwrap()).unwrap();
    change(&mut cfg);
    std::fs::write(&lb.conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

fn share(answers: &[(Instant, String)], after: Instant, server: &str) -> f64 {
    let later: Vec<_> = answers.iter().filter(|(t, _)| *t > after).collect();
    later.iter().filter(|(_, s)| s == server).count() as f64 / later.len().max(1) as f64
}

#[test]
fn reload_under_load_changes_weights_without_a_failed_request() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(weighted(&[(&a, 1), (&b, 1)]), json!({}), json!({})));
    let load = Load::start(lb.addr, 4, 2, Duration::from_secs(30));
    assert!(poll_until(Duration::from_secs(10), || load.sent() >= 300));
    rewrite(&lb, |cfg| {
        cfg["upstreams"]["web"]["servers"][0]["weight"] = json!(3)
    });
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    let reloaded = Instant::now();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("reload done: configuration generation 2"),
        "{stderr}"
    );
    let target = load.sent() + 1000;
    assert!(poll_until(Duration::from_secs(20), || load.sent() >= target));
    let outcome = load.stop();
    assert_eq!(outcome.failures, Vec::<String>::new());
    let before = share(
        &outcome.answers,
        Instant::now() - Duration::from_secs(3600),
        "a",
    );
    let after = share(&outcome.answers, reloaded, "a");
    assert!(before < 0.7, "a's share before the reload: {before}");
    assert!(
        (0.70..=0.80).contains(&after),
        "a's share after weights 3:1: {after}"
    );
}

#[test]
fn a_broken_config_on_reload_keeps_the_old_one_serving() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(servers(&[&a, &b]), json!({}), json!({})));
    rewrite(&lb, |cfg| {
        cfg["upstreams"]["web"]["servers"][1]["weight"] = json!(0)
    });
    // `-s reload` checks the file first and does not signal at all.
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("upstreams.web.servers[1].weight: must be at least 1"),
        "{stderr}"
    );
    // A plain SIGHUP reaches the process: it logs the error and keeps serving.
    std::process::Command::new("kill")
        .args(["-HUP", &lb.pid().to_string()])
        .status()
        .unwrap();
    assert!(
        lb.wait_for_log(
            "failed, the running configuration stays",
            Duration::from_secs(5)
        ),
        "{}",
        lb.log()
    );
    assert!(lb.log().contains("must be at least 1"));
    let status = lb.status();
    assert_eq!(status["config"]["generation"], 1);
    assert_eq!(status["last_reload"]["ok"], false);
    let metrics = lb.admin_get("/metrics").body;
    assert!(
        metrics.contains("pinlb_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
    let served: Vec<String> = served_by(&mut lb.client(), 4, &[]);
    assert_eq!(served.concat(), "abab");
}

#[test]
fn routes_and_pins_change_in_place() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = Pinlb::start(&config(servers(&[&a, &b]), json!({}), json!({})));
    let mut client = lb.client();
    assert_eq!(
        client
            .get("/", &[("app", "b")])
            .unwrap()
            .header("x-served-by"),
        Some("a"),
        "no pin yet"
    );
    rewrite(&lb, |cfg| {
        cfg["upstreams"]["web"]["servers"] = servers(&[&a, &b, &c]);
        cfg["routes"][0]["pin"] = json!({ "header": "app" });
    });
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(status.success(), "{stderr}");
    // The same keep-alive connection now sees the new routes.
    for _ in 0..3 {
        assert_eq!(
            client
                .get("/", &[("app", "c")])
                .unwrap()
                .header("x-served-by"),
            Some("c")
        );
    }
}

#[test]
fn health_state_of_unchanged_servers_survives_a_reload() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let check = json!({ "upstreams": { "web": { "health_check": {
        "type": "http", "path": "/health", "interval_ms": 200, "fails": 1, "passes": 3
    } } } });
    let lb = Pinlb::start(&config(weighted(&[(&a, 1), (&b, 1)]), json!({}), check));
    b.set_healthy(false);
    assert!(lb.wait_for_log("server \"b\"", Duration::from_secs(5)));
    // A new weight for a rebuilds the pool; b must not come back as "healthy" with it.
    rewrite(&lb, |cfg| {
        cfg["upstreams"]["web"]["servers"][0]["weight"] = json!(2)
    });
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(status.success(), "{stderr}");
    let served = served_by(&mut lb.client(), 6, &[]);
    assert_eq!(served, vec!["a"; 6]);
    let s = lb.status();
    assert_eq!(s["upstreams"]["web"]["servers"][0]["weight"], 2);
    assert_eq!(s["upstreams"]["web"]["servers"][1]["healthy"], false);
}

#[test]
fn listener_changes_are_reported_as_pending() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let extra = free_addr();
    rewrite(&lb, |cfg| {
        cfg["listeners"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "addr": extra.to_string() }));
    });
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "new listener {extra}: takes effect on the next binary upgrade"
        )),
        "{stderr}"
    );
    assert!(lb.log().contains("takes effect on the next binary upgrade"));
    assert_eq!(
        lb.status()["last_reload"]["pending"][0],
        format!("new listener {extra}")
    );
    // Still serving on the old listener.
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
}
