//! The PROXY protocol on listeners that expect it (`listen ... proxy_protocol`): the header
//! (v1 or v2, [`crate::net::proxy_protocol`]) is read before anything else reads the
//! connection, as Pingora's pre-handshake callback of the listener: before HTTP on a plain
//! listener, before the handshake on a TLS one. Its addresses go into the connection's
//! socket digest, where requests find them (`$proxy_protocol_addr`,
//! `real_ip_header proxy_protocol`). A connection without a valid header within the
//! listener's `client_header_timeout` is closed, with nginx's "broken header" in the log.

use crate::net::proxy_protocol::{MAX_HEADER, Parse, parse};
use crate::state::Shared;
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::prelude::*;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, ProxyProtocolDigest};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// nginx's default `client_header_timeout`, for a connection whose server is not known.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the PROXY protocol header of every connection a listener accepts.
pub struct ProxyProtocolReader {
    shared: Arc<Shared>,
}

impl ProxyProtocolReader {
    pub fn new(shared: Arc<Shared>) -> Self {
        ProxyProtocolReader { shared }
    }

    /// How long the header may take: the `client_header_timeout` of the listener's default
    /// server, as nginx reads the header while it waits for the request.
    fn timeout(&self, stream: &L4Stream) -> Duration {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let generation = self.shared.current.load();
        let runtime = &generation.runtime;
        runtime
            .find_virtual_server(local, || None)
            .and_then(|vs| runtime.virtual_servers[vs].client.head.timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

#[async_trait]
impl PreTlsProcess for ProxyProtocolReader {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let limit = self.timeout(stream);
        let header = match tokio::time::timeout(limit, read_header(stream)).await {
            Ok(header) => header?,
            Err(_) => {
                return Error::e_explain(
                    ReadTimedout,
                    "client timed out while reading PROXY protocol",
                );
            }
        };
        if let Some(digest) = stream.get_socket_digest() {
            // A fresh connection's digest: nothing set it before.
            let _ = digest.proxy_protocol.set(header);
        }
        Ok(())
    }
}

/// Reads until the bytes received hold a whole header, and gives back what follows it.
async fn read_header(stream: &mut L4Stream) -> Result<ProxyProtocolDigest> {
    let mut buf = vec![0u8; MAX_HEADER];
    let mut filled = 0;
    loop {
        let Some(room) = buf.get_mut(filled..).filter(|r| !r.is_empty()) else {
            // `parse` never asks for more than MAX_HEADER bytes; this is a guard.
            return Error::e_explain(InvalidHTTPHeader, "broken header: too long");
        };
        let n = stream
            .read(room)
            .await
            .or_err(ReadError, "while reading PROXY protocol")?;
        if n == 0 {
            return Error::e_explain(
                ConnectionClosed,
                "client closed the connection while reading PROXY protocol",
            );
        }
        filled += n;
        match parse(&buf[..filled]) {
            Parse::Incomplete => {}
            Parse::Invalid(why) => {
                let start = String::from_utf8_lossy(&buf[..filled.min(64)]).into_owned();
                return Error::e_explain(
                    InvalidHTTPHeader,
                    format!(
                        "{why}: \"{}\" while reading PROXY protocol",
                        start.escape_debug()
                    ),
                );
            }
            Parse::Done {
                header_len,
                source,
                destination,
            } => {
                if let Some(rest) = buf.get(header_len..filled).filter(|r| !r.is_empty()) {
                    // The request (or TLS hello) that came with the header.
                    stream.rewind(rest);
                }
                return Ok(ProxyProtocolDigest {
                    source,
                    destination,
                });
            }
        }
    }
}
