//! What operators see: `/metrics` counts what was sent, `/status` shows servers going
//! down, access log lines carry the request's facts, `--healthcheck` tells containers.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_count_the_requests_each_server_answered() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(
        servers(&[&a, &b]),
        json!({ "pin": { "header": "app" } }),
        json!({}),
    ));
    let mut client = lb.client();
    served_by(&mut client, 6, &[]);
    served_by(&mut client, 2, &[("app", "b")]);
    served_by(&mut client, 1, &[("app", "nobody")]);
    // Round robin resumed after the pins: the next request goes to b, which answers 503.
    assert_eq!(client.get("/status/503", &[]).unwrap().status, 503);
    // A request is counted once it is logged, just after its response left.
    let counted = |text: &str| {
        metric(
            text,
            "pinlb_request_duration_seconds_count{upstream=\"web\"}",
        ) == Some(10.0)
            && metric(
                text,
                "pinlb_inflight_requests{server=\"b\",upstream=\"web\"}",
            ) == Some(0.0)
    };
    assert!(poll_until(Duration::from_secs(2), || counted(
        &lb.admin_get("/metrics").body
    )));
    let text = lb.admin_get("/metrics").body;
    let requests = |server: &str, code: &str| {
        metric(
            &text,
            &format!(
                "pinlb_requests_total{{code=\"{code}\",server=\"{server}\",upstream=\"web\"}}"
            ),
        )
    };
    // a: 3 balanced + 1 with an unknown pin; b: 3 balanced + 2 pinned, and the 503.
    assert_eq!(requests("a", "2xx"), Some(4.0), "{text}");
    assert_eq!(requests("b", "2xx"), Some(5.0), "{text}");
    assert_eq!(requests("b", "5xx"), Some(1.0), "{text}");
    assert_eq!(requests("a", "5xx"), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "pinlb_pin_total{outcome=\"pinned\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "pinlb_pin_total{outcome=\"unknown\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "pinlb_request_duration_seconds_count{upstream=\"web\"}"
        ),
        Some(10.0)
    );
    assert_eq!(
        metric(&text, "pinlb_server_up{server=\"a\",upstream=\"web\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "pinlb_inflight_requests{server=\"b\",upstream=\"web\"}"
        ),
        Some(0.0)
    );
    let status = lb.status();
    assert_eq!(status["upstreams"]["web"]["servers"][1]["requests"], 6);
}

#[test]
fn connect_errors_and_retries_are_counted() {
    let dead = free_addr();
    let live = Backend::start("live");
    let servers = json!([
        { "name": "dead", "addr": dead.to_string() },
        { "name": "live", "addr": live.addr.to_string() }
    ]);
    let lb = Pinlb::start(&config(servers, json!({}), json!({})));
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    let text = lb.admin_get("/metrics").body;
    assert_eq!(
        metric(
            &text,
            "pinlb_upstream_connect_errors_total{server=\"dead\",upstream=\"web\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "pinlb_retries_total{upstream=\"web\"}"),
        Some(1.0),
        "{text}"
    );
    // max_fails=1: the dead server is out for fail_timeout.
    assert_eq!(
        metric(&text, "pinlb_server_up{server=\"dead\",upstream=\"web\"}"),
        Some(0.0),
        "{text}"
    );
}

#[test]
fn status_shows_a_killed_server_down_within_the_health_interval() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let check = json!({ "upstreams": { "web": { "health_check": { "type": "tcp", "interval_ms": 300, "fails": 1 } } } });
    let lb = Pinlb::start(&config(servers(&[&a, &b]), json!({}), check));
    let healthy = |i: usize| lb.status()["upstreams"]["web"]["servers"][i]["healthy"].clone();
    assert_eq!(healthy(1), true);
    b.stop();
    assert!(
        poll_until(Duration::from_millis(300 + 1000), || healthy(1) == false),
        "{}",
        lb.status()
    );
    let s = lb.status();
    let server = &s["upstreams"]["web"]["servers"][1];
    assert_eq!(
        (server["name"].as_str(), server["usable"].as_bool()),
        (Some("b"), Some(false))
    );
    assert_eq!(s["upstreams"]["web"]["balance"], "round_robin");
}

#[test]
fn status_lists_the_pins() {
    let a = Backend::start("app1");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "pin": { "cookie": "app", "on_unhealthy": "refuse" } }),
        json!({}),
    ));
    let pins = lb.status()["pins"].clone();
    assert_eq!(pins[0]["cookie"], "app");
    assert_eq!(pins[0]["on_unhealthy"], "refuse");
    assert_eq!(pins[0]["upstream"], "web");
}

