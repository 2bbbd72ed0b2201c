//! Stopping and replacing a running pinlb: SIGTERM drains (healthz 503, then exit as soon
//! as in-flight requests are done), `pinlb -s upgrade` hands the sockets to a new binary
//! under load without a failed request, and nothing stops a process that has nobody to
//! hand over to.

mod common;

use common::load::Load;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Kills a process by pid when dropped (the new process of an upgrade is not our child).
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A child process killed and reaped when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kill(signal: &str, pid: u32) {
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
}

fn draining_lb(drain_ms: u64, grace_ms: u64) -> (Pinlb, Backend) {
    let a = Backend::start("a");
    let shutdown =
        json!({ "shutdown": { "drain_delay_ms": drain_ms, "grace_period_ms": grace_ms } });
    (
        Pinlb::start(&config(servers(&[&a]), json!({}), shutdown)),
        a,
    )
}

#[test]
fn sigterm_with_nothing_in_flight_exits_within_drain_delay_plus_a_second() {
    let (mut lb, _a) = draining_lb(500, 30_000);
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    let pid_file = lb.dir.path().join("pinlb.pid");
    assert!(pid_file.exists());
    let started = Instant::now();
    let status = lb
        .signal_and_wait("TERM", Duration::from_secs(10))
        .expect("exited");
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(500),
        "did not wait for the drain: {took:?}"
    );
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    assert!(!pid_file.exists(), "the pid file was left behind");
}

#[test]
fn a_slow_request_in_flight_completes_and_healthz_says_503_meanwhile() {
    let (mut lb, a) = draining_lb(800, 30_000);
    let addr = lb.addr;
    let slow = std::thread::spawn(move || {
        get(addr, "/slow/2500", &[]).map(|r| (r.status, r.text().to_string()))
    });
    assert!(poll_until(Duration::from_secs(5), || a.requests() >= 1));
    assert_eq!(lb.admin_get("/healthz").status, 200);
    kill("TERM", lb.pid());
    assert!(poll_until(Duration::from_secs(2), || lb
        .admin_get("/healthz")
        .status
        == 503));
    assert_eq!(lb.status()["draining"], true);
    // Still serving during the drain delay.
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
    let slow = slow.join().unwrap().expect("the slow request was cut");
    assert_eq!(slow, (200, "a".to_string()));
    let status = poll_until(Duration::from_secs(3), || lb.exit_status().is_some());
    assert!(status, "still running after the last request finished");
}

#[test]
fn the_grace_period_bounds_the_wait_for_in_flight_requests() {
    let (mut lb, a) = draining_lb(0, 1_000);
    let addr = lb.addr;
    let slow = std::thread::spawn(move || get(addr, "/slow/10000", &[]));
    assert!(poll_until(Duration::from_secs(5), || a.requests() >= 1));
    let started = Instant::now();
    kill("TERM", lb.pid());
    assert!(
        poll_until(Duration::from_secs(5), || lb.exit_status().is_some()),
        "still running"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        slow.join().unwrap().is_err(),
        "the request outlived the grace period"
    );
}

#[test]
fn upgrade_under_load_loses_no_request() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut lb = Pinlb::start(&config(servers(&[&a, &b]), json!({}), json!({})));
    let old_pid = lb.pid();
    let load = Load::start(lb.addr, 4, 2, Duration::from_secs(40));
    assert!(poll_until(Duration::from_secs(10), || load.sent() >= 200));
    let (status, _, stderr) = lb.command(&["-s", "upgrade"]);
    // The new process wrote its pid over the old one's.
    let pid_file = lb.dir.path().join("pinlb.pid");
    let new_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _cleanup = KillOnDrop((new_pid != old_pid as i32).then_some(new_pid));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("upgrade done: process {new_pid} serves")),
        "{stderr}"
    );
    // The old process finishes its requests and exits by itself.
    assert!(
        poll_until(Duration::from_secs(20), || lb.exit_status().is_some()),
        "old process still running"
    );
    assert!(lb.exit_status().unwrap().success());
    let target = load.sent() + 300;
    assert!(
        poll_until(Duration::from_secs(10), || load.sent() >= target),
        "the new process does not serve"
    );
    let outcome = load.stop();
    assert_eq!(outcome.failures, Vec::<String>::new());
    // Only the new process answers now, and the old one left its pid file alone.
    assert_eq!(lb.status()["pid"], new_pid);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        new_pid.to_string()
    );
}

