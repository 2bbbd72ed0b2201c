//! Upstream pools at run time: resolved servers, their active and passive health, the
//! primary and backup tiers, and the choice of the next server for a request.

mod ip_hash;
mod least_conn;
mod passive;
mod smooth;

pub use ip_hash::{IpHash, ip_hash_key};
pub use least_conn::LeastConn;
pub use passive::{InFlightGuard, PassiveHealth};
pub use smooth::SmoothWeighted;

use crate::config::{self, Balance, ConfigError};
use crate::health::{self, CheckTarget, CheckTargets};
use crate::observe::metrics::{METRICS, PoolMetrics};
use http::HeaderValue;
use log::warn;
use pingora::lb::discovery::Static;
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, FNVHash};
use pingora::lb::{Backend, Backends, HealthRegistry};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// One backend server as the proxy sees it.
#[derive(Debug)]
pub struct Server {
    /// The name pins, `X-Served-By` and logs use.
    pub name: String,
    /// [`Server::name`] ready to send as a header value.
    pub name_value: HeaderValue,
    /// The address as configured (`app1:80`), for messages.
    pub configured_addr: String,
    /// The resolved address requests go to.
    pub addr: SocketAddr,
    pub backend: Backend,
    pub backup: bool,
    pub down: bool,
    /// Requests in flight at most; 0 is no limit.
    pub max_conns: usize,
    pub inflight: Arc<AtomicUsize>,
    pub passive: PassiveHealth,
    /// Active health checks' verdict: set when a check flips the server and after each
    /// pass (see [`Pool::refresh_active_health`]); shared with the check's targets.
    active_ok: Arc<AtomicBool>,
}

/// How a pool picks: which key its selector needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Round robin and least connections need no key.
    None,
    /// `ip_hash`: the client address.
    ClientIp,
    /// `hash KEY`: the key template of the upstream.
    Template,
}

/// The selector of one tier, over Pingora's [`BackendSelection`] interface.
enum Selector {
    Smooth(Arc<SmoothWeighted>),
    LeastConn(Arc<LeastConn>),
    IpHash(Arc<IpHash>),
    Hash(Arc<FNVHash>),
    Consistent(Arc<Consistent>),
}

impl Selector {
    /// Walks the candidates for `key` and returns the first that `accept` maps to a server
    /// index. `max_steps` bounds the walk.
    fn pick(
        &self,
        key: &[u8],
        max_steps: usize,
        accept: impl FnMut(&Backend) -> Option<usize>,
    ) -> Option<usize> {
        fn walk<S>(
            sel: &Arc<S>,
            key: &[u8],
            max_steps: usize,
            mut accept: impl FnMut(&Backend) -> Option<usize>,
        ) -> Option<usize>
        where
            S: BackendSelection,
            S::Iter: BackendIter,
        {
            let mut candidates = sel.iter(key);
            for _ in 0..max_steps {
                if let Some(found) = accept(candidates.next()?) {
                    return Some(found);
                }
            }
            None
        }
        match self {
            Selector::Smooth(s) => walk(s, key, max_steps, accept),
            Selector::LeastConn(s) => walk(s, key, max_steps, accept),
            Selector::IpHash(s) => walk(s, key, max_steps, accept),
            Selector::Hash(s) => walk(s, key, max_steps, accept),
            Selector::Consistent(s) => walk(s, key, max_steps, accept),
        }
    }
}

/// Primary servers, or the backups used only when no primary is usable.
struct Tier {
    /// Health as Pingora's checks see it, for this tier's servers (`down` ones excluded).
    view: Backends,
    selector: Selector,
    /// How many candidates a pick may look at before giving up.
    max_steps: usize,
}

/// A named pool of servers with its selection and health state.
pub struct Pool {
    pub name: String,
    /// Servers in config order; selection results are indexes into this.
    pub servers: Vec<Server>,
    /// The configuration this pool was built from (a reload reuses an equal pool).
    pub conf: config::Upstream,
    primary: Tier,
    backup: Option<Tier>,
    /// Active health state, kept across reloads while the check stays the same.
    registry: Arc<HealthRegistry>,
    check_targets: CheckTargets,
    pub key_kind: KeyKind,
    /// How often the background service checks this pool; `None` without a health check.
    pub check_interval: Option<Duration>,
    /// How long idle upstream connections are kept (nginx upstream `keepalive_timeout`).
    pub idle_timeout: Option<Duration>,
    pub metrics: PoolMetrics,
}

