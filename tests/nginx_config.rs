//! nginx configs through the command line: `-t` answers like `nginx -t`, every file in
//! `fixtures/nginx/bad/` is refused with its file, line and cause, and `--print-config`
//! shows how a config was understood.

mod common;

use common::*;
use std::path::Path;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nginx")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn a_good_nginx_config_tests_successful_like_nginx() {
    let file = fixture("weighted-ports.conf");
    let (status, _, stderr) = run_pinlb(&["-t", "-c", &file]);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "pinlb: the configuration file {file} syntax is ok\npinlb: configuration file {file} test is successful\n"
        )
    );
}

#[test]
fn every_bad_example_is_refused_with_file_line_and_cause() {
    let cases = [
        (
            "bad/missing-address.conf",
            "upstream server needs an address before its parameters, found \"weight=1\" in FILE:3",
        ),
        (
            "bad/missing-semicolon.conf",
            "directive \"server\" is not terminated by \";\" in FILE:3:30",
        ),
        (
            "bad/unbalanced-brace.conf",
            "unexpected end of file, expecting \"}\" in FILE:7:1",
        ),
        (
            "bad/unknown-upstream.conf",
            "host not found in upstream \"api:80\" in FILE:3",
        ),
        (
            "bad/unsupported-directive.conf",
            "unsupported directive \"perl_modules\" in FILE:7",
        ),
        (
            "bad/zero-weight.conf",
            "invalid parameter \"weight=0\": weight must be at least 1 in FILE:2",
        ),
    ];
    for (name, message) in cases {
        let file = fixture(name);
        let (status, stdout, stderr) = run_pinlb(&["-t", "-c", &file]);
        assert_eq!(status.code(), Some(1), "{name}: {stderr}");
        assert_eq!(
            stderr.replace(&file, "FILE"),
            format!("pinlb: [emerg] {message}\n"),
            "{name}"
        );
        assert!(stdout.is_empty());
    }
}

#[test]
fn a_bad_nginx_config_starts_nothing() {
    let (status, _, stderr) = run_pinlb(&["-c", &fixture("bad/zero-weight.conf")]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    // The file listens on 8080: nothing was left bound there by pinlb.
    assert!(stderr.contains("weight must be at least 1"));
}

#[test]
fn print_config_shows_the_translated_tutorial() {
    let (status, stdout, stderr) =
        run_pinlb(&["--print-config", "-c", &fixture("tutorial-3apps.conf")]);
    assert!(status.success(), "{stderr}");
    let model: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(model["threads"], 4);
    assert_eq!(model["listeners"][0]["addr"], "0.0.0.0:80");
    let names: Vec<&str> = model["upstreams"]["app_servers"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app1:80", "app2:80", "app3:80"]);
    let pass = &model["virtual_servers"][0]["routes"][0]["action"]["proxy"];
    assert_eq!(pass["upstream"], "app_servers");
    // Last `if` first: the cookie for app3 is tried before anything else.
    let first = &pass["pins"][0];
    assert_eq!(first["source"]["variable"], "$cookie_app");
    assert_eq!(first["matches"]["value"]["equals"], "app3");
    assert_eq!(
        first["matches"]["value"]["target"]["server"]["server"],
        "app3:80"
    );
    assert_eq!(pass["pins"].as_array().unwrap().len(), 6);
    let headers = &model["virtual_servers"][0]["routes"][0]["proxy"]["set_headers"];
    assert_eq!(
        headers[0],
        serde_json::json!({ "name": "Host", "value": "$host" })
    );
}

#[test]
fn header_values_that_would_inject_headers_are_refused_at_their_line() {
    let dir = TempDir::new();
    for directive in [
        r#"proxy_set_header X-A "1\r\nX-Injected: 1";"#,
        r#"add_header X-A "1\nX-Injected: 1";"#,
    ] {
        let text = format!(
            "events {{}}\nhttp {{\n  server {{\n    listen 127.0.0.1:18998;\n    location / {{\n      return 200;\n      {directive}\n    }}\n  }}\n}}\n"
        );
        let file = dir.write("inject.conf", &text);
        let (status, _, stderr) = run_pinlb(&["-t", "-c", file.to_str().unwrap()]);
        assert_eq!(status.code(), Some(1), "{directive}: {stderr}");
        let at = format!("{}:7\n", file.display());
        assert!(
            stderr.contains("contains the control character") && stderr.ends_with(&at),
            "{directive}: {stderr}"
        );
    }
}

#[test]
fn every_directive_accepted_without_effect_passes_t_and_serves() {
    let file = fixture("accepted-no-effect.conf");
    let (status, _, stderr) = run_pinlb(&["-t", "-c", &file]);
    assert!(status.success(), "{stderr}");
    let a = Backend::start("a");
    let listen = free_addr();
    let (dir, conf) = nginx_fixture(
        "accepted-no-effect.conf",
        &[
            ("127.0.0.1:8080", listen.to_string()),
            ("127.0.0.1:9001", a.addr.to_string()),
        ],
    );
    let lb = Pinlb::start_file(&conf, dir, listen);
    let mut client = lb.client();
    assert_eq!(client.get("/", &[]).unwrap().text(), "a");
    assert_eq!(client.get("/default/x", &[]).unwrap().text(), "a");
}
