//! Responses to requests without a body, over raw sockets: 1xx before the final response,
//! HEAD, 204 and 304 without a body, a response delimited by the server's close, a
//! response cut short, and the client's connection kept alive after each. These exchanges
//! run as one loop in the vendored proxy (patch 0032).

mod common;

use common::raw::{RawBackend, read_until_closed};
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn lb_for(backend: SocketAddr) -> Pinlb {
    let upstream = json!([{ "name": "raw", "addr": backend.to_string() }]);
    Pinlb::start(&config(upstream, json!({}), json!({})))
}

/// Sends `request` on `s` and reads until what came back ends with `end` (or the deadline).
fn ask(s: &mut TcpStream, request: &str, end: &str) -> String {
    s.write_all(request.as_bytes()).expect("send");
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(end.as_bytes()) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {end:?} in time: {}",
            String::from_utf8_lossy(&out)
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => panic!("closed: {}", String::from_utf8_lossy(&out)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&out)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, WAIT).expect("connect")
}

/// A backend that reads one request head per connection, answers `response` and closes.
fn closing_backend(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = (&stream).write_all(response);
            });
        }
    });
    addr
}

#[test]
fn an_informational_response_is_followed_by_the_final_one_on_a_kept_connection() {
    let backend = RawBackend::start(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
    );
    let lb = lb_for(backend.addr);
    let mut s = connect(lb.addr);
    for _ in 0..2 {
        let r = ask(&mut s, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "ok\n");
        assert!(r.contains("HTTP/1.1 200 OK\r\n"), "{r}");
    }
    assert_eq!(backend.heads().len(), 2);
}

#[test]
fn head_204_and_304_end_without_a_body_and_keep_the_connection() {
    for (request, response) in [
        (
            "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"[..],
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n\r\n",
            &b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"[..],
        ),
    ] {
        let response: &'static [u8] = Box::leak(response.to_vec().into_boxed_slice());
        let backend = RawBackend::start(response);
        let lb = lb_for(backend.addr);
        let mut s = connect(lb.addr);
        for _ in 0..2 {
            let r = ask(&mut s, request, "\r\n\r\n");
            let status = &response[..12];
            assert!(r.as_bytes().starts_with(status), "{request}: {r}");
            assert!(!r.contains("chunked"), "{request}: {r}");
        }
        // nothing more came: the second answer ended at its head too
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(s.read(&mut buf).is_err(), "{request}: bytes after the head");
        assert_eq!(backend.heads().len(), 2, "{request}");
    }
}

#[test]
fn a_response_delimited_by_close_reaches_the_client_chunked_on_a_kept_connection() {
    let backend = closing_backend(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil the end");
    let lb = lb_for(backend);
    let mut s = connect(lb.addr);
    for _ in 0..2 {
        let r = ask(&mut s, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Transfer-Encoding: chunked\r\n"), "{r}");
        assert!(r.contains("until the end"), "{r}");
    }
}

#[test]
fn a_response_cut_short_closes_the_client_connection_without_its_end() {
    let backend = closing_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
    let lb = lb_for(backend);
    let mut s = connect(lb.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let r = read_until_closed(&mut s, Instant::now(), WAIT);
    assert!(r.closed, "{}", r.text);
    assert!(r.text.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.text);
    assert!(r.text.ends_with("only this"), "{}", r.text);
}

#[test]
fn garbage_from_the_server_gives_502() {
    let backend = closing_backend(b"this is not http\r\n\r\n");
    let lb = lb_for(backend);
    let mut s = connect(lb.addr);
    let r = ask(
        &mut s,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "\n",
    );
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
}
