//! Compiling one `upstream` of the config into a [`Pool`]: its settings checked, its
//! servers resolved, selection and health checking prepared, and the state of the pool
//! of the same name in the previous config carried over where it still applies.

use super::check::{self, CheckTarget, CheckTargets};
use super::discovery::Discovery;
use super::resolve::Resolve;
use super::select::{Algorithm, Member, Selector};
use super::sticky::{self, Sticky};
use super::{KeyKind, PassiveHealth, Pool, Server, Tier};
use crate::config::{self, Balance, CheckKind, ConfigError, Origin};
use crate::observe::metrics::METRICS;
use crate::variables::Template;
use http::HeaderValue;
use log::warn;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends, HealthRegistry};
use pingora::upstreams::peer::IdleGroup;
use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Identifies the idle connections of each pool built: a rebuilt pool starts a new group,
/// and the old group's idle connections leave with their idle timeout.
static NEXT_IDLE_GROUP: AtomicU64 = AtomicU64::new(1);

/// What compiling an upstream needs besides the upstream itself.
pub struct PoolEnv<'a> {
    /// The config file, for error messages.
    pub file: &'a Path,
    pub dns: &'a dyn Resolve,
    /// The last known addresses of `resolve` names; `None` leaves them without any
    /// (`pinlb -t`: such names are looked up only while running).
    pub discovered: Option<&'a Discovery>,
    /// The config's `map` variables, which a `hash` key may use.
    pub maps: &'a [String],
    /// Worker threads: nginx's `keepalive N` is per worker, and pinlb's threads share
    /// one pool of idle connections.
    pub threads: usize,
}

impl Pool {
    /// Checks the upstream `conf`, resolves its servers' addresses and prepares
    /// selection and health checking.
    ///
    /// With the pool of the `previous` config of the same name: an unchanged pool
    /// (same settings, same resolved addresses) is reused as it is; otherwise the new
    /// pool keeps the health state (when the check is unchanged) and the in-flight
    /// counts of servers that stay.
    pub fn build(
        env: &PoolEnv<'_>,
        name: &str,
        conf: &config::Upstream,
        previous: Option<&Arc<Pool>>,
    ) -> Result<Arc<Pool>, ConfigError> {
        let file = env.file;
        check_upstream(file, name, conf)?;
        let hash_key = match &conf.balance {
            Balance::Hash { key, .. } => Some(Template::parse(key, env.maps).map_err(|msg| {
                ConfigError::invalid(file, &conf.origin.field("balance").field("hash"), msg)
            })?),
            _ => None,
        };
        let mut servers = resolve_servers(env, name, conf)?;
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
                label: check::label(name, &s.label, s.addr),
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
                    registry.set_health_check(check::check_for(
                        name,
                        hc,
                        Arc::clone(&check_targets),
                    ));
                }
                (registry, check_targets)
            }
        };
        let tier = |backup: bool| {
            build_tier(&servers, &conf.balance, backup, &registry)
                .map_err(|e| ConfigError::invalid(file, &conf.origin, e))
        };
        let primary = tier(false)?;
        let backup = match servers.iter().any(|s| s.backup) {
            true => Some(tier(true)?),
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
            hash_key,
            check_interval: conf.health_check.as_ref().map(|hc| hc.interval),
            idle_timeout: conf.keepalive.as_ref().map(|k| k.timeout),
            idle_group: conf.keepalive.as_ref().map(|k| IdleGroup {
                id: NEXT_IDLE_GROUP.fetch_add(1, Ordering::Relaxed),
                max_idle: usize::try_from(k.connections)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(env.threads),
            }),
            max_requests_per_connection: conf.keepalive.as_ref().map(|k| k.requests),
            metrics: METRICS.pool(
                name,
                &servers.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(),
            ),
            sticky: conf.sticky.as_ref().map(|c| {
                Sticky::new(
                    c,
                    &servers.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
                )
            }),
            resolving: conf.resolves(),
            servers,
        };
        pool.refresh_active_health();
        Ok(Arc::new(pool))
    }
}

