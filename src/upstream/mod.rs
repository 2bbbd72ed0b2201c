//! Upstream pools at run time: resolved servers, their active and passive health, the
//! primary and backup tiers, and the choice of the next server for a request.

mod build;
pub mod check;
pub mod discovery;
mod passive;
pub mod resolve;
pub mod select;
pub mod sticky;

pub use build::PoolEnv;
pub use passive::{InFlightGuard, PassiveHealth};
pub use select::ip_hash_key;

use crate::config;
use crate::observe::metrics::PoolMetrics;
use crate::variables::{RequestInfo, Template};
use check::CheckTargets;
use http::HeaderValue;
use log::warn;
use pingora::lb::{Backend, Backends, HealthRegistry};
use pingora::upstreams::peer::IdleGroup;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// One backend server as the proxy sees it: one address of a configured server (a
/// `resolve` server has one per address of its name).
#[derive(Debug)]
pub struct Server {
    /// The name of the configured server: pins use it, and reach every address of it.
    pub name: String,
    /// Unique in the pool: the name, or `name@address` for an address of a `resolve`
    /// server. `X-Served-By`, metrics and logs use it; pins accept it too.
    pub label: String,
    /// [`Server::label`] ready to send as a header value.
    pub name_value: HeaderValue,
    /// The value of the sticky cookie that names this server (nginx's server ID).
    pub sid: String,
    /// The address as configured (`app1:80`), for messages.
    pub configured_addr: String,
    /// The resolved address requests go to.
    pub addr: SocketAddr,
    pub backend: Backend,
    pub backup: bool,
    pub down: bool,
    /// Only pins and sticky cookies send requests here (nginx `drain`).
    pub drain: bool,
    /// One address of a `resolve` server.
    pub resolved: bool,
    /// Requests in flight at most; 0 is no limit.
    pub max_conns: usize,
    pub inflight: Arc<AtomicUsize>,
    pub passive: PassiveHealth,
    /// Active health checks' verdict: set when a check flips the server and after each
    /// pass (see [`Pool::refresh_active_health`]); shared with the check's targets.
    active_ok: Arc<AtomicBool>,
}

/// The servers of a pool that one configured server became: consecutive, one per
/// address (one for a server without `resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub first: usize,
    pub len: usize,
}

impl Group {
    /// The group of server `i` alone.
    pub fn one(i: usize) -> Group {
        Group { first: i, len: 1 }
    }

    pub fn contains(&self, i: usize) -> bool {
        i >= self.first && i - self.first < self.len
    }

    pub fn indexes(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.len
    }
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

/// Primary servers, or the backups used only when no primary is usable.
struct Tier {
    /// Health as Pingora's checks see it, for this tier's servers (`down` ones excluded).
    view: Backends,
    selector: select::Selector,
    /// The pool index of each member of the selector, in config order.
    members: Box<[usize]>,
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
    /// The key template of a `hash` upstream.
    hash_key: Option<Template>,
    /// How often the background service checks this pool; `None` without a health check.
    pub check_interval: Option<Duration>,
    /// How long idle upstream connections are kept (nginx upstream `keepalive_timeout`).
    pub idle_timeout: Option<Duration>,
    /// nginx's `keepalive N` of this upstream: its idle connections, bounded together.
    pub idle_group: Option<IdleGroup>,
    /// Requests one connection carries before it is closed (nginx `keepalive_requests`).
    pub max_requests_per_connection: Option<u32>,
    pub metrics: PoolMetrics,
    /// The sticky cookie (nginx `sticky cookie`), if configured.
    pub sticky: Option<sticky::Sticky>,
    /// Some server is a `resolve` one: its addresses come and go while running.
    pub resolving: bool,
}

impl Pool {
    /// The next server for a request with selection `key`, among the servers `allowed`
    /// lets through that are usable and not draining; backups only when no primary is.
    pub fn select(&self, key: &[u8], allowed: impl Fn(usize) -> bool) -> Option<usize> {
        self.pick(key, |i| allowed(i) && !self.servers[i].drain)
    }

    /// Like [`Pool::select`] among the servers of `group` (a pin or a sticky cookie),
    /// draining ones included.
    pub fn select_in(
        &self,
        key: &[u8],
        group: Group,
        allowed: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        self.pick(key, |i| group.contains(i) && allowed(i))
    }

    fn pick(&self, key: &[u8], allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let pick = |tier: &Tier| {
            let eligible = |m: usize| {
                let i = tier.members[m];
                allowed(i) && self.is_usable(i)
            };
            tier.selector.pick(key, eligible).map(|m| tier.members[m])
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

    /// The key this pool's selector needs for a request: the client address for
    /// `ip_hash`, the expanded key for `hash`, nothing for the others. `info` is only
    /// built when a key is needed.
    pub fn selection_key<'k, 'r>(
        &self,
        info: impl FnOnce() -> RequestInfo<'r>,
        buf: &'k mut Vec<u8>,
    ) -> &'k [u8] {
        match (self.key_kind, &self.hash_key) {
            (KeyKind::ClientIp, _) => {
                let (bytes, len) = info().client_ip.map_or(([0; 16], 0), ip_hash_key);
                buf.extend_from_slice(&bytes[..len]);
            }
            (KeyKind::Template, Some(key)) => key.expand(&info(), buf),
            _ => {}
        }
        buf
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

    /// Whether any usable server that is not draining passes `allowed`, without moving
    /// the balancer.
    pub fn has_candidate(&self, allowed: impl Fn(usize) -> bool) -> bool {
        (0..self.servers.len()).any(|i| allowed(i) && !self.servers[i].drain && self.is_usable(i))
    }

    /// Whether some server of `group` may take a request now.
    pub fn group_usable(&self, group: Group) -> bool {
        group.indexes().any(|i| self.is_usable(i))
    }

    /// The servers called `name` (every address of a `resolve` server), or the one
    /// whose label (`name@address`) it is.
    pub fn find(&self, name: &[u8]) -> Option<Group> {
        if let Some(first) = self.servers.iter().position(|s| s.name.as_bytes() == name) {
            let len = self.servers[first..]
                .iter()
                .take_while(|s| s.name.as_bytes() == name)
                .count();
            return Some(Group { first, len });
        }
        // A `resolve` server without addresses leaves no server to find by name; labels
        // contain `@`, which names do not need.
        if !self.resolving || !name.contains(&b'@') {
            return None;
        }
        self.servers
            .iter()
            .position(|s| s.label.as_bytes() == name)
            .map(Group::one)
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
                s.label,
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
}
