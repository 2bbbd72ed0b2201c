//! Names of `resolve` servers, looked up again while running: the last known addresses of
//! each name (which pools are built from), the lookup itself (hickory-resolver), and when
//! to look again. An answer that fails, times out, is empty or NXDOMAIN never empties a
//! name: its last known addresses stay, with the error kept for `/status`.

use crate::config::{Config, HealthCheck, Origin, Resolver as ResolverConf};
use crate::observe::metrics::METRICS;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use log::{info, warn};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Never looked up more often than this, whatever the TTL says.
pub const FLOOR: Duration = Duration::from_secs(1);
/// Failed lookups are retried after 1, 2, 4 ... seconds, at most this long apart.
const RETRY_CAP: Duration = Duration::from_secs(30);

/// One `resolve` name of one upstream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameKey {
    pub upstream: String,
    /// `host:port` as configured.
    pub host_port: String,
}

/// What is known of one name.
#[derive(Debug, Clone, Serialize)]
pub struct NameState {
    /// The addresses requests go to, sorted.
    pub addresses: Vec<SocketAddr>,
    /// New addresses that have not passed a health check yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<SocketAddr>,
    /// When the last good answer came, in seconds since the Unix epoch.
    pub last_answer: Option<u64>,
    /// The TTL of the last good answer, in seconds.
    pub ttl: Option<u64>,
    /// The last lookup's failure, if it failed (cleared by a good answer).
    pub last_error: Option<String>,
    /// Failed lookups in a row.
    pub failures: u32,
    #[serde(skip)]
    pub next: Option<Instant>,
}

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Usable addresses (sorted, deduplicated), with the smallest TTL of the records.
    Found {
        addrs: Vec<SocketAddr>,
        ttl: Duration,
    },
    /// The name exists but has no usable address (no records, or only ones of a family
    /// this system cannot reach).
    Empty(String),
    NxDomain,
    /// No answer: unreachable name server, timeout, SERVFAIL...
    Failed(String),
}

impl Answer {
    /// The `result` label of `pinlb_dns_resolutions_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Answer::Found { .. } => "ok",
            Answer::Empty(_) => "empty",
            Answer::NxDomain => "nxdomain",
            Answer::Failed(_) => "error",
        }
    }
}

/// A `resolve` name of a config, with what looking it up needs.
#[derive(Debug, Clone)]
pub struct Name {
    pub key: NameKey,
    /// The upstream's resolver, or the config's, or the system's.
    pub resolver: ResolverConf,
    /// The upstream's health check: new addresses pass it before they take requests.
    pub check: Option<HealthCheck>,
}

/// Every `resolve` name of `config` (not IP addresses, which are taken as they are).
pub fn names(config: &Config) -> Vec<Name> {
    let mut out = Vec::new();
    for (upstream, u) in &config.upstreams {
        for s in u.servers.iter().filter(|s| s.resolve) {
            if s.addr.parse::<SocketAddr>().is_ok() {
                continue;
            }
            let resolver = u
                .resolver
                .clone()
                .or_else(|| config.resolver.clone())
                .unwrap_or_else(|| ResolverConf::system(Origin::Builtin));
            out.push(Name {
                key: NameKey {
                    upstream: upstream.clone(),
                    host_port: s.addr.clone(),
                },
                resolver,
                check: u.health_check.clone(),
            });
        }
    }
    out
}

/// How long pinlb waits for names at start and on reload before it serves without them
/// (their lookups go on in the background).
const FIRST_LOOKUP_WAIT: Duration = Duration::from_secs(5);

/// The last known addresses of every `resolve` name; kept for the life of the process.
#[derive(Default)]
pub struct Discovery {
    names: Mutex<BTreeMap<NameKey, NameState>>,
}

impl Discovery {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NameKey, NameState>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The addresses requests may go to; `None` for a name never looked up.
    pub fn addresses(&self, upstream: &str, host_port: &str) -> Option<Vec<SocketAddr>> {
        let key = NameKey {
            upstream: upstream.to_string(),
            host_port: host_port.to_string(),
        };
        self.lock().get(&key).map(|s| s.addresses.clone())
    }

