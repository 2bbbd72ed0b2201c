//! Echo backends: one listener per upstream address of the configuration, each on its
//! own loopback address, answering every request with a JSON body that says which
//! backend it is and what it received. Every request is also recorded, so that the
//! replay knows which backend got which request (and whether any did).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The request header that carries a corpus request's number to the backend; requests
/// without it (health checks) are not the replay's.
pub const ID_HEADER: &str = "X-Pinlb-Compare";

/// Largest request head a backend reads.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body a backend reads (the corpus sends a few bytes).
const MAX_BODY: usize = 1024 * 1024;
/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(10);

/// What one backend received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Index of the backend in [`EchoBackends::start`]'s list.
    pub backend: usize,
    /// The corpus request's number, from [`ID_HEADER`].
    pub id: Option<usize>,
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
}

/// Running echo backends; they stop when dropped.
pub struct EchoBackends {
    /// Where each backend listens, in the order of the names given to `start`.
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl EchoBackends {
    /// One backend per name, on 127.0.0.2, 127.0.0.3, ... with ports the OS chooses.
    pub fn start(names: &[String]) -> io::Result<EchoBackends> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let listener = TcpListener::bind((loopback(i)?, 0))?;
            addrs.push(listener.local_addr()?);
            let backend = Backend {
                index: i,
                name: name.clone(),
                log: Arc::clone(&log),
            };
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("echo {name}"))
                .spawn(move || accept(listener, backend, stop))?;
        }
        Ok(EchoBackends { addrs, log, stop })
    }

    /// Removes and returns what the backends received for corpus request `id`.
    pub fn take(&self, id: usize) -> Vec<Received> {
        let mut log = lock(&self.log);
        let (mine, rest) = log.drain(..).partition(|r| r.id == Some(id));
        *log = rest;
        mine
    }

    /// Forgets everything received so far (between the two proxies' runs).
    pub fn clear(&self) {
        lock(&self.log).clear();
    }
}

impl Drop for EchoBackends {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake each accept loop so that it sees the flag.
        for addr in &self.addrs {
            let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
        }
    }
}

/// The `i`th backend's address: 127.0.0.2 up to 127.0.255.254, never 127.0.0.1 (the
/// proxies listen there).
fn loopback(i: usize) -> io::Result<Ipv4Addr> {
    let n = u32::try_from(i + 2)
        .ok()
        .filter(|n| *n < 0xFFFF)
        .ok_or_else(|| io::Error::other("too many upstream addresses"))?;
    Ok(Ipv4Addr::from(0x7F00_0000 | n))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
struct Backend {
    index: usize,
    /// The address as the configuration wrote it, e.g. `app1:80`.
    name: String,
    log: Arc<Mutex<Vec<Received>>>,
}

fn accept(listener: TcpListener, backend: Backend, stop: Arc<AtomicBool>) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let backend = backend.clone();
        let _ = std::thread::Builder::new()
            .name("echo connection".into())
            .spawn(move || {
                let _ = serve(conn, &backend);
            });
    }
}

/// Answers one request on `conn` and closes it (`Connection: close`), so that neither
/// proxy can keep a connection whose next request would arrive out of order.
fn serve(mut conn: TcpStream, backend: &Backend) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE))?;
    conn.set_write_timeout(Some(IDLE))?;
    let (head, rest) = read_head(&mut conn)?;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
        return conn.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    read_body(
        &mut conn,
        rest,
        header("content-length"),
        header("transfer-encoding"),
    )?;
    let upgrade = req.version == Some(1)
        && header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let id = header(ID_HEADER).and_then(|v| v.trim().parse().ok());
    let received = Received {
        backend: backend.index,
        id,
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        version: format!("HTTP/1.{}", req.version.unwrap_or(1)),
        headers,
    };
    let head_only = received.method == "HEAD";
    let body = serde_json::json!({
        "backend": backend.name,
        "method": received.method,
        "target": received.target,
        "version": received.version,
        "headers": received.headers,
    })
    .to_string();
    // Recorded before answering: once the client has the answer, the record is there.
    lock(&backend.log).push(received);
    if upgrade {
        // The status is what the comparison needs; the tunnel ends at once.
        return conn.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
    }
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&out)
}

/// The request head (through the blank line) and whatever followed it in the same reads.
fn read_head(conn: &mut TcpStream) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads (and drops) the request body, so that the answer does not cut it off.
fn read_body(
    conn: &mut TcpStream,
    mut have: Vec<u8>,
    length: Option<&str>,
    encoding: Option<&str>,
) -> io::Result<()> {
    let chunked = encoding.is_some_and(|e| e.to_ascii_lowercase().contains("chunked"));
    let length: usize = length.and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    let done = |have: &[u8]| {
        if chunked {
            have.starts_with(b"0\r\n\r\n") || have.ends_with(b"\r\n0\r\n\r\n")
        } else {
            have.len() >= length
        }
    };
    let mut chunk = [0u8; 8192];
    while !done(&have) && have.len() < MAX_BODY {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        have.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}
