//! The background task that keeps ACME certificates current: it orders each one when
//! it is due (missing, to be renewed, or a retry after a failure), one at a time,
//! stores and installs what it gets, and on failure keeps what is served and backs off.

use super::order::{self, Issued};
use super::plan::CertPlan;
use super::{Acme, now, schedule};
use crate::observe::metrics::METRICS;
use crate::tls::load::pair_from_pem;
use async_trait::async_trait;
use instant_acme::Account;
use log::{info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Nothing due: look again after this long anyway (the clock may have jumped).
const IDLE: Duration = Duration::from_secs(3600);

pub struct AcmeService {
    acme: Arc<Acme>,
}

impl AcmeService {
    pub fn new(acme: Arc<Acme>) -> AcmeService {
        AcmeService { acme }
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Accounts by issuer name and settings, made once per process.
        let mut accounts: HashMap<String, Account> = HashMap::new();
        loop {
            let plans = self.acme.plans.load_full();
            let mut next = now().saturating_add(IDLE.as_secs() as i64);
            for plan in plans.iter() {
                let due = self.due(plan);
                if due <= now() {
                    tokio::select! {
                        _ = self.attempt(plan, &mut accounts) => {}
                        _ = shutdown.changed() => return,
                    }
                    next = next.min(self.due(plan));
                } else {
                    next = next.min(due);
                }
            }
            let wait = Duration::from_secs(u64::try_from(next - now()).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.acme.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl AcmeService {
    /// When `plan` is next due (now if it has no status yet).
    fn due(&self, plan: &CertPlan) -> i64 {
        let status = self
            .acme
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        status
            .get(&plan.alias)
            .and_then(|s| s.next_attempt)
            .unwrap_or_else(now)
    }

    /// One order for `plan`; its outcome recorded in the status and the metrics.
    async fn attempt(&self, plan: &CertPlan, accounts: &mut HashMap<String, Account>) {
        let started = now();
        self.acme
            .update(&plan.alias, |s| s.last_attempt = Some(started));
        let result = self.order(plan, accounts).await;
        let result = result.and_then(|issued| self.keep(plan, issued));
        match result {
            Ok((not_before, not_after)) => {
                let renew = schedule::renew_at(not_before, not_after, plan.issuer.renew_before);
                info!(
                    "{}: certificate issued for {}, valid until {not_after}, renewal at {renew} (Unix time)",
                    plan.alias,
                    plan.identifiers.join(", ")
                );
                self.acme.update(&plan.alias, |s| {
                    s.serving = "issued";
                    s.not_after = Some(not_after);
                    s.renew_at = Some(renew);
                    s.next_attempt = Some(renew);
                    s.last_success = Some(now());
                    s.last_error = None;
                    s.failures = 0;
                });
                METRICS.acme_order(&plan.alias, true, 0);
                METRICS.acme_expiry(&plan.alias, not_after);
            }
            Err(e) => {
                // A failed account (an unreachable directory) is tried afresh next time;
                // one the CA does not know (its data was reset) is made anew.
                accounts.remove(&account_key(plan));
                if e.contains("accountDoesNotExist") {
                    plan.issuer.state.forget_account();
                }
                let mut failures = 0;
                let mut retry = 0;
                self.acme.update(&plan.alias, |s| {
                    s.failures = s.failures.saturating_add(1);
                    failures = s.failures;
                    let wait = schedule::retry_after(s.failures);
                    retry = now().saturating_add(wait.as_secs() as i64);
                    s.next_attempt = Some(retry);
                    s.last_error = Some(e.clone());
                });
                warn!(
                    "{}: order failed ({failures} in a row), the current certificate stays; next attempt in {}s: {e}",
                    plan.alias,
                    retry - now()
                );
                METRICS.acme_order(&plan.alias, false, failures);
            }
        }
    }

    async fn order(
        &self,
        plan: &CertPlan,
        accounts: &mut HashMap<String, Account>,
    ) -> Result<Issued, String> {
        let key = account_key(plan);
        let account = match accounts.get(&key) {
            Some(account) => account.clone(),
            None => {
                let account = order::account(&plan.issuer).await?;
                accounts.insert(key, account.clone());
                account
            }
        };
        order::issue(&account, plan, &self.acme.challenges).await
    }

    /// Checks, stores and installs a new certificate; its validity.
    fn keep(&self, plan: &CertPlan, issued: Issued) -> Result<(i64, i64), String> {
        let here = Path::new("(issued)");
        let loaded = pair_from_pem(issued.chain.as_bytes(), issued.key.as_bytes(), here, here)?;
        // Stored before it is served: what is served survives a restart.
        if let Err(e) = plan.issuer.state.save_certificate(
            &plan.id,
            issued.chain.as_bytes(),
            issued.key.as_bytes(),
        ) {
            warn!(
                "{}: {e}; the certificate is served but will be ordered again after a restart",
                plan.alias
            );
        }
        self.acme
            .certs
            .install(&plan.alias, vec![Arc::clone(&loaded.key)]);
        Ok(loaded.validity)
    }
}

/// Accounts are per issuer and its settings: a reload that changes them makes a new one.
fn account_key(plan: &CertPlan) -> String {
    format!("{}\n{}", plan.issuer.name, plan.issuer.fingerprint)
}
