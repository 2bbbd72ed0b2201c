//! `least-conn-backup.conf`, unchanged but for addresses: `least_conn` under uneven load,
//! `backup` only when the primaries are gone, `down` never, `max_fails`/`fail_timeout`,
//! `hash $cookie_sessionid consistent`, two `server`s told apart by `server_name`,
//! `proxy_set_header` inheritance and `proxy_next_upstream http_503`.

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    lb: Pinlb,
    /// 9001 (weight 2), 9002, 9003 (backup), 9004 (down).
    api: [Backend; 4],
    /// 9101, 9102.
    sessions: [Backend; 2],
}

fn setup() -> Setup {
    let api = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("backup"),
        Backend::start("down"),
    ];
    let sessions = [Backend::start("s1"), Backend::start("s2")];
    let listen = free_addr();
    let dir = TempDir::new();
    let logs = dir.path().display().to_string();
    let conf = nginx_fixture_in(
        &dir,
        "least-conn-backup.conf",
        &[
            // Run as the test user, with pid and error log in a scratch folder.
            ("pid /run/nginx.pid;", format!("pid {logs}/nginx.pid;")),
            ("/var/log/nginx/error.log", format!("{logs}/error.log")),
            ("127.0.0.1:8080", listen.to_string()),
            ("127.0.0.1:9001", api[0].addr.to_string()),
            ("127.0.0.1:9002", api[1].addr.to_string()),
            ("127.0.0.1:9003", api[2].addr.to_string()),
            ("127.0.0.1:9004", api[3].addr.to_string()),
            ("127.0.0.1:9101", sessions[0].addr.to_string()),
            ("127.0.0.1:9102", sessions[1].addr.to_string()),
        ],
    );
    Setup {
        lb: Pinlb::start_file(&conf, dir, listen),
        api,
        sessions,
    }
}

const API: (&str, &str) = ("Host", "api.example.test");

fn body(lb: &Pinlb, path: &str, headers: &[(&str, &str)]) -> String {
    let r = get(lb.addr, path, headers).expect("request through pinlb");
    format!("{} {}", r.status, r.text())
}

#[test]
fn least_conn_sends_new_requests_away_from_a_busy_server() {
    let s = Arc::new(setup());
    // Requests that are slow only on `a` pile up there; quick ones then go to `b`.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || body(&s.lb, "/slow/a/3000", &[API]))
        })
        .collect();
    // Every slow request is either done (it went to b, quick there) or busy on a.
    let settled =
        || s.api[0].requests() + slow.iter().filter(|t| t.is_finished()).count() == slow.len();
    assert!(
        poll_until(Duration::from_secs(5), settled),
        "slow requests still being dispatched"
    );
    assert!(s.api[0].requests() >= 1, "a never got busy");
    // pinlb counts a request out just after its response is written; the next quick request
    // could arrive before that and see b busy too. Wait for b to be idle before each one.
    let b_idle = || s.lb.status()["upstreams"]["api"]["servers"][1]["inflight"] == 0;
    let started = Instant::now();
    let quick: Vec<String> = (0..5)
        .map(|_| {
            assert!(poll_until(Duration::from_secs(1), b_idle), "b stays busy");
            body(&s.lb, "/", &[API])
        })
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "quick requests waited behind slow ones"
    );
    assert_eq!(quick, vec!["200 b"; 5]);
    for t in slow {
        assert!(t.join().unwrap().starts_with("200"));
    }
}

#[test]
fn backup_serves_only_when_every_primary_is_gone_and_down_never() {
    let s = setup();
    for _ in 0..6 {
        assert!(["200 a", "200 b"].contains(&body(&s.lb, "/", &[API]).as_str()));
    }
    assert_eq!(s.api[2].requests(), 0);
    s.api[0].stop();
    s.api[1].stop();
    // Until a and b have failed max_fails=3 times each, requests still try them (and
    // with proxy_next_upstream_tries 2 may fail, as in nginx); then the backup serves.
    assert!(
        poll_until(Duration::from_secs(5), || body(&s.lb, "/", &[API])
            == "200 backup"),
        "the backup never served; log:\n{}",
        s.lb.log()
    );
    for _ in 0..4 {
        assert_eq!(body(&s.lb, "/", &[API]), "200 backup");
    }
    assert_eq!(s.api[3].requests(), 0, "the down server took traffic");
}

