//! Active health checks of one pool: Pingora's HTTP and TCP checks built from the config,
//! with log lines that name the server, passing each flip on to request routing.

use crate::config::{CheckKind, HealthCheck as CheckConf};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::Backend;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A server as its pool's health check sees it.
pub struct CheckTarget {
    pub addr: SocketAddr,
    /// The name health check logs use.
    pub label: String,
    /// The verdict request routing reads ([`crate::upstream::Pool`]'s cached one).
    pub active_ok: Arc<AtomicBool>,
    /// Marked `down` in the config: never usable, whatever the checks say.
    pub down: bool,
}

/// The servers a pool's health check serves, by address; replaced when a reload changes
/// the servers of a pool whose check (and so whose health state) is kept.
pub type CheckTargets = Arc<ArcSwap<Vec<CheckTarget>>>;

/// Builds the check an upstream's config asks for. Its log lines name the server.
pub fn check_for(
    upstream: &str,
    conf: &CheckConf,
    targets: CheckTargets,
) -> Box<dyn HealthCheck + Send + Sync> {
    Box::new(NamedCheck {
        inner: probe(upstream, conf),
        targets,
    })
}

/// The check an upstream's config asks for, on its own: what a new address of a
/// `resolve` server passes once before it takes requests.
pub fn probe(upstream: &str, conf: &CheckConf) -> Box<dyn HealthCheck + Send + Sync> {
    match &conf.kind {
        CheckKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_failure = conf.fails as usize;
            check.consecutive_success = conf.passes as usize;
            check.peer_template.options.connection_timeout = Some(conf.timeout);
            check
        }
        CheckKind::Http { path } => Box::new(http_check(upstream, path, conf)),
    }
}

/// The label of a server in health check logs.
pub fn label(upstream: &str, server: &str, addr: SocketAddr) -> String {
    format!("server \"{server}\" ({addr}) of upstream \"{upstream}\"")
}

fn http_check(upstream: &str, path: &str, conf: &CheckConf) -> HttpHealthCheck {
    let mut check = HttpHealthCheck::new(upstream, false);
    check.consecutive_failure = conf.fails as usize;
    check.consecutive_success = conf.passes as usize;
    check.peer_template.options.connection_timeout = Some(conf.timeout);
    check.peer_template.options.total_connection_timeout = Some(conf.timeout);
    check.peer_template.options.read_timeout = Some(conf.timeout);
    // The path was validated when the config was loaded; keep the default `/` otherwise.
    if let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None) {
        if req.insert_header("Host", upstream).is_ok() {
            check.req = req;
        }
    }
    check.validator = Some(Box::new(|resp: &ResponseHeader| {
        let status = resp.status.as_u16();
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Error::e_explain(
                CustomCode("unhealthy status", status),
                format!("status {status}"),
            )
        }
    }));
    check
}

/// Delegates to Pingora's check, gives each backend a readable name, which Pingora uses in
/// its `becomes unhealthy` / `becomes healthy` log lines, and passes a flip on to request
/// routing before that line is logged.
struct NamedCheck {
    inner: Box<dyn HealthCheck + Send + Sync>,
    targets: CheckTargets,
}

#[async_trait]
impl HealthCheck for NamedCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        self.inner.check(target).await
    }

    fn backend_summary(&self, target: &Backend) -> String {
        let addr = target.as_inet().copied();
        self.targets
            .load()
            .iter()
            .find(|t| Some(t.addr) == addr)
            .map_or_else(|| format!("{:?}", target.addr), |t| t.label.clone())
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        // Routing would otherwise see the flip only when the whole pass ends
        // (`Pool::run_health_check`), after the log line says the server is down.
        let addr = target.as_inet().copied();
        for t in self.targets.load().iter().filter(|t| Some(t.addr) == addr) {
            t.active_ok.store(healthy && !t.down, Ordering::Relaxed);
        }
        self.inner.health_status_change(target, healthy).await
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.inner.health_threshold(success)
    }
}