#[test]
fn access_log_lines_parse_into_the_request_facts() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let dir = TempDir::new();
    let json_log = dir.path().join("access.json");
    let combined_log = dir.path().join("access.log");
    let logs = json!({ "access_log": { "path": json_log, "format": "json" } });
    let route = json!({ "access_log": { "path": combined_log, "format": "upstream" } });
    let mut cfg = config(servers(&[&a, &b]), json!({}), logs);
    merge(
        &mut cfg,
        json!({ "routes": [{ "path": "/", "upstream": "web", "access_log": route["access_log"].clone() }, { "path": "/j/", "upstream": "web" }] }),
    );
    let lb = Pinlb::start(&cfg);
    let mut client = lb.client();
    client
        .get(
            "/j/one?x=1",
            &[
                ("User-Agent", "agent \"007\""),
                ("Referer", "http://r.test/"),
            ],
        )
        .unwrap();
    client.get("/plain", &[("User-Agent", "curl/8")]).unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(poll_until(Duration::from_secs(5), || !read(&json_log)
        .is_empty()
        && !read(&combined_log).is_empty()));
    let line: serde_json::Value =
        serde_json::from_str(read(&json_log).lines().next().unwrap()).unwrap();
    assert_eq!(line["request"], "GET /j/one?x=1 HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["body_bytes_sent"], 2);
    assert_eq!(line["upstream"], "web");
    assert_eq!(line["upstream_addr"], a.addr.to_string());
    assert_eq!(line["http_user_agent"], "agent \"007\"");
    assert_eq!(line["http_referer"], "http://r.test/");
    assert!(line["request_time"].as_f64().unwrap() < 5.0);
    let combined = read(&combined_log);
    let fields: Vec<&str> = combined.lines().next().unwrap().split('"').collect();
    assert!(fields[0].starts_with("127.0.0.1 - - ["), "{combined}");
    assert_eq!(fields[1], "GET /plain HTTP/1.1");
    assert_eq!(fields[2].trim(), "200 2");
    assert_eq!((fields[3], fields[5]), ("-", "curl/8"));
    assert_eq!(fields[7], b.addr.to_string());
    let times: Vec<f64> = fields[8]
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(
        times.len(),
        2,
        "request and upstream response time: {combined}"
    );
}

#[test]
fn healthcheck_command_follows_the_admin_healthz() {
    let a = Backend::start("a");
    let mut lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({}),
        json!({ "shutdown": { "drain_delay_ms": 3000 } }),
    ));
    let (status, _, stderr) = lb.command(&["--healthcheck"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr, "pinlb: ok\n");
    std::process::Command::new("kill")
        .args(["-TERM", &lb.pid().to_string()])
        .status()
        .unwrap();
    assert!(poll_until(Duration::from_secs(2), || lb
        .admin_get("/healthz")
        .status
        == 503));
    let (status, _, stderr) = lb.command(&["--healthcheck"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("/healthz answered 503: draining"),
        "{stderr}"
    );
    assert!(poll_until(Duration::from_secs(6), || lb
        .exit_status()
        .is_some()));
}

#[test]
fn admin_answers_404_elsewhere() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    assert_eq!(lb.admin_get("/nope").status, 404);
}

#[test]
fn admin_refuses_other_methods_foreign_hosts_and_missing_tokens() {
    let a = Backend::start("a");
    let token = json!({ "admin": { "token": "s3cret" } });
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), token));
    let host = lb.admin.to_string();
    let ask = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut client = Client::connect(lb.admin).unwrap();
        client.request(method, path, headers).unwrap()
    };
    // DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends its own name.
    let rebound = ask("GET", "/healthz", &[("Host", "evil.example:9901")]);
    assert_eq!(rebound.status, 403);
    let post = ask("POST", "/status", &[("Host", &host)]);
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
    let anonymous = ask("GET", "/status", &[("Host", &host)]);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    let wrong = ask(
        "GET",
        "/metrics",
        &[("Host", &host), ("Authorization", "Bearer s3cre")],
    );
    assert_eq!(wrong.status, 401);
    let right = ask(
        "GET",
        "/status",
        &[("Host", &host), ("Authorization", "Bearer s3cret")],
    );
    assert_eq!(right.status, 200);
    // Balancers in front poll /healthz without a token.
    assert_eq!(ask("GET", "/healthz", &[("Host", "127.0.0.1")]).status, 200);
    // The commands that talk to the admin listener send the config's token.
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("reload done"), "{stderr}");
}

#[test]
fn access_log_lines_follow_a_named_log_format() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({}),
        json!({
            "log_formats": { "short": "$request_method $uri?$args $status $upstream_name \"$http_x_tag\"" },
            "access_log": { "path": log, "format": "short" }
        }),
    ));
    let r = lb.client().get("/p?q=1", &[("X-Tag", "t\"1")]).unwrap();
    assert_eq!(r.status, 200);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(poll_until(Duration::from_secs(5), || !read().is_empty()));
    assert_eq!(read(), "GET /p?q=1 200 web \"t\\x221\"\n");
}