/// The upstream's own settings: servers named and addressed once each, numbers in
/// range, a health check that can run.
fn check_upstream(file: &Path, name: &str, upstream: &config::Upstream) -> Result<(), ConfigError> {
    let origin = &upstream.origin;
    let invalid = |at: &Origin, msg: String| Err(ConfigError::invalid(file, at, msg));
    if upstream.servers.is_empty() {
        return invalid(
            &origin.field("servers"),
            format!("upstream \"{name}\" has no servers"),
        );
    }
    let mut names = HashSet::new();
    for s in &upstream.servers {
        if s.name.is_empty()
            || s.name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return invalid(
                &s.origin.field("name"),
                format!(
                    "\"{}\" is not a valid server name (empty, spaces or control characters)",
                    s.name
                ),
            );
        }
        if !names.insert(s.name.as_str()) {
            return invalid(
                &s.origin.field("name"),
                format!(
                    "duplicate server name \"{}\" in upstream \"{name}\"",
                    s.name
                ),
            );
        }
        check_host_port(&s.addr).or_else(|msg| invalid(&s.origin.field("addr"), msg))?;
        if s.weight == 0 {
            return invalid(&s.origin.field("weight"), "must be at least 1".into());
        }
        if s.max_fails > 0 && s.fail_timeout.is_zero() {
            return invalid(
                &s.origin.field("fail_timeout_ms"),
                "must be greater than 0 when max_fails is set".into(),
            );
        }
        if s.backup && matches!(upstream.balance, Balance::IpHash | Balance::Hash { .. }) {
            return invalid(
                &s.origin.field("backup"),
                "hash and ip_hash balancing do not support backup servers".into(),
            );
        }
    }
    if let Some(st) = &upstream.sticky {
        let origin = origin.field("sticky");
        if st.cookie.is_empty() || !st.cookie.bytes().all(is_token) {
            return invalid(
                &origin.field("cookie"),
                format!("\"{}\" is not a valid cookie name", st.cookie),
            );
        }
        for (field, value) in [("domain", &st.domain), ("path", &st.path)] {
            match value {
                Some(v) if v.contains('$') => {
                    return invalid(
                        &origin.field(field),
                        "variables in sticky cookie attributes are not supported".into(),
                    );
                }
                Some(v)
                    if v.is_empty()
                        || v.bytes().any(|b| b == b';' || !(0x20..0x7f).contains(&b)) =>
                {
                    return invalid(&origin.field(field), format!("invalid value \"{v}\""));
                }
                _ => {}
            }
        }
        if let Some(v) = &st.samesite {
            if !["strict", "lax", "none"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(v))
            {
                return invalid(&origin.field("samesite"), format!("invalid value \"{v}\""));
            }
        }
    }
    for s in &upstream.servers {
        if let Some(route) = &s.route {
            if route.is_empty() || route.len() > sticky::SID_LEN || !route.bytes().all(is_token) {
                return invalid(
                    &s.origin.field("route"),
                    format!("\"{route}\" is not a route of 1 to 32 cookie characters"),
                );
            }
        }
    }
    if let Some(keepalive) = &upstream.keepalive {
        if keepalive.connections == 0 {
            return invalid(
                &origin.field("keepalive").field("connections"),
                "must be at least 1".into(),
            );
        }
    }
    if let Some(hc) = &upstream.health_check {
        let origin = origin.field("health_check");
        if let CheckKind::Http { path } = &hc.kind {
            if !path.starts_with('/') {
                return invalid(&origin.field("path"), "must start with \"/\"".into());
            }
        }
        for (field, value) in [("interval_ms", hc.interval), ("timeout_ms", hc.timeout)] {
            if value == Duration::ZERO {
                return invalid(&origin.field(field), "must be greater than 0".into());
            }
        }
        for (field, value) in [("fails", hc.fails), ("passes", hc.passes)] {
            if value == 0 {
                return invalid(&origin.field(field), "must be at least 1".into());
            }
        }
    }
    Ok(())
}

/// A byte of an HTTP token (RFC 9110), which cookie names and routes are made of.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `host:port` or `[v6]:port` with a numeric port.
pub fn check_host_port(addr: &str) -> Result<(), String> {
    let bad = || format!("\"{addr}\" is not a host:port address");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return Err(bad());
    }
    Ok(())
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

