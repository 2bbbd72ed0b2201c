//! nginx's `limit_req` and `limit_conn` through the real binary: burst with `nodelay`,
//! the default delay and `delay=N` timed against the clock, the configured status, keys
//! from any variable (long ones included), a backend holding requests open for
//! `limit_conn`, the JSON keys, `/metrics`, and buckets that survive a reload. nginx 1.22
//! gives the same statuses and delays for the same request sequences.

mod common;

use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// pinlb on an nginx config whose `http` block is `body` (`{listen}`, `{app}` filled in).
fn nginx_lb(body: &str, app: &Backend) -> Pinlb {
    let dir = TempDir::new();
    let listen = free_addr();
    let body = body
        .replace("{listen}", &listen.to_string())
        .replace("{app}", &app.addr.to_string());
    let conf = dir.write(
        "nginx.conf",
        &format!(
            "pid {d}/pinlb.pid;\npinlb_upgrade_sock {d}/upgrade.sock;\nhttp {{\naccess_log off;\n{body}\n}}\n",
            d = dir.path().display()
        ),
    );
    Pinlb::start_file(&conf, dir, listen)
}

/// Sends `n` requests for `path` at the same moment, each on its own connection; returns
/// (status, time from the common start until the answer) in the order they answered.
fn burst(addr: SocketAddr, path: &str, n: usize) -> Vec<(u16, Duration)> {
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let path = path.to_string();
            let mut client = Client::connect(addr).expect("connect");
            std::thread::spawn(move || {
                let r = client.get(&path, &[]).expect("answer");
                (r.status, start.elapsed())
            })
        })
        .collect();
    let mut out: Vec<(u16, Duration)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    out.sort_by_key(|(_, t)| *t);
    out
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn metric(lb: &Pinlb, line_start: &str) -> Option<u64> {
    lb.admin_get("/metrics")
        .body
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn burst_with_nodelay_passes_at_once_then_refuses_with_503_until_the_bucket_leaks() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;
         server { listen {listen};
             location / { limit_req zone=one burst=3 nodelay; proxy_pass http://{app}; } }",
        &app,
    );
    let mut client = lb.client();
    let start = Instant::now();
    for i in 0..4 {
        let r = client.get("/", &[]).unwrap();
        assert_eq!(r.status, 200, "request {i} is within rate + burst");
    }
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "nodelay: nothing waited"
    );
    let r = client.get("/", &[]).unwrap();
    assert_eq!((r.status, r.text()), (503, "503 Service Unavailable"));
    assert_eq!(
        app.requests(),
        4,
        "the refused request did not reach the backend"
    );
    // One request leaks out per second: the next one passes after about a second.
    assert!(poll_until(Duration::from_secs(3), || {
        client.get("/", &[]).unwrap().status == 200
    }));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "passed again after {waited:?}"
    );
    assert_eq!(
        metric(&lb, "pinlb_limit_req_total{result=\"passed\",zone=\"one\"}"),
        Some(5)
    );
    assert!(
        metric(
            &lb,
            "pinlb_limit_req_total{result=\"rejected\",zone=\"one\"}"
        ) >= Some(1)
    );
}

