//! The model of request limits: nginx's `limit_req_zone` / `limit_req` (a leaky bucket per
//! key) and `limit_conn_zone` / `limit_conn` (requests in progress per key), with their
//! `_status`, `_log_level` and `_dry_run` settings.

use super::Origin;
use super::serde_util::is_default;
use serde::Serialize;

/// nginx `limit_req_zone KEY zone=NAME:SIZE rate=RATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitReqZone {
    /// What requests are counted by, a template such as `$binary_remote_addr`. Requests
    /// whose key comes out empty are not limited.
    pub key: String,
    /// Bytes of state, as nginx sizes a shared memory zone (about 8,000 addresses a MiB).
    pub size: u64,
    /// Milli-requests per second, as nginx keeps it: `10r/s` is 10000, `30r/m` 500, and
    /// `1r/m` 16 (nginx truncates 1000/60).
    #[serde(rename = "rate_millis_per_second")]
    pub rate: u64,
    #[serde(skip)]
    pub origin: Origin,
}

/// nginx `limit_conn_zone KEY zone=NAME:SIZE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitConnZone {
    /// What requests in progress are counted by (`$binary_remote_addr`).
    pub key: String,
    /// Bytes of state (about 16,000 addresses a MiB).
    pub size: u64,
    #[serde(skip)]
    pub origin: Origin,
}

/// The limits that apply to a route. nginx inherits the `limit_req` list and the
/// `limit_conn` list each as a whole from the enclosing level when a level has none, and
/// the other settings one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteLimits {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub req: Vec<LimitReq>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conn: Vec<LimitConn>,
    /// The status of requests over a `limit_req` (nginx `limit_req_status`, default 503).
    pub req_status: u16,
    /// The status of requests over a `limit_conn` (nginx `limit_conn_status`, default 503).
    pub conn_status: u16,
    /// Level of the "limiting requests" log line; delays log one level lower (nginx
    /// `limit_req_log_level`, default `error`).
    #[serde(skip_serializing_if = "is_default")]
    pub req_log_level: LimitLogLevel,
    /// Level of the "limiting connections" log line (nginx `limit_conn_log_level`).
    #[serde(skip_serializing_if = "is_default")]
    pub conn_log_level: LimitLogLevel,
    /// Count and log what `limit_req` would do, but let every request through
    /// undelayed (nginx `limit_req_dry_run`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub req_dry_run: bool,
    /// The same for `limit_conn` (nginx `limit_conn_dry_run`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conn_dry_run: bool,
}

impl Default for RouteLimits {
    fn default() -> Self {
        RouteLimits {
            req: Vec::new(),
            conn: Vec::new(),
            req_status: 503,
            conn_status: 503,
            req_log_level: LimitLogLevel::default(),
            conn_log_level: LimitLogLevel::default(),
            req_dry_run: false,
            conn_dry_run: false,
        }
    }
}

impl RouteLimits {
    /// No limit applies (the settings without a limit do nothing).
    pub fn is_empty(&self) -> bool {
        self.req.is_empty() && self.conn.is_empty()
    }
}

/// One `limit_req zone=NAME [burst=N] [nodelay | delay=N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitReq {
    pub zone: String,
    /// Requests over the rate that may wait (or pass, see `delay`); default 0.
    pub burst: u64,
    pub delay: LimitDelay,
    #[serde(skip)]
    pub origin: Origin,
}

/// When requests within the burst are delayed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitDelay {
    /// Every request over the rate waits its turn (nginx's default).
    #[default]
    Delay,
    /// `nodelay`: requests within the burst pass at once.
    NoDelay,
    /// `delay=N`: the first N requests over the rate pass at once, the rest of the burst
    /// waits.
    After(u64),
}

/// One `limit_conn ZONE NUMBER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitConn {
    pub zone: String,
    /// Requests in progress allowed per key, 1 to 65535.
    pub limit: u32,
    #[serde(skip)]
    pub origin: Origin,
}

/// nginx's levels for the limit log lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitLogLevel {
    Info,
    Notice,
    Warn,
    #[default]
    Error,
}

impl LimitLogLevel {
    /// nginx's name, for `limit_*_log_level`.
    pub fn parse(name: &str) -> Option<LimitLogLevel> {
        Some(match name {
            "info" => LimitLogLevel::Info,
            "notice" => LimitLogLevel::Notice,
            "warn" => LimitLogLevel::Warn,
            "error" => LimitLogLevel::Error,
            _ => return None,
        })
    }

    /// The level of the line itself.
    pub fn level(self) -> log::Level {
        match self {
            LimitLogLevel::Info | LimitLogLevel::Notice => log::Level::Info,
            LimitLogLevel::Warn => log::Level::Warn,
            LimitLogLevel::Error => log::Level::Error,
        }
    }

    /// One level lower, for delayed requests (as nginx logs them).
    pub fn lower(self) -> log::Level {
        match self {
            LimitLogLevel::Info => log::Level::Debug,
            LimitLogLevel::Notice | LimitLogLevel::Warn => log::Level::Info,
            LimitLogLevel::Error => log::Level::Warn,
        }
    }
}