#[test]
fn max_fails_takes_a_server_out_for_fail_timeout() {
    let s = setup();
    let addr = s.api[0].addr;
    s.api[0].stop();
    // max_fails=3: three failed attempts on `a` (each retried on `b`, so clients see 200).
    // The config's `error_log ... warn` receives pinlb's diagnostics.
    let error_log =
        || std::fs::read_to_string(s.lb.dir.path().join("error.log")).unwrap_or_default();
    let mut sent = 0;
    // `a` is out from some moment during the request after which the log says so: time the
    // 5 s from just before that request, not from when the test reads the log.
    let mut out_since = Instant::now();
    while !error_log().contains("failed 3 times") {
        out_since = Instant::now();
        assert_eq!(body(&s.lb, "/", &[API]), "200 b");
        sent += 1;
        assert!(
            sent < 50,
            "a was never taken out; error log:\n{}",
            error_log()
        );
    }
    let a = Backend::start_on("a", addr).expect("restart a");
    // fail_timeout=5s: `a` stays out although it answers again...
    while out_since.elapsed() < Duration::from_secs(4) {
        assert_eq!(body(&s.lb, "/", &[API]), "200 b");
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...and is back once the 5 s have passed.
    assert!(poll_until(Duration::from_secs(5), || body(
        &s.lb,
        "/",
        &[API]
    ) == "200 a"));
    assert!(out_since.elapsed() >= Duration::from_secs(5));
    drop(a);
}

#[test]
fn consistent_hash_keeps_sessions_on_their_server() {
    let s = setup();
    let route = |id: usize| {
        body(
            &s.lb,
            "/session/x",
            &[API, ("Cookie", &format!("sessionid={id}"))],
        )
    };
    let first: Vec<String> = (0..20).map(route).collect();
    assert!(
        first.iter().any(|b| b == "200 s1") && first.iter().any(|b| b == "200 s2"),
        "{first:?}"
    );
    assert_eq!(
        (0..20).map(route).collect::<Vec<_>>(),
        first,
        "a session moved"
    );
    // Losing s2 moves only s2's sessions.
    s.sessions[1].stop();
    for (id, before) in first.iter().enumerate() {
        let now = route(id);
        assert_eq!(now, "200 s1", "session {id}");
        if before == "200 s1" {
            assert_eq!(&now, before);
        }
    }
}

#[test]
fn server_name_picks_the_server_block() {
    let s = setup();
    assert_eq!(
        body(&s.lb, "/", &[("Host", "admin.example.test")]),
        "403 403 Forbidden"
    );
    assert!(body(&s.lb, "/", &[API]).starts_with("200 "));
    // No default_server: an unknown host gets the first server of the address.
    assert!(body(&s.lb, "/", &[("Host", "other.test")]).starts_with("200 "));
}

#[test]
fn proxy_set_header_is_inherited_all_or_nothing() {
    let s = setup();
    let headers = |path: &str| get(s.lb.addr, path, &[API]).unwrap().body;
    // `location /` sets `Connection ""`: the server's list is not inherited there, and
    // nginx's default `Host: $proxy_host` applies.
    let root = headers("/headers");
    assert!(root.lines().any(|l| l == "Host: api"), "{root}");
    assert!(!root.to_ascii_lowercase().contains("x-real-ip"), "{root}");
    // `location /session/` sets none: it inherits the server's four headers.
    let session = headers("/session/headers");
    assert!(
        session.lines().any(|l| l == "Host: api.example.test"),
        "{session}"
    );
    assert!(
        session.lines().any(|l| l == "X-Real-IP: 127.0.0.1"),
        "{session}"
    );
    assert!(
        session.lines().any(|l| l == "X-Forwarded-Proto: http"),
        "{session}"
    );
}

#[test]
fn a_503_moves_the_request_to_the_next_server_within_the_tries() {
    let s = setup();
    for _ in 0..4 {
        assert_eq!(body(&s.lb, "/status/a/503", &[API]), "200 b");
    }
    // Both answer 503: after proxy_next_upstream_tries 2, the client gets the last 503.
    assert_eq!(body(&s.lb, "/status/503", &[API]), "503 503");
}

#[test]
fn equal_loads_take_turns_by_weight_like_nginx() {
    // nginx 1.22 with `least_conn`, a weight=2 and b, nine sequential requests: each finds
    // both idle and breaks the tie by smooth weighted round robin.
    let s = setup();
    let got: Vec<String> = (0..9).map(|_| body(&s.lb, "/", &[API])).collect();
    let got: String = got.iter().map(|b| b.trim_start_matches("200 ")).collect();
    assert_eq!(got, "abaabaaba");
}

#[test]
fn a_missing_hash_key_is_balanced_round_robin_like_nginx() {
    // nginx falls back to round robin when the key (`$cookie_sessionid`) is empty.
    let s = setup();
    let got: Vec<String> = (0..4).map(|_| body(&s.lb, "/session/x", &[API])).collect();
    assert_eq!(got, ["200 s1", "200 s2", "200 s1", "200 s2"]);
    let keyed = [API, ("Cookie", "sessionid=abc")];
    let first = body(&s.lb, "/session/x", &keyed);
    for _ in 0..3 {
        assert_eq!(body(&s.lb, "/session/x", &keyed), first);
    }
}
