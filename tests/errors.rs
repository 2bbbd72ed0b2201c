//! Errors users can act on: 503 when no server is usable, 502 when none can be reached,
//! 504 when the server is too slow; each with a one-line body naming the upstream.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn unreachable_servers_give_502_naming_the_upstream() {
    let conf = json!([
        { "name": "x", "addr": free_addr().to_string() },
        { "name": "y", "addr": free_addr().to_string() }
    ]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    let r = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        r.body,
        "502 Bad Gateway: no server of upstream \"web\" could be reached\n"
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn the_only_server_of_an_upstream_is_never_taken_out_by_failures() {
    // nginx ignores max_fails for a single server: each request tries it again and gets
    // its 502, instead of a 503 for fail_timeout after the first failure.
    let conf = json!([{ "name": "x", "addr": free_addr().to_string(), "max_fails": 1 }]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    for _ in 0..4 {
        assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 502);
    }
}

#[test]
fn no_healthy_server_gives_503_naming_the_upstream() {
    let a = Backend::start("a");
    let check = json!({ "upstreams": { "web": { "health_check": {
        "type": "http", "path": "/health", "interval_ms": 100, "fails": 1
    } } } });
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), check));
    a.set_healthy(false);
    assert!(lb.wait_for_log("becomes unhealthy", Duration::from_secs(3)));
    let r = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "503 Service Unavailable: no usable server in upstream \"web\"\n"
    );
}

#[test]
fn a_slow_server_gives_504_after_the_read_timeout() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "proxy": { "read_timeout_ms": 300 } }),
        json!({}),
    ));
    let started = Instant::now();
    let r = get(lb.addr, "/slow/3000", &[]).unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(
        r.body,
        "504 Gateway Timeout: upstream \"web\" did not answer in time\n"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_timeout_moves_the_request_to_the_next_server_like_nginx() {
    let (slow, fast) = (Backend::start("slow"), Backend::start("fast"));
    let lb = Pinlb::start(&config(
        servers(&[&slow, &fast]),
        json!({ "proxy": { "read_timeout_ms": 300 } }),
        json!({}),
    ));
    let r = get(lb.addr, "/slow/slow/1500", &[]).unwrap();
    assert_eq!((r.status, r.text()), (200, "fast"));
    assert_eq!((slow.requests(), fast.requests()), (1, 1));
}

#[test]
fn timeouts_on_every_server_give_504_after_one_try_each() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(
        servers(&[&a, &b]),
        json!({ "proxy": { "read_timeout_ms": 300 } }),
        json!({}),
    ));
    assert_eq!(get(lb.addr, "/slow/800", &[]).unwrap().status, 504);
    assert_eq!((a.requests(), b.requests()), (1, 1));
}

#[test]
fn conflicting_content_lengths_give_400_and_reach_no_server() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let agreeing = lb
        .client()
        .request("PATCH", "/", &[("Content-Length", "0, 0")])
        .unwrap();
    assert_eq!(agreeing.status, 200, "identical values frame the same body");
    assert_eq!(a.requests(), 1);
    for value in ["1, 2", "x", "0, x"] {
        let r = lb
            .client()
            .request("PATCH", "/", &[("Content-Length", value)])
            .unwrap();
        assert_eq!(r.status, 400, "Content-Length: {value}");
    }
    assert_eq!(a.requests(), 1, "no ambiguous request reached the server");
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to
/// it neither succeeds nor fails until the connecting side gives up. Keep both alive.
fn unanswered_connects() -> (socket2::Socket, std::net::TcpStream, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // A backlog of 0 holds one connection that nobody accepts.
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (listener, filler, addr)
}

#[test]
fn a_connect_that_hangs_gives_up_after_the_connect_timeout() {
    let (_listener, _filler, hanging) = unanswered_connects();
    let live = Backend::start("live");
    let conf = json!([
        { "name": "hanging", "addr": hanging.to_string() },
        { "name": "live", "addr": live.addr.to_string() }
    ]);
    let lb = Pinlb::start(&config(
        conf,
        json!({ "proxy": { "connect_timeout_ms": 300 } }),
        json!({}),
    ));
    // Round robin tries `hanging` first; its connect times out and `live` answers.
    let started = Instant::now();
    let r = get(lb.addr, "/", &[]).unwrap();
    let took = started.elapsed();
    assert_eq!((r.status, r.text()), (200, "live"));
    assert!(
        took >= Duration::from_millis(250),
        "no wait on the connect: {took:?}"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
}

/// A server that accepts connections and never reads from them.
fn deaf_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16) {
            held.push(conn);
        }
    });
    addr
}

#[test]
fn an_upload_the_server_does_not_read_gives_504_after_the_send_timeout() {
    use std::io::{Read, Write};
    let deaf = deaf_server();
    let conf = json!([{ "name": "deaf", "addr": deaf.to_string() }]);
    let lb = Pinlb::start(&config(
        conf,
        json!({ "proxy": { "send_timeout_ms": 300 } }),
        json!({}),
    ));
    // More than the socket buffers between pinlb and the server hold.
    const BODY: usize = 64 << 20;
    let mut stream = std::net::TcpStream::connect(lb.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..BODY / chunk.len() {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Sends `head` and `body` on a fresh connection and returns the status pinlb answers.
fn status_of_upload(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // pinlb may answer (and close) before it reads a body it refuses.
    let _ = stream.write_all(body);
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).unwrap();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {status_line:?}"))
}

#[test]
fn a_body_over_client_max_body_size_gets_413_and_reaches_no_server() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "proxy": { "client_max_body_size": 10 } }),
        json!({}),
    ));
    let sized = |len: usize| format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n");
    assert_eq!(status_of_upload(lb.addr, &sized(10), b"0123456789"), 200);
    assert_eq!(a.requests(), 1);
    assert_eq!(status_of_upload(lb.addr, &sized(11), b"0123456789x"), 413);
    assert_eq!(a.requests(), 1, "the refused body reached the server");
    // A chunked body is counted as it arrives.
    let chunked = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        status_of_upload(lb.addr, chunked, b"6\r\n012345\r\n0\r\n\r\n"),
        200
    );
    assert_eq!(
        status_of_upload(lb.addr, chunked, b"6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n"),
        413
    );
    assert_eq!(
        a.requests(),
        2,
        "the refused chunked body reached the server"
    );
}

/// A chunked body is read whole before an upstream is chosen (nginx's request buffering):
/// one over the limit reaches no server, and one under it, larger than Pingora's 64 KiB
/// retry buffer, arrives whole.
#[test]
fn a_chunked_body_is_judged_before_it_reaches_a_server() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "proxy": { "client_max_body_size": 300_000 } }),
        json!({}),
    ));
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let checksum = body.iter().fold(0u32, |sum, &b| {
        sum.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    let chunked = |body: &[u8]| {
        let mut out = Vec::new();
        for piece in body.chunks(7_000) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    let head = "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut client = lb.client();
    let mut raw = head.as_bytes().to_vec();
    raw.extend_from_slice(&chunked(&body));
    let r = client.send_raw(&raw).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("200000 {checksum}"));

    let large: Vec<u8> = vec![b'x'; 300_001];
    assert_eq!(status_of_upload(lb.addr, head, &chunked(&large)), 413);
    assert_eq!(a.heads(), 1, "the refused chunked body reached the server");
}
