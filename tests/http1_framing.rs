//! HTTP/1.x framing as RFC 9112 and nginx have it, byte for byte over raw sockets: `Host`,
//! request-target forms, HTTP/1.0 clients, pipelining, repeated `Content-Length` and
//! `X-Forwarded-For` lines. Each test names what nginx 1.22 answers to the same bytes.

mod common;

use common::raw::{RawBackend, exchange};
use common::*;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

fn lb_for(backend: &RawBackend, extra: serde_json::Value) -> Pinlb {
    let upstream = json!([{ "name": "raw", "addr": backend.addr.to_string() }]);
    Pinlb::start(&config(upstream, json!({}), extra))
}

#[test]
fn http11_without_host_is_400_and_closed_http10_without_host_is_proxied() {
    // nginx: 400 for the first, proxies the second.
    let backend = RawBackend::start(OK);
    let lb = lb_for(&backend, json!({}));
    let r = exchange(lb.addr, b"GET / HTTP/1.1\r\n\r\n", WAIT);
    assert_eq!(r.status(), 400, "{}", r.text);
    assert!(r.text.contains("without Host"), "{}", r.text);
    assert!(r.closed);
    let r = exchange(lb.addr, b"GET /old HTTP/1.0\r\n\r\n", WAIT);
    assert_eq!(r.status(), 200, "{}", r.text);
    assert!(backend.heads()[0].starts_with("GET /old HTTP/1.1\r\n"));
}

#[test]
fn targets_in_no_known_form_are_400_and_options_asterisk_is_proxied() {
    // nginx 1.22 answers 400 to all three; RFC 9112 allows `OPTIONS *`.
    let backend = RawBackend::start(OK);
    let lb = lb_for(&backend, json!({}));
    for bad in [
        "GET foo HTTP/1.1",
        "GET * HTTP/1.1",
        "GET a.example:80 HTTP/1.1",
    ] {
        let r = exchange(
            lb.addr,
            format!("{bad}\r\nHost: a\r\n\r\n").as_bytes(),
            WAIT,
        );
        assert_eq!(r.status(), 400, "{bad}: {}", r.text);
    }
    let r = exchange(
        lb.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status(), 200, "{}", r.text);
    assert!(backend.heads()[0].starts_with("OPTIONS * HTTP/1.1\r\n"));
}

#[test]
fn absolute_form_goes_upstream_in_origin_form_with_the_targets_host() {
    // nginx: `GET /p?q` upstream, Host from the target (HTTP/1.0 may leave `Host` out).
    let backend = RawBackend::start(OK);
    let lb = lb_for(&backend, json!({}));
    let r = exchange(
        lb.addr,
        b"GET http://b.example:81/p?q=1 HTTP/1.0\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status(), 200, "{}", r.text);
    let head = &backend.heads()[0];
    assert!(head.starts_with("GET /p?q=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nHost: b.example:81\r\n"), "{head}");
    // HTTP/1.1 needs `Host` whatever the target, as RFC 9112 and nginx have it.
    let r = exchange(
        lb.addr,
        b"GET http://b.example:81/p HTTP/1.1\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status(), 400, "{}", r.text);
    assert_eq!(backend.heads().len(), 1);
}

#[test]
fn an_http10_client_never_gets_a_chunked_body() {
    // nginx: no Transfer-Encoding, the body ends with the connection.
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let backend = RawBackend::start(chunked);
    let lb = lb_for(&backend, json!({}));
    let r = exchange(
        lb.addr,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status(), 200, "{}", r.text);
    let (head, body) = r.text.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(body, "hello");
    assert!(r.closed);
    // HTTP/1.1 clients still get it chunked.
    let r = exchange(
        lb.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert!(r.text.contains("Transfer-Encoding: chunked"), "{}", r.text);
}

#[test]
fn an_http10_client_is_kept_alive_only_when_it_asks() {
    let backend = RawBackend::start(OK);
    let lb = lb_for(&backend, json!({}));
    let r = exchange(lb.addr, b"GET / HTTP/1.0\r\n\r\n", WAIT);
    assert!(r.text.contains("Connection: close"), "{}", r.text);
    assert!(r.closed && r.after < Duration::from_secs(4), "{r:?}");
    let two = b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n";
    let r = exchange(lb.addr, two, WAIT);
    assert_eq!(r.statuses(), [200, 200], "{}", r.text);
    assert!(r.text.contains("Connection: keep-alive"), "{}", r.text);
    assert!(r.closed);
}

#[test]
fn pipelined_requests_are_all_answered_in_order_each_pinned_on_its_own() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let pin = json!({ "pin": { "header": "app" } });
    let lb = Pinlb::start(&config(servers(&[&a, &b]), pin, json!({})));
    let mut bytes = Vec::new();
    for app in ["b", "a", "b", "a"] {
        bytes.extend_from_slice(
            format!("GET / HTTP/1.1\r\nHost: x\r\napp: {app}\r\n\r\n").as_bytes(),
        );
    }
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\napp: b\r\nConnection: close\r\n\r\n");
    let r = exchange(lb.addr, &bytes, WAIT);
    assert_eq!(r.statuses(), [200; 5], "{}", r.text);
    let served: Vec<&str> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("X-Backend: "))
        .collect();
    assert_eq!(served, ["b", "a", "b", "a", "b"]);
    assert!(r.closed);
}

#[test]
fn identical_content_lengths_go_upstream_as_one_and_different_ones_are_400() {
    // nginx 1.22 refuses both ("duplicate header line"); RFC 9110 8.6 allows folding.
    let backend = RawBackend::start(OK);
    let lb = lb_for(&backend, json!({}));
    let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let r = exchange(lb.addr, same, WAIT);
    assert_eq!(r.status(), 200, "{}", r.text);
    let head = &backend.heads()[0];
    assert_eq!(head.matches("Content-Length").count(), 1, "{head}");
    assert!(head.contains("Content-Length: 3\r\n"), "{head}");
    let differ =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
    assert_eq!(exchange(lb.addr, differ, WAIT).status(), 400);
    assert_eq!(backend.heads().len(), 1);
}

#[test]
fn x_forwarded_for_lines_are_joined_as_nginx_joins_them() {
    let backend = RawBackend::start(OK);
    let lb = lb_for(&backend, json!({}));
    let two = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nConnection: close\r\n\r\n";
    assert_eq!(exchange(lb.addr, two, WAIT).status(), 200);
    let head = &backend.heads()[0];
    assert!(
        head.contains("\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1\r\n"),
        "{head}"
    );
}