#[test]
fn without_nodelay_requests_over_the_rate_wait_their_turn() {
    let app = Backend::start("app");
    // 2r/s: a turn every 500 ms; burst=3 lets three wait, the fifth is refused.
    let lb = nginx_lb(
        "limit_req_zone $binary_remote_addr zone=one:1m rate=2r/s;
         server { listen {listen};
             location / { limit_req zone=one burst=3; proxy_pass http://{app}; } }",
        &app,
    );
    let answers = burst(lb.addr, "/", 5);
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(refused.len(), 1, "{answers:?}");
    assert!(
        ms(refused[0].1) < 400,
        "the refusal is immediate: {answers:?}"
    );
    let passed: Vec<u128> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| ms(*t))
        .collect();
    assert_eq!(passed.len(), 4, "{answers:?}");
    for (k, t) in passed.iter().enumerate() {
        let want = 500 * k as u128;
        assert!(
            *t + 100 >= want && *t <= want + 450,
            "request {k} answered after {t} ms, about {want} ms expected: {answers:?}"
        );
    }
    assert_eq!(
        metric(
            &lb,
            "pinlb_limit_req_total{result=\"delayed\",zone=\"one\"}"
        ),
        Some(3)
    );
}

#[test]
fn delay_n_lets_the_first_n_excess_requests_through_at_once() {
    let app = Backend::start("app");
    // 2r/s, burst=4, delay=2: three pass at once, two wait 500 and 1000 ms, one is refused
    // with the configured status.
    let lb = nginx_lb(
        "limit_req_zone $binary_remote_addr zone=one:1m rate=2r/s;
         limit_req_status 429;
         server { listen {listen};
             location / { limit_req zone=one burst=4 delay=2; proxy_pass http://{app}; } }",
        &app,
    );
    let answers = burst(lb.addr, "/", 6);
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{answers:?}"
    );
    let passed: Vec<u128> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| ms(*t))
        .collect();
    assert_eq!(passed.len(), 5, "{answers:?}");
    for (k, want) in [0u128, 0, 0, 500, 1000].into_iter().enumerate() {
        let t = passed[k];
        assert!(
            t + 100 >= want && t <= want + 450,
            "request {k} after {t} ms, about {want} ms expected: {answers:?}"
        );
    }
}

#[test]
fn keys_come_from_any_variable_and_an_empty_key_is_not_limited() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "limit_req_zone $http_x_api_key zone=keys:1m rate=1r/m;
         server { listen {listen};
             location / { limit_req zone=keys nodelay; proxy_pass http://{app}; } }",
        &app,
    );
    let mut client = lb.client();
    let status = |c: &mut Client, key: &str| {
        let headers: &[(&str, &str)] = if key.is_empty() {
            &[]
        } else {
            &[("X-Api-Key", key)]
        };
        c.get("/", headers).unwrap().status
    };
    assert_eq!(status(&mut client, "alice"), 200);
    assert_eq!(status(&mut client, "alice"), 503);
    assert_eq!(
        status(&mut client, "bob"),
        200,
        "keys have buckets of their own"
    );
    for _ in 0..3 {
        assert_eq!(
            status(&mut client, ""),
            200,
            "no key, no limit (as in nginx)"
        );
    }
}

#[test]
fn a_long_key_is_counted_where_nginx_would_let_it_through() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "limit_conn_zone $http_x_api_key zone=keys:1m;
         server { listen {listen};
             location / { limit_conn keys 1; proxy_pass http://{app}; } }",
        &app,
    );
    // nginx does not count a limit_conn key over 255 bytes (nor a limit_req key over
    // 65535), so a client choosing its key could take as many slots as it likes.
    let long = "k".repeat(300);
    let first = {
        let mut client = lb.client();
        let long = long.clone();
        std::thread::spawn(move || client.get("/hold", &[("X-Api-Key", &long)]).unwrap().status)
    };
    assert!(poll_until(Duration::from_secs(5), || app.held() == 1));
    let second = lb.client().get("/", &[("X-Api-Key", &long)]).unwrap();
    assert_eq!(second.status, 503, "a long key is no way around the limit");
    let other = lb
        .client()
        .get("/", &[("X-Api-Key", &"j".repeat(300))])
        .unwrap();
    assert_eq!(other.status, 200, "and long keys are told apart");
    app.release();
    assert_eq!(first.join().unwrap(), 200);
}

#[test]
fn limit_conn_refuses_requests_over_the_number_in_progress() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "limit_conn_zone $binary_remote_addr zone=addr:1m;
         server { listen {listen};
             location / { limit_conn addr 2; proxy_pass http://{app}; } }",
        &app,
    );
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut client = lb.client();
            std::thread::spawn(move || client.get("/hold", &[]).unwrap().status)
        })
        .collect();
    assert!(poll_until(Duration::from_secs(5), || app.held() == 2));
    let start = Instant::now();
    let r = lb.client().get("/", &[]).unwrap();
    assert_eq!((r.status, r.text()), (503, "503 Service Unavailable"));
    assert!(start.elapsed() < Duration::from_secs(1), "refused at once");
    app.release();
    for h in held {
        assert_eq!(h.join().unwrap(), 200);
    }
    // The slots were given back when those requests ended.
    assert_eq!(lb.client().get("/", &[]).unwrap().status, 200);
    assert_eq!(
        metric(
            &lb,
            "pinlb_limit_conn_total{result=\"rejected\",zone=\"addr\"}"
        ),
        Some(1)
    );
    assert_eq!(
        metric(
            &lb,
            "pinlb_limit_conn_total{result=\"passed\",zone=\"addr\"}"
        ),
        Some(3)
    );
}