    /// Every name and what is known of it, for `/status`.
    pub fn snapshot(&self) -> Vec<(NameKey, NameState)> {
        self.lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    /// When `key` is due for its next lookup; `None` if never looked up.
    pub fn next(&self, key: &NameKey) -> Option<Instant> {
        self.lock().get(key).and_then(|s| s.next)
    }

    /// Whether `key` has been looked up.
    pub fn knows(&self, key: &NameKey) -> bool {
        self.lock().contains_key(key)
    }

    /// Looks up, once, every `resolve` name of `config` never looked up before, all at
    /// once, waiting at most a few seconds: at start and on reload, so that the first
    /// requests find servers. Blocks; names that fail are retried in the background.
    pub fn resolve_new_names(&self, config: &Config) {
        let new: Vec<Name> = names(config)
            .into_iter()
            .filter(|n| !self.knows(&n.key))
            .collect();
        if new.is_empty() {
            return;
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                warn!(
                    "cannot look up resolve names now ({e}); they are looked up in the background"
                );
                return;
            }
        };
        runtime.block_on(async {
            let mut lookups = tokio::task::JoinSet::new();
            for name in new {
                lookups.spawn(async move {
                    let answer = match build_resolver(&name.resolver) {
                        Ok(resolver) => match split(&name.key.host_port) {
                            Some((host, port)) => {
                                let wait = name.resolver.timeout.min(FIRST_LOOKUP_WAIT);
                                lookup(&resolver, host, port, wait).await
                            }
                            None => Answer::Failed("not a host:port address".into()),
                        },
                        Err(e) => Answer::Failed(e),
                    };
                    (name, answer)
                });
            }
            while let Some(done) = lookups.join_next().await {
                if let Ok((name, answer)) = done {
                    // Servers start healthy, as in nginx: no check before the first use.
                    let ready = match &answer {
                        Answer::Found { addrs, .. } => addrs.clone(),
                        _ => Vec::new(),
                    };
                    self.record(
                        &name.key,
                        &answer,
                        &ready,
                        &name.resolver,
                        None,
                        Instant::now(),
                    );
                }
            }
        });
    }

    /// Forgets names no longer configured (after a reload).
    pub fn retain(&self, keep: impl Fn(&NameKey) -> bool) {
        self.lock().retain(|k, _| keep(k));
    }

