//! The state shared by the proxy, the admin listener, the health checks and the
//! lifecycle (reload, drain, upgrade) of one pinlb process.

use crate::config::Config;
use crate::observe::access_log::Sinks;
use crate::runtime::Runtime;
use crate::tls::CertStore;
use crate::tls::acme::Acme;
use crate::upstream::discovery::Discovery;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One loaded configuration: what the file says and what it was compiled into, swapped
/// together so that no reader sees one without the other.
pub struct Generation {
    /// 1 for the config pinlb started with, +1 for every successful reload.
    pub number: u64,
    pub config: Arc<Config>,
    pub runtime: Runtime,
}

pub struct Shared {
    /// The file `-c` named; reloads read it again.
    pub config_path: PathBuf,
    /// The config pinlb started with: its listeners and threads are the ones in use
    /// until the next binary upgrade, whatever reloads say.
    pub started_with: Arc<Config>,
    /// The configuration in force.
    pub current: ArcSwap<Generation>,
    /// The certificates TLS listeners answer with: the current generation's files, and
    /// any installed at run time.
    pub certs: Arc<CertStore>,
    /// Certificates from ACME issuers, and the HTTP-01 answers of their orders.
    pub acme: Arc<Acme>,
    /// Access log destinations, kept open across reloads.
    pub sinks: Sinks,
    /// Wakes the health checks and the name lookups when a reload (or new addresses of a
    /// `resolve` name) swapped the runtime.
    pub reloaded: tokio::sync::Notify,
    /// The last known addresses of `resolve` names, kept across reloads.
    pub discovery: Discovery,
    /// Held while a new runtime is compiled and swapped in (a reload, or new addresses of
    /// a `resolve` name), so that neither undoes the other.
    pub swapping: Mutex<()>,
    pub last_reload: Mutex<Option<ReloadReport>>,
    /// Every listener accepts connections and signals are handled (`lifecycle::ready`);
    /// until then `/healthz` answers 503.
    pub ready: AtomicBool,
    /// pinlb's signal handlers are installed: before that, a SIGTERM or SIGQUIT would
    /// end the process with the default action.
    pub signals_handled: AtomicBool,
    /// SIGTERM received: `/healthz` answers 503.
    pub draining: AtomicBool,
    /// Sockets handed to a new binary or shutting down: every response closes its
    /// connection, so that keep-alive clients reconnect (to the new process).
    pub winding_down: AtomicBool,
    /// Requests being served, for the drain to know when to exit.
    pub requests_in_flight: Arc<AtomicUsize>,
    pub started: SystemTime,
}

/// The outcome of the last reload, for `/status` and `pinlb -s reload`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// The generation in force after this reload.
    pub generation: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Changes that need a binary upgrade (listeners, threads).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

impl Shared {
    pub fn new(
        config_path: PathBuf,
        config: Config,
        runtime: Runtime,
        sinks: Sinks,
        discovery: Discovery,
    ) -> Arc<Shared> {
        let config = Arc::new(config);
        let certs = CertStore::new(runtime.tls.clone());
        let acme = Acme::new(Arc::clone(&certs));
        // Stored certificates are served from the first handshake on.
        acme.configure(runtime.acme.clone());
        Arc::new(Shared {
            certs,
            acme,
            config_path,
            started_with: Arc::clone(&config),
            current: ArcSwap::from_pointee(Generation {
                number: 1,
                config,
                runtime,
            }),
            sinks,
            reloaded: tokio::sync::Notify::new(),
            discovery,
            swapping: Mutex::new(()),
            last_reload: Mutex::new(None),
            ready: AtomicBool::new(false),
            signals_handled: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            winding_down: AtomicBool::new(false),
            requests_in_flight: Arc::default(),
            started: SystemTime::now(),
        })
    }
}