impl Pool {
    /// Resolves the servers' addresses and prepares selection and health checking.
    ///
    /// With the pool of the `previous` config of the same name: an unchanged pool
    /// (same settings, same resolved addresses) is reused as it is; otherwise the new
    /// pool keeps the health state (when the check is unchanged) and the in-flight
    /// counts of servers that stay.
    pub fn build(
        file: &Path,
        name: &str,
        conf: &config::Upstream,
        previous: Option<&Arc<Pool>>,
    ) -> Result<Arc<Pool>, ConfigError> {
        let mut servers = resolve_servers(file, conf)?;
        if let Some(prev) = previous {
            let same_addrs = prev
                .servers
                .iter()
                .map(|s| s.addr)
                .eq(servers.iter().map(|s| s.addr));
            if same_addrs && same_upstream(&prev.conf, conf) {
                return Ok(Arc::clone(prev));
            }
            for s in &mut servers {
                if let Some(old) = prev
                    .servers
                    .iter()
                    .find(|o| o.name == s.name && o.addr == s.addr)
                {
                    s.inflight = Arc::clone(&old.inflight);
                }
            }
        }
        let targets: Vec<CheckTarget> = servers
            .iter()
            .map(|s| CheckTarget {
                addr: s.addr,
                label: health::label(name, &s.name, s.addr),
                active_ok: Arc::clone(&s.active_ok),
                down: s.down,
            })
            .collect();
        let kept = previous.filter(|p| p.conf.health_check == conf.health_check);
        let (registry, check_targets) = match kept {
            Some(prev) => {
                prev.check_targets.store(Arc::new(targets));
                (Arc::clone(&prev.registry), Arc::clone(&prev.check_targets))
            }
            None => {
                // Health is keyed by address, so a changed weight keeps a server's state.
                let registry = Arc::new(HealthRegistry::with_equivalence(address_key));
                let check_targets: CheckTargets =
                    Arc::new(arc_swap::ArcSwap::from_pointee(targets));
                if let Some(hc) = &conf.health_check {
                    registry.set_health_check(health::check_for(
                        name,
                        hc,
                        Arc::clone(&check_targets),
                    ));
                }
                (registry, check_targets)
            }
        };
        let tier = |backup: bool| build_tier(&servers, &conf.balance, backup, &registry);
        let primary = tier(false).map_err(|e| ConfigError::invalid(file, &conf.origin, e))?;
        let backup = match servers.iter().any(|s| s.backup) {
            true => Some(tier(true).map_err(|e| ConfigError::invalid(file, &conf.origin, e))?),
            false => None,
        };
        let pool = Pool {
            name: name.to_string(),
            conf: conf.clone(),
            primary,
            backup,
            registry,
            check_targets,
            key_kind: match conf.balance {
                Balance::RoundRobin | Balance::LeastConn => KeyKind::None,
                Balance::IpHash => KeyKind::ClientIp,
                Balance::Hash { .. } => KeyKind::Template,
            },
            check_interval: conf.health_check.as_ref().map(|hc| hc.interval),
            idle_timeout: conf.keepalive.as_ref().map(|k| k.timeout),
            metrics: METRICS.pool(
                name,
                &servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ),
            servers,
        };
        pool.refresh_active_health();
        Ok(Arc::new(pool))
    }

    /// The next server for a request with selection `key`, among the servers `allowed`
    /// lets through that are usable; backups only when no primary is.
    pub fn select(&self, key: &[u8], allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let pick = |tier: &Tier| {
            tier.selector.pick(key, tier.max_steps, |b| {
                let i = self.index_of(b)?;
                (allowed(i) && self.is_usable(i)).then_some(i)
            })
        };
        if let Some(i) = pick(&self.primary).or_else(|| self.backup.as_ref().and_then(pick)) {
            return Some(i);
        }
        // nginx: when every server has failed, forget the failures so that the next
        // request tries them again rather than failing for a whole fail_timeout.
        if self
            .servers
            .iter()
            .all(|s| s.down || !s.passive.available() || !self.is_healthy_active(s))
        {
            self.servers.iter().for_each(|s| s.passive.reset());
        }
        None
    }

