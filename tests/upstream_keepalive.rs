//! Idle connections to the servers: reused while they stay open, closed (not left in
//! CLOSE_WAIT, not reused) when the server closes them, and closed by pinlb once they
//! pass the upstream keepalive timeout.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A server that counts its connections and how each one ended. With `close_idle_after`
/// it closes a connection that stays idle that long after a response, as a server with a
/// short keep-alive timeout does; each answer waits `answer_after`.
struct CountingServer {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    closed_by_server: AtomicUsize,
    closed_by_proxy: AtomicUsize,
}

impl CountingServer {
    fn start(close_idle_after: Option<Duration>) -> CountingServer {
        CountingServer::slow(close_idle_after, Duration::ZERO)
    }

    fn slow(close_idle_after: Option<Duration>, answer_after: Duration) -> CountingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let accept_counts = Arc::clone(&counts);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                accept_counts.accepted.fetch_add(1, Ordering::SeqCst);
                let counts = Arc::clone(&accept_counts);
                thread::spawn(move || serve(stream, close_idle_after, answer_after, &counts));
            }
        });
        CountingServer { addr, counts }
    }

    fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    fn closed_by_server(&self) -> usize {
        self.counts.closed_by_server.load(Ordering::SeqCst)
    }

    fn closed_by_proxy(&self) -> usize {
        self.counts.closed_by_proxy.load(Ordering::SeqCst)
    }

    fn servers(&self) -> serde_json::Value {
        json!([{ "name": "a", "addr": self.addr.to_string() }])
    }
}

fn serve(
    stream: TcpStream,
    close_idle_after: Option<Duration>,
    answer_after: Duration,
    counts: &Counts,
) {
    stream.set_read_timeout(close_idle_after).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                counts.closed_by_proxy.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(_) if line == "\r\n" => {
                thread::sleep(answer_after);
                let ok = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
                if ok.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                counts.closed_by_server.fetch_add(1, Ordering::SeqCst);
                return; // dropping the socket closes it
            }
            Err(_) => return,
        }
    }
}

/// Sockets in CLOSE_WAIT towards `server`: connections the server closed and the local
/// side (here only pinlb connects to it) did not.
fn close_wait_towards(server: SocketAddr) -> usize {
    const CLOSE_WAIT: &str = "08";
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!(":{:04X}", server.port());
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[2].ends_with(&remote) && fields[3] == CLOSE_WAIT
        })
        .count()
}

