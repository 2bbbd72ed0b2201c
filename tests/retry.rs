//! Retries: a failed server is skipped for the next one, never tried twice, within the
//! configured number of tries; a killed server under load costs clients nothing.

mod common;

use common::*;
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
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
    assert!(poll_until(Duration::from_secs(2), || brokens
        .iter()
        .all(|b| b.accepts() == 1)));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        brokens.iter().map(Broken::accepts).collect::<Vec<_>>(),
        [1, 1, 1]
    );
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
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(brokens.iter().map(Broken::accepts).sum::<usize>(), 2);
}

#[test]
fn a_post_that_reached_a_server_is_not_retried() {
    let (brokens, conf) = broken_servers(3);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    let r = lb.client().request("POST", "/", &[]).unwrap();
    assert_eq!(r.status, 502);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(brokens.iter().map(Broken::accepts).sum::<usize>(), 1);
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
