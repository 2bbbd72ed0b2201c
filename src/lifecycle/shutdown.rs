//! Signals that stop pinlb, and how: SIGINT at once; SIGTERM after a drain (`/healthz`
//! says 503 first) and as soon as in-flight requests are done; SIGQUIT after handing the
//! sockets to a new binary. Never Pingora's unconditional wait for the whole grace period.

use crate::state::Shared;
use async_trait::async_trait;
use log::info;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

/// Pingora keeps accepting this long after handing the sockets over (its `CLOSE_TIMEOUT`).
const UPGRADE_OVERLAP: Duration = Duration::from_secs(5);
/// No request in flight for this long means nothing is left to finish.
const SETTLE: Duration = Duration::from_millis(100);

/// pinlb's signal handling, given to Pingora's `Server::run`.
pub struct Signals {
    shared: Arc<Shared>,
    pid_file: PathBuf,
}

impl Signals {
    pub fn new(shared: Arc<Shared>, pid_file: PathBuf) -> Self {
        Signals { shared, pid_file }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            log::error!("cannot listen for signals; stopping");
            return ShutdownSignal::FastShutdown;
        };
        self.shared.signals_handled.store(true, Ordering::Release);
        // The sockets go to the new process over the socket this process started with.
        let upgrade_sock = self.shared.started_with.lifecycle.upgrade_sock.clone();
        loop {
            let lifecycle = self.shared.current.load().config.lifecycle.clone();
            tokio::select! {
                _ = int.recv() => {
                    info!("SIGINT: exiting now");
                    return ShutdownSignal::FastShutdown;
                }
                _ = quit.recv() => {
                    // Pingora would stop this process even with nobody to take the sockets.
                    if !upgrade_sock.exists() {
                        log::error!(
                            "SIGQUIT ignored: no new process waits on {} (start one with `pinlb -u`, or use `pinlb -s upgrade`)",
                            upgrade_sock.display()
                        );
                        continue;
                    }
                    info!("SIGQUIT: handing the listening sockets to the new process");
                    self.shared.winding_down.store(true, Ordering::SeqCst);
                    self.exit_when_idle(UPGRADE_OVERLAP, lifecycle.grace_period);
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = term.recv() => {
                    self.shared.draining.store(true, Ordering::SeqCst);
                    info!("SIGTERM: draining for {:?} before closing the listeners", lifecycle.drain_delay);
                    tokio::select! {
                        _ = tokio::time::sleep(lifecycle.drain_delay) => {}
                        _ = int.recv() => {
                            info!("SIGINT during the drain: exiting now");
                            return ShutdownSignal::FastShutdown;
                        }
                    }
                    self.shared.winding_down.store(true, Ordering::SeqCst);
                    self.exit_when_idle(Duration::ZERO, lifecycle.grace_period);
                    return ShutdownSignal::GracefulTerminate;
                }
            }
        }
    }
}

impl Signals {
    /// After `overlap` (while the listeners may still accept), waits until no request is
    /// in flight, then exits the process; gives up after `grace`, when Pingora's own
    /// shutdown ends whatever is left.
    fn exit_when_idle(&self, overlap: Duration, grace: Duration) {
        let shared = Arc::clone(&self.shared);
        let pid_file = self.pid_file.clone();
        let watcher = std::thread::Builder::new()
            .name("drain".into())
            .spawn(move || {
                std::thread::sleep(overlap);
                let deadline = Instant::now() + grace;
                let idle = || shared.requests_in_flight.load(Ordering::SeqCst) == 0;
                loop {
                    if idle() {
                        std::thread::sleep(SETTLE);
                        if idle() {
                            break;
                        }
                    }
                    if Instant::now() >= deadline {
                        info!("grace period over with requests still in flight: they are cut");
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                info!("no request in flight: exiting");
                finish(&shared, &pid_file);
                std::process::exit(0);
            });
        if let Err(e) = watcher {
            log::warn!("cannot watch the drain ({e}); waiting for the whole grace period");
        }
    }
}

/// Last words of a process: write out the access logs and remove the pid file if it is
/// still ours (after an upgrade it names the new process).
pub fn finish(shared: &Shared, pid_file: &std::path::Path) {
    shared.sinks.flush(Duration::from_secs(1));
    super::pidfile::remove_if_ours(pid_file);
}
