//! Upstream pools at run time: resolved servers, their health, and the choice of the
//! next server for a request.

mod smooth;

pub use smooth::SmoothWeighted;

use crate::config::{self, ConfigError};
use crate::health;
use log::warn;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// One backend server as the proxy sees it.
#[derive(Debug)]
pub struct Server {
    /// The name pins and `X-Served-By` use.
    pub name: String,
    /// The address as configured (`app1:80`), for messages.
    pub configured_addr: String,
    /// The resolved address requests go to.
    pub addr: SocketAddr,
    pub backend: Backend,
}

/// A named pool of servers with its selector and health state.
pub struct Pool {
    pub name: String,
    /// Servers in config order; selection results are indexes into this.
    pub servers: Vec<Server>,
    lb: LoadBalancer<SmoothWeighted>,
    /// How often the background service checks this pool; `None` without a health check.
    pub check_interval: Option<Duration>,
}

impl Pool {
    /// Resolves the servers' addresses and prepares selection and health checking.
    pub fn build(file: &Path, name: &str, conf: &config::Upstream) -> Result<Pool, ConfigError> {
        let mut servers = Vec::with_capacity(conf.servers.len());
        for s in &conf.servers {
            let addr = resolve(&s.addr)
                .map_err(|msg| ConfigError::invalid(file, &s.origin.field("addr"), msg))?;
            if let Some(twin) = servers.iter().find(|t: &&Server| t.addr == addr) {
                return Err(ConfigError::invalid(
                    file,
                    &s.origin.field("addr"),
                    format!(
                        "\"{}\" resolves to {addr}, the address of server \"{}\"",
                        s.addr, twin.name
                    ),
                ));
            }
            let backend = Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: usize::try_from(s.weight).unwrap_or(usize::MAX),
                ext: http::Extensions::new(),
            };
            servers.push(Server {
                name: s.name.clone(),
                configured_addr: s.addr.clone(),
                addr,
                backend,
            });
        }
        let set: BTreeSet<Backend> = servers.iter().map(|s| s.backend.clone()).collect();
        let mut backends = Backends::new(Static::new(set));
        if let Some(hc) = &conf.health_check {
            backends.set_health_check(health::check_for(name, hc, &servers));
        }
        let order = servers.iter().map(|s| s.backend.addr.clone()).collect();
        let lb = LoadBalancer::from_backends_with_config(backends, Some(order));
        // Static discovery never waits: one poll publishes the servers to the selector.
        match poll_once(lb.update()) {
            Some(Ok(())) => {}
            outcome => {
                let why = outcome.map_or("discovery did not finish".into(), |r| format!("{r:?}"));
                return Err(ConfigError::invalid(
                    file,
                    &conf.origin,
                    format!("cannot publish servers: {why}"),
                ));
            }
        }
        Ok(Pool {
            name: name.to_string(),
            servers,
            lb,
            check_interval: conf.health_check.as_ref().map(|hc| hc.interval),
        })
    }

    /// The next server by the pool's algorithm among the healthy ones `usable` accepts.
    pub fn select(&self, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let backend = self.lb.select_with(b"", self.servers.len(), |b, healthy| {
            healthy && self.index_of(b).is_some_and(&usable)
        })?;
        self.index_of(&backend)
    }

    /// Whether health checks currently let server `i` take requests.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.lb.backends().ready(&self.servers[i].backend)
    }

    /// The server called `name`, if there is one.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        self.servers.iter().position(|s| s.name.as_bytes() == name)
    }

    /// Whether any healthy server passes `usable`, without moving the balancer.
    pub fn has_candidate(&self, usable: impl Fn(usize) -> bool) -> bool {
        (0..self.servers.len()).any(|i| usable(i) && self.is_healthy(i))
    }

    /// Runs one round of this pool's health check over all servers at once.
    pub async fn run_health_check(&self) {
        self.lb.backends().run_health_check(true).await;
    }

    fn index_of(&self, b: &Backend) -> Option<usize> {
        self.servers.iter().position(|s| s.backend == *b)
    }
}

/// Polls a future once; `None` if it is not ready. For futures that never wait.
fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// Resolves `host:port`, nginx-style message on failure. The first address wins: one
/// configured server is one backend (nginx would add every address).
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    let mut found = addr
        .to_socket_addrs()
        .map_err(|_| format!("host not found in upstream \"{addr}\""))?;
    let first = found
        .next()
        .ok_or_else(|| format!("host not found in upstream \"{addr}\""))?;
    let rest: Vec<String> = found
        .filter(|a| *a != first)
        .map(|a| a.to_string())
        .collect();
    if !rest.is_empty() {
        warn!(
            "\"{addr}\" resolves to several addresses; using {first}, not {}",
            rest.join(", ")
        );
    }
    Ok(first)
}
