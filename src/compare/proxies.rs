//! The two proxies under comparison as child processes, each on its own copy of the
//! configuration: started fresh, ready once every listen port accepts connections,
//! stopped (and killed if need be) at the end.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A proxy that does not listen on every port within this is taken as failed.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// A stopped proxy that has not exited within this is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of a proxy's own output shown when it fails.
const MAX_OUTPUT: u64 = 8 * 1024;

/// A running proxy; killed if dropped before [`Running::stop`].
pub struct Running {
    child: Child,
    name: &'static str,
    /// Its stdout and stderr.
    output: PathBuf,
    /// Its error log, when that is not `output`.
    error_log: Option<PathBuf>,
    /// How it is asked to stop.
    stop_signal: Signal,
}

/// `nginx -V`'s first line (`nginx version: nginx/1.22.1`), or why nginx cannot be run.
pub fn nginx_version(nginx: &Path) -> Result<String, String> {
    let out = Command::new(nginx)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run nginx (\"{}\": {e})", nginx.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    match text.lines().next() {
        Some(line) if out.status.success() => {
            Ok(line.trim_start_matches("nginx version: ").to_string())
        }
        _ => Err(format!(
            "\"{} -v\" failed ({}): {}",
            nginx.display(),
            out.status,
            text.trim()
        )),
    }
}

/// Starts nginx on `conf` with `dir` as its prefix (relative paths, the startup error
/// log) and waits until it listens on every port.
pub fn start_nginx(
    nginx: &Path,
    dir: &Path,
    conf: &Path,
    ports: &[u16],
) -> Result<Running, String> {
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
    let error_log = dir.join("error.log");
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(&error_log);
    start("nginx", cmd, dir, Some(error_log), Signal::SIGTERM, ports)
}

/// Starts pinlb (`exe`, else this binary) on `conf` (admin listener off) and waits
/// until it listens on every port.
pub fn start_pinlb(
    exe: Option<&Path>,
    conf: &Path,
    dir: &Path,
    ports: &[u16],
) -> Result<Running, String> {
    let exe = match exe {
        Some(exe) => exe.to_path_buf(),
        None => {
            std::env::current_exe().map_err(|e| format!("cannot find the pinlb binary: {e}"))?
        }
    };
    let mut cmd = Command::new(exe);
    cmd.arg("-c").arg(conf).args(["--admin", "off"]);
    // SIGINT: pinlb exits at once, as nginx does on SIGTERM.
    start("pinlb", cmd, dir, None, Signal::SIGINT, ports)
}

fn start(
    name: &'static str,
    mut cmd: Command,
    dir: &Path,
    error_log: Option<PathBuf>,
    stop_signal: Signal,
    ports: &[u16],
) -> Result<Running, String> {
    let output = dir.join(format!("{name}.out"));
    let file =
        File::create(&output).map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let err_file = file.try_clone().map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut running = Running {
        child,
        name,
        output,
        error_log,
        stop_signal,
    };
    running.wait_ready(ports)?;
    Ok(running)
}

impl Running {
    fn wait_ready(&mut self, ports: &[u16]) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut waiting: Vec<u16> = ports.to_vec();
        while !waiting.is_empty() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} did not start ({status}):\n{}",
                    self.name,
                    self.own_words()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on 127.0.0.1:{} within {} s:\n{}",
                    self.name,
                    waiting[0],
                    START_TIMEOUT.as_secs(),
                    self.own_words()
                ));
            }
            let addr = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            waiting.retain(|port| {
                TcpStream::connect_timeout(&addr(*port), Duration::from_millis(200)).is_err()
            });
            if !waiting.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// What the proxy said: its output, else its error log (each bounded).
    fn own_words(&self) -> String {
        let read = |path: &Path| {
            let mut text = String::new();
            File::open(path)
                .and_then(|f| f.take(MAX_OUTPUT).read_to_string(&mut text))
                .map(|_| text.trim().to_string())
                .unwrap_or_default()
        };
        let out = read(&self.output);
        match &self.error_log {
            Some(log) if out.is_empty() => read(log),
            _ => out,
        }
    }

    /// Asks the proxy to stop and waits for it (see `Drop`).
    pub fn stop(self) {}
}

impl Drop for Running {
    /// Asks the proxy to stop, as its own signal does (nginx's master then stops its
    /// workers), and kills it only if it has not exited in time.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), self.stop_signal);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
