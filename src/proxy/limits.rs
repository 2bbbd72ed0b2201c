//! A route's request limits applied to one request, as nginx's preaccess phase applies
//! them: `limit_req` first (which may make the request wait), then `limit_conn`, whose
//! slots the request holds until it ends. Counted in `pinlb_limit_req_total` and
//! `pinlb_limit_conn_total`, logged with nginx's wording at the configured levels.

use crate::limits::{
    ConnGuard, ConnLimit, ConnRejected, RateVerdict, RejectCause, ReqLimit, acquire_all, check_all,
};
use crate::runtime::RouteLimits;
use crate::variables::RequestInfo;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The longest a request waits for its turn. nginx has no bound but the arithmetic
/// (burst ÷ rate); a delay over this one is answered like a rejection instead, so that no
/// request holds a connection for hours (`rate=1r/m burst=100`).
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// The zero of the limits' millisecond clock.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// What the limits say about a request.
pub enum Verdict {
    /// Go on, holding these `limit_conn` slots until the request ends.
    Pass(Vec<ConnGuard>),
    /// Answer with this status (`limit_req_status`, `limit_conn_status`).
    Reject(u16),
}

/// Applies `limits` to the request `info` describes; waits when `limit_req` delays it.
pub async fn apply(limits: &RouteLimits, info: &RequestInfo<'_>) -> Verdict {
    if !limits.req.is_empty() {
        match check_rate(limits, info) {
            Ok(Duration::ZERO) => {}
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(status) => return Verdict::Reject(status),
        }
    }
    if limits.conn.is_empty() {
        return Verdict::Pass(Vec::new());
    }
    acquire(limits, info)
}

/// The `limit_req`s: how long to wait, or the status to answer with.
fn check_rate(limits: &RouteLimits, info: &RequestInfo<'_>) -> Result<Duration, u16> {
    let mut keys = Vec::with_capacity(16 * limits.req.len());
    let mut ends = Vec::with_capacity(limits.req.len());
    for rule in &limits.req {
        rule.zone.key.expand(info, &mut keys);
        ends.push(keys.len());
    }
    let key = |i: usize| &keys[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    let checks: Vec<ReqLimit<'_>> = (limits.req.iter().enumerate())
        .map(|(i, rule)| ReqLimit {
            zone: &rule.zone.buckets,
            key: key(i),
            burst: rule.burst,
            delay: rule.delay,
        })
        .collect();
    let now = u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX);
    let verdict = check_all(&checks, now);
    let dry = limits.req_dry_run;
    let applied = |i: &usize| !key(*i).is_empty();
    match verdict {
        RateVerdict::Skipped => Ok(Duration::ZERO),
        RateVerdict::Pass => {
            for i in (0..checks.len()).filter(applied) {
                limits.req[i].zone.counts.passed.inc();
            }
            Ok(Duration::ZERO)
        }
        RateVerdict::Delay {
            delay,
            excess,
            limit,
        } => {
            for i in (0..checks.len()).filter(|i| applied(i) && *i != limit) {
                limits.req[i].zone.counts.passed.inc();
            }
            let zone = &limits.req[limit].zone;
            if delay > MAX_DELAY && !dry {
                zone.counts.rejected.inc();
                log::log!(
                    limits.req_log_level.level(),
                    "limiting requests, excess: {} by zone \"{}\", a delay of {} s is over \
                     pinlb's bound of {} s, {}",
                    milli(excess),
                    zone.name,
                    delay.as_secs(),
                    MAX_DELAY.as_secs(),
                    client(info)
                );
                return Err(limits.req_status);
            }
            let counter = if dry {
                &zone.counts.delayed_dry_run
            } else {
                &zone.counts.delayed
            };
            counter.inc();
            log::log!(
                limits.req_log_level.lower(),
                "delaying request{}, excess: {}, by zone \"{}\", {}",
                if dry { ", dry run" } else { "" },
                milli(excess),
                zone.name,
                client(info)
            );
            Ok(if dry { Duration::ZERO } else { delay })
        }
        RateVerdict::Reject {
            excess,
            limit,
            cause,
        } => {
            let zone = &limits.req[limit].zone;
            let counter = if dry {
                &zone.counts.rejected_dry_run
            } else {
                &zone.counts.rejected
            };
            counter.inc();
            match cause {
                RejectCause::Excess => log::log!(
                    limits.req_log_level.level(),
                    "limiting requests{}, excess: {} by zone \"{}\", {}",
                    if dry { ", dry run" } else { "" },
                    milli(excess),
                    zone.name,
                    client(info)
                ),
                RejectCause::NoMemory => log::error!(
                    "could not allocate node in limit_req zone \"{}\", {}",
                    zone.name,
                    client(info)
                ),
            }
            if dry {
                Ok(Duration::ZERO)
            } else {
                Err(limits.req_status)
            }
        }
    }
}

/// The `limit_conn`s: the slots taken, or the status to answer with.
fn acquire(limits: &RouteLimits, info: &RequestInfo<'_>) -> Verdict {
    let mut keys = Vec::with_capacity(16 * limits.conn.len());
    let mut ends = Vec::with_capacity(limits.conn.len());
    for rule in &limits.conn {
        rule.zone.key.expand(info, &mut keys);
        ends.push(keys.len());
    }
    let key = |i: usize| &keys[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    let slots: Vec<ConnLimit<'_>> = (limits.conn.iter().enumerate())
        .map(|(i, rule)| ConnLimit {
            zone: &rule.zone.in_progress,
            key: key(i),
            limit: rule.limit,
        })
        .collect();
    match acquire_all(&slots) {
        Ok(guards) => {
            for i in (0..slots.len()).filter(|&i| !key(i).is_empty()) {
                limits.conn[i].zone.counts.passed.inc();
            }
            Verdict::Pass(guards)
        }
        Err((n, why)) => {
            let zone = &limits.conn[n].zone;
            let dry = limits.conn_dry_run;
            let counter = if dry {
                &zone.counts.rejected_dry_run
            } else {
                &zone.counts.rejected
            };
            counter.inc();
            match why {
                ConnRejected::Limited => log::log!(
                    limits.conn_log_level.level(),
                    "limiting connections{} by zone \"{}\", {}",
                    if dry { ", dry run" } else { "" },
                    zone.name,
                    client(info)
                ),
                ConnRejected::NoMemory => log::error!(
                    "could not allocate node in limit_conn zone \"{}\", {}",
                    zone.name,
                    client(info)
                ),
            }
            // A dry run lets the request through without holding any slot, as nginx does.
            if dry {
                Verdict::Pass(Vec::new())
            } else {
                Verdict::Reject(limits.conn_status)
            }
        }
    }
}

/// An excess in milli-requests as nginx prints it: `1.500`.
fn milli(excess: u64) -> String {
    format!("{}.{:03}", excess / 1000, excess % 1000)
}

/// The end of nginx's limit log lines: who asked for what.
fn client(info: &RequestInfo<'_>) -> String {
    let ip = info.client_ip.map_or_else(String::new, |ip| ip.to_string());
    let path = String::from_utf8_lossy(info.req.raw_path());
    format!("client: {ip}, request: \"{} {path}\"", info.req.method)
}