    /// Records the outcome of a lookup made at `now` and schedules the next one; `ready`
    /// are the found addresses that may take requests (the others wait for a check).
    /// Returns whether the addresses requests go to changed.
    pub fn record(
        &self,
        key: &NameKey,
        answer: &Answer,
        ready: &[SocketAddr],
        conf: &ResolverConf,
        recheck: Option<Duration>,
        now: Instant,
    ) -> bool {
        METRICS.dns_resolution(&key.upstream, &key.host_port, answer.label());
        let mut names = self.lock();
        let state = names.entry(key.clone()).or_insert_with(|| NameState {
            addresses: Vec::new(),
            pending: Vec::new(),
            last_answer: None,
            ttl: None,
            last_error: None,
            failures: 0,
            next: None,
        });
        let (interval, changed) = match answer {
            Answer::Found { addrs, ttl } => {
                let keep = |a: &SocketAddr| ready.contains(a) || state.addresses.contains(a);
                let mut serving: Vec<SocketAddr> = addrs.iter().copied().filter(keep).collect();
                serving.sort();
                let pending: Vec<SocketAddr> = addrs.iter().copied().filter(|a| !keep(a)).collect();
                let changed = serving != state.addresses;
                if changed {
                    info!(
                        "upstream \"{}\": \"{}\" now has {} address(es): {}",
                        key.upstream,
                        key.host_port,
                        serving.len(),
                        list(&serving)
                    );
                }
                if !pending.is_empty() && pending != state.pending {
                    info!(
                        "upstream \"{}\": \"{}\": {} waits for a passing health check",
                        key.upstream,
                        key.host_port,
                        list(&pending)
                    );
                }
                state.addresses = serving;
                state.last_answer = Some(unix_now());
                state.ttl = Some(ttl.as_secs());
                state.last_error = None;
                state.failures = 0;
                let interval = next_interval(conf, *ttl, !pending.is_empty(), recheck);
                state.pending = pending;
                (interval, changed)
            }
            failed => {
                let why = match failed {
                    Answer::NxDomain => "host not found (NXDOMAIN)".to_string(),
                    Answer::Empty(why) | Answer::Failed(why) => why.clone(),
                    Answer::Found { .. } => String::new(),
                };
                state.failures = state.failures.saturating_add(1);
                let kept = match state.addresses.is_empty() {
                    true => "no address known yet, will retry".to_string(),
                    false => format!("keeping {}", list(&state.addresses)),
                };
                warn!(
                    "upstream \"{}\": \"{}\" could not be resolved ({why}); {kept}",
                    key.upstream, key.host_port
                );
                state.last_error = Some(why);
                (retry_interval(state.failures), false)
            }
        };
        state.next = Some(now + interval);
        changed
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    all.join(", ")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When to look a name up again after a good answer: at its TTL, or every `valid=`
/// instead when set (nginx's meaning), never sooner than [`FLOOR`]; sooner while new
/// addresses wait for a health check (`recheck`, the check's interval).
pub fn next_interval(
    conf: &ResolverConf,
    ttl: Duration,
    pending: bool,
    recheck: Option<Duration>,
) -> Duration {
    let mut interval = conf.valid.unwrap_or(ttl);
    if let (true, Some(recheck)) = (pending, recheck) {
        interval = interval.min(recheck);
    }
    interval.max(FLOOR)
}

/// After `failures` failed lookups in a row: 1, 2, 4 ... seconds, at most [`RETRY_CAP`].
pub fn retry_interval(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(5);
    Duration::from_secs(secs).min(RETRY_CAP)
}

/// A resolver for `conf`: its name servers over UDP (TCP for truncated answers), or the
/// system's (`/etc/resolv.conf`, with its search domains) when it names none. No cache:
/// every lookup asks, so that `valid=` shorter than a TTL sees changes.
pub fn build_resolver(conf: &ResolverConf) -> Result<TokioResolver, String> {
    let provider = hickory_resolver::name_server::TokioConnectionProvider::default();
    let mut builder = match conf.servers.is_empty() {
        true => TokioResolver::builder(provider)
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?,
        false => {
            let mut rc = ResolverConfig::new();
            for &addr in &conf.servers {
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            let mut b = TokioResolver::builder_with_config(rc, provider);
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        }
    };
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.timeout = conf.timeout;
    opts.attempts = 1;
    opts.ip_strategy = match (conf.ipv4, conf.ipv6) {
        (true, false) => LookupIpStrategy::Ipv4Only,
        (false, true) => LookupIpStrategy::Ipv6Only,
        _ => LookupIpStrategy::Ipv4AndIpv6,
    };
    Ok(builder.build())
}

/// Looks `host` up and gives every usable address `port`. Bounded by the resolver's
/// timeout, whatever the name servers do.
pub async fn lookup(resolver: &TokioResolver, host: &str, port: u16, timeout: Duration) -> Answer {
    let found = match tokio::time::timeout(timeout, resolver.lookup_ip(host)).await {
        Err(_) => return Answer::Failed(format!("timed out after {timeout:?}")),
        Ok(Err(e)) => return failure(&e),
        Ok(Ok(found)) => found,
    };
    let ttl = found
        .as_lookup()
        .records()
        .iter()
        .map(|r| r.ttl())
        .min()
        .map_or(FLOOR, |secs| Duration::from_secs(u64::from(secs)));
    let ips: Vec<IpAddr> = found.iter().collect();
    let (addrs, dropped) = usable(&ips, port, family_reachable);
    if dropped > 0 {
        warn!(
            "\"{host}\": {dropped} address(es) of a family this system cannot reach are left out"
        );
    }
    match addrs.is_empty() {
        true => Answer::Empty(match dropped {
            0 => "no address in the answer".to_string(),
            _ => "no address of a family this system can reach".to_string(),
        }),
        false => Answer::Found { addrs, ttl },
    }
}

fn failure(e: &ResolveError) -> Answer {
    use hickory_resolver::proto::ProtoErrorKind;
    use hickory_resolver::proto::op::ResponseCode;
    // hickory reports SERVFAIL and REFUSED as "no records" too: only NOERROR without
    // records is an empty answer, the others are failures.
    let code = match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => Some(*response_code),
        _ => None,
    };
    if e.is_nx_domain() {
        Answer::NxDomain
    } else if e.is_no_records_found() && matches!(code, None | Some(ResponseCode::NoError)) {
        Answer::Empty("no address records".to_string())
    } else if let Some(code) = code {
        Answer::Failed(format!("the name server answered {code}"))
    } else {
        Answer::Failed(e.to_string())
    }
}

/// The addresses of `ips` on `port`, sorted and deduplicated, without those of a family
/// `reachable` rejects; and how many were left out.
pub fn usable(
    ips: &[IpAddr],
    port: u16,
    reachable: impl Fn(&IpAddr) -> bool,
) -> (Vec<SocketAddr>, usize) {
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(ips.len());
    let mut dropped = 0;
    let (mut v4, mut v6) = (None, None);
    for ip in ips {
        let ok = match ip {
            IpAddr::V4(_) => *v4.get_or_insert_with(|| reachable(ip)),
            IpAddr::V6(_) => *v6.get_or_insert_with(|| reachable(ip)),
        };
        match ok {
            true => addrs.push(SocketAddr::new(*ip, port)),
            false => dropped += 1,
        }
    }
    addrs.sort();
    addrs.dedup();
    (addrs, dropped)
}

/// Whether this system has a route to `ip`'s family: a UDP socket of that family
/// connects to it (no packet is sent).
fn family_reachable(ip: &IpAddr) -> bool {
    let any: SocketAddr = match ip {
        IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    UdpSocket::bind(any)
        .and_then(|s| s.connect(SocketAddr::new(*ip, 9)))
        .is_ok()
}

/// Splits `host:port` (`[v6]:port` too) as configured.
pub fn split(host_port: &str) -> Option<(&str, u16)> {
    let (host, port) = host_port.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests;
