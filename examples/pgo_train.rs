//! The training run of pinlb's profile-guided release build (`scripts/build-release.sh`):
//! runs an instrumented pinlb in front of three demo backends, sends it the traffic pinlb
//! exists for, and stops it with SIGINT so that it writes its profile on the way out.
//!
//! `pgo_train PINLB WORK_DIR`: the config, certificate and log go to WORK_DIR, and pinlb's
//! counts to WORK_DIR/profile (its `LLVM_PROFILE_FILE`).
//!
//! Two instances, one after the other. The tutorial's config (bench/pinlb.json's) gets most
//! of the traffic: HTTP/1.1 keep-alive as from a load balancer in front or from browsers,
//! requests pinned by header and by cookie, POST bodies, a new connection per request, and
//! websockets. Then a config with the edge features switched on (TLS, HTTP/2 without TLS,
//! the real client address, request and connection limits, a sticky cookie, an access log)
//! gets keep-alive, HTTPS and HTTP/2 requests. Every request must be answered: a profile of
//! errors would optimise the wrong paths, so any failure fails the build. Every loop is
//! bounded in count, every read by a timeout, and the whole run by the script's `timeout`.

#[path = "../tests/common/backend.rs"]
mod backend;
#[path = "../tests/common/client.rs"]
mod client;
#[path = "../tests/common/tls.rs"]
mod tls;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const BROWSER_HEADERS: &[(&str, &str)] = &[
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Cookie", "session=4f1c2a; theme=dark"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pinlb, work] = args.as_slice() else {
        eprintln!("usage: pgo_train PINLB WORK_DIR");
        return ExitCode::from(2);
    };
    match train(Path::new(pinlb), Path::new(work)) {
        Ok(summary) => {
            eprintln!("pgo_train: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgo_train: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The listeners of one trained instance.
#[derive(Clone, Copy)]
struct Listeners {
    plain: SocketAddr,
    tls: SocketAddr,
    h2c: SocketAddr,
}

/// A shape of traffic under way: its name and the thread that counts its answers.
type Shape = (&'static str, thread::JoinHandle<Result<usize, String>>);

fn train(pinlb: &Path, work: &Path) -> Result<String, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let backends = ["app1", "app2", "app3"]
        .iter()
        .map(|name| backend::Backend::start(name))
        .collect::<Vec<_>>();
    let started = Instant::now();
    // The tutorial's config (bench/pinlb.json's): most of the traffic.
    let tutorial = run_instance(pinlb, work, "tutorial", &backends, false, |l| {
        vec![
            (
                "keep-alive",
                spawn_each(8, move |i| keep_alive(l.plain, i, 4_000)),
            ),
            (
                "new connection",
                spawn_each(2, move |_| new_connections(l.plain, 400)),
            ),
            (
                "websocket",
                spawn_each(2, move |_| websocket(l.plain, 4, 200)),
            ),
        ]
    })?;
    // The edge: TLS, HTTP/2, and the per-request features a user switches on.
    let edge = run_instance(pinlb, work, "edge", &backends, true, |l| {
        vec![
            (
                "keep-alive",
                spawn_each(4, move |i| keep_alive(l.plain, i, 1_000)),
            ),
            ("https", spawn_each(2, move |_| https(l.tls, 20, 200))),
            ("http/2", spawn_each(1, move |_| http2(l.h2c, 8, 500))),
        ]
    })?;
    let elapsed = started.elapsed();
    let profiles = std::fs::read_dir(work.join("profile")).map_or(0, |dir| dir.count());
    if profiles < 2 {
        return Err(format!(
            "{} wrote {profiles} profiles for 2 runs: is it built with -Cprofile-generate?",
            pinlb.display()
        ));
    }
    Ok(format!(
        "tutorial: {tutorial}; edge: {edge}; {:.1} s",
        elapsed.as_secs_f64()
    ))
}

/// Starts pinlb on its own config under `work/name`, runs the shapes `traffic` starts, and
/// stops it; says how many requests each shape had answered.
fn run_instance(
    pinlb: &Path,
    work: &Path,
    name: &str,
    backends: &[backend::Backend],
    edge: bool,
    traffic: impl FnOnce(Listeners) -> Vec<Shape>,
) -> Result<String, String> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let listeners = Listeners {
        plain: free_addr()?,
        tls: free_addr()?,
        h2c: free_addr()?,
    };
    let conf = write_config(&dir, &listeners, backends, edge)?;
    // The profile runtime creates the file, not its folder.
    let profile = work.join("profile");
    std::fs::create_dir_all(&profile).map_err(|e| format!("{}: {e}", profile.display()))?;
    let mut proxy = Proxy::spawn(pinlb, &conf, &dir, &profile)?;
    let addrs = if edge {
        vec![listeners.plain, listeners.tls, listeners.h2c]
    } else {
        vec![listeners.plain]
    };
    for addr in addrs {
        wait_for_listener(addr, &mut proxy)?;
    }
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (shape, handle) in traffic(listeners) {
        match handle.join() {
            Ok(Ok(n)) => done.push(format!("{n} {shape}")),
            Ok(Err(e)) => failed.push(format!("{shape}: {e}")),
            Err(_) => failed.push(format!("{shape}: the thread panicked")),
        }
    }
    let stopped = proxy.interrupt();
    if !failed.is_empty() {
        return Err(format!(
            "{name}: {}; pinlb log: {}",
            failed.join("; "),
            proxy.log_path.display()
        ));
    }
    stopped.map_err(|e| format!("{name}: {e}"))?;
    Ok(done.join(", "))
}

/// Runs `threads` copies of `shape` (given their index) and sums what they answered.
fn spawn_each<F>(threads: usize, shape: F) -> thread::JoinHandle<Result<usize, String>>
where
    F: Fn(usize) -> Result<usize, String> + Send + Sync + 'static,
{
    let shape = Arc::new(shape);
    thread::spawn(move || {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let shape = Arc::clone(&shape);
                thread::spawn(move || shape(i))
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| "a worker panicked".to_string())??;
        }
        Ok(total)
    })
}

