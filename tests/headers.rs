//! Forwarding headers as the usual nginx tutorial sets them, `Host` passed through, and
//! the `served_by_header` on responses.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};

/// The request headers the backend received, by lowercase name.
fn received(r: &Response) -> Vec<(String, String)> {
    r.body
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The request headers a backend receives when a client sends `sent` through pinlb on
/// the default config.
fn received_through_pinlb(sent: &[(&str, &str)]) -> Vec<(String, String)> {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    received(&lb.client().get("/headers", sent).unwrap())
}

#[test]
fn forwarding_headers_carry_the_client_as_nginx_would() {
    let h = received_through_pinlb(&[
        ("Host", "Shop.Example:8080"),
        ("X-Forwarded-For", "203.0.113.5"),
    ]);
    assert_eq!(value(&h, "x-forwarded-for"), Some("203.0.113.5, 127.0.0.1"));
    assert_eq!(value(&h, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(value(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(value(&h, "x-forwarded-host"), Some("shop.example"));
    assert_eq!(value(&h, "host"), Some("Shop.Example:8080"));
}

#[test]
fn forwarded_for_starts_with_the_client_when_absent() {
    let h = received_through_pinlb(&[]);
    assert_eq!(value(&h, "x-forwarded-for"), Some("127.0.0.1"));
    // Exactly one of each: set, not appended.
    assert_eq!(h.iter().filter(|(k, _)| k == "x-real-ip").count(), 1);
}

#[test]
fn hop_by_hop_headers_stay_between_client_and_pinlb() {
    let h = received_through_pinlb(&[
        ("Connection", "keep-alive, X-Per-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("X-Per-Hop", "1"),
        ("X-End-To-End", "2"),
    ]);
    for name in ["keep-alive", "proxy-connection", "te", "x-per-hop"] {
        assert_eq!(value(&h, name), None, "{name} was forwarded: {h:?}");
    }
    assert_eq!(value(&h, "x-end-to-end"), Some("2"));
}

#[test]
fn hop_by_hop_headers_without_connection_stay_between_client_and_pinlb() {
    // No `Connection` header names them: they are hop-by-hop by definition.
    let h = received_through_pinlb(&[
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("X-End-To-End", "2"),
    ]);
    for name in ["keep-alive", "te", "trailer"] {
        assert_eq!(value(&h, name), None, "{name} was forwarded: {h:?}");
    }
    assert_eq!(value(&h, "x-end-to-end"), Some("2"));
}

#[test]
fn a_host_with_userinfo_is_refused_before_any_backend() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let r = lb
        .client()
        .get("/", &[("Host", "user@shop.example")])
        .unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(a.requests(), 0);
}

#[test]
fn configured_headers_replace_the_defaults_and_empty_values_remove() {
    let a = Backend::start("a");
    let route = json!({ "proxy": { "set_headers": {
        "X-Port": "p$server_port", "X-Trace": "$http_x_trace_id-$cookie_sid", "User-Agent": ""
    } } });
    let lb = Pinlb::start(&config(servers(&[&a]), route, json!({})));
    let port = lb.addr.port().to_string();
    let r = lb
        .client()
        .get(
            "/headers",
            &[
                ("X-Trace-Id", "t1"),
                ("Cookie", "sid=9"),
                ("User-Agent", "curl"),
            ],
        )
        .unwrap();
    let h = received(&r);
    assert_eq!(value(&h, "x-port"), Some(format!("p{port}").as_str()));
    assert_eq!(value(&h, "x-trace"), Some("t1-9"));
    assert_eq!(value(&h, "user-agent"), None);
    assert_eq!(
        value(&h, "x-real-ip"),
        None,
        "the default list was replaced as a whole"
    );
}

#[test]
fn responses_name_the_server_that_answered() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(servers(&[&a, &b]), json!({}), json!({})));
    let mut client = lb.client();
    for want in ["a", "b"] {
        let r = client.get("/", &[]).unwrap();
        assert_eq!(r.header("x-served-by"), Some(want));
        assert_eq!(
            r.header("x-backend"),
            Some(want),
            "the backend's own headers pass through"
        );
    }
}

#[test]
fn no_served_by_header_unless_configured() {
    let a = Backend::start("a");
    let mut cfg = config(servers(&[&a]), json!({}), json!({}));
    cfg.as_object_mut().unwrap().remove("served_by_header");
    let lb = Pinlb::start(&cfg);
    assert_eq!(
        lb.client().get("/", &[]).unwrap().header("x-served-by"),
        None
    );
}

/// A server that answers every request with `head` (status line and headers, without the
/// blank line) and the body `ok\n`.
fn fixed_head_server(head: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        let answer = format!("{head}\r\nContent-Length: 3\r\n\r\nok\n");
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[test]
fn response_header_names_keep_the_servers_case() {
    // Names as pinlb would write them anyway, then ones in other cases: the first ones keep
    // their case when the later ones make pinlb keep case explicitly.
    let cases = [
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: app\r\nx-lower: 1\r\nX-Mixed-ID: 2\r\nSET-COOKIE: a=b",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nServer: app",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: app\r\nx-lower: 1",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"1\"\r\nX-Powered-By: app",
        // One name in two cases.
        "HTTP/1.1 200 OK\r\nX-Dup: 1\r\nContent-Type: text/plain\r\nx-dup: 2",
        // More names in other cases than pinlb keeps without a case map.
        "HTTP/1.1 200 OK\r\nx-a: 1\r\nx-b: 1\r\nx-c: 1\r\nx-d: 1\r\nx-e: 1\r\nx-f: 1\r\nx-g: 1\r\nx-h: 1\r\nx-i: 1\r\nx-j: 1",
    ];
    // With `served_by_header`, pinlb adds a name of its own to every response.
    for served_by in [json!(null), json!("X-Served-By")] {
        for head in cases {
            let server = fixed_head_server(head);
            let upstream = json!([{ "name": "a", "addr": server.to_string() }]);
            let extra = json!({ "served_by_header": served_by });
            let lb = Pinlb::start(&config(upstream, json!({}), extra));
            let r = lb.client().get("/", &[]).unwrap();
            assert_eq!(r.status, 200);
            let received: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
            let sent = head
                .split("\r\n")
                .skip(1)
                .filter_map(|l| l.split(':').next());
            for name in sent {
                assert!(received.contains(&name), "{name} not in {received:?}");
            }
            // pinlb's own headers are written as nginx writes them.
            for name in ["Date", "Connection"] {
                assert!(received.contains(&name), "{name} not in {received:?}");
            }
            assert_eq!(
                received.contains(&"X-Served-By"),
                !served_by.is_null(),
                "{received:?}"
            );
        }
    }
}

#[test]
fn request_header_names_keep_the_clients_case() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let odd: Vec<String> = (0..10).map(|i| format!("x-odd-{i}")).collect();
    let cases: Vec<Vec<&str>> = vec![
        vec!["User-Agent", "Accept", "X-Request-Id"],
        vec!["User-Agent", "x-lower", "X-Mixed-ID", "ACCEPT"],
        // One name in two cases.
        vec!["X-Dup", "Accept", "x-dup"],
        // More names in other cases than pinlb keeps without a case map.
        odd.iter().map(String::as_str).collect(),
    ];
    for names in cases {
        let sent: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v")).collect();
        let r = lb.client().get("/headers", &sent).unwrap();
        let received: Vec<&str> = r.body.lines().filter_map(|l| l.split(':').next()).collect();
        for name in &names {
            assert!(received.contains(name), "{name} not in {received:?}");
        }
        // pinlb's forwarding headers, as the tutorial config names them.
        for name in ["X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"] {
            assert!(received.contains(&name), "{name} not in {received:?}");
        }
    }
}

#[test]
fn forwarding_headers_replace_the_clients_lines_in_the_configs_case() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    // The client's own lines for those names, in other cases: one in title case
    // (`X-Forwarded-Proto`) and one not (`X-Real-IP`), each after the other is kept.
    for sent in [
        [("x-real-ip", "6.6.6.6"), ("x-forwarded-proto", "evil")],
        [("x-forwarded-proto", "evil"), ("x-real-ip", "6.6.6.6")],
    ] {
        let r = lb.client().get("/headers", &sent).unwrap();
        let names: Vec<&str> = r.body.lines().filter_map(|l| l.split(':').next()).collect();
        for (name, want) in [("X-Real-IP", "127.0.0.1"), ("X-Forwarded-Proto", "http")] {
            let lines: Vec<&&str> = names
                .iter()
                .filter(|n| n.eq_ignore_ascii_case(name))
                .collect();
            assert_eq!(lines, [&name], "{sent:?}: {names:?}");
            assert_eq!(value(&received(&r), &name.to_ascii_lowercase()), Some(want));
        }
    }
}

#[test]
fn requests_with_many_headers_are_parsed_whole_up_to_the_limit() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let names: Vec<String> = (0..200).map(|i| format!("X-Many-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let h = received(&lb.client().get("/headers", &many).unwrap());
    for name in ["x-many-0", "x-many-199"] {
        assert_eq!(value(&h, name), Some("v"), "{name}");
    }
    // Like nginx, only the bytes count: 300 headers pass, a head over 32 KiB does not.
    let names: Vec<String> = (0..300).map(|i| format!("X-Many-{i}")).collect();
    let more: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let h = received(&lb.client().get("/headers", &more).unwrap());
    assert_eq!(value(&h, "x-many-299"), Some("v"));
    let names: Vec<String> = (0..3000).map(|i| format!("X-Many-{i}")).collect();
    let too_many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let r = lb.client().get("/headers", &too_many).unwrap();
    assert_eq!(r.status, 400, "a head over large_client_header_buffers");
}
