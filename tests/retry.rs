//! Retries: a failed server is skipped for the next one, never tried twice, within the
//! configured number of tries; a killed server under load costs clients nothing.

mod common;

use common::*;
use serde_json::json;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A server that accepts connections and closes them without answering; counts accepts.
struct Broken {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl Broken {
    fn start() -> Broken {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepts);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Broken { addr, accepts }
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

/// pinlb's connections to each of `brokens` so far: a connection of our own, queued
/// behind them, is accepted (and closed) last, so once it is closed every earlier one has
/// been counted.
fn settled_accepts(brokens: &[Broken]) -> Vec<usize> {
    brokens
        .iter()
        .map(|b| {
            let mut marker = TcpStream::connect(b.addr).unwrap();
            marker
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let closed = marker.read(&mut [0; 1]);
            assert!(matches!(closed, Ok(0)), "{closed:?}");
            b.accepts() - 1
        })
        .collect()
}

fn broken_servers(n: usize) -> (Vec<Broken>, serde_json::Value) {
    let brokens: Vec<Broken> = (0..n).map(|_| Broken::start()).collect();
    let conf = brokens
        .iter()
        .enumerate()
        .map(|(i, b)| json!({ "name": format!("broken{i}"), "addr": b.addr.to_string() }))
        .collect();
    (brokens, conf)
}

#[test]
fn each_server_is_tried_at_most_once_per_request() {
    let (brokens, conf) = broken_servers(3);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    let r = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(settled_accepts(&brokens), [1, 1, 1]);
}

#[test]
fn next_upstream_tries_bounds_the_attempts() {
    let (brokens, conf) = broken_servers(3);
    let lb = Pinlb::start(&config(
        conf,
        json!({ "proxy": { "next_upstream_tries": 2 } }),
        json!({}),
    ));
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 502);
    assert_eq!(settled_accepts(&brokens).iter().sum::<usize>(), 2);
}

#[test]
fn a_post_that_reached_a_server_is_not_retried() {
    let (brokens, conf) = broken_servers(3);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    let r = lb.client().request("POST", "/", &[]).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(settled_accepts(&brokens).iter().sum::<usize>(), 1);
}

#[test]
fn a_dead_address_is_skipped_for_a_live_server() {
    let dead = free_addr();
    let live = Backend::start("live");
    let conf = json!([
        { "name": "dead", "addr": dead.to_string() },
        { "name": "live", "addr": live.addr.to_string() }
    ]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    // POST too: a refused connect sent nothing, so any method may move on.
    let mut client = lb.client();
    for method in ["GET", "POST", "GET", "POST"] {
        let r = client.request(method, "/", &[]).unwrap();
        assert_eq!((r.status, r.text()), (200, "live"));
    }
}

#[test]
fn a_killed_server_under_load_costs_no_client_errors() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = Pinlb::start(&config(servers(&[&a, &b, &c]), json!({}), json!({})));
    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let sent = Arc::clone(&sent);
            let addr = lb.addr;
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut client = Client::connect(addr).unwrap();
                for _ in 0..300 {
                    if Instant::now() > deadline {
                        break;
                    }
                    match client.get("/", &[]) {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.push(format!("{} {}", r.status, r.body)),
                        Err(e) => {
                            failures.push(e.to_string());
                            client = Client::connect(addr).unwrap();
                        }
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                failures
            })
        })
        .collect();
    assert!(poll_until(Duration::from_secs(10), || sent
        .load(Ordering::SeqCst)
        >= 200));
    let before = b.requests();
    b.stop();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(before > 0, "b took no traffic before it was killed");
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(sent.load(Ordering::SeqCst), 1200);
}

#[test]
fn next_upstream_statuses_move_a_request_to_the_next_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(
        servers(&[&a, &b]),
        json!({ "proxy": { "next_upstream": ["error", "timeout", "http_500"] } }),
        json!({}),
    ));
    let mut client = lb.client();
    // `a` answers 500 and the request moves to `b`; a 404 is an answer like any other.
    for _ in 0..2 {
        let r = client.get("/status/a/500", &[]).unwrap();
        assert_eq!((r.status, r.text()), (200, "b"));
    }
    let before = a.requests() + b.requests();
    assert_eq!(client.get("/status/404", &[]).unwrap().status, 404);
    assert_eq!(a.requests() + b.requests(), before + 1);
}

#[test]
fn next_upstream_off_sends_the_first_failure_to_the_client() {
    let (brokens, conf) = broken_servers(3);
    let lb = Pinlb::start(&config(
        conf,
        json!({ "proxy": { "next_upstream": ["off"] } }),
        json!({}),
    ));
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 502);
    assert_eq!(settled_accepts(&brokens).iter().sum::<usize>(), 1);
}

#[test]
fn next_upstream_non_idempotent_retries_a_post_too() {
    let (brokens, conf) = broken_servers(3);
    let lb = Pinlb::start(&config(
        conf,
        json!({ "proxy": { "next_upstream": ["error", "non_idempotent"] } }),
        json!({}),
    ));
    assert_eq!(lb.client().request("POST", "/", &[]).unwrap().status, 502);
    assert_eq!(settled_accepts(&brokens), [1, 1, 1]);
}
