//! Websocket load for `make bench`: many concurrent connections, each sending a message
//! and waiting for its echo, for a fixed time. Prints one line of JSON: messages per
//! second, latency percentiles in milliseconds, errors.
//!
//! `ws_bench ws://127.0.0.1:8080/ CONNECTIONS SECONDS`

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(conns), Some(secs)) = (
        args.get(1),
        args.get(2).and_then(|c| c.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: ws_bench ws://HOST:PORT/PATH CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (url, stop) = (url.clone(), Arc::clone(&stop));
            std::thread::spawn(move || echo_loop(&url, &stop))
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.join().unwrap_or_default();
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"messages_per_sec\": {:.0}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"errors\": {errors}}}",
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}

/// One connection's round trips until `stop`; returns their latencies and errors.
fn echo_loop(url: &str, stop: &AtomicBool) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let Some(addr) = url.strip_prefix("ws://").and_then(|r| r.split('/').next()) else {
        return (latencies, 1);
    };
    let Ok(stream) = TcpStream::connect(addr) else {
        return (latencies, 1);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut ws, _)) = tungstenite::client(url, stream) else {
        return (latencies, 1);
    };
    let payload = "x".repeat(64);
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if ws.send(Message::text(payload.as_str())).is_err() {
            return (latencies, 1);
        }
        match ws.read() {
            Ok(Message::Text(_)) => latencies.push(sent.elapsed()),
            _ => return (latencies, 1),
        }
    }
    let _ = ws.close(None);
    (latencies, 0)
}