#[test]
fn sigquit_with_no_new_process_waiting_is_refused() {
    let (mut lb, _a) = draining_lb(0, 30_000);
    kill("QUIT", lb.pid());
    assert!(
        lb.wait_for_log("SIGQUIT ignored", Duration::from_secs(5)),
        "{}",
        lb.log()
    );
    assert!(lb.exit_status().is_none());
    let mut client = lb.client();
    for _ in 0..5 {
        assert_eq!(client.get("/", &[]).unwrap().status, 200);
    }
    assert_eq!(lb.admin_get("/healthz").status, 200);
}

#[test]
fn an_upgrade_with_a_broken_config_leaves_the_old_process_serving() {
    let (mut lb, _a) = draining_lb(0, 30_000);
    let text = std::fs::read_to_string(&lb.conf).unwrap();
    std::fs::write(&lb.conf, text.replace("\"routes\"", "\"rootes\"")).unwrap();
    let (status, _, stderr) = lb.command(&["-s", "upgrade"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown field `rootes`"), "{stderr}");
    assert!(lb.exit_status().is_none());
    assert_eq!(lb.status()["pid"], lb.pid());
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
}

#[test]
fn an_upgrade_to_a_port_in_use_leaves_the_old_process_serving() {
    let (mut lb, _a) = draining_lb(0, 30_000);
    // Another program holds the port the new config adds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap();
    let mut conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lb.conf).unwrap()).unwrap();
    conf["listeners"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "addr": port.to_string() }));
    std::fs::write(&lb.conf, conf.to_string()).unwrap();
    let (status, _, stderr) = lb.command(&["-s", "upgrade"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("bind() to {port} failed")) && stderr.contains("keeps serving"),
        "{stderr}"
    );
    assert!(lb.exit_status().is_none());
    assert_eq!(lb.status()["pid"], lb.pid());
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
}

#[test]
fn status_says_ready_once_every_listener_accepts() {
    let (lb, _a) = draining_lb(0, 30_000);
    assert!(poll_until(Duration::from_secs(5), || lb.status()["ready"] == true));
    let listening = lb.status()["listeners"].clone();
    assert_eq!(
        listening,
        json!([lb.addr.to_string(), lb.admin.to_string()])
    );
    assert_eq!(lb.admin_get("/healthz").status, 200);
}

#[test]
fn stop_and_quit_commands_signal_the_running_process() {
    let (mut lb, _a) = draining_lb(0, 30_000);
    let (status, _, stderr) = lb.command(&["-s", "quit"]);
    assert!(status.success(), "{stderr}");
    assert!(poll_until(Duration::from_secs(5), || lb
        .exit_status()
        .is_some()));
    let (mut lb, _a) = draining_lb(0, 30_000);
    let (status, _, stderr) = lb.command(&["-s", "stop"]);
    assert!(status.success(), "{stderr}");
    assert!(poll_until(Duration::from_secs(5), || lb
        .exit_status()
        .is_some()));
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("is pinlb running?"), "{stderr}");
}

#[test]
fn a_manual_upgrade_hands_over_through_the_configured_upgrade_socket() {
    let (mut lb, _a) = draining_lb(0, 30_000);
    // `Pinlb::start` puts the socket in the test's folder, away from the default.
    let sock = lb.dir.path().join("upgrade.sock");
    assert!(!sock.exists());
    let new = Reaped(
        std::process::Command::new(PINLB)
            .arg("-u")
            .arg("-c")
            .arg(&lb.conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let new_pid = new.0.id();
    assert!(
        poll_until(Duration::from_secs(10), || sock.exists()),
        "the new process does not wait on {}",
        sock.display()
    );
    kill("QUIT", lb.pid());
    assert!(
        poll_until(Duration::from_secs(10), || lb.exit_status().is_some()),
        "the old process did not hand over; log:\n{}",
        lb.log()
    );
    // The new process took the admin listener too.
    let serves = || {
        get(lb.admin, "/status", &[("Host", &lb.admin.to_string())]).is_ok_and(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body).is_ok_and(|s| s["pid"] == new_pid)
        })
    };
    assert!(poll_until(Duration::from_secs(10), serves));
    assert_eq!(get(lb.addr, "/", &[]).unwrap().status, 200);
}
