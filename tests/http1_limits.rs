//! Limits and timeouts for whole request heads (nginx's `client_header_buffer_size`,
//! `large_client_header_buffers`, `client_header_timeout`), request bodies
//! (`client_body_timeout`), `keepalive_requests`, and refused requests in the access log.
//! Each test names what nginx 1.22 answers to the same bytes.

mod common;

use common::raw::{exchange, read_until_closed};
use common::*;
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn request_with(lines: &[String]) -> Vec<u8> {
    let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for l in lines {
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn headers(n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("X-{i}: {}", "b".repeat(len)))
        .collect()
}

/// pinlb with an access log in the combined format, and the log file's path.
struct Logged {
    lb: Pinlb,
    backend: Backend,
    log: std::path::PathBuf,
    _dir: TempDir,
}

fn logged_lb(extra: serde_json::Value) -> Logged {
    let backend = Backend::start("a");
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let mut cfg = config(servers(&[&backend]), json!({}), extra);
    merge(
        &mut cfg,
        json!({ "access_log": { "path": log, "format": "combined" } }),
    );
    Logged {
        lb: Pinlb::start(&cfg),
        backend,
        log,
        _dir: dir,
    }
}

fn log_lines(log: &std::path::Path, n: usize) -> Vec<String> {
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    poll_until(Duration::from_secs(5), || read().lines().count() >= n);
    read().lines().map(String::from).collect()
}

#[test]
fn heads_over_nginxs_default_buffers_are_refused_as_nginx_refuses_them() {
    // nginx (1k + 4 x 8k): 414 for a request line over 8k, 400 "Request Header Or Cookie
    // Too Large" for a header line over 8k or a head over 32k.
    let Logged {
        lb,
        backend: a,
        log,
        _dir: _d,
    } = logged_lb(json!({}));
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8200));
    let r = exchange(lb.addr, long_line.as_bytes(), WAIT);
    assert_eq!(r.status(), 414, "{}", r.text);
    assert!(r.closed);
    let r = exchange(lb.addr, &request_with(&headers(1, 8200)), WAIT);
    assert_eq!(r.status(), 400);
    assert!(
        r.text.ends_with("400 Request Header Or Cookie Too Large\n"),
        "{}",
        r.text
    );
    let r = exchange(lb.addr, &request_with(&headers(5, 7000)), WAIT);
    assert_eq!(r.status(), 400);
    assert!(r.text.contains("Request Header Or Cookie Too Large"));
    // Within the limits: a line of 8,000 and 4 lines of 7,000 bytes pass.
    let within = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "a".repeat(8000)
    );
    assert_eq!(exchange(lb.addr, within.as_bytes(), WAIT).status(), 200);
    assert_eq!(
        exchange(lb.addr, &request_with(&headers(4, 7000)), WAIT).status(),
        200
    );
    assert_eq!(a.requests(), 2);
    // The refused requests are in the access log like any other.
    let lines = log_lines(&log, 5);
    let statuses: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split('"').nth(2)?.split_whitespace().next())
        .collect();
    assert_eq!(statuses, ["414", "400", "400", "200", "200"], "{lines:?}");
    assert!(lines[1].contains("\"GET / HTTP/1.1\" 400"), "{}", lines[1]);
}

#[test]
fn configured_header_buffers_set_the_limits() {
    let Logged {
        lb,
        backend: _a,
        log: _l,
        _dir: _d,
    } = logged_lb(json!({
        "client_header_buffer_size": 256,
        "large_client_header_buffers": { "number": 2, "size": 1024 }
    }));
    assert_eq!(
        exchange(lb.addr, &request_with(&headers(1, 900)), WAIT).status(),
        200
    );
    assert_eq!(
        exchange(lb.addr, &request_with(&headers(1, 1100)), WAIT).status(),
        400
    );
    assert_eq!(
        exchange(lb.addr, &request_with(&headers(3, 700)), WAIT).status(),
        400
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(1100));
    assert_eq!(exchange(lb.addr, long.as_bytes(), WAIT).status(), 414);
}

#[test]
fn more_than_256_headers_pass_while_the_head_fits() {
    // nginx limits bytes, not headers: 300 headers of 100 bytes pass there too.
    let Logged {
        lb,
        backend: a,
        log: _l,
        _dir: _d,
    } = logged_lb(json!({}));
    let r = exchange(lb.addr, &request_with(&headers(300, 100)), WAIT);
    assert_eq!(r.status(), 200, "{}", r.text);
    assert_eq!(a.requests(), 1);
}

