//! `pinlb compare`: the shared nginx examples and a config split by `include`s agree with
//! nginx apart from the README's documented differences; without nginx, or with a JSON
//! config, it says why and exits 2.
//!
//! These tests need nginx (`scripts/install-build-deps.sh` installs it, as CI does): they
//! run the real nginx beside the real pinlb on loopback.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nginx")
        .join(name)
        .display()
        .to_string()
}

/// Runs `pinlb compare` with `args`; returns its exit code, stdout and stderr.
fn compare(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PINLB)
        .arg("compare")
        .args(args)
        .output()
        .expect("run pinlb compare");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 0, no unexpected difference, 100% agreement apart from the documented ones.
fn assert_agrees(file: &str) {
    let (code, out, err) = compare(&["-c", file]);
    assert_eq!(code, 0, "{file}:\n{out}{err}");
    assert!(!out.contains("UNEXPECTED"), "{file}:\n{out}");
    assert!(
        out.contains("agreement: 100.0% apart from documented differences"),
        "{file}:\n{out}"
    );
    assert!(out.contains(" with unexpected differences\n"), "{out}");
}

#[test]
fn the_tutorial_agrees_with_nginx() {
    assert_agrees(&fixture("tutorial-3apps.conf"));
}

#[test]
fn weighted_ports_agree_with_nginx() {
    // No `events` block: nginx needs one, both copies get it, and the report says so.
    let (code, out, err) = compare(&["-c", &fixture("weighted-ports.conf")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("no \"events\" block: both copies get an empty one"),
        "{out}"
    );
    assert_agrees(&fixture("weighted-ports.conf"));
}

#[test]
fn websocket_ip_hash_agrees_with_nginx() {
    assert_agrees(&fixture("websocket-iphash.conf"));
}

#[test]
fn least_conn_with_backup_agrees_with_nginx() {
    assert_agrees(&fixture("least-conn-backup.conf"));
}

#[test]
fn a_config_split_by_includes_agrees_with_nginx() {
    assert_agrees(&fixture("include/nginx.conf"));
    // The same files included by absolute paths and a glob, from a main file elsewhere.
    let dir = TempDir::new();
    let main = dir.write(
        "nginx.conf",
        &format!(
            "events {{}}\nhttp {{\n    include {};\n    include {}/*.conf;\n}}\n",
            fixture("include/upstreams.conf"),
            fixture("include/sites")
        ),
    );
    assert_agrees(main.to_str().unwrap());
}

#[test]
fn documented_differences_are_reported_with_the_readme_reason() {
    let (code, out, err) = compare(&["-c", &fixture("tutorial-3apps.conf"), "--verbose"]);
    assert_ne!(code, 2, "{err}");
    // nginx's default proxy_http_version is 1.0; pinlb always sends HTTP/1.1. With
    // --verbose every request is listed, each with its number.
    let line = "documented  #0 GET / HTTP/1.1 [Host: unknown.invalid]  upstream version: \
                nginx HTTP/1.0 | pinlb HTTP/1.1  (README: Requests to servers are HTTP/1.1;";
    assert!(out.contains(line), "{out}");
    // nginx refuses `OPTIONS *`; pinlb proxies it to where `/` goes.
    assert!(
        out.contains(
            "OPTIONS * HTTP/1.1 [Host: unknown.invalid]  status: nginx 400 | pinlb 200  \
             (README: `OPTIONS * HTTP/1.1` is proxied (to where `/` goes)"
        ),
        "{out}"
    );
}

#[test]
fn an_access_log_is_replayed_too() {
    let dir = TempDir::new();
    let log = dir.write(
        "access.log",
        concat!(
            "203.0.113.9 - - [10/Oct/2024:13:55:36 +0000] \"GET /item?id=7 HTTP/1.1\" 200 612 \"-\" \"curl/8.5.0\"\n",
            "203.0.113.9 - - [10/Oct/2024:13:55:37 +0000] \"\\x16\\x03\\x01\" 400 150 \"-\" \"-\"\n",
            "203.0.113.9 - - [10/Oct/2024:13:55:38 +0000] \"POST /login HTTP/1.1\" 302 0 \"https://a.test/\" \"Mozilla/5.0 (X11)\"\n",
        ),
    );
    let conf = fixture("weighted-ports.conf");
    let (code, out, err) = compare(&[
        "-c",
        &conf,
        "--access-log",
        log.to_str().unwrap(),
        "--verbose",
    ]);
    assert_ne!(code, 2, "{err}");
    assert!(out.contains("2 requests from"), "{out}");
    assert!(out.contains("(1 lines skipped"), "{out}");
    assert!(out.contains("POST /login HTTP/1.1 [Host: unknown.invalid] [Referer: https://a.test/] [User-Agent: Mozilla/5.0 (X11)]"), "{out}");
}

#[test]
fn without_nginx_it_says_so_and_exits_2() {
    let (code, out, err) = compare(&[
        "-c",
        &fixture("tutorial-3apps.conf"),
        "--nginx",
        "/nonexistent/sbin/nginx",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with("pinlb compare: nginx not found at /nonexistent/sbin/nginx: install nginx"),
        "{err}"
    );
}

#[test]
fn when_nginx_cannot_start_its_own_words_are_shown_and_it_exits_2() {
    // Valid for pinlb, refused by nginx: `pinlb_admin` is pinlb's own directive.
    let dir = TempDir::new();
    let conf = dir.write(
        "nginx.conf",
        "pinlb_admin off;\nevents {}\nhttp { server { listen 8080; location / { return 200; } } }\n",
    );
    let (code, out, err) = compare(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.starts_with("pinlb compare: nginx did not start"),
        "{err}"
    );
    assert!(
        err.contains("nginx: [emerg] unknown directive \"pinlb_admin\""),
        "{err}"
    );
}

#[test]
fn a_json_config_has_nothing_to_compare_with() {
    let dir = TempDir::new();
    let conf = dir.write("pinlb.json", "{}");
    let (code, _, err) = compare(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("is a JSON configuration: nginx cannot read it"),
        "{err}"
    );
}