    /// Whether server `i` may take a request now: not `down`, healthy by active checks,
    /// not failed by passive health, below `max_conns`.
    pub fn is_usable(&self, i: usize) -> bool {
        let s = &self.servers[i];
        self.is_healthy_active(s)
            && s.passive.available()
            && (s.max_conns == 0 || s.inflight.load(Ordering::Relaxed) < s.max_conns)
    }

    /// Whether active health checks consider server `i` healthy.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.is_healthy_active(&self.servers[i])
    }

    fn is_healthy_active(&self, s: &Server) -> bool {
        s.active_ok.load(Ordering::Relaxed)
    }

    /// Copies the health registry's verdict on each server into the server. Active health
    /// changes only in a check pass, and asking the registry costs two hash lookups per
    /// candidate of every request; this runs when the pool is built and after each pass.
    fn refresh_active_health(&self) {
        for s in &self.servers {
            let tier = match s.backup {
                true => self.backup.as_ref(),
                false => Some(&self.primary),
            };
            let ok = !s.down && tier.is_some_and(|t| t.view.ready(&s.backend));
            s.active_ok.store(ok, Ordering::Relaxed);
        }
    }

    /// Whether any usable server passes `allowed`, without moving the balancer.
    pub fn has_candidate(&self, allowed: impl Fn(usize) -> bool) -> bool {
        (0..self.servers.len()).any(|i| allowed(i) && self.is_usable(i))
    }

    /// The server called `name`, if there is one.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        self.servers.iter().position(|s| s.name.as_bytes() == name)
    }

    /// Counts a request in flight on server `i` until the guard is dropped.
    pub fn start_request(&self, i: usize) -> InFlightGuard {
        InFlightGuard::new(&self.servers[i].inflight)
    }

    /// Passive health: server `i` failed a request.
    pub fn report_failure(&self, i: usize) {
        self.metrics.servers[i].failures.inc();
        let s = &self.servers[i];
        if s.passive.failed() {
            warn!(
                "server \"{}\" ({}) of upstream \"{}\" failed {} times: unavailable for {:?}",
                s.name,
                s.addr,
                self.name,
                s.passive.fails(),
                s.passive.fail_timeout()
            );
        }
    }

    /// Passive health: server `i` answered a request.
    pub fn report_success(&self, i: usize) {
        self.servers[i].passive.succeeded();
    }

    /// Sets the up and in-flight gauges from the current state (before a scrape).
    pub fn refresh_gauges(&self) {
        for (i, s) in self.servers.iter().enumerate() {
            let m = &self.metrics.servers[i];
            m.up.set(i64::from(self.is_usable(i)));
            m.inflight.set(s.inflight.load(Ordering::Relaxed) as i64);
        }
    }

    /// Runs one round of this pool's health check over all servers at once.
    pub async fn run_health_check(&self) {
        self.registry.run_health_check(true).await;
        self.refresh_active_health();
    }

    fn index_of(&self, b: &Backend) -> Option<usize> {
        self.servers.iter().position(|s| s.backend.addr == b.addr)
    }
}

/// Whether two upstream configs are the same but for where they were written.
fn same_upstream(a: &config::Upstream, b: &config::Upstream) -> bool {
    let server = |s: &config::Server| {
        (
            s.name.clone(),
            s.addr.clone(),
            s.weight,
            s.max_fails,
            s.fail_timeout,
            s.max_conns,
            s.backup,
            s.down,
        )
    };
    a.balance == b.balance
        && a.health_check == b.health_check
        && a.keepalive == b.keepalive
        && a.servers
            .iter()
            .map(server)
            .eq(b.servers.iter().map(server))
}

/// The health registry key of a backend: its address, whatever its weight.
fn address_key(b: &Backend) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.addr.hash(&mut h);
    h.finish()
}

