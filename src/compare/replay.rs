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
/// After a complete answer, a connection still open this much later is kept open.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// What the client got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Response headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Whether the proxy closed the connection after the answer.
    pub closed: bool,
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
        let answer = send(addr, &probe.to_bytes(id), probe.method == "HEAD");
        out.push(Observed {
            answer,
            received: backends.take(id),
        });
    }
    out
}

/// One request on a new connection: the answer (complete by its framing) and whether
/// the proxy then closes the connection.
fn send(addr: SocketAddr, request: &[u8], head: bool) -> Result<Answer, String> {
    let mut conn = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("connect to {addr} failed ({e})"))?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    conn.set_write_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| conn.write_all(request))
        .map_err(|e| format!("sending failed ({e})"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut read = |conn: &mut TcpStream, buf: &mut Vec<u8>, until: Instant| {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match conn.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(n)
            }
            // A timeout, or a reset (after a complete answer, the answer still stands).
            Err(_) => None,
        }
    };
    let mut closed = false;
    while !complete(&buf, head) && buf.len() < MAX_ANSWER {
        match read(&mut conn, &mut buf, deadline) {
            Some(0) => {
                closed = true;
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    if !closed {
        closed = read(&mut conn, &mut buf, Instant::now() + CLOSE_WAIT) == Some(0);
    }
    let mut answer = parse(&buf)?;
    answer.closed = closed;
    Ok(answer)
}

/// Whether `buf` holds a whole answer by HTTP/1.1's framing: the head, then what its
/// `Content-Length` or chunked encoding says (nothing for 1xx, 204, 304 and `HEAD`).
fn complete(buf: &[u8], head: bool) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = resp.parse(buf) else {
        return false;
    };
    let status = resp.code.unwrap_or_default();
    if head || status < 200 || status == 204 || status == 304 {
        return true;
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        return buf.ends_with(b"0\r\n\r\n");
    }
    match header("content-length").and_then(|l| l.trim().parse::<usize>().ok()) {
        Some(body) => buf.len() >= len + body,
        None => false,
    }
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
            closed: false,
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

    #[test]
    fn an_answer_is_complete_by_its_framing() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert!(complete(sized, false));
        assert!(!complete(&sized[..sized.len() - 1], false));
        assert!(
            complete(&sized[..sized.len() - 2], true),
            "HEAD has no body"
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert!(complete(chunked, false));
        assert!(!complete(&chunked[..chunked.len() - 2], false));
        assert!(complete(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false));
        assert!(
            !complete(b"HTTP/1.1 200 OK\r\n\r\nto the end", false),
            "until closed"
        );
    }
}
