//! A bounded concurrent load for lifecycle tests: worker threads sending GET requests on
//! keep-alive or fresh connections, honouring `Connection: close` as real clients do,
//! and recording every failure and which server answered when.
#![allow(dead_code)]

use super::client::Client;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Never more than this many requests per worker, whatever the test does.
const MAX_REQUESTS_PER_WORKER: usize = 50_000;

pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<Outcome>>,
}

/// What the workers saw.
#[derive(Default)]
pub struct Outcome {
    pub ok: usize,
    pub failures: Vec<String>,
    /// When each answer arrived and which server (`X-Served-By`) gave it.
    pub answers: Vec<(Instant, String)>,
}

impl Load {
    /// Starts `keep_alive` workers reusing connections and `fresh` workers opening one per
    /// request; all stop after `limit` at the latest.
    pub fn start(addr: SocketAddr, keep_alive: usize, fresh: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + limit;
        let workers = (0..keep_alive + fresh)
            .map(|i| {
                let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
                std::thread::spawn(move || work(addr, i < keep_alive, &stop, &sent, deadline))
            })
            .collect();
        Load {
            stop,
            sent,
            workers,
        }
    }

    /// Requests answered so far, by all workers.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Stops the workers and gathers what they saw.
    pub fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Outcome::default();
        for w in self.workers {
            let o = w.join().expect("load worker");
            all.ok += o.ok;
            all.failures.extend(o.failures);
            all.answers.extend(o.answers);
        }
        all
    }
}

fn work(
    addr: SocketAddr,
    keep_alive: bool,
    stop: &AtomicBool,
    sent: &AtomicUsize,
    deadline: Instant,
) -> Outcome {
    let mut out = Outcome::default();
    let mut conn: Option<Client> = None;
    for _ in 0..MAX_REQUESTS_PER_WORKER {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let client = match conn.take() {
            Some(c) => c,
            None => match Client::connect(addr) {
                Ok(c) => c,
                Err(e) => {
                    out.failures.push(format!("connect: {e}"));
                    continue;
                }
            },
        };
        let mut client = client;
        let headers: &[(&str, &str)] = if keep_alive {
            &[]
        } else {
            &[("Connection", "close")]
        };
        match client.get("/", headers) {
            Ok(r) if r.status == 200 => {
                out.ok += 1;
                sent.fetch_add(1, Ordering::SeqCst);
                out.answers.push((
                    Instant::now(),
                    r.header("x-served-by").unwrap_or("").to_string(),
                ));
                let closing = r
                    .header("connection")
                    .is_some_and(|c| c.eq_ignore_ascii_case("close"));
                if keep_alive && !closing {
                    conn = Some(client);
                }
            }
            Ok(r) => out
                .failures
                .push(format!("status {}: {}", r.status, r.body.trim())),
            Err(e) => out.failures.push(format!("request: {e}")),
        }
    }
    out
}