/// Keep-alive GETs, one in ten pinned by header and one in ten by cookie, one in five with
/// a browser's headers, one in twenty a POST with a body.
fn keep_alive(addr: SocketAddr, worker: usize, requests: usize) -> Result<usize, String> {
    let mut conn = client::Client::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let body = vec![b'x'; 2048 + worker];
    for i in 0..requests {
        let reply = match i % 20 {
            3 => conn.get("/", &[("app", "app2")]),
            5 => conn.get("/", &[("X-Forwarded-For", "203.0.113.7, 10.0.0.2")]),
            7 => conn.get("/", &[("Cookie", "app=app3")]),
            1 | 9 | 13 | 17 => conn.get("/index.html", BROWSER_HEADERS),
            11 => {
                let mut req = format!(
                    "POST /body HTTP/1.1\r\nHost: pinlb.test\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(&body);
                conn.send_raw(&req)
            }
            _ => conn.get("/", &[]),
        };
        let reply = reply.map_err(|e| format!("request {i}: {e}"))?;
        expect_ok(Ok(reply.status), i)?;
        // pinlb closes a connection after `keepalive_requests` (1000) as nginx does.
        if reply
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            conn = client::Client::connect(addr).map_err(|e| format!("reconnect: {e}"))?;
        }
    }
    Ok(requests)
}

/// A new connection for each GET (`Connection: close`).
fn new_connections(addr: SocketAddr, requests: usize) -> Result<usize, String> {
    for i in 0..requests {
        let reply = client::get(addr, "/", &[("Connection", "close")]);
        expect_ok(reply.map_err(|e| e.to_string()).map(|r| r.status), i)?;
    }
    Ok(requests)
}

/// `connections` TLS connections, each with `per_connection` keep-alive GETs.
fn https(addr: SocketAddr, connections: usize, per_connection: usize) -> Result<usize, String> {
    let config = tls::client_config(&[]);
    for _ in 0..connections {
        let mut stream = BufReader::new(tls::connect(&config, addr, Some("localhost"))?);
        for i in 0..per_connection {
            let req = "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
            stream
                .get_mut()
                .write_all(req.as_bytes())
                .map_err(|e| format!("write: {e}"))?;
            let reply = client::read_response(&mut stream, false).map_err(|e| e.to_string());
            expect_ok(reply.map(|r| r.status), i)?;
        }
    }
    Ok(connections * per_connection)
}

/// `connections` HTTP/2 connections (prior knowledge, no TLS), each with `per_connection`
/// GETs.
fn http2(addr: SocketAddr, connections: usize, per_connection: usize) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    for _ in 0..connections {
        // The timer needs the runtime's context: made inside `block_on`.
        let exchange = async {
            tokio::time::timeout(Duration::from_secs(60), h2_connection(addr, per_connection))
                .await
                .map_err(|_| "an HTTP/2 connection took over 60 s".to_string())?
        };
        rt.block_on(exchange)?;
    }
    Ok(connections * per_connection)
}

/// One HTTP/2 connection's `requests` GETs, ten streams at a time.
async fn h2_connection(addr: SocketAddr, requests: usize) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (client, conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    for batch in 0..requests / 10 {
        let mut replies = Vec::new();
        for _ in 0..10 {
            let mut client = client.clone().ready().await.map_err(|e| e.to_string())?;
            let req = http::Request::get(format!("http://{addr}/"))
                .body(())
                .map_err(|e| e.to_string())?;
            let (reply, _) = client.send_request(req, true).map_err(|e| e.to_string())?;
            replies.push(reply);
        }
        for reply in replies {
            let reply = reply.await.map_err(|e| e.to_string())?;
            let status = reply.status().as_u16();
            let mut body = reply.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            expect_ok(Ok(status), batch)?;
        }
    }
    drop(client);
    driver.abort();
    Ok(())
}

