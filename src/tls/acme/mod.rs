//! Automatic certificates (nginx's `ngx_http_acme_module`): what a config orders
//! ([`plan`]), the HTTP-01 answers ([`challenge`]), the state on disk ([`store`]), the
//! ACME exchange ([`client`], [`order`]), when to renew and retry ([`schedule`]), and
//! the background task that keeps every certificate current ([`service`]). [`Acme`]
//! ties them to the certificate store, and says how each certificate is doing.

pub mod challenge;
pub mod client;
pub mod order;
pub mod plan;
pub mod schedule;
pub mod service;
pub mod store;

use super::load::pair_from_pem;
use super::store::CertStore;
use crate::observe::metrics::METRICS;
use arc_swap::ArcSwap;
use challenge::Challenges;
use log::{info, warn};
use plan::CertPlan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

pub use plan::{alias_of, plans, stand_in};
pub use service::AcmeService;

/// How one certificate is doing, for `/status` (times in seconds since the Unix epoch).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CertStatus {
    pub issuer: String,
    pub identifiers: Vec<String>,
    /// What handshakes get: `stand-in` (self-signed, until the first certificate),
    /// `stored` (read from `state_path` at start or reload) or `issued` (by this
    /// process).
    pub serving: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<i64>,
    /// When the next order is due (a renewal, or a retry after a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed orders in a row; 0 after a success.
    pub failures: u32,
}

/// The ACME state of the process: the certificates ordered by the configuration in
/// force, their status, and the pending HTTP-01 answers.
pub struct Acme {
    pub challenges: Challenges,
    certs: Arc<CertStore>,
    plans: ArcSwap<Vec<Arc<CertPlan>>>,
    status: Mutex<BTreeMap<String, CertStatus>>,
    /// Wakes the service when the plans change.
    wake: tokio::sync::Notify,
}

impl Acme {
    pub fn new(certs: Arc<CertStore>) -> Arc<Acme> {
        Arc::new(Acme {
            challenges: Challenges::default(),
            certs,
            plans: ArcSwap::default(),
            status: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Takes the certificates a (re)loaded configuration orders: stored ones are served
    /// at once, without the network; certificates no longer ordered stop being served.
    pub fn configure(&self, plans: Vec<Arc<CertPlan>>) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.retain(|alias, _| {
            let kept = plans.iter().any(|p| &p.alias == alias);
            if !kept {
                self.certs.remove(alias);
            }
            kept
        });
        for plan in &plans {
            if status.contains_key(&plan.alias) {
                continue;
            }
            let mut entry = CertStatus {
                issuer: plan.issuer.name.clone(),
                identifiers: plan.identifiers.clone(),
                serving: "stand-in",
                ..CertStatus::default()
            };
            match self.load_stored(plan) {
                Some(validity) => {
                    entry.serving = "stored";
                    entry.not_after = Some(validity.1);
                    let at = schedule::renew_at(validity.0, validity.1, plan.issuer.renew_before);
                    entry.renew_at = Some(at);
                    entry.next_attempt = Some(at);
                }
                None => {
                    info!(
                        "{}: no certificate yet, a self-signed one answers until the first is issued",
                        plan.alias
                    );
                    entry.next_attempt = Some(now());
                }
            }
            status.insert(plan.alias.clone(), entry);
        }
        self.plans.store(Arc::new(plans));
        drop(status);
        self.wake.notify_one();
    }

    /// Installs the certificate stored for `plan`, if there is one for exactly its
    /// identifiers; its validity.
    fn load_stored(&self, plan: &CertPlan) -> Option<(i64, i64)> {
        let (chain, key) = plan.issuer.state.certificate(&plan.id)?;
        let (cert_path, key_path) = plan.issuer.state.cert_files(&plan.id)?;
        let loaded = match pair_from_pem(&chain, &key, &cert_path, &key_path) {
            Ok(loaded) => loaded,
            Err(e) => {
                warn!("{}: the stored certificate is not used: {e}", plan.alias);
                return None;
            }
        };
        let mut names = loaded.names.clone();
        let mut wanted = plan.identifiers.clone();
        names.sort();
        wanted.sort();
        if names != wanted {
            info!(
                "{}: the stored certificate is for other names; a new one is ordered",
                plan.alias
            );
            return None;
        }
        self.certs
            .install(&plan.alias, vec![Arc::clone(&loaded.key)]);
        METRICS.acme_expiry(&plan.alias, loaded.validity.1);
        info!(
            "{}: serving the certificate stored in {}",
            plan.alias,
            cert_path.parent().unwrap_or(Path::new("")).display()
        );
        Some(loaded.validity)
    }

    /// The status of every certificate, by alias.
    pub fn status(&self) -> BTreeMap<String, CertStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, alias: &str, f: impl FnOnce(&mut CertStatus)) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = status.get_mut(alias) {
            f(entry);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