#[test]
fn the_whole_head_must_arrive_within_client_header_timeout() {
    // nginx closes without an answer and logs 408; a per-read timeout would let this
    // client trickle forever.
    let Logged {
        lb,
        backend: a,
        log,
        _dir: _d,
    } = logged_lb(json!({ "client_header_timeout_ms": 600 }));
    let mut s = TcpStream::connect(lb.addr).unwrap();
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ";
    let mut closed_after = None;
    for i in 0..60 {
        let byte = head.get(i).copied().unwrap_or(b'x');
        if s.write_all(&[byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let r = read_until_closed(&mut s, Instant::now(), Duration::from_millis(100));
        if r.closed {
            assert_eq!(r.text, "", "no answer to a timed-out head");
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let after = closed_after.expect("a trickling head is closed");
    assert!(
        after >= Duration::from_millis(500) && after < Duration::from_secs(3),
        "{after:?}"
    );
    let lines = log_lines(&log, 1);
    assert!(lines[0].contains("\"GET / HTTP/1.1\" 408 0"), "{lines:?}");
    // A connection that sends nothing is closed after the same time, and not logged.
    let r = exchange(lb.addr, b"", WAIT);
    assert!(r.closed && r.after < Duration::from_secs(3), "{r:?}");
    assert_eq!(a.requests(), 0);
    assert_eq!(log_lines(&log, 1).len(), 1);
}

#[test]
fn keep_alive_idle_time_is_separate_from_the_head_timeout() {
    // The idle wait before a later request is `keepalive_timeout`; its head, once it
    // starts, has `client_header_timeout`.
    let Logged {
        lb,
        backend: _a,
        log: _l,
        _dir: _d,
    } = logged_lb(json!({ "client_header_timeout_ms": 400, "keepalive_timeout_ms": 5000 }));
    let mut c = lb.client();
    assert_eq!(c.get("/", &[]).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(800)); // idle longer than the head timeout
    assert_eq!(c.get("/", &[]).unwrap().status, 200);
}

#[test]
fn a_stalled_body_is_closed_after_client_body_timeout() {
    // nginx: no answer, 408 in the log.
    let Logged {
        lb,
        backend: a,
        log,
        _dir: _d,
    } = logged_lb(json!({ "client_body_timeout_ms": 500 }));
    let r = exchange(
        lb.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab",
        WAIT,
    );
    assert!(r.closed && r.after < Duration::from_secs(3), "{r:?}");
    assert!(!r.text.contains("408"), "{}", r.text);
    let lines = log_lines(&log, 1);
    assert!(lines[0].contains("\"POST / HTTP/1.1\" 408"), "{lines:?}");
    drop(a);
}

#[test]
fn a_client_that_stops_reading_is_closed_after_send_timeout() {
    // A 64 MiB answer to a client that reads nothing: pinlb gives up once its writes have
    // waited `send_timeout`, and logs the request, instead of holding both connections.
    let size = 64 << 20;
    let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    answer.resize(answer.len() + size, b'x');
    let backend = common::raw::RawBackend::start(Box::leak(answer.into_boxed_slice()));
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let upstream = json!([{ "name": "raw", "addr": backend.addr.to_string() }]);
    let extra = json!({
        "client_send_timeout_ms": 500,
        "access_log": { "path": log, "format": "combined" }
    });
    let lb = Pinlb::start(&config(upstream, json!({}), extra));
    let mut s = TcpStream::connect(lb.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let started = Instant::now();
    let lines = log_lines(&log, 1);
    assert_eq!(lines.len(), 1, "no log line: the write never timed out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r = read_until_closed(&mut s, Instant::now(), Duration::from_secs(10));
    assert!(r.closed && r.text.len() < size, "{} bytes", r.text.len());
}

#[test]
fn keepalive_requests_closes_the_connection_after_that_many() {
    // nginx: the last response says `Connection: close`.
    let Logged {
        lb,
        backend: _a,
        log: _l,
        _dir: _d,
    } = logged_lb(json!({ "keepalive_requests": 2 }));
    let three = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(3);
    let r = exchange(lb.addr, &three, WAIT);
    assert_eq!(r.statuses(), [200, 200], "{}", r.text);
    let connection: Vec<&str> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("Connection: "))
        .collect();
    assert_eq!(connection, ["keep-alive", "close"]);
    assert!(r.closed);
}