#[test]
fn connections_to_the_server_are_reused() {
    let server = CountingServer::start(None);
    let lb = Pinlb::start(&config(server.servers(), json!({}), json!({})));
    let mut client = lb.client();
    for _ in 0..10 {
        assert_eq!(client.get("/", &[]).unwrap().status, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    }
    // One connection, or two if a request ever came in the moment before the previous
    // one's connection was back in the pool (the client has its answer by then).
    let accepted = server.accepted();
    assert!(
        accepted <= 2,
        "15 sequential requests took {accepted} connections"
    );
}

#[test]
fn each_worker_thread_reuses_its_own_connections() {
    // Idle connections are kept per worker thread, as nginx keeps them per worker
    // process: sequential requests, whichever thread takes each client connection, need
    // at most one connection per thread (two, when a request comes the moment before the
    // previous one's connection is back in its pool).
    let server = CountingServer::start(None);
    let lb = Pinlb::start(&config(
        server.servers(),
        json!({}),
        json!({ "threads": 2 }),
    ));
    for _ in 0..20 {
        assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    }
    let accepted = server.accepted();
    assert!(
        (1..=4).contains(&accepted),
        "20 sequential requests on two threads took {accepted} connections"
    );
}

#[test]
fn a_connection_the_server_closed_is_closed_and_not_reused() {
    let server = CountingServer::start(Some(Duration::from_millis(100)));
    let lb = Pinlb::start(&config(server.servers(), json!({}), json!({})));
    let mut client = lb.client();
    assert_eq!(client.get("/", &[]).unwrap().status, 200);
    assert!(poll_until(Duration::from_secs(3), || server
        .closed_by_server()
        == 1));
    // pinlb notices the close of an idle connection by itself, without a request.
    assert!(
        poll_until(Duration::from_secs(5), || close_wait_towards(server.addr)
            == 0),
        "the closed connection stayed in CLOSE_WAIT"
    );
    // The next request gets a new connection instead of a 502 from the closed one.
    assert_eq!(client.get("/", &[]).unwrap().status, 200);
    assert_eq!(server.accepted(), 2);
}

#[test]
fn idle_connections_are_closed_after_the_upstream_keepalive_timeout() {
    let server = CountingServer::start(None);
    let keepalive = json!({ "upstreams": { "web": {
        "keepalive": { "connections": 8, "timeout_ms": 300 }
    } } });
    let lb = Pinlb::start(&config(server.servers(), json!({}), keepalive));
    let mut client = lb.client();
    let sent = Instant::now();
    assert_eq!(client.get("/", &[]).unwrap().status, 200);
    assert!(poll_until(Duration::from_secs(5), || server
        .closed_by_proxy()
        == 1));
    let idle_for = sent.elapsed();
    assert!(
        idle_for >= Duration::from_millis(300),
        "closed after {idle_for:?}, before the 300 ms timeout"
    );
    assert_eq!(client.get("/", &[]).unwrap().status, 200);
    assert_eq!(server.accepted(), 2);
}

#[test]
fn keepalive_requests_closes_a_connection_after_its_last_request() {
    let server = CountingServer::start(None);
    let keepalive = json!({ "upstreams": { "web": {
        "keepalive": { "connections": 4, "requests": 3 }
    } } });
    let lb = Pinlb::start(&config(server.servers(), json!({}), keepalive));
    let mut client = lb.client();
    for _ in 0..9 {
        assert_eq!(client.get("/", &[]).unwrap().status, 200);
    }
    // Three requests a connection; a request that beats its predecessor's release to the
    // pool may open one more.
    let accepted = server.accepted();
    assert!(
        (3..=4).contains(&accepted),
        "9 requests at 3 a connection took {accepted} connections"
    );
    assert!(poll_until(Duration::from_secs(3), || server
        .closed_by_proxy()
        >= 3));
}

#[test]
fn keepalive_bounds_the_idle_connections_of_its_upstream() {
    let server = CountingServer::slow(None, Duration::from_millis(300));
    let keepalive = json!({ "upstreams": { "web": {
        "keepalive": { "connections": 1 }
    } } });
    let lb = Pinlb::start(&config(server.servers(), json!({}), keepalive));
    let addr = lb.addr;
    let clients: Vec<_> = (0..3)
        .map(|_| thread::spawn(move || get(addr, "/", &[]).unwrap().status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    assert_eq!(
        server.accepted(),
        3,
        "three requests at once, three connections"
    );
    // `keepalive 1`: two of the three are closed as they come back, one stays for reuse.
    assert!(
        poll_until(Duration::from_secs(3), || server.closed_by_proxy() == 2),
        "{} of 3 idle connections closed",
        server.closed_by_proxy()
    );
    assert_eq!(get(addr, "/", &[]).unwrap().status, 200);
    assert_eq!(server.accepted(), 3, "the kept connection is reused");
}

#[test]
fn each_request_on_a_reused_connection_gets_the_whole_read_timeout() {
    // The read timer is kept per upstream connection (vendor patch 0029): the timer armed
    // by one request fires 500 ms into the next one on the same connection, which must
    // still get its whole 1.5 s.
    let server = CountingServer::slow(None, Duration::from_millis(1000));
    let lb = Pinlb::start(&config(
        server.servers(),
        json!({ "proxy": { "read_timeout_ms": 1500 } }),
        json!({}),
    ));
    let mut client = lb.client();
    for _ in 0..3 {
        assert_eq!(client.get("/", &[]).unwrap().status, 200);
    }
    // A request that beats its predecessor's release to the pool may open a new connection;
    // at least one went over a reused one.
    assert!(server.accepted() < 3, "{} connections", server.accepted());
}
