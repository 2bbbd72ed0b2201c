//! Process-wide settings through the real binary: the number of worker threads and how
//! long an idle client keep-alive connection stays open.

mod common;

use common::*;
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The names of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

#[test]
fn threads_sets_the_number_of_proxy_worker_threads() {
    let a = Backend::start("a");
    for threads in [1, 3] {
        let lb = Pinlb::start(&config(
            servers(&[&a]),
            json!({}),
            json!({ "threads": threads }),
        ));
        assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
        // Pingora names each worker thread after its service ("Pingora HTTP Proxy
        // Service", cut to the 15 bytes Linux keeps). A thread a worker starts (the
        // access log writer) has its creator's name until it sets its own.
        let workers = || {
            let names = thread_names(lb.pid());
            (
                names.iter().filter(|n| *n == "Pingora HTTP Pr").count(),
                names,
            )
        };
        let settled = poll_until(Duration::from_secs(2), || workers().0 == threads);
        assert!(settled, "threads {threads}: {:?}", workers().1);
    }
}

#[test]
fn connections_are_served_and_closed_on_every_worker_thread() {
    // Each connection is served by a worker thread picked at random, which takes its
    // socket over from the thread that accepted it: of sixteen connections some land on
    // each. Every one must be answered, request after request, and closed once idle.
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({}),
        json!({ "threads": 2, "keepalive_timeout_ms": 1000 }),
    ));
    let mut clients: Vec<Client> = (0..16).map(|_| lb.client()).collect();
    for round in 0..3 {
        for (i, client) in clients.iter_mut().enumerate() {
            let answer = client.get("/", &[]).unwrap();
            assert_eq!(answer.status, 200, "connection {i}, request {round}");
            assert_eq!(answer.text(), "a");
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(
            poll_until(Duration::from_secs(10), || client.is_closed()),
            "connection {i} stayed open past the keep-alive timeout"
        );
    }
}

#[test]
fn an_idle_client_connection_is_closed_after_keepalive_timeout() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({}),
        json!({ "keepalive_timeout_ms": 1000 }),
    ));
    let mut stream = TcpStream::connect(lb.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The demo backend's answer: a short head and `a\n`; read it, then wait for the close.
    let mut answer = Vec::new();
    let mut buf = [0; 1024];
    while !answer.ends_with(b"\r\n\r\na\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let idle_since = Instant::now();
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected bytes: {:?}", &buf[..n]),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("still open after 10 s: {e}"),
    };
    let idle_for = idle_since.elapsed();
    assert!(closed);
    assert!(
        idle_for >= Duration::from_millis(900),
        "closed after {idle_for:?}"
    );
    assert!(
        idle_for < Duration::from_secs(3),
        "closed after {idle_for:?}"
    );
}
