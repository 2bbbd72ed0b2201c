//! The connection settings of one attempt on an upstream server.

use crate::config::ProxySettings;
use crate::upstream::Pool;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

/// The peer for server `i` of `pool`, with the route's timeouts and HTTP version. An upgraded (websocket)
/// connection may stay quiet for the websocket idle limit instead of the read timeout.
pub fn peer(pool: &Pool, i: usize, settings: &ProxySettings, upgrade: bool) -> HttpPeer {
    let mut peer = HttpPeer::new(pool.servers[i].addr, false, String::new());
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