#[test]
fn dry_run_counts_what_it_would_do_but_lets_everything_through() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
         limit_req_dry_run on;
         server { listen {listen};
             location / { limit_req zone=one; proxy_pass http://{app}; } }",
        &app,
    );
    let mut client = lb.client();
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(client.get("/", &[]).unwrap().status, 200);
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "nothing was delayed"
    );
    assert_eq!(
        metric(
            &lb,
            "pinlb_limit_req_total{result=\"rejected_dry_run\",zone=\"one\"}"
        ),
        Some(2)
    );
}

#[test]
fn a_return_location_answers_before_the_limits_apply_as_in_nginx() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
         limit_req zone=one;
         server { listen {listen};
             location /ping { return 200 \"pong\\n\"; }
             location / { proxy_pass http://{app}; } }",
        &app,
    );
    let mut client = lb.client();
    for _ in 0..3 {
        assert_eq!(client.get("/ping", &[]).unwrap().status, 200);
    }
    assert_eq!(client.get("/", &[]).unwrap().status, 200);
    assert_eq!(client.get("/", &[]).unwrap().status, 503);
}

/// The JSON form of the limits, with a reload that keeps an unchanged zone's buckets and
/// starts a changed one afresh.
#[test]
fn json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload() {
    let app = Backend::start("app");
    let zones = json!({
        "limit_req_zones": { "one": { "key": "$binary_remote_addr", "size": "1m", "rate": "1r/m" } },
        "limit_conn_zones": { "addr": { "key": "$binary_remote_addr", "size": 65536 } },
        "limits": { "req": [{ "zone": "one", "nodelay": true }], "req_status": 429 }
    });
    let route = json!({ "limits": { "conn": [{ "zone": "addr", "limit": 5 }] } });
    let cfg = config(servers(&[&app]), route, zones);
    let lb = Pinlb::start(&cfg);
    let get = || lb.client().get("/", &[]).unwrap().status;
    assert_eq!(get(), 200);
    assert_eq!(get(), 429);

    // Reload with the zone unchanged (another route added): still limited.
    let mut more = cfg.clone();
    more["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "path": "/ping", "return": { "status": 200 } }));
    reload(&lb, &more);
    assert_eq!(get(), 429, "a reload reset the bucket of an unchanged zone");

    // A new rate is a new zone, with empty buckets.
    let mut faster = more.clone();
    faster["limit_req_zones"]["one"]["rate"] = json!("2r/m");
    reload(&lb, &faster);
    assert_eq!(get(), 200);
    assert_eq!(get(), 429);
}

fn reload(lb: &Pinlb, cfg: &serde_json::Value) {
    let mut with_own = cfg.clone();
    merge(
        &mut with_own,
        json!({
            "pid_file": lb.dir.path().join("pinlb.pid"),
            "shutdown": { "upgrade_sock": lb.dir.path().join("upgrade.sock") },
            "admin": { "addr": lb.admin.to_string() },
        }),
    );
    std::fs::write(&lb.conf, serde_json::to_string_pretty(&with_own).unwrap()).unwrap();
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(status.success(), "reload: {stderr}");
}

#[test]
fn bad_limit_configs_are_refused_with_nginx_wording() {
    let dir = TempDir::new();
    let cases = [
        (
            "limit_req_zone $binary_remote_addr zone=one:16k rate=1r/s;",
            "zone \"zone=one:16k\" is too small in FILE:2",
        ),
        (
            "server { listen 127.0.0.1:1; location / { limit_req zone=nope; return 200; } }",
            "unknown limit_req_zone \"nope\" in FILE:2",
        ),
        (
            "limit_conn_zone $binary_remote_addr zone=a:1m; server { listen 127.0.0.1:1; limit_conn a 70000; }",
            "connection limit must be less 65536 in FILE:2",
        ),
        (
            "limit_req_zone $nope zone=one:1m rate=1r/s; server { listen 127.0.0.1:1; }",
            "unknown \"nope\" variable in FILE:2",
        ),
    ];
    for (body, want) in cases {
        let conf = dir.write("bad.conf", &format!("events {{}}\nhttp {{ {body} }}\n"));
        let (status, _, stderr) = run_pinlb(&["-t", "-c", conf.to_str().unwrap()]);
        let file = conf.display().to_string();
        assert!(!status.success(), "{body}");
        assert_eq!(
            stderr.trim_end(),
            format!("pinlb: [emerg] {}", want.replace("FILE", &file)),
            "{body}"
        );
    }
}
