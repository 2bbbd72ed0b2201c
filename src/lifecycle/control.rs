//! `pinlb -s reload|stop|quit|upgrade` and `pinlb --healthcheck`: commands that act on a
//! running pinlb through its pid file and its admin listener, as `nginx -s` does.

use super::pidfile;
use crate::config::Config;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `-s reload` and `-s upgrade` wait for the running process to answer.
const WAIT: Duration = Duration::from_secs(20);

/// Sends `signal` to the pinlb named by the config's pid file.
pub fn signal_running(config: &Config, signal: Signal) -> Result<i32, String> {
    let pid = pidfile::read(config.pid_file())?;
    kill(Pid::from_raw(pid), signal)
        .map_err(|e| format!("kill({pid}, {signal}) failed ({})", e.desc()))?;
    Ok(pid)
}

/// `-s reload`: SIGHUP, then (with an admin listener) the outcome from `/status`.
pub fn reload(config: &Config) -> Result<String, String> {
    let before = config.admin.and_then(|admin| status(config, admin).ok());
    let pid = signal_running(config, Signal::SIGHUP)?;
    let (Some(admin), Some(before)) = (config.admin, before) else {
        return Ok(format!(
            "signal sent to process {pid}; the outcome is in its log"
        ));
    };
    let seen = before["last_reload"]["at"].clone();
    let generation = before["last_reload"]["generation"].clone();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let Ok(now) = status(config, admin) else {
            continue;
        };
        let report = &now["last_reload"];
        if report.is_null() || (report["at"] == seen && report["generation"] == generation) {
            continue;
        }
        if report["ok"] != true {
            return Err(format!(
                "reload failed, the running configuration stays: {}",
                report["error"].as_str().unwrap_or("?")
            ));
        }
        let mut msg = format!(
            "reload done: configuration generation {}",
            report["generation"]
        );
        for pending in report["pending"].as_array().into_iter().flatten() {
            msg.push_str(&format!(
                "\npinlb: {}: takes effect on the next binary upgrade",
                pending.as_str().unwrap_or("?")
            ));
        }
        return Ok(msg);
    }
    Err(format!(
        "process {pid} did not report the reload within {WAIT:?}"
    ))
}

/// `-s upgrade`: start this binary with `-u`, wait until it is ready to take the
/// sockets, then SIGQUIT the running process, and wait until the new one serves. If the
/// new process cannot start, the running one is never signalled and keeps serving.
///
/// `forward` are command-line arguments the new process needs too (`--admin`).
pub fn upgrade(config: &Config, conf_path: &Path, forward: &[String]) -> Result<String, String> {
    let old = pidfile::read(config.pid_file())?;
    kill(Pid::from_raw(old), None)
        .map_err(|_| format!("process {old} of the pid file is not running"))?;
    check_new_listeners(config, old)?;
    let sock = &config.lifecycle.upgrade_sock;
    // A stale socket would look like a waiting process.
    let _ = std::fs::remove_file(sock);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut new = Command::new(exe)
        .arg("-u")
        .arg("-c")
        .arg(conf_path)
        .args(forward)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the new process: {e}"))?;
    let new_pid = new.id();
    let deadline = Instant::now() + WAIT;
    while !sock.exists() {
        if let Ok(Some(status)) = new.try_wait() {
            return Err(format!(
                "the new process exited ({status}) before taking over; process {old} keeps serving"
            ));
        }
        if Instant::now() >= deadline {
            let _ = new.kill();
            return Err(format!(
                "the new process did not get ready; process {old} keeps serving"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(old), Signal::SIGQUIT).map_err(|e| {
        let _ = new.kill();
        format!(
            "kill({old}, SIGQUIT) failed ({}); process {old} keeps serving",
            e.desc()
        )
    })?;
    let Some(admin) = config.admin else {
        return Ok(format!(
            "sockets handed from process {old} to process {new_pid}"
        ));
    };
    while Instant::now() < deadline {
        if let Ok(Some(status)) = new.try_wait() {
            return Err(format!(
                "the new process {new_pid} exited ({status}) after taking over"
            ));
        }
        if status(config, admin).is_ok_and(|s| s["pid"] == new_pid && s["ready"] == true) {
            return Ok(format!(
                "upgrade done: process {new_pid} serves, process {old} is finishing its requests"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "process {new_pid} took the sockets but did not report every listener ready within {WAIT:?}"
    ))
}

/// Binds, once, every address the new config listens on that the running process does
/// not (it hands its own sockets over): a port in use or one this user may not bind
/// stops the upgrade before the running process is told anything.
fn check_new_listeners(config: &Config, old: i32) -> Result<(), String> {
    // Without an admin listener the running process cannot say what it listens on.
    let Some(admin) = config.admin else {
        return Ok(());
    };
    let running = status(config, admin)?;
    let listening: Vec<&str> = running["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    let wanted = config.listeners.iter().map(|l| l.addr).chain(config.admin);
    for addr in wanted.filter(|a| !listening.contains(&a.to_string().as_str())) {
        std::net::TcpListener::bind(addr)
            .map_err(|e| format!("bind() to {addr} failed ({e}); process {old} keeps serving"))?;
    }
    Ok(())
}

/// `--healthcheck`: whether the admin listener's `/healthz` answers 200.
pub fn healthcheck(config: &Config) -> Result<String, String> {
    let admin = config
        .admin
        .ok_or("the admin listener is off: nothing to check")?;
    let (code, body) = get(admin, "/healthz", None)?;
    match code {
        200 => Ok(body.trim().to_string()),
        _ => Err(format!("{admin}/healthz answered {code}: {}", body.trim())),
    }
}

/// The admin listener's `/status`, with the config's admin token if it has one.
fn status(config: &Config, admin: SocketAddr) -> Result<serde_json::Value, String> {
    let (code, body) = get(admin, "/status", config.admin_token.as_deref())?;
    if code != 200 {
        return Err(format!("/status answered {code}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("/status is not JSON: {e}"))
}

/// A one-shot `GET` to the admin listener.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let failed = |e: std::io::Error| format!("{addr}{path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(failed)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(failed)?;
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .map_err(failed)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(failed)?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: not an HTTP response"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((code, body))
}