fn resolve_servers(
    env: &PoolEnv<'_>,
    upstream: &str,
    conf: &config::Upstream,
) -> Result<Vec<Server>, ConfigError> {
    let file = env.file;
    let mut servers: Vec<Server> = Vec::with_capacity(conf.servers.len());
    for s in &conf.servers {
        let at = s.origin.field("addr");
        let name_value = |label: &str| {
            HeaderValue::from_str(label).map_err(|_| {
                ConfigError::invalid(
                    file,
                    &s.origin.field("name"),
                    "not usable as a header value",
                )
            })
        };
        // nginx resolves a `resolve` server that is an IP address once, like any other.
        let dynamic = s.resolve && s.addr.parse::<SocketAddr>().is_err();
        let addrs = match dynamic {
            true => env
                .discovered
                .and_then(|d| d.addresses(upstream, &s.addr))
                .unwrap_or_default(),
            false => vec![
                first_address(env.dns, &s.addr)
                    .map_err(|msg| ConfigError::invalid(file, &at, msg))?,
            ],
        };
        for addr in addrs {
            let label = match dynamic {
                true => format!("{}@{addr}", s.name),
                false => s.name.clone(),
            };
            servers.push(Server {
                name: s.name.clone(),
                name_value: name_value(&label)?,
                label,
                sid: s
                    .route
                    .clone()
                    .unwrap_or_else(|| sticky::sid_for_addr(addr)),
                configured_addr: s.addr.clone(),
                addr,
                backend: Backend {
                    addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                    weight: usize::try_from(s.weight).unwrap_or(usize::MAX),
                    ext: http::Extensions::new(),
                },
                backup: s.backup,
                down: s.down,
                drain: s.drain,
                resolved: dynamic,
                max_conns: usize::try_from(s.max_conns).unwrap_or(usize::MAX),
                inflight: Arc::default(),
                passive: PassiveHealth::new(s.max_fails, s.fail_timeout),
                active_ok: Arc::default(),
            });
        }
    }
    // As in nginx, the only server of an upstream is never taken out by failed
    // requests: the next request tries it again (and gets its 502) rather than finding
    // no server at all (a 503 for `fail_timeout`).
    if let [only] = servers.as_mut_slice() {
        only.passive = PassiveHealth::new(0, only.passive.fail_timeout());
    }
    Ok(servers)
}

/// The first address of `host_port`: one configured server is one backend (nginx
/// would add every address), and the others are named in a warning.
fn first_address(dns: &dyn Resolve, host_port: &str) -> Result<SocketAddr, String> {
    let found = dns.resolve(host_port)?;
    let (first, rest) = found
        .split_first()
        .ok_or_else(|| format!("host not found in upstream \"{host_port}\""))?;
    if !rest.is_empty() {
        let others: Vec<String> = rest.iter().map(SocketAddr::to_string).collect();
        warn!(
            "\"{host_port}\" resolves to several addresses; using {first}, not {}",
            others.join(", ")
        );
    }
    Ok(*first)
}

