//! Shared test harness: the real `pinlb` binary as a child process, demo backends on
//! OS-chosen ports, a raw HTTP client, and waiting on conditions with deadlines.
#![allow(dead_code)]

pub mod backend;
pub mod client;
pub mod dns;
pub mod load;
pub mod pebble;
pub mod raw;
pub mod tls;

pub use backend::Backend;
#[allow(unused_imports)]
pub use client::{Client, Response, get};

use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PINLB: &str = env!("CARGO_BIN_EXE_pinlb");

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback address with a port that was free a moment ago, for pinlb to listen on.
///
/// Ports come from below Linux's ephemeral range (32768+), so that neither the backends
/// (port 0) nor outgoing connections can take one between this call and pinlb's bind;
/// each test process starts at its own offset and hands out each port once.
pub fn free_addr() -> SocketAddr {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = 20_000 + (std::process::id() as usize * 97) % 10_000;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(base + n % 2_700).expect("port range");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pinlb-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `pinlb` with `args` to completion; returns its exit status, stdout and stderr.
pub fn run_pinlb(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(PINLB).args(args).output().expect("run pinlb");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An upstream entry for `backends`, named by the backends' own names.
pub fn servers(backends: &[&Backend]) -> Value {
    backends
        .iter()
        .map(|b| json!({ "name": b.name, "addr": b.addr.to_string() }))
        .collect()
}

/// A config with one listener and one upstream `web` over `servers`, routed at `/`;
/// `extra` is merged into the top level (and `route` into the route).
pub fn config(servers: Value, route: Value, extra: Value) -> Value {
    let mut route_obj = json!({ "path": "/", "upstream": "web" });
    merge(&mut route_obj, route);
    let mut cfg = json!({
        "listeners": [{ "addr": free_addr().to_string() }],
        "upstreams": { "web": { "servers": servers } },
        "routes": [route_obj],
        "served_by_header": "X-Served-By"
    });
    merge(&mut cfg, extra);
    cfg
}

/// Merges the keys of `extra` into `base`, recursively for objects.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A copy of the nginx fixture `name` (under `tests/fixtures/nginx/`) with each `from`
/// replaced by its `to`: tests point host names and ports at their own backends.
pub fn nginx_fixture(name: &str, replacements: &[(&str, String)]) -> (TempDir, PathBuf) {
    let dir = TempDir::new();
    let conf = nginx_fixture_in(&dir, name, replacements);
    (dir, conf)
}

/// [`nginx_fixture`] written into `dir`.
pub fn nginx_fixture_in(dir: &TempDir, name: &str, replacements: &[(&str, String)]) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nginx")
        .join(name);
    let mut text = std::fs::read_to_string(&path).expect("read fixture");
    for (from, to) in replacements {
        assert!(text.contains(from), "{name} does not contain {from}");
        text = text.replace(from, to);
    }
    dir.write(name, &text)
}

/// A running `pinlb` child process, killed on drop.
pub struct Pinlb {
    child: Child,
    pub addr: SocketAddr,
    /// Its admin listener (always on, on a free port, so that tests do not collide).
    pub admin: SocketAddr,
    pub dir: TempDir,
    /// The config file it runs.
    pub conf: PathBuf,
    /// Arguments every command on this instance needs besides `-c` (the admin override
    /// for nginx configs).
    extra_args: Vec<String>,
    log: PathBuf,
}

impl Pinlb {
    /// Starts pinlb on `cfg` and waits until its first listener accepts connections. The
    /// pid file, upgrade socket and admin listener are the test's own unless `cfg` sets them.
    pub fn start(cfg: &Value) -> Pinlb {
        let dir = TempDir::new();
        let admin = free_addr();
        let mut cfg = cfg.clone();
        let own = json!({
            "pid_file": dir.path().join("pinlb.pid"),
            "shutdown": { "upgrade_sock": dir.path().join("upgrade.sock") },
            "admin": { "addr": admin.to_string() },
        });
        let mut with_own = own;
        merge(&mut with_own, cfg.take());
        let conf = dir.write(
            "pinlb.json",
            &serde_json::to_string_pretty(&with_own).unwrap(),
        );
        let addr = with_own["listeners"][0]["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let admin = with_own["admin"]["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or(admin);
        Pinlb::spawn(&conf, dir, addr, admin, Vec::new())
    }

    /// Starts pinlb on the config file `conf`, expected to listen on `addr`, with its
    /// admin listener on a free port (`--admin`).
    pub fn start_file(conf: &Path, dir: TempDir, addr: SocketAddr) -> Pinlb {
        let admin = free_addr();
        Pinlb::spawn(
            conf,
            dir,
            addr,
            admin,
            vec!["--admin".into(), admin.to_string()],
        )
    }

    fn spawn(
        conf: &Path,
        dir: TempDir,
        addr: SocketAddr,
        admin: SocketAddr,
        extra_args: Vec<String>,
    ) -> Pinlb {
        let log = dir.path().join("pinlb.log");
        let child = Command::new(PINLB)
            .arg("-c")
            .arg(conf)
            .args(&extra_args)
            .env(
                "RUST_LOG",
                std::env::var("PINLB_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn pinlb");
        let mut p = Pinlb {
            child,
            addr,
            admin,
            dir,
            conf: conf.to_path_buf(),
            extra_args,
            log,
        };
        let accepts =
            |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(100)).is_ok();
        // Services start one after another: wait until pinlb says it is ready (every
        // listener accepts, signals are handled), so that a test may signal it or ask
        // `/status` at once.
        let ready = |a: &SocketAddr| {
            get(*a, "/healthz", &[("Host", &a.to_string())]).is_ok_and(|r| r.status == 200)
        };
        let up = poll_until(Duration::from_secs(15), || {
            (ready(&admin) && accepts(&addr)) || p.exited()
        });
        assert!(
            up && !p.exited(),
            "pinlb did not start listening on {addr} and its admin listener on {admin}; log:\n{}",
            p.log()
        );
        p
    }

    /// Runs `pinlb ARGS -c CONF` against this instance (e.g. `-s reload`) and returns its
    /// exit status, stdout and stderr. Output goes through files, not pipes: a process it
    /// starts (`-s upgrade`) inherits them and outlives it.
    pub fn command(&self, args: &[&str]) -> (ExitStatus, String, String) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let (out, err) = (
            self.dir.path().join(format!("cmd{n}.out")),
            self.dir.path().join(format!("cmd{n}.err")),
        );
        let status = Command::new(PINLB)
            .args(args)
            .arg("-c")
            .arg(&self.conf)
            .args(&self.extra_args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .expect("run pinlb");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (status, read(&out), read(&err))
    }

    /// Whether the process has exited (and how), without waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Everything pinlb has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.log().contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "INT") and waits up to `timeout` for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr).expect("connect to pinlb")
    }

    /// `GET path` on the admin listener, named by its address as the admin listener asks.
    pub fn admin_get(&self, path: &str) -> Response {
        get(self.admin, path, &[("Host", &self.admin.to_string())])
            .unwrap_or_else(|e| panic!("admin listener: {e}; log:\n{}", self.log()))
    }

    /// The admin listener's `/status`.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.admin_get("/status").body).expect("/status is JSON")
    }
}

impl Drop for Pinlb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `n` requests on one connection and returns the `X-Served-By` of each.
pub fn served_by(client: &mut Client, n: usize, headers: &[(&str, &str)]) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = client.get("/", headers).expect("request through pinlb");
            assert_eq!(r.status, 200, "body: {}", r.body);
            r.header("x-served-by").unwrap_or("-").to_string()
        })
        .collect()
}
