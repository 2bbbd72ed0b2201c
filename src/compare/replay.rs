//! Sends the corpus through one running proxy, one request per connection and one at a
//! time, so that both proxies see the same order; collects each answer and what the
//! echo backends received for it.

use super::corpus::Probe;
use super::echo::{EchoBackends, Received};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connecting to the proxy takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole answer must arrive within this (the backends answer at once).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of an answer read at most.
const MAX_ANSWER: usize = 1024 * 1024;

/// What the client got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Response headers in order, names as sent.
    pub headers: Vec<(String, String)>,
}

/// One request's outcome through one proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The answer, or why there was none.
    pub answer: Result<Answer, String>,
    /// What the echo backends received for it, in order (none for a `return`).
    pub received: Vec<Received>,
}

/// Sends every probe to the proxy listening on `ports` (127.0.0.1, one per listen
/// address) until `deadline`; returns one outcome per probe sent.
pub fn run(
    probes: &[Probe],
    ports: &[u16],
    backends: &EchoBackends,
    deadline: Instant,
) -> Vec<Observed> {
    let mut out = Vec::with_capacity(probes.len());
    for (id, probe) in probes.iter().enumerate() {
        if Instant::now() >= deadline {
            break;
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ports[probe.listen]));
        let answer = send(addr, &probe.to_bytes(id));
        out.push(Observed {
            answer,
            received: backends.take(id),
        });
    }
    out
}

/// One request on a new connection; the answer ends when the proxy closes it.
fn send(addr: SocketAddr, request: &[u8]) -> Result<Answer, String> {
    let mut conn = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("connect to {addr} failed ({e})"))?;
    let started = Instant::now();
    conn.set_write_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| conn.write_all(request))
        .map_err(|e| format!("sending failed ({e})"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = ANSWER_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() || buf.len() >= MAX_ANSWER {
            break;
        }
        if conn.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after a complete answer still leaves the answer.
            Err(_) => break,
        }
    }
    parse(&buf)
}

fn parse(buf: &[u8]) -> Result<Answer, String> {
    if buf.is_empty() {
        return Err("no answer (connection closed or timed out)".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Ok(Answer {
            status: resp.code.unwrap_or_default(),
            headers: resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
        }),
        Ok(httparse::Status::Partial) => Err("incomplete answer".into()),
        Err(e) => Err(format!("unreadable answer ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_its_status_and_headers() {
        let answer = parse(b"HTTP/1.1 301 Moved\r\nLocation: /a/\r\nX-A: 1\r\n\r\nbody").unwrap();
        assert_eq!(answer.status, 301);
        assert_eq!(answer.headers[0], ("Location".into(), "/a/".into()));
        assert!(parse(b"").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nX-A").is_err());
    }
}
