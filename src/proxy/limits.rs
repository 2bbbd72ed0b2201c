//! A route's request limits applied to one request, as nginx's preaccess phase applies
//! them: `limit_req` first ([`wait`]: the request may have to wait), then `limit_conn`
//! ([`acquire`]), whose slots the request holds until it ends. Counted in `pinlb_limit_req_total` and
//! `pinlb_limit_conn_total`, logged with nginx's wording at the configured levels.

use crate::limits::{
    ConnGuard, ConnLimit, ConnRejected, RateVerdict, RejectCause, ReqLimit, acquire_all, check_all,
};
use crate::runtime::{ReqRule, RouteLimits};
use crate::variables::{RequestInfo, Template};
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
    Pass(Slots),
    /// Answer with this status (`limit_req_status`, `limit_conn_status`).
    Reject(u16),
}

/// The `limit_conn` slots a request holds; dropping them gives them back. One slot (the
/// usual single `limit_conn`) needs no list.
pub enum Slots {
    None,
    One(ConnGuard),
    Many(Vec<ConnGuard>),
}

/// The first step, `limit_req`: how long the request waits before [`acquire`] (usually
/// zero), or the status to answer with.
pub fn wait(limits: &RouteLimits, info: &RequestInfo<'_>) -> Result<Duration, u16> {
    match limits.req.is_empty() {
        true => Ok(Duration::ZERO),
        false => check_rate(limits, info),
    }
}

/// The rules' keys, expanded into one buffer: `key(i)` is rule `i`'s. A single rule (the
/// usual case) needs nothing but the buffer.
struct Keys {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Keys {
    fn expand<'t>(
        templates: impl ExactSizeIterator<Item = &'t Template>,
        info: &RequestInfo<'_>,
    ) -> Keys {
        let n = templates.len();
        let mut keys = Keys {
            buf: Vec::with_capacity(16 * n),
            ends: Vec::new(),
        };
        for template in templates {
            template.expand(info, &mut keys.buf);
            if n > 1 {
                keys.ends.push(keys.buf.len());
            }
        }
        keys
    }

    fn key(&self, i: usize) -> &[u8] {
        match (i, self.ends.is_empty()) {
            (_, true) => &self.buf,
            (0, false) => &self.buf[..self.ends[0]],
            _ => &self.buf[self.ends[i - 1]..self.ends[i]],
        }
    }
}

/// The `limit_req`s: how long to wait, or the status to answer with.
fn check_rate(limits: &RouteLimits, info: &RequestInfo<'_>) -> Result<Duration, u16> {
    let keys = Keys::expand(limits.req.iter().map(|r| &r.zone.key), info);
    fn check<'a>(keys: &'a Keys, i: usize, rule: &'a ReqRule) -> ReqLimit<'a> {
        ReqLimit {
            zone: &rule.zone.buckets,
            key: keys.key(i),
            burst: rule.burst,
            delay: rule.delay,
        }
    }
    // One limit (the usual case) is checked without a list.
    let (one, many): (Option<ReqLimit<'_>>, Vec<ReqLimit<'_>>) = match &limits.req[..] {
        [rule] => (Some(check(&keys, 0, rule)), Vec::new()),
        rules => {
            let all = rules.iter().enumerate();
            (None, all.map(|(i, r)| check(&keys, i, r)).collect())
        }
    };
    let checks = match &one {
        Some(one) => std::slice::from_ref(one),
        None => &many[..],
    };
    let now = u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX);
    let verdict = check_all(checks, now);
    let dry = limits.req_dry_run;
    let applied = |i: &usize| !keys.key(*i).is_empty();
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

/// The second step, `limit_conn`: the slots taken, or the status to answer with.
pub fn acquire(limits: &RouteLimits, info: &RequestInfo<'_>) -> Verdict {
    if limits.conn.is_empty() {
        return Verdict::Pass(Slots::None);
    }
    let keys = Keys::expand(limits.conn.iter().map(|r| &r.zone.key), info);
    let taken = match &limits.conn[..] {
        [rule] => rule
            .zone
            .in_progress
            .acquire(keys.key(0), rule.limit)
            .map(|guard| guard.map_or(Slots::None, Slots::One))
            .map_err(|why| (0, why)),
        rules => {
            let slots: Vec<ConnLimit<'_>> = (rules.iter().enumerate())
                .map(|(i, rule)| ConnLimit {
                    zone: &rule.zone.in_progress,
                    key: keys.key(i),
                    limit: rule.limit,
                })
                .collect();
            acquire_all(&slots).map(Slots::Many)
        }
    };
    match taken {
        Ok(slots) => {
            for i in (0..limits.conn.len()).filter(|&i| !keys.key(i).is_empty()) {
                limits.conn[i].zone.counts.passed.inc();
            }
            Verdict::Pass(slots)
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
                Verdict::Pass(Slots::None)
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
