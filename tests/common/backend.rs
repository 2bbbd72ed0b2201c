//! A small HTTP/1.1 backend that answers with its own name: the demo app of `make run`
//! and the upstream of the integration tests.
//!
//! Paths: `/health` answers 200 or 503 as [`Backend::set_healthy`] says; `/headers`
//! (or any path ending in it) echoes the request headers, one `name: value` per line; `/slow/MS` waits MS
//! milliseconds first; `/body` answers `LENGTH CHECKSUM` of the request body it received (`/slow/NAME/MS` only on the backend called NAME); `/status/CODE` answers with that status (`/status/NAME/CODE` only on NAME); `/hold` waits until
//! [`Backend::release`] (or 30 s); a websocket upgrade on any path echoes every message. Anything
//! else answers `NAME\n` with an `X-Backend: NAME` header. Every request target is recorded
//! as received ([`Backend::targets`]).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running backend; dropping it (or [`Backend::stop`]) closes the listener and every
/// open connection, as a killed process would.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    name: String,
    healthy: AtomicBool,
    stopped: AtomicBool,
    requests: AtomicUsize,
    /// Request heads received, counted before their bodies are read.
    heads: AtomicUsize,
    health_checks: AtomicUsize,
    conns: Mutex<Vec<TcpStream>>,
    /// Request targets as received, health checks excluded.
    targets: Mutex<Vec<String>>,
    /// `/hold` requests waiting, and whether they may go.
    held: Mutex<(usize, bool)>,
    released: Condvar,
}

impl Backend {
    /// Starts a backend on an OS-chosen port of 127.0.0.1.
    pub fn start(name: &str) -> Backend {
        Backend::start_on(name, "127.0.0.1:0".parse().unwrap()).expect("bind a backend")
    }

    /// Starts a backend on `addr`.
    pub fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<Backend> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_string(),
            healthy: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            heads: AtomicUsize::new(0),
            health_checks: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            targets: Mutex::new(Vec::new()),
            held: Mutex::new((0, false)),
            released: Condvar::new(),
        });
        let accept_state = Arc::clone(&state);
        thread::spawn(move || accept_loop(listener, accept_state));
        Ok(Backend {
            name: name.to_string(),
            addr,
            state,
        })
    }

    /// Makes `/health` answer 200 (`true`) or 503 (`false`).
    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests served, health checks excluded.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Request heads received, health checks included, whether or not their bodies
    /// arrived.
    pub fn heads(&self) -> usize {
        self.state.heads.load(Ordering::SeqCst)
    }

    /// Health check requests (`GET /health`) seen.
    pub fn health_checks(&self) -> usize {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    /// The request targets received so far (path and query, as sent on the wire).
    pub fn targets(&self) -> Vec<String> {
        self.state.targets.lock().unwrap().clone()
    }

    /// `/hold` requests waiting now.
    pub fn held(&self) -> usize {
        self.state.held.lock().unwrap().0
    }

    /// Lets every `/hold` request (now and later) answer.
    pub fn release(&self) {
        self.state.held.lock().unwrap().1 = true;
        self.state.released.notify_all();
    }

    /// Closes the listener and resets every open connection.
    pub fn stop(&self) {
        if self.state.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept so the listener is dropped.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        self.release();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(clone) = stream.try_clone() {
            state.conns.lock().unwrap().push(clone);
        }
        let conn_state = Arc::clone(&state);
        thread::spawn(move || {
            let _ = serve(stream, &conn_state);
        });
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    raw_head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    state: &State,
) -> std::io::Result<Option<Request>> {
    let mut raw_head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let end = line == "\r\n" || line == "\n";
        raw_head.push_str(&line);
        if end {
            break;
        }
    }
    let mut lines = raw_head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut req = Request {
        method,
        path,
        headers,
        raw_head,
        body: Vec::new(),
    };
    state.heads.fetch_add(1, Ordering::SeqCst);
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        req.body = read_chunked(reader)?;
    } else if let Some(len) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        req.body = vec![0; len];
        reader.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

/// Reads a chunked body (no trailers expected) and returns it decoded.
fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_line:?}")))?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader, state)? {
        if state.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        if req
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        {
            state.requests.fetch_add(1, Ordering::SeqCst);
            return echo_websocket(reader, writer, &req);
        }
        let (status, body) = respond_to(&req, state);
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: {}\r\n{}\r\n",
            body.len(),
            state.name,
            if close { "Connection: close\r\n" } else { "" }
        );
        // Head and body in one write: a stop between them would look like a broken response.
        let mut out = head.into_bytes();
        if req.method != "HEAD" {
            out.extend_from_slice(body.as_bytes());
        }
        writer.write_all(&out)?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

fn respond_to(req: &Request, state: &State) -> (String, String) {
    if req.path == "/health" {
        state.health_checks.fetch_add(1, Ordering::SeqCst);
        return if state.healthy.load(Ordering::SeqCst) {
            ("200 OK".into(), "ok\n".into())
        } else {
            ("503 Service Unavailable".into(), "unhealthy\n".into())
        };
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.targets.lock().unwrap().push(req.path.clone());
    if req.path == "/hold" {
        hold(state);
    }
    if req.path.ends_with("/headers") {
        let body: String = req
            .raw_head
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect();
        return ("200 OK".into(), body);
    }
    if req.path == "/body" {
        let checksum = req.body.iter().fold(0u32, |sum, &b| {
            sum.wrapping_mul(31).wrapping_add(u32::from(b))
        });
        return ("200 OK".into(), format!("{} {checksum}\n", req.body.len()));
    }
    if let Some(spec) = req.path.strip_prefix("/status/") {
        let (only, code) = spec
            .rsplit_once('/')
            .map_or((None, spec), |(n, c)| (Some(n), c));
        if only.is_none_or(|n| n == state.name) {
            return (format!("{code} Status"), format!("{code}\n"));
        }
    }
    if let Some(spec) = req.path.strip_prefix("/slow/") {
        let (only, ms) = spec
            .rsplit_once('/')
            .map_or((None, spec), |(n, ms)| (Some(n), ms));
        if only.is_none_or(|n| n == state.name) {
            thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        }
    }
    ("200 OK".into(), format!("{}\n", state.name))
}

/// Waits until the test releases held requests, 30 s at most.
fn hold(state: &State) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held = state.held.lock().unwrap();
    held.0 += 1;
    while !held.1 && Instant::now() < deadline {
        held = state
            .released
            .wait_timeout(held, Duration::from_millis(100))
            .unwrap()
            .0;
    }
    held.0 -= 1;
}

fn echo_websocket(
    reader: BufReader<TcpStream>,
    mut writer: TcpStream,
    req: &Request,
) -> std::io::Result<()> {
    let key = req.header("sec-websocket-key").unwrap_or("");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        writer,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    // Bytes the reader already buffered belong to the websocket stream.
    let buffered = reader.buffer().to_vec();
    let stream = reader.into_inner();
    let mut ws = tungstenite::WebSocket::from_partially_read(
        stream,
        buffered,
        tungstenite::protocol::Role::Server,
        None,
    );
    loop {
        match ws.read() {
            Ok(msg) if msg.is_text() || msg.is_binary() => {
                if ws.send(msg).is_err() {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
}