fn resolve_servers(file: &Path, conf: &config::Upstream) -> Result<Vec<Server>, ConfigError> {
    let mut servers: Vec<Server> = Vec::with_capacity(conf.servers.len());
    for s in &conf.servers {
        let at = s.origin.field("addr");
        let addr = resolve(&s.addr).map_err(|msg| ConfigError::invalid(file, &at, msg))?;
        if let Some(twin) = servers.iter().find(|t| t.addr == addr) {
            return Err(ConfigError::invalid(
                file,
                &at,
                format!(
                    "\"{}\" resolves to {addr}, the address of server \"{}\"",
                    s.addr, twin.name
                ),
            ));
        }
        let name_value = HeaderValue::from_str(&s.name).map_err(|_| {
            ConfigError::invalid(
                file,
                &s.origin.field("name"),
                "not usable as a header value",
            )
        })?;
        servers.push(Server {
            name: s.name.clone(),
            name_value,
            configured_addr: s.addr.clone(),
            addr,
            backend: Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: usize::try_from(s.weight).unwrap_or(usize::MAX),
                ext: http::Extensions::new(),
            },
            backup: s.backup,
            down: s.down,
            max_conns: usize::try_from(s.max_conns).unwrap_or(usize::MAX),
            inflight: Arc::default(),
            passive: PassiveHealth::new(s.max_fails, s.fail_timeout),
            active_ok: Arc::default(),
        });
    }
    Ok(servers)
}

/// The primary or backup tier: a health view of its servers and the pool's selector.
fn build_tier(
    servers: &[Server],
    balance: &Balance,
    backup: bool,
    registry: &Arc<HealthRegistry>,
) -> Result<Tier, String> {
    let members: Vec<&Server> = servers.iter().filter(|s| s.backup == backup).collect();
    let live: Vec<Backend> = members
        .iter()
        .filter(|s| !s.down)
        .map(|s| s.backend.clone())
        .collect();
    // Hashing keeps `down` servers in place so that other keys do not move (as nginx does).
    let hashed = matches!(balance, Balance::IpHash | Balance::Hash { .. });
    let ordered: Vec<Backend> = match hashed {
        true => members.iter().map(|s| s.backend.clone()).collect(),
        false => live.clone(),
    };
    let set: BTreeSet<Backend> = ordered.iter().cloned().collect();
    let selector = match balance {
        Balance::RoundRobin => {
            let order = ordered.iter().map(|b| b.addr.clone()).collect();
            Selector::Smooth(Arc::new(SmoothWeighted::build_with_config(&set, &order)))
        }
        Balance::LeastConn => {
            let counted = members
                .iter()
                .filter(|s| !s.down)
                .map(|s| (s.backend.clone(), Arc::clone(&s.inflight)))
                .collect();
            Selector::LeastConn(Arc::new(LeastConn::build_with_config(&set, &counted)))
        }
        Balance::IpHash => Selector::IpHash(Arc::new(IpHash::build_with_config(&set, &ordered))),
        Balance::Hash {
            consistent: false, ..
        } => Selector::Hash(Arc::new(FNVHash::build(&set))),
        Balance::Hash {
            consistent: true, ..
        } => Selector::Consistent(Arc::new(Consistent::build(&set))),
    };
    let view = Backends::new_with_health_registry(
        Static::new(live.into_iter().collect()),
        Arc::clone(registry),
    );
    // Static discovery never waits: one poll publishes the servers to the health registry.
    match poll_once(view.update(|_| {})) {
        Some(Ok(())) => {}
        other => return Err(format!("cannot publish servers: {other:?}")),
    }
    let total_weight: usize = ordered.iter().map(|b| b.weight).sum();
    Ok(Tier {
        view,
        selector,
        // Enough for every algorithm to offer every server once (ip_hash rehashes 20
        // times first; hashing may offer a server twice).
        max_steps: 2 * members.len() + 20 + total_weight.min(1024),
    })
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
    let not_found = || format!("host not found in upstream \"{addr}\"");
    let mut found = addr.to_socket_addrs().map_err(|_| not_found())?;
    let first = found.next().ok_or_else(not_found)?;
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

#[cfg(test)]
impl Pool {
    /// A round-robin pool of servers called `names` on unused loopback ports.
    pub fn for_tests(name: &str, names: &[&str]) -> Pool {
        let servers = names
            .iter()
            .enumerate()
            .map(|(i, n)| config::Server {
                name: n.to_string(),
                addr: format!("127.0.0.1:{}", 1 + i),
                weight: 1,
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
                max_conns: 0,
                backup: false,
                down: false,
                origin: config::Origin::Builtin,
            })
            .collect();
        let conf = config::Upstream {
            servers,
            balance: Balance::RoundRobin,
            health_check: None,
            keepalive: None,
            origin: config::Origin::Builtin,
        };
        match Arc::try_unwrap(Pool::build(Path::new("test"), name, &conf, None).expect("test pool"))
        {
            Ok(pool) => pool,
            Err(_) => unreachable!("a new pool has one owner"),
        }
    }
}
