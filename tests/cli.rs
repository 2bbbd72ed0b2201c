//! The command line: `-t` answers like `nginx -t`, bad configs are refused with one clear
//! message and nothing started, `--print-config` shows the model, SIGINT stops promptly.

mod common;

use common::*;
use serde_json::json;
use std::net::TcpListener;
use std::time::{Duration, Instant};

const GOOD: &str = r#"{
  "listeners": [{ "addr": "127.0.0.1:18999" }],
  "upstreams": {
    "web": {
      "servers": [
        { "name": "app1", "addr": "127.0.0.1:9001", "weight": 2 },
        { "name": "app2", "addr": "127.0.0.1:9002" }
      ],
      "health_check": { "type": "http", "path": "/", "interval_ms": 1000, "timeout_ms": 1000, "fails": 2, "passes": 1 }
    }
  },
  "routes": [{ "path": "/", "upstream": "web", "pin": { "header": "app", "cookie": "app" } }],
  "served_by_header": "X-Served-By"
}"#;

/// Runs `pinlb -t` on `text`; returns exit code and stderr with the temp path replaced by FILE.
fn test_config(text: &str) -> (i32, String) {
    let dir = TempDir::new();
    let file = dir.write("pinlb.json", text);
    let (status, _, stderr) = run_pinlb(&["-t", "-c", file.to_str().unwrap()]);
    (
        status.code().unwrap_or(-1),
        stderr.replace(file.to_str().unwrap(), "FILE"),
    )
}

#[test]
fn a_good_config_tests_successful() {
    let (code, stderr) = test_config(GOOD);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr,
        "pinlb: the configuration file FILE syntax is ok\npinlb: configuration file FILE test is successful\n"
    );
}

#[test]
fn every_shipped_config_tests_successful() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/conf")).unwrap() {
        let path = entry.unwrap().path();
        let (status, _, stderr) = run_pinlb(&["-t", "-c", path.to_str().unwrap()]);
        assert!(status.success(), "{}: {stderr}", path.display());
    }
}

/// Each bad config and the exact message pinlb gives for it.
const BAD: &[(&str, &str, &str)] = &[
    (
        "unknown key",
        r#""weight": 2 }"#,
        r#""weight": 2, "wieght": 3 }"#,
    ),
    ("weight 0", r#""weight": 2"#, r#""weight": 0"#),
    (
        "duplicate server name",
        r#""name": "app2""#,
        r#""name": "app1""#,
    ),
    (
        "unknown upstream",
        r#""upstream": "web""#,
        r#""upstream": "api""#,
    ),
    (
        "invalid JSON",
        r#""served_by_header": "X-Served-By""#,
        r#""served_by_header": "X-Served-By","#,
    ),
    (
        "unresolvable host",
        r#""127.0.0.1:9002""#,
        r#""app2.invalid:80""#,
    ),
];

fn expected_message(case: &str) -> &'static str {
    match case {
        "unknown key" => {
            "pinlb: [emerg] upstreams.web.servers[0].wieght: unknown field `wieght`, expected one of `name`, `addr`, `weight`, `max_fails`, `fail_timeout_ms`, `max_conns`, `backup`, `down`, `drain`, `resolve`, `route` at line 6 column 73 in FILE\n"
        }
        "weight 0" => {
            "pinlb: [emerg] upstreams.web.servers[0].weight: must be at least 1 in FILE\n"
        }
        "duplicate server name" => {
            "pinlb: [emerg] upstreams.web.servers[1].name: duplicate server name \"app1\" in upstream \"web\" in FILE\n"
        }
        "unknown upstream" => {
            "pinlb: [emerg] routes[0].upstream: unknown upstream \"api\" in FILE\n"
        }
        "invalid JSON" => {
            "pinlb: [emerg] invalid JSON: trailing comma at line 14 column 1 in FILE\n"
        }
        "unresolvable host" => {
            "pinlb: [emerg] upstreams.web.servers[1].addr: host not found in upstream \"app2.invalid:80\" in FILE\n"
        }
        _ => unreachable!(),
    }
}

#[test]
fn each_bad_config_gets_one_precise_message_and_exit_code_1() {
    for (case, from, to) in BAD {
        assert!(
            GOOD.contains(from),
            "{case}: fixture does not contain {from}"
        );
        let (code, stderr) = test_config(&GOOD.replacen(from, to, 1));
        assert_eq!(code, 1, "{case}: {stderr}");
        assert_eq!(stderr, expected_message(case), "{case}");
    }
}

