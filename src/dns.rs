//! The background service that looks `resolve` names up again while running: each name
//! at its own time (its TTL, `valid=`, or sooner after a failure), new addresses checked
//! before they take requests, and a runtime rebuilt and swapped in when the addresses
//! requests go to change. Requests in flight finish on the runtime they started with.

use crate::lifecycle::reload::forget_removed_servers;
use crate::runtime::{CompileEnv, Runtime};
use crate::state::{Generation, Shared};
use crate::upstream::check;
use crate::upstream::discovery::{self, Answer, Name, NameKey};
use crate::upstream::resolve::Remembered;
use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use log::{error, info};
use pingora::lb::Backend;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// With no name due, the service still looks at the config this often.
const IDLE: Duration = Duration::from_secs(60);

pub struct DnsService {
    shared: Arc<Shared>,
}

impl DnsService {
    pub fn new(shared: Arc<Shared>) -> Self {
        DnsService { shared }
    }
}

/// The outcome of one name's lookup and of the checks of its new addresses.
struct Done {
    name: Name,
    answer: Answer,
    /// Found addresses that may take requests now.
    ready: Vec<SocketAddr>,
}

#[async_trait]
impl BackgroundService for DnsService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Done>();
        let mut resolvers: HashMap<String, Arc<TokioResolver>> = HashMap::new();
        let mut busy: HashSet<NameKey> = HashSet::new();
        loop {
            let reloaded = self.shared.reloaded.notified();
            let config = Arc::clone(&self.shared.current.load().config);
            let now = Instant::now();
            let mut wake = now + IDLE;
            for name in discovery::names(&config) {
                if busy.contains(&name.key) {
                    continue;
                }
                let due = self.shared.discovery.next(&name.key).unwrap_or(now);
                if due > now {
                    wake = wake.min(due);
                    continue;
                }
                let resolver = match resolver_for(&mut resolvers, &name) {
                    Ok(r) => r,
                    Err(e) => {
                        let answer = Answer::Failed(e);
                        let r = &name.resolver;
                        self.shared
                            .discovery
                            .record(&name.key, &answer, &[], r, None, now);
                        continue;
                    }
                };
                let known = self
                    .shared
                    .discovery
                    .addresses(&name.key.upstream, &name.key.host_port)
                    .unwrap_or_default();
                busy.insert(name.key.clone());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let done = look_up(name, resolver, known).await;
                    let _ = tx.send(done);
                });
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = reloaded => {}
                _ = tokio::time::sleep_until(wake) => {}
                Some(done) = rx.recv() => {
                    busy.remove(&done.name.key);
                    let recheck = done.name.check.as_ref().map(|c| c.interval);
                    let changed = self.shared.discovery.record(
                        &done.name.key,
                        &done.answer,
                        &done.ready,
                        &done.name.resolver,
                        recheck,
                        Instant::now(),
                    );
                    if changed {
                        let shared = Arc::clone(&self.shared);
                        if let Err(e) = tokio::task::spawn_blocking(move || rebuild(&shared)).await {
                            error!("rebuilding for new addresses failed to run: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// One resolver per distinct `resolver` setting, kept while the process runs.
fn resolver_for(
    resolvers: &mut HashMap<String, Arc<TokioResolver>>,
    name: &Name,
) -> Result<Arc<TokioResolver>, String> {
    let r = &name.resolver;
    let id = format!(
        "{:?}/{:?}/{}/{}/{:?}",
        r.servers, r.valid, r.ipv4, r.ipv6, r.timeout
    );
    if let Some(found) = resolvers.get(&id) {
        return Ok(Arc::clone(found));
    }
    let built = Arc::new(discovery::build_resolver(r)?);
    resolvers.insert(id, Arc::clone(&built));
    Ok(built)
}

/// Looks `name` up; with a health check, each address not `known` yet must pass it once.
async fn look_up(name: Name, resolver: Arc<TokioResolver>, known: Vec<SocketAddr>) -> Done {
    let answer = match discovery::split(&name.key.host_port) {
        Some((host, port)) => discovery::lookup(&resolver, host, port, name.resolver.timeout).await,
        None => Answer::Failed("not a host:port address".into()),
    };
    let found = match &answer {
        Answer::Found { addrs, .. } => addrs.clone(),
        _ => Vec::new(),
    };
    let new: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| !known.contains(a))
        .collect();
    let ready = match (&name.check, new.is_empty()) {
        (None, _) | (_, true) => new,
        (Some(hc), false) => {
            let probe: Arc<dyn pingora::lb::health_check::HealthCheck + Send + Sync> =
                Arc::from(check::probe(&name.key.upstream, hc));
            let mut checks = tokio::task::JoinSet::new();
            for addr in new {
                let probe = Arc::clone(&probe);
                // A check that hangs past its own timeout fails.
                let limit = hc.timeout + Duration::from_secs(1);
                checks.spawn(async move {
                    let backend = Backend {
                        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                        weight: 1,
                        ext: http::Extensions::new(),
                    };
                    let ok = tokio::time::timeout(limit, probe.check(&backend)).await;
                    (addr, matches!(ok, Ok(Ok(()))))
                });
            }
            let mut passed = Vec::new();
            while let Some(Ok((addr, ok))) = checks.join_next().await {
                if ok {
                    passed.push(addr);
                }
            }
            passed
        }
    };
    Done {
        name,
        answer,
        ready,
    }
}

/// Compiles the configuration in force again with the new addresses and swaps it in.
/// Other names keep the addresses they were resolved to; pools keep their health state
/// and in-flight counts.
fn rebuild(shared: &Shared) {
    let _swapping = shared
        .swapping
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let old = shared.current.load_full();
    let remembered = Remembered::from_pools(old.runtime.pools.values().map(|p| p.as_ref()));
    let env = CompileEnv {
        dns: &remembered,
        discovered: Some(&shared.discovery),
        sinks: &shared.sinks,
        previous: Some(&old.runtime),
    };
    match Runtime::compile(&old.config, &env) {
        Ok(runtime) => {
            forget_removed_servers(&old.runtime, &runtime);
            shared.current.store(Arc::new(Generation {
                number: old.number,
                config: Arc::clone(&old.config),
                runtime,
            }));
            shared.reloaded.notify_waiters();
            info!("upstream servers updated from DNS");
        }
        Err(e) => error!("cannot apply new addresses, the running configuration stays: {e}"),
    }
}
