//! Active health checks: Pingora's HTTP and TCP checks built from the config, labelled
//! with server names, and one background service that runs every pool's checks on its
//! own schedule.

use crate::config::{CheckKind, HealthCheck as CheckConf};
use crate::runtime::Runtime;
use crate::upstream::{Pool, Server};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::Backend;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::prelude::*;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Builds the check an upstream's config asks for. Its log lines name the server.
pub fn check_for(
    upstream: &str,
    conf: &CheckConf,
    servers: &[Server],
) -> Box<dyn HealthCheck + Send + Sync> {
    let inner: Box<dyn HealthCheck + Send + Sync> = match &conf.kind {
        CheckKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_failure = conf.fails as usize;
            check.consecutive_success = conf.passes as usize;
            check.peer_template.options.connection_timeout = Some(conf.timeout);
            check
        }
        CheckKind::Http { path } => Box::new(http_check(upstream, path, conf)),
    };
    let names = servers
        .iter()
        .map(|s| {
            (
                s.backend.clone(),
                format!(
                    "server \"{}\" ({}) of upstream \"{upstream}\"",
                    s.name, s.addr
                ),
            )
        })
        .collect();
    Box::new(NamedCheck { inner, names })
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

/// Delegates to Pingora's check and gives each backend a readable name, which Pingora
/// uses in its `becomes unhealthy` / `becomes healthy` log lines.
struct NamedCheck {
    inner: Box<dyn HealthCheck + Send + Sync>,
    names: Vec<(Backend, String)>,
}

#[async_trait]
impl HealthCheck for NamedCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        self.inner.check(target).await
    }

    fn backend_summary(&self, target: &Backend) -> String {
        self.names
            .iter()
            .find(|(b, _)| b == target)
            .map_or_else(|| format!("{:?}", target.addr), |(_, name)| name.clone())
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.inner.health_threshold(success)
    }
}

/// Runs the health checks of every pool of the current config, each pool on its own
/// interval, until shutdown.
pub struct HealthService {
    runtime: Arc<ArcSwap<Runtime>>,
}

impl HealthService {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        HealthService { runtime }
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut loops = JoinSet::new();
        for pool in self.runtime.load().pools.values() {
            if let Some(interval) = pool.check_interval {
                loops.spawn(check_forever(Arc::clone(pool), interval));
            }
        }
        let _ = shutdown.changed().await;
        loops.shutdown().await;
    }
}

/// One pass every `interval`, measured start to start, as Pingora's own loop does.
async fn check_forever(pool: Arc<Pool>, interval: std::time::Duration) {
    loop {
        let started = Instant::now();
        pool.run_health_check().await;
        tokio::time::sleep_until(started + interval).await;
    }
}