#[test]
fn an_unreadable_file_is_named_in_the_error() {
    let (status, _, stderr) = run_pinlb(&["-t", "-c", "/nonexistent/pinlb.json"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        "pinlb: [emerg] cannot read /nonexistent/pinlb.json: No such file or directory (os error 2)\n"
    );
}

#[test]
fn a_bad_config_starts_nothing() {
    let addr = free_addr();
    let dir = TempDir::new();
    let bad = GOOD
        .replace("127.0.0.1:18999", &addr.to_string())
        .replace(r#""weight": 2"#, r#""weight": 0"#);
    let file = dir.write("pinlb.json", &bad);
    let started = Instant::now();
    let (status, _, stderr) = run_pinlb(&["-c", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(stderr.contains("must be at least 1"), "{stderr}");
    assert!(
        TcpListener::bind(addr).is_ok(),
        "the listener address was left bound"
    );
}

#[test]
fn a_listener_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new();
    let file = dir.write(
        "pinlb.json",
        &GOOD.replace("127.0.0.1:18999", &addr.to_string()),
    );
    let (status, _, stderr) = run_pinlb(&["-c", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "pinlb: [emerg] bind() to {addr} failed (Address already in use"
        )),
        "{stderr}"
    );
}

#[test]
fn print_config_shows_the_effective_model() {
    let dir = TempDir::new();
    let file = dir.write("pinlb.json", GOOD);
    let (status, stdout, stderr) = run_pinlb(&["--print-config", "-c", file.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    let model: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let route = &model["virtual_servers"][0]["routes"][0];
    let pass = &route["action"]["proxy"];
    assert_eq!(pass["upstream"], "web");
    assert_eq!(
        pass["pins"],
        json!([
            { "source": { "header": "app" }, "matches": "server_name" },
            { "source": { "cookie": "app" }, "matches": "server_name" }
        ])
    );
    assert_eq!(route["proxy"]["connect_timeout_ms"], 60000);
    assert_eq!(route["proxy"]["websocket_idle_timeout_ms"], 3_600_000);
    assert_eq!(model["upstreams"]["web"]["servers"][1]["weight"], 1);
    assert_eq!(model["upstreams"]["web"]["health_check"]["type"], "http");
    assert_eq!(model["threads"], 1);
}

#[test]
fn sigint_stops_pinlb_promptly() {
    let a = Backend::start("a");
    let mut lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    let started = Instant::now();
    let status = lb.signal_and_wait("INT", Duration::from_secs(5));
    assert!(status.is_some(), "still running 5 s after SIGINT");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn only_regular_files_of_bounded_size_are_read_as_config() {
    let dir = TempDir::new();
    let fifo = dir.path().join("fifo.conf");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.path().join("big.conf");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(17 << 20).unwrap();
    let includes_dev = dir.write("dev.conf", "events {}\ninclude /dev/*;\n");
    let cases = [
        (
            "/dev/zero".into(),
            "open() \"/dev/zero\" failed (not a regular file)",
        ),
        (fifo.clone(), "not a regular file"),
        (big.clone(), "larger than 16 MiB"),
        (includes_dev.clone(), "failed (not a regular file) in"),
    ];
    for (path, expected) in cases {
        let started = Instant::now();
        let (status, _, stderr) = run_pinlb(&["-t", "-c", path.to_str().unwrap()]);
        assert_eq!(status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(stderr.contains(expected), "{}: {stderr}", path.display());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            path.display()
        );
    }
    // The JSON front-end reads through the same gate.
    let json_fifo = dir.path().join("fifo.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&json_fifo)
            .status()
            .unwrap()
            .success()
    );
    let (status, _, stderr) = run_pinlb(&["-t", "-c", json_fifo.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.ends_with("fifo.json: not a regular file\n"),
        "{stderr}"
    );
}

#[test]
fn a_reload_from_a_fifo_is_refused_and_later_reloads_still_work() {
    let a = Backend::start("a");
    let mut lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let good = std::fs::read_to_string(&lb.conf).unwrap();
    std::fs::remove_file(&lb.conf).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&lb.conf)
            .status()
            .unwrap()
            .success()
    );
    let hup = |lb: &Pinlb| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(lb.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    hup(&lb);
    let refused = poll_until(Duration::from_secs(5), || {
        lb.status()["last_reload"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a regular file"))
    });
    assert!(refused, "{}", lb.status()["last_reload"]);
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    std::fs::remove_file(&lb.conf).unwrap();
    std::fs::write(&lb.conf, good).unwrap();
    hup(&lb);
    assert!(poll_until(
        Duration::from_secs(5),
        || lb.status()["last_reload"]["ok"] == true
    ));
    assert_eq!(lb.status()["config"]["generation"], 2);
    assert!(lb.exit_status().is_none());
}
