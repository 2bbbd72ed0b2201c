//! Readiness: a process is ready once every listener of its config accepts connections
//! and its signal handlers are installed.
//! Until then `/healthz` answers 503 and `/status` says `"ready": false`, so that a
//! balancer in front, a container runtime and `pinlb -s upgrade` wait for it.

use crate::state::Shared;
use async_trait::async_trait;
use log::info;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;

/// How often the listeners are tried until they all accept.
const RETRY: Duration = Duration::from_millis(20);

/// Sets [`Shared::ready`] once every listener (the admin listener included) accepts and
/// the signal handlers are in place.
pub struct ReadyService {
    shared: Arc<Shared>,
}

impl ReadyService {
    pub fn new(shared: Arc<Shared>) -> Self {
        ReadyService { shared }
    }
}

/// The address to connect to for a listener: a wildcard is reached on loopback.
pub fn reachable(listener: SocketAddr) -> SocketAddr {
    let ip = match listener.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listener.port())
}

#[async_trait]
impl BackgroundService for ReadyService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let config = &self.shared.started_with;
        let mut waiting: Vec<SocketAddr> = config
            .listeners
            .iter()
            .map(|l| l.addr)
            .chain(config.admin)
            .map(reachable)
            .collect();
        loop {
            let mut still = Vec::new();
            for addr in waiting {
                if TcpStream::connect(addr).await.is_err() {
                    still.push(addr);
                }
            }
            waiting = still;
            if waiting.is_empty() && self.shared.signals_handled.load(Ordering::Acquire) {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
        self.shared.ready.store(true, Ordering::Release);
        info!("ready: every listener accepts connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_reached_on_loopback() {
        let r = |a: &str| reachable(a.parse().unwrap()).to_string();
        assert_eq!(r("0.0.0.0:80"), "127.0.0.1:80");
        assert_eq!(r("[::]:80"), "[::1]:80");
        assert_eq!(r("10.0.0.2:81"), "10.0.0.2:81");
    }
}
