//! Config reload in place (SIGHUP, `pinlb -s reload`): read and check the file again, build
//! the new runtime next to the old one, and swap it atomically. Requests in flight finish
//! with the runtime they started with; an invalid file changes nothing.

use crate::config;
use crate::observe::metrics::METRICS;
use crate::runtime::{CompileEnv, Runtime};
use crate::state::{Generation, ReloadReport, Shared};
use crate::upstream::discovery;
use crate::upstream::resolve::SystemResolver;
use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{SignalKind, signal};

/// Reloads on every SIGHUP until shutdown.
pub struct ReloadService {
    shared: Arc<Shared>,
}

impl ReloadService {
    pub fn new(shared: Arc<Shared>) -> Self {
        ReloadService { shared }
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot listen for SIGHUP, reloads are disabled: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangups.recv() => {
                    let shared = Arc::clone(&self.shared);
                    // Reading files and resolving host names block.
                    if let Err(e) = tokio::task::spawn_blocking(move || reload(&shared)).await {
                        error!("reload failed to run: {e}");
                    }
                }
            }
        }
    }
}

/// Reloads the config file; the outcome is logged, counted and kept for `/status`.
pub fn reload(shared: &Shared) -> ReloadReport {
    let file = shared.config_path.display();
    info!("reloading {file}");
    let _swapping = shared
        .swapping
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let old = shared.current.load_full();
    let outcome = config::load(&shared.config_path).and_then(|config| {
        // New `resolve` names are looked up now; known ones keep their addresses.
        shared.discovery.resolve_new_names(&config);
        let env = CompileEnv {
            dns: &SystemResolver,
            discovered: Some(&shared.discovery),
            sinks: &shared.sinks,
            previous: Some(&old.runtime),
        };
        let runtime = Runtime::compile(&config, &env)?;
        Ok((config, runtime))
    });
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let report = match outcome {
        Err(e) => {
            error!("reload of {file} failed, the running configuration stays: {e}");
            METRICS.reload(false);
            ReloadReport {
                generation: old.number,
                ok: false,
                error: Some(e.to_string()),
                pending: Vec::new(),
                at,
            }
        }
        Ok((config, runtime)) => {
            let pending = pending_changes(&shared.started_with, &config);
            for change in &pending {
                warn!("{change}: this takes effect on the next binary upgrade (pinlb -s upgrade)");
            }
            forget_removed_servers(&old.runtime, &runtime);
            let names = discovery::names(&config);
            shared
                .discovery
                .retain(|k| names.iter().any(|n| &n.key == k));
            // Reloads run one at a time (one SIGHUP handler), so the number cannot race.
            let generation = old.number + 1;
            shared.certs.replace_files(runtime.tls.clone());
            shared.acme.configure(runtime.acme.clone());
            shared.current.store(Arc::new(Generation {
                number: generation,
                config: Arc::new(config),
                runtime,
            }));
            shared.reloaded.notify_waiters();
            METRICS.reload(true);
            info!("reload of {file} done: configuration generation {generation}");
            ReloadReport {
                generation,
                ok: true,
                error: None,
                pending,
                at,
            }
        }
    };
    *shared
        .last_reload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
    report
}

/// What a reload cannot apply in place: sockets and threads belong to the process.
fn pending_changes(running: &config::Config, new: &config::Config) -> Vec<String> {
    let bound: BTreeSet<_> = running.listeners.iter().map(|l| l.addr).collect();
    let wanted: BTreeSet<_> = new.listeners.iter().map(|l| l.addr).collect();
    let mut pending = Vec::new();
    for addr in wanted.difference(&bound) {
        pending.push(format!("new listener {addr}"));
    }
    for addr in bound.difference(&wanted) {
        pending.push(format!("removed listener {addr} (still accepting)"));
    }
    for l in &new.listeners {
        let Some(running) = running.listeners.iter().find(|r| r.addr == l.addr) else {
            continue;
        };
        let handshake = |tls: &Option<config::ListenerTls>| {
            tls.clone().map(|mut t| {
                t.certificates.clear();
                t.origin = config::Origin::Builtin;
                t
            })
        };
        if handshake(&running.tls) != handshake(&l.tls) || running.http2 != l.http2 {
            pending.push(format!(
                "changed TLS or HTTP/2 settings of listener {} (certificates are reloaded)",
                l.addr
            ));
        }
    }
    if running.admin != new.admin {
        pending.push("changed admin listener".to_string());
    }
    if running.threads != new.threads {
        pending.push(format!("threads {} -> {}", running.threads, new.threads));
    }
    pending
}

/// Forgets the metric series of servers (addresses) the new runtime no longer has.
pub fn forget_removed_servers(old: &Runtime, new: &Runtime) {
    for (name, pool) in &old.pools {
        for server in &pool.servers {
            let kept = new
                .pools
                .get(name)
                .is_some_and(|p| p.servers.iter().any(|s| s.label == server.label));
            if !kept {
                METRICS.forget_server(name, &server.label);
            }
        }
    }
}
