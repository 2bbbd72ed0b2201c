//! The connection settings of one attempt on an upstream server.

use crate::config::ProxySettings;
use crate::upstream::Pool;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicU64, Ordering};

/// The peer for server `i` of `pool`, with the route's timeouts and HTTP version. An upgraded (websocket)
/// connection may stay quiet for the websocket idle limit instead of the read timeout.
pub fn peer(pool: &Pool, i: usize, settings: &ProxySettings, upgrade: bool) -> HttpPeer {
    let mut peer = HttpPeer::new(pool.servers[i].addr, false, String::new());
    peer.group_key = worker_thread_key();
    peer.options.connection_timeout = Some(settings.connect_timeout);
    peer.options.write_timeout = Some(settings.send_timeout);
    peer.options.read_timeout = Some(match upgrade {
        true => settings.websocket_idle_timeout,
        false => settings.read_timeout,
    });
    peer.options.idle_timeout = pool.idle_timeout;
    peer.options.idle_group = pool.idle_group;
    peer.options.max_requests_per_connection = pool.max_requests_per_connection;
    if settings.http2 {
        // HTTP/2 only: over TLS by ALPN, on a plain connection with prior knowledge.
        peer.options.alpn = ALPN::H2;
    }
    peer
}

/// Idle upstream connections are pooled per worker thread, as nginx keeps `keepalive`
/// connections per worker process: a socket is polled by the runtime of the thread that
/// opened it, and one taken up by a request on another thread would have each of its
/// readiness events cross threads (a wake-up through that runtime's eventfd and a
/// context switch, about one per request). Distinct per thread, fixed for its life.
fn worker_thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static KEY: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    KEY.with(|key| *key)
}
