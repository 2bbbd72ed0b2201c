//! Request limits made ready to serve: the zones of a config (kept across reloads while
//! they are unchanged, so that a reload does not reset anyone's bucket) and the limits of
//! each route bound to them.

use crate::config::{
    Config, ConfigError, LimitDelay, LimitLogLevel, Origin, RouteLimits as RouteLimitsConf,
};
use crate::limits::{ConnZone, DelayPolicy, MIN_ZONE_SIZE, RateZone};
use crate::observe::metrics::{ConnCounters, METRICS, ReqCounters};
use crate::variables::Template;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A `limit_req_zone`: its key, its buckets and its counters.
pub struct RateLimitZone {
    pub name: String,
    /// What requests are counted by.
    pub key: Template,
    /// Shared with the zone of the same name in the previous runtime when unchanged.
    pub buckets: Arc<RateZone>,
    pub counts: ReqCounters,
    /// As written, to tell whether a reload changed the zone.
    written: (String, u64, u64),
}

/// A `limit_conn_zone`: its key, its counts of requests in progress and its counters.
pub struct ConnLimitZone {
    pub name: String,
    pub key: Template,
    /// Shared with the zone of the same name in the previous runtime when unchanged.
    pub in_progress: Arc<ConnZone>,
    pub counts: ConnCounters,
    written: (String, u64),
}

/// The zones of one runtime, by name.
#[derive(Default)]
pub struct Zones {
    pub req: BTreeMap<String, Arc<RateLimitZone>>,
    pub conn: BTreeMap<String, Arc<ConnLimitZone>>,
}

/// The limits of one route, bound to their zones.
pub struct RouteLimits {
    pub req: Vec<ReqRule>,
    pub conn: Vec<ConnRule>,
    pub req_status: u16,
    pub conn_status: u16,
    pub req_log_level: LimitLogLevel,
    pub conn_log_level: LimitLogLevel,
    pub req_dry_run: bool,
    pub conn_dry_run: bool,
}

/// One `limit_req`.
pub struct ReqRule {
    pub zone: Arc<RateLimitZone>,
    pub burst: u64,
    pub delay: DelayPolicy,
}

/// One `limit_conn`.
pub struct ConnRule {
    pub zone: Arc<ConnLimitZone>,
    pub limit: u32,
}

impl Zones {
    /// The zones of `config`; a zone that `previous` has with the same key, size (and
    /// rate) keeps its state. (Its key is compiled again: the variables it names may
    /// have moved.)
    pub fn compile(
        file: &Path,
        config: &Config,
        maps: &[String],
        previous: Option<&Zones>,
    ) -> Result<Zones, ConfigError> {
        let mut zones = Zones::default();
        for (name, z) in &config.limit_req_zones {
            let written = (z.key.clone(), z.size, z.rate);
            let key = zone_key(file, &z.origin, &z.key, z.size, maps)?;
            let buckets = match previous.and_then(|p| p.req.get(name)) {
                Some(old) if old.written == written => Arc::clone(&old.buckets),
                _ => Arc::new(RateZone::new(z.rate, z.size)),
            };
            let zone = RateLimitZone {
                name: name.clone(),
                key,
                buckets,
                counts: METRICS.limit_req(name),
                written,
            };
            zones.req.insert(name.clone(), Arc::new(zone));
        }
        for (name, z) in &config.limit_conn_zones {
            let written = (z.key.clone(), z.size);
            let key = zone_key(file, &z.origin, &z.key, z.size, maps)?;
            let in_progress = match previous.and_then(|p| p.conn.get(name)) {
                Some(old) if old.written == written => Arc::clone(&old.in_progress),
                _ => Arc::new(ConnZone::new(z.size)),
            };
            let zone = ConnLimitZone {
                name: name.clone(),
                key,
                in_progress,
                counts: METRICS.limit_conn(name),
                written,
            };
            zones.conn.insert(name.clone(), Arc::new(zone));
        }
        Ok(zones)
    }

    /// The limits of a route, or `None` when it has none (then a request pays nothing).
    pub fn bind(
        &self,
        file: &Path,
        route: &Origin,
        limits: &RouteLimitsConf,
    ) -> Result<Option<Box<RouteLimits>>, ConfigError> {
        if limits.is_empty() {
            return Ok(None);
        }
        let at = route.field("limits");
        for (field, status) in [
            ("req_status", limits.req_status),
            ("conn_status", limits.conn_status),
        ] {
            if !(400..=599).contains(&status) {
                let msg = "must be between 400 and 599";
                return Err(ConfigError::invalid(file, &at.field(field), msg));
            }
        }
        let mut req: Vec<ReqRule> = Vec::with_capacity(limits.req.len());
        for l in &limits.req {
            let zone = self.req.get(&l.zone).ok_or_else(|| {
                let msg = format!("unknown limit_req_zone \"{}\"", l.zone);
                ConfigError::invalid(file, &l.origin.field("zone"), msg)
            })?;
            if req.iter().any(|r| Arc::ptr_eq(&r.zone, zone)) {
                let msg = "\"limit_req\" directive is duplicate";
                return Err(ConfigError::invalid(file, &l.origin, msg));
            }
            req.push(ReqRule {
                zone: Arc::clone(zone),
                burst: l.burst,
                delay: match l.delay {
                    LimitDelay::Delay => DelayPolicy::Delay,
                    LimitDelay::NoDelay => DelayPolicy::NoDelay,
                    LimitDelay::After(n) => DelayPolicy::After(n),
                },
            });
        }
        let mut conn: Vec<ConnRule> = Vec::with_capacity(limits.conn.len());
        for l in &limits.conn {
            let zone = self.conn.get(&l.zone).ok_or_else(|| {
                let msg = format!("unknown limit_conn_zone \"{}\"", l.zone);
                ConfigError::invalid(file, &l.origin.field("zone"), msg)
            })?;
            if !(1..=65535).contains(&l.limit) {
                let msg = "must be between 1 and 65535";
                return Err(ConfigError::invalid(file, &l.origin.field("limit"), msg));
            }
            if conn.iter().any(|c| Arc::ptr_eq(&c.zone, zone)) {
                let msg = "\"limit_conn\" directive is duplicate";
                return Err(ConfigError::invalid(file, &l.origin, msg));
            }
            conn.push(ConnRule {
                zone: Arc::clone(zone),
                limit: l.limit,
            });
        }
        Ok(Some(Box::new(RouteLimits {
            req,
            conn,
            req_status: limits.req_status,
            conn_status: limits.conn_status,
            req_log_level: limits.req_log_level,
            conn_log_level: limits.conn_log_level,
            req_dry_run: limits.req_dry_run,
            conn_dry_run: limits.conn_dry_run,
        })))
    }
}

/// A zone's key template, and its size checked as nginx checks it.
fn zone_key(
    file: &Path,
    origin: &Origin,
    key: &str,
    size: u64,
    maps: &[String],
) -> Result<Template, ConfigError> {
    if size < MIN_ZONE_SIZE {
        let msg = format!("a zone needs at least {MIN_ZONE_SIZE} bytes (32k)");
        return Err(ConfigError::invalid(file, &origin.field("size"), msg));
    }
    if key.is_empty() {
        return Err(ConfigError::invalid(
            file,
            &origin.field("key"),
            "a key is required",
        ));
    }
    Template::parse(key, maps).map_err(|m| ConfigError::invalid(file, &origin.field("key"), m))
}