/// `connections` websockets through pinlb to the backends' echo, `messages` each.
fn websocket(addr: SocketAddr, connections: usize, messages: usize) -> Result<usize, String> {
    for _ in 0..connections {
        let url = format!("ws://{addr}/socket");
        let (mut ws, _) = tungstenite::client(url.as_str(), connect(addr)?)
            .map_err(|e| format!("upgrade: {e}"))?;
        for i in 0..messages {
            let text = format!("message {i}");
            ws.send(tungstenite::Message::text(text.clone()))
                .map_err(|e| e.to_string())?;
            match ws.read().map_err(|e| e.to_string())? {
                tungstenite::Message::Text(echo) if echo.as_str() == text => {}
                other => return Err(format!("websocket echo {i}: {other:?}")),
            }
        }
        let _ = ws.close(None);
    }
    Ok(connections * messages)
}

fn expect_ok(status: Result<u16, String>, i: usize) -> Result<(), String> {
    match status {
        Ok(200) => Ok(()),
        Ok(s) => Err(format!("request {i}: status {s}")),
        Err(e) => Err(format!("request {i}: {e}")),
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(tcp)
}

/// Writes the config of one trained instance: the tutorial's, or with `edge` a TLS and an
/// HTTP/2 listener (with a self-signed certificate for `localhost`), the real client address
/// from `X-Forwarded-For`, request and connection limits, a sticky cookie and an access log.
fn write_config(
    dir: &Path,
    listeners: &Listeners,
    backends: &[backend::Backend],
    edge: bool,
) -> Result<PathBuf, String> {
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    let servers: Vec<_> = backends
        .iter()
        .map(|b| serde_json::json!({ "name": b.name, "addr": b.addr.to_string() }))
        .collect();
    let mut config = serde_json::json!({
        "listeners": [{ "addr": listeners.plain.to_string() }],
        "upstreams": { "app_servers": {
            "servers": servers,
            "health_check": { "type": "http", "path": "/health", "interval_ms": 500 }
        } },
        "routes": [{ "path": "/", "upstream": "app_servers", "pin": { "header": "app", "cookie": "app" } }],
        "served_by_header": "X-Served-By",
        "access_log": { "path": "off" },
        "admin": { "addr": free_addr()?.to_string() },
        "pid_file": dir.join("pinlb.pid"),
        "shutdown": { "upgrade_sock": dir.join("upgrade.sock") }
    });
    if edge {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .map_err(|e| format!("certificate: {e}"))?;
        let cert = write("cert.pem", certified.cert.pem().as_bytes())?;
        let key = write("key.pem", certified.signing_key.serialize_pem().as_bytes())?;
        let edge = serde_json::json!({
            "listeners": [
                { "addr": listeners.plain.to_string() },
                { "addr": listeners.tls.to_string(),
                  "tls": { "certificates": [{ "cert": cert, "key": key }] } },
                { "addr": listeners.h2c.to_string(), "http2": true }
            ],
            "real_ip": { "from": ["127.0.0.1"], "header": "X-Forwarded-For", "recursive": true },
            "limit_req_zones": { "per_ip": {
                "key": "$binary_remote_addr", "size": "1m", "rate": "1000000r/s" } },
            "limit_conn_zones": { "conn_ip": { "key": "$binary_remote_addr", "size": "1m" } },
            // Counted per millisecond as nginx does: the burst covers the clients' requests
            // that arrive within one.
            "limits": { "req": [{ "zone": "per_ip", "burst": 1000, "nodelay": true }],
                        "conn": [{ "zone": "conn_ip", "limit": 1000 }] },
            "access_log": { "path": dir.join("access.log"), "format": "combined" }
        });
        let object = config.as_object_mut().expect("the config is an object");
        for (key, value) in edge.as_object().expect("the edge is an object") {
            object.insert(key.clone(), value.clone());
        }
        config["upstreams"]["app_servers"]["sticky"] = serde_json::json!({ "cookie": "srv" });
    }
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    write("pinlb.json", text.as_bytes())
}

/// The instrumented pinlb, its log in the work directory.
struct Proxy {
    child: Child,
    log_path: PathBuf,
}

impl Proxy {
    /// Starts `pinlb` on `conf`, its log in `dir`, its counts written to `profile`.
    fn spawn(pinlb: &Path, conf: &Path, dir: &Path, profile: &Path) -> Result<Proxy, String> {
        let log_path = dir.join("pinlb.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(pinlb)
            .env("LLVM_PROFILE_FILE", profile.join("pinlb-%p.profraw"))
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", pinlb.display()))?;
        Ok(Proxy { child, log_path })
    }

    /// SIGINT, then waits (bounded) for a clean exit: the profile is written at exit.
    fn interrupt(&mut self) -> Result<(), String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait().map_err(|e| e.to_string())? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(format!("pinlb exited with {status}")),
                None if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    return Err("pinlb did not exit within 30 s of SIGINT".into());
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_addr() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("a free port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Waits until pinlb accepts on `addr`, or fails if it exits or takes over 60 s (an
/// instrumented binary starts slower than a release one).
fn wait_for_listener(addr: SocketAddr, proxy: &mut Proxy) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            return Err(format!(
                "pinlb exited with {status}; log: {}",
                proxy.log_path.display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("pinlb did not listen on {addr} within 60 s"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