/// The primary or backup tier: a health view of its servers and the pool's selector.
/// The selector sees every server of the tier in config order, `down` ones included
/// (never eligible), so that marking a server down moves no other hashed key, as in
/// nginx.
fn build_tier(
    servers: &[Server],
    balance: &Balance,
    backup: bool,
    registry: &Arc<HealthRegistry>,
) -> Result<Tier, String> {
    let members: Box<[usize]> = (0..servers.len())
        .filter(|&i| servers[i].backup == backup)
        .collect();
    let algorithm = match balance {
        Balance::RoundRobin => Algorithm::RoundRobin,
        Balance::LeastConn => Algorithm::LeastConn,
        Balance::IpHash => Algorithm::IpHash,
        Balance::Hash {
            consistent: false, ..
        } => Algorithm::Hash,
        Balance::Hash {
            consistent: true, ..
        } => Algorithm::Consistent,
    };
    let described: Vec<Member> = members
        .iter()
        .map(|&i| Member {
            weight: u32::try_from(servers[i].backend.weight).unwrap_or(u32::MAX),
            configured_addr: servers[i].configured_addr.clone(),
            inflight: Arc::clone(&servers[i].inflight),
        })
        .collect();
    let live: BTreeSet<Backend> = members
        .iter()
        .map(|&i| &servers[i])
        .filter(|s| !s.down)
        .map(|s| s.backend.clone())
        .collect();
    let view = Backends::new_with_health_registry(Static::new(live), Arc::clone(registry));
    // Static discovery never waits: one poll publishes the servers to the health registry.
    match poll_once(view.update(|_| {})) {
        Some(Ok(())) => {}
        other => return Err(format!("cannot publish servers: {other:?}")),
    }
    Ok(Tier {
        view,
        selector: Selector::new(algorithm, &described),
        members,
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
                ..config::Server::new(String::new(), String::new(), Origin::Builtin)
            })
            .collect();
        let conf = config::Upstream::new(servers, Origin::Builtin);
        let env = PoolEnv {
            file: Path::new("test"),
            dns: &super::resolve::SystemResolver,
            discovered: None,
            maps: &[],
            threads: 1,
        };
        match Arc::try_unwrap(Pool::build(&env, name, &conf, None).expect("test pool")) {
            Ok(pool) => pool,
            Err(_) => unreachable!("a new pool has one owner"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::resolve::StaticResolver;

    fn upstream(servers: &[(&str, &str)]) -> config::Upstream {
        let servers = servers
            .iter()
            .enumerate()
            .map(|(i, (name, addr))| {
                let origin = Origin::Json(format!("upstreams.web.servers[{i}]"));
                config::Server::new(name.to_string(), addr.to_string(), origin)
            })
            .collect();
        config::Upstream::new(servers, Origin::Json("upstreams.web".into()))
    }

    fn build(conf: &config::Upstream, dns: &dyn Resolve) -> Result<Arc<Pool>, String> {
        let env = PoolEnv {
            file: Path::new("t.json"),
            dns,
            discovered: None,
            maps: &[],
            threads: 1,
        };
        Pool::build(&env, "web", conf, None).map_err(|e| e.to_string())
    }

    fn refused(conf: &config::Upstream, dns: &dyn Resolve) -> String {
        build(conf, dns).err().expect("the upstream is refused")
    }

    #[test]
    fn names_resolve_through_the_given_resolver() {
        let mut dns = StaticResolver::default();
        dns.names
            .insert("app1:80".into(), vec!["10.1.0.1:80".parse().unwrap()]);
        let pool = build(&upstream(&[("app1", "app1:80")]), &dns).unwrap();
        assert_eq!(pool.servers[0].addr, "10.1.0.1:80".parse().unwrap());
        assert_eq!(
            refused(&upstream(&[("app2", "app2:80")]), &dns),
            "upstreams.web.servers[0].addr: host not found in upstream \"app2:80\" in t.json"
        );
    }

    #[test]
    fn weight_zero_names_the_field() {
        let mut conf = upstream(&[("a", "127.0.0.1:9001")]);
        conf.servers[0].weight = 0;
        assert_eq!(
            refused(&conf, &StaticResolver::default()),
            "upstreams.web.servers[0].weight: must be at least 1 in t.json"
        );
    }

    #[test]
    fn duplicate_server_names_are_refused() {
        let conf = upstream(&[("a", "127.0.0.1:9001"), ("a", "127.0.0.1:9002")]);
        assert_eq!(
            refused(&conf, &StaticResolver::default()),
            "upstreams.web.servers[1].name: duplicate server name \"a\" in upstream \"web\" in t.json"
        );
    }

    #[test]
    fn one_address_twice_is_two_servers_as_in_nginx() {
        let conf = upstream(&[("a", "127.0.0.1:9001"), ("b", "127.0.0.1:9001")]);
        let pool = build(&conf, &StaticResolver::default()).unwrap();
        assert_eq!(pool.servers.len(), 2);
        let picks: Vec<usize> = (0..4).filter_map(|_| pool.select(b"", |_| true)).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn backup_servers_need_a_round_robin_or_least_conn_pool() {
        let mut conf = upstream(&[("a", "127.0.0.1:9001"), ("b", "127.0.0.1:9002")]);
        conf.servers[1].backup = true;
        conf.balance = Balance::IpHash;
        assert_eq!(
            refused(&conf, &StaticResolver::default()),
            "upstreams.web.servers[1].backup: hash and ip_hash balancing do not support backup servers in t.json"
        );
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(check_host_port("app1:80").is_ok());
        assert!(check_host_port("[::1]:80").is_ok());
        assert!(check_host_port("app1").is_err());
        assert!(check_host_port("app1:0").is_err());
        assert!(check_host_port("::1:80").is_err());
        assert!(check_host_port(":80").is_err());
    }
}
