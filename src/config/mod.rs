//! The one internal configuration model. Both front-ends (native JSON and nginx.conf)
//! produce a [`Config`]; nothing downstream knows which file it came from.

mod error;
pub mod json;
mod serde_util;
mod validate;

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Origin};
use serde_util::{as_millis, is_default};

/// Reads and validates the config file at `path`. Files ending in `.json` are native
/// configs; anything else is read as nginx syntax.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let config = if path.extension().is_some_and(|ext| ext == "json") {
        json::parse(path, &text)?
    } else {
        return Err(ConfigError::Syntax {
            file: path.to_path_buf(),
            msg: "only native JSON configs (*.json) are supported by this build".into(),
        });
    };
    validate::validate(&config)?;
    Ok(config)
}

/// The whole effective configuration of one pinlb process.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file this configuration was read from (for error messages).
    #[serde(skip)]
    pub source: PathBuf,
    /// Worker threads of the proxy service (nginx `worker_processes`). Default 1.
    pub threads: usize,
    /// Addresses to accept client connections on.
    pub listeners: Vec<Listener>,
    /// Virtual servers (nginx `server` blocks); a JSON config has exactly one.
    pub virtual_servers: Vec<VirtualServer>,
    /// Named pools of backend servers.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Response header that names the server which answered (e.g. `X-Served-By`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by_header: Option<String>,
}

/// One listening socket.
#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub addr: SocketAddr,
    #[serde(skip)]
    pub origin: Origin,
}

/// A set of routes answering on some listeners, optionally only for some host names.
#[derive(Debug, Clone, Serialize)]
pub struct VirtualServer {
    /// The listener addresses this virtual server answers on.
    pub listen: Vec<SocketAddr>,
    /// Host names this virtual server answers for; empty means any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// Routes, matched by path (longest prefix first).
    pub routes: Vec<Route>,
}

/// How a request path selects a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The path starts with this string (nginx `location /prefix`).
    Prefix(String),
}

/// A path and what to do with requests that match it.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub path: PathMatch,
    pub upstream: String,
    /// Pin rules, tried in order; the first that matches picks the backend.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<PinRule>,
    /// What to do when a pin names a server that health checks mark down.
    #[serde(skip_serializing_if = "is_default")]
    pub on_unhealthy: OnUnhealthy,
    pub proxy: ProxySettings,
    #[serde(skip)]
    pub origin: Origin,
}

/// One way a request can name the backend it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinRule {
    pub source: PinSource,
}

/// Where a pin value is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinSource {
    /// A request header; its value names a server of the route's upstream.
    Header(String),
    /// A cookie; its value names a server of the route's upstream.
    Cookie(String),
}

/// Policy for a pin whose server is marked down by health checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnhealthy {
    /// Ignore the pin and balance over the healthy servers (default).
    #[default]
    Fallback,
    /// Answer 503.
    Refuse,
    /// Send the request to the pinned server anyway.
    Use,
}

/// How requests are proxied: timeouts, retries and the headers sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxySettings {
    /// TCP connect timeout per attempt (nginx `proxy_connect_timeout`, default 60 s).
    #[serde(rename = "connect_timeout_ms", serialize_with = "as_millis")]
    pub connect_timeout: Duration,
    /// Longest wait between two reads from the upstream (nginx `proxy_read_timeout`, 60 s).
    #[serde(rename = "read_timeout_ms", serialize_with = "as_millis")]
    pub read_timeout: Duration,
    /// Longest wait between two writes to the upstream (nginx `proxy_send_timeout`, 60 s).
    #[serde(rename = "send_timeout_ms", serialize_with = "as_millis")]
    pub send_timeout: Duration,
    /// An upgraded (websocket) connection with no traffic this long is closed (default 1 h).
    #[serde(rename = "websocket_idle_timeout_ms", serialize_with = "as_millis")]
    pub websocket_idle_timeout: Duration,
    /// Total attempts per request, the first included; 0 means one per server
    /// (nginx `proxy_next_upstream_tries`).
    pub next_upstream_tries: u32,
    /// When a request that reached a server may be retried on the next one.
    pub next_upstream: NextUpstream,
    /// Request headers set before the request goes upstream (nginx `proxy_set_header`);
    /// values may use variables such as `$remote_addr`. An empty value removes the header.
    pub set_headers: Vec<SetHeader>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        let set = |name: &str, value: &str| SetHeader {
            name: name.into(),
            value: value.into(),
        };
        ProxySettings {
            connect_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            websocket_idle_timeout: Duration::from_secs(3600),
            next_upstream_tries: 0,
            next_upstream: NextUpstream::default(),
            // The forwarding headers of the usual nginx load-balancing tutorial;
            // Host is passed through as the client sent it.
            set_headers: vec![
                set("X-Real-IP", "$remote_addr"),
                set("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
                set("X-Forwarded-Proto", "$scheme"),
                set("X-Forwarded-Host", "$host"),
            ],
        }
    }
}

/// Conditions (nginx `proxy_next_upstream`) under which a request that was already sent
/// to a server is retried on another one. Connect failures are always retried: nothing
/// was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NextUpstream {
    /// The connection broke while sending the request or reading the response header.
    pub error: bool,
    /// The server did not answer within `read_timeout`.
    pub timeout: bool,
    /// Retry non-idempotent requests (POST, PATCH...) too.
    pub non_idempotent: bool,
}

impl Default for NextUpstream {
    /// nginx's default: `error timeout`.
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            non_idempotent: false,
        }
    }
}

/// One `proxy_set_header NAME VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetHeader {
    pub name: String,
    pub value: String,
}

/// A named pool of servers and how to balance over them.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub servers: Vec<Server>,
    pub balance: Balance,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(skip)]
    pub origin: Origin,
}

/// The balancing algorithm of an upstream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// nginx's smooth weighted round robin.
    #[default]
    RoundRobin,
}

/// One backend server of an upstream.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    /// The name pins use to select this server, unique within its upstream.
    pub name: String,
    /// `ip:port` or `host:port`; host names are resolved when pinlb starts.
    pub addr: String,
    /// Relative share of requests, at least 1.
    pub weight: u32,
    #[serde(skip)]
    pub origin: Origin,
}

/// An active health check run in the background against every server of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    #[serde(flatten)]
    pub kind: CheckKind,
    /// Time between the starts of two checks of a server.
    #[serde(rename = "interval_ms", serialize_with = "as_millis")]
    pub interval: Duration,
    /// Connect timeout, and for HTTP checks also the response timeout.
    #[serde(rename = "timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
    /// Consecutive failed checks that take a server out of rotation.
    pub fails: u32,
    /// Consecutive good checks that bring it back.
    pub passes: u32,
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckKind {
    /// `GET path`; a status of 200-399 is healthy.
    Http { path: String },
    /// A TCP connect succeeds.
    Tcp,
}
