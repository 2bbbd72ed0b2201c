//! The one internal configuration model. Both front-ends (native JSON and nginx.conf)
//! produce a [`Config`]; nothing downstream knows which file it came from.

pub mod acme;
mod client;
mod error;
pub mod file;
pub mod json;
mod limits;
pub mod nginx;
mod real_ip;
pub(crate) mod serde_util;
mod tls;

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use acme::{AcmeCertificate, AcmeIssuer, AcmeKey};
pub use client::{ClientLimits, HeaderBuffers};
pub use error::{ConfigError, Origin};
pub use limits::{
    LimitConn, LimitConnZone, LimitDelay, LimitLogLevel, LimitReq, LimitReqZone, RouteLimits,
};
pub use real_ip::{DEFAULT_REAL_IP_HEADER, RealIp, RealIpFrom};
use serde_util::{as_millis, is_default, is_true};
pub use tls::{CertPair, ListenerTls, TlsVersion, UpstreamTls};

/// Reads the config file at `path` into the model. Files ending in `.json` are native
/// configs; anything else is read as nginx syntax. What the values mean is checked when
/// the model is compiled ([`crate::runtime::Runtime::compile`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let config = if path.extension().is_some_and(|ext| ext == "json") {
        let read_failed = |source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        };
        let bytes = file::read(path).map_err(read_failed)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            read_failed(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        })?;
        json::parse(path, &text)?
    } else {
        nginx::load(path)?
    };
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
    /// Variables computed from other variables (nginx `map`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapVar>,
    /// Variables computed from the client's address (nginx `geo`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub geos: Vec<GeoVar>,
    /// Request rate zones (nginx `limit_req_zone`), by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limit_req_zones: BTreeMap<String, LimitReqZone>,
    /// Requests-in-progress zones (nginx `limit_conn_zone`), by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limit_conn_zones: BTreeMap<String, LimitConnZone>,
    /// Response header that names the server which answered (e.g. `X-Served-By`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by_header: Option<String>,
    /// Whether that header also says why the server was chosen: `app2; pinned`,
    /// `app1; balanced`, `app3; fell back`. Default off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub served_by_reason: bool,
    /// How long an idle client keep-alive connection stays open (nginx `keepalive_timeout`).
    #[serde(rename = "keepalive_timeout_ms", serialize_with = "as_millis")]
    pub keepalive_timeout: Duration,
    /// Where pinlb writes its process id (nginx `pid`); [`DEFAULT_PID_FILE`] if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// The loopback admin listener (`/healthz`, `/status`, `/metrics`); `None` is off.
    pub admin: Option<SocketAddr>,
    /// A bearer token the admin listener requires (all but `/healthz`). Never printed.
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// Shutdown, drain and binary upgrade settings.
    pub lifecycle: Lifecycle,
    /// Where diagnostics go and from which level (nginx `error_log`); stderr at `info` if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_log: Option<ErrorLog>,
    /// Named access log formats (nginx `log_format`), besides the built-in ones.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log_formats: BTreeMap<String, LogFormat>,
    /// The name servers that re-resolve `resolve` servers (nginx `resolver` in `http`);
    /// `None`: the system's (`/etc/resolv.conf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Resolver>,
    /// ACME servers certificates are ordered from (nginx `acme_issuer`), by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub acme_issuers: BTreeMap<String, AcmeIssuer>,
}

/// nginx `resolver ADDR[:PORT] ... [valid=TIME] [ipv4=on|off] [ipv6=on|off]` with
/// `resolver_timeout`: how names of `resolve` servers are looked up while running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolver {
    /// Name servers (port 53 unless given); empty: the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// Re-resolve this often instead of at the answer's TTL (nginx `valid=`).
    #[serde(
        rename = "valid_ms",
        serialize_with = "serde_util::opt_as_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid: Option<Duration>,
    /// Look up A records. Default on.
    pub ipv4: bool,
    /// Look up AAAA records. Default on, as in nginx.
    pub ipv6: bool,
    /// How long one lookup may take (nginx `resolver_timeout`, default 30 s).
    #[serde(rename = "timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
    #[serde(skip)]
    pub origin: Origin,
}

impl Resolver {
    /// nginx's `resolver_timeout` default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// The system's name servers with nginx's defaults.
    pub fn system(origin: Origin) -> Resolver {
        Resolver {
            servers: Vec::new(),
            valid: None,
            ipv4: true,
            ipv6: true,
            timeout: Resolver::DEFAULT_TIMEOUT,
            origin,
        }
    }
}

/// nginx `log_format NAME [escape=default|json|none] STRING...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogFormat {
    pub template: String,
    pub escape: LogEscape,
    #[serde(skip)]
    pub origin: Origin,
}

/// How variable values are escaped in access log lines, as nginx's `escape=`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEscape {
    /// `"`, `\\` and bytes outside printable ASCII as `\xXX`.
    #[default]
    Default,
    /// JSON string escapes.
    Json,
    None,
}

/// One `access_log PATH [FORMAT]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessLogTarget {
    /// A file, or `stdout` / `stderr` (also `/dev/stdout`, `/dev/stderr`).
    pub path: String,
    /// A format from `log_formats` or a built-in one: `combined`, `upstream`
    /// (combined plus upstream address and times) or `json`.
    pub format: String,
    #[serde(skip)]
    pub origin: Origin,
}

/// A name server address as nginx's `resolver` takes it: `IP`, `IP:PORT` or
/// `[IPv6]:PORT`, port 53 by default.
pub fn resolver_addr(written: &str) -> Option<SocketAddr> {
    if let Ok(addr) = written.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = written
        .strip_prefix('[')
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or(written);
    bare.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// The pid file when none is configured.
pub const DEFAULT_PID_FILE: &str = "/tmp/pinlb.pid";

/// The admin listener when none is configured.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

impl Config {
    pub fn pid_file(&self) -> &Path {
        self.pid_file
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_PID_FILE))
    }
}

/// How pinlb stops and hands over to a new binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// After SIGTERM, `/healthz` answers 503 while requests are still served for this
    /// long, so that a balancer in front notices before pinlb stops accepting.
    #[serde(rename = "drain_delay_ms", serialize_with = "as_millis")]
    pub drain_delay: Duration,
    /// The longest pinlb waits for in-flight requests (websockets included) once it has
    /// stopped accepting (nginx `worker_shutdown_timeout`). Default 30 s.
    #[serde(rename = "grace_period_ms", serialize_with = "as_millis")]
    pub grace_period: Duration,
    /// The socket a new binary takes the listeners over (`pinlb -u`).
    pub upgrade_sock: PathBuf,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            drain_delay: Duration::ZERO,
            grace_period: Duration::from_secs(30),
            upgrade_sock: PathBuf::from("/tmp/pinlb_upgrade.sock"),
        }
    }
}

/// nginx `error_log FILE [LEVEL]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLog {
    /// A file path, or `stderr`.
    pub path: String,
    pub level: LogLevel,
}

/// Diagnostic levels in nginx's names, mapped onto `log`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Error => log::LevelFilter::Error,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Connections start with a PROXY protocol header, v1 or v2 (nginx
    /// `listen ... proxy_protocol`); one without a valid header is closed. Default off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub proxy_protocol: bool,
    /// TLS on this socket (nginx `listen ... ssl`); `None`: plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// HTTP/2: offered by ALPN beside HTTP/1.1 on a TLS listener; on a plain one, taken
    /// when a connection starts with HTTP/2's preface (nginx `http2 on`). Default off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    #[serde(skip)]
    pub origin: Origin,
}

impl Listener {
    /// Whether this socket takes connections for a `listen` of `addr`: the same address,
    /// or this one is the wildcard address of that port (nginx binds one socket for both).
    pub fn serves(&self, addr: &SocketAddr) -> bool {
        *addr == self.addr
            || (self.addr.ip().is_unspecified()
                && addr.port() == self.addr.port()
                && addr.is_ipv4() == self.addr.is_ipv4())
    }
}

/// A set of routes answering on some listeners, optionally only for some host names
/// (nginx `server` block).
#[derive(Debug, Clone, Serialize)]
pub struct VirtualServer {
    /// The listener addresses this virtual server answers on.
    pub listen: Vec<SocketAddr>,
    /// Listener addresses for which this is the `default_server`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_for: Vec<SocketAddr>,
    /// Host names this virtual server answers for; empty means any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<ServerName>,
    /// Its certificates on TLS listeners, chosen by SNI with the `server_names` (nginx
    /// `ssl_certificate`); several pairs for several key types (RSA and ECDSA).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertPair>,
    /// Its certificate from an ACME issuer (nginx `acme_certificate`), served when
    /// `ssl_certificate $acme_certificate` says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeCertificate>,
    /// Whether the ACME certificate is this server's certificate (`ssl_certificate
    /// $acme_certificate`); otherwise it is only ordered and kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub acme_serves: bool,
    /// Routes (nginx `location`s), chosen by nginx's rules.
    pub routes: Vec<Route>,
    /// Whether runs of `/` in request paths are merged before matching (nginx
    /// `merge_slashes`, default on). nginx reads it from the default server of the listen
    /// address, since it normalises the path before it looks at `Host`; so does pinlb.
    #[serde(skip_serializing_if = "is_true")]
    pub merge_slashes: bool,
    /// Where requests that match no route are logged.
    pub access_log: Vec<AccessLogTarget>,
    /// Limits and timeouts for its clients.
    #[serde(flatten)]
    pub client: ClientLimits,
    /// The client address it believes before a route is chosen (nginx's realip at the
    /// server level); `None`: the connection's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_ip: Option<RealIp>,
    #[serde(skip)]
    pub origin: Origin,
}

/// One `server_name`, in nginx's kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerName {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com`. (nginx's `.example.com` is this plus
    /// `Exact("example.com")`.)
    Suffix(String),
    /// `www.example.*` (stored as `www.example.`).
    Prefix(String),
    /// `~^www\d+\.example\.com$`
    Regex(String),
}

/// How a request path selects a route, in nginx's kinds of `location`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// `location = /path`: this path only.
    Exact(String),
    /// `location /prefix`: the longest matching prefix, unless a regex matches.
    Prefix(String),
    /// `location ^~ /prefix`: a prefix that, when longest, skips the regexes.
    PrefixNoRegex(String),
    /// `location ~ re` / `location ~* re`: the first regex in order that matches.
    Regex {
        pattern: String,
        case_insensitive: bool,
    },
}

/// A location and what to do with requests that match it.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub path: PathMatch,
    pub action: Action,
    pub proxy: ProxySettings,
    /// Response headers to add (nginx `add_header`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_headers: Vec<AddHeader>,
    /// Where requests of this route are logged; empty is `access_log off`.
    pub access_log: Vec<AccessLogTarget>,
    /// Request rate and requests-in-progress limits (nginx `limit_req`, `limit_conn`).
    #[serde(skip_serializing_if = "RouteLimits::is_empty")]
    pub limits: RouteLimits,
    /// The client address it believes when its server's realip did not change it
    /// (nginx runs realip once more in the location); `None`: the connection's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_ip: Option<RealIp>,
    #[serde(skip)]
    pub origin: Origin,
}

/// What a route does with a request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Proxy to an upstream (nginx `proxy_pass`), possibly pinned.
    Proxy(ProxyPass),
    /// Answer directly (nginx `return`).
    Return(ReturnAction),
}

/// `proxy_pass`, with the pins that may override its upstream.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyPass {
    pub upstream: String,
    /// The URI part of `proxy_pass http://name/uri`: replaces the matched location prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Pin rules, tried in order; the first that matches picks the backend.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<PinRule>,
    /// What to do when a pin names a server that health checks mark down.
    #[serde(skip_serializing_if = "is_default")]
    pub on_unhealthy: OnUnhealthy,
    /// Client networks (nginx CIDR text) whose pins are honoured; `None`: every client's.
    /// A pin from elsewhere is ignored and the request balanced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_allow_from: Option<Vec<String>>,
    /// The secret pin values must be signed with (`NAME.MAC`, see
    /// [`crate::routing::signed_pin`]); a bare or forged value is ignored. Never printed.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serde_util::redacted"
    )]
    pub pin_secret: Option<String>,
    /// nginx's automatic redirect: a request for the location's path without its final
    /// `/` (`/api` for `location /api/`) is answered `301` to the path with it. nginx
    /// configs only: set for a `location` ending in `/` that `proxy_pass`es.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_redirect: bool,
}

/// `return CODE [TEXT]` or `return CODE URL` (redirects) or `return URL` (302).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnAction {
    pub status: u16,
    /// Body text, or for redirects the `Location`; may use variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl ReturnAction {
    /// Codes whose text is a `Location` URL rather than a body, as in nginx.
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }
}

/// One `add_header NAME VALUE [always]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddHeader {
    pub name: String,
    pub value: String,
    /// Also on error statuses; without it only on 200, 201, 204, 206, 301-304, 307, 308.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub always: bool,
    #[serde(skip)]
    pub origin: Origin,
}

/// One way a request can name the backend it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinRule {
    pub source: PinSource,
    pub matches: PinMatch,
}

/// What a pin value must be, and where it sends the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMatch {
    /// Any value that names a server of the route's upstream pins to that server.
    ServerName,
    /// This exact value sends the request to `target` (nginx `if ($http_app = "app1")`).
    Value { equals: String, target: PinTarget },
}

/// Where a matching pin sends a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinTarget {
    /// One server of an upstream, sharing that server's health.
    Server { upstream: String, server: String },
    /// A whole upstream, balanced as usual.
    Upstream(String),
}

/// Where a pin value is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinSource {
    /// A request header; its value names a server of the route's upstream.
    Header(String),
    /// A cookie; its value names a server of the route's upstream.
    Cookie(String),
    /// Any variable, written as a template (`$pin_app`): nginx's `if ($pin_app = "app1")`
    /// with a `map` or `geo` variable, e.g. to honour pins from some addresses only.
    Variable(String),
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
    /// Largest request body accepted, in bytes; larger ones get 413
    /// (nginx `client_max_body_size`). `None`: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_max_body_size: Option<u64>,
    /// TLS to the servers; off by default.
    #[serde(skip_serializing_if = "is_default")]
    pub upstream_tls: UpstreamTls,
    /// Speak HTTP/2 to the servers (nginx `grpc_pass`): with prior knowledge on a plain
    /// connection (h2c), by ALPN `h2` over TLS. Default off: HTTP/1.1.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
}

impl Default for ProxySettings {
    fn default() -> Self {
        let set = |name: &str, value: &str| SetHeader {
            name: name.into(),
            value: value.into(),
            origin: Origin::Builtin,
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
            client_max_body_size: None,
            upstream_tls: UpstreamTls::default(),
            http2: false,
        }
    }
}

/// Conditions (nginx `proxy_next_upstream`) under which a request that was already sent
/// to a server is retried on another one. Connect failures are always retried: nothing
/// was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextUpstream {
    /// The connection broke while sending the request or reading the response header.
    pub error: bool,
    /// The server did not answer within `read_timeout`.
    pub timeout: bool,
    /// Retry non-idempotent requests (POST, PATCH...) too.
    pub non_idempotent: bool,
    /// Response statuses that count as a failure of the server (nginx `http_502` ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
}

impl Default for NextUpstream {
    /// nginx's default: `error timeout`.
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            non_idempotent: false,
            statuses: Vec::new(),
        }
    }
}

/// One `proxy_set_header NAME VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetHeader {
    pub name: String,
    pub value: String,
    #[serde(skip)]
    pub origin: Origin,
}

/// A named pool of servers and how to balance over them.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub servers: Vec<Server>,
    pub balance: Balance,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Idle connections kept open to the servers (nginx `keepalive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<Keepalive>,
    /// The resolver of this upstream's `resolve` servers (nginx `resolver` inside
    /// `upstream`); `None`: the config's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Resolver>,
    /// Session affinity by cookie (nginx `sticky cookie`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<crate::config::StickyConf>,
    #[serde(skip)]
    pub origin: Origin,
}

impl Upstream {
    /// An upstream of `servers` with round robin and nothing else set.
    pub fn new(servers: Vec<Server>, origin: Origin) -> Upstream {
        Upstream {
            servers,
            balance: Balance::RoundRobin,
            health_check: None,
            keepalive: None,
            resolver: None,
            sticky: None,
            origin,
        }
    }

    /// Whether any server is re-resolved while running.
    pub fn resolves(&self) -> bool {
        self.servers.iter().any(|s| s.resolve)
    }
}

/// nginx's `expires=max` for a sticky cookie (Thu, 31 Dec 2037 23:55:55 GMT as Unix time).
pub const STICKY_MAX_EXPIRES: Option<i64> = Some(2_145_916_555);

/// nginx `sticky cookie NAME [expires=] [domain=] [path=] [httponly] [secure]
/// [samesite=]`: the server that answered is named in a cookie, and a request carrying
/// it goes back to that server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StickyConf {
    pub cookie: String,
    /// Lifetime in seconds; `None`: a session cookie. nginx's `max` is 2145916555.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub httponly: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secure: bool,
    /// `strict`, `lax` or `none`, sent as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samesite: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

/// The balancing algorithm of an upstream.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// nginx's smooth weighted round robin.
    #[default]
    RoundRobin,
    /// Fewest requests in flight relative to weight (nginx `least_conn`).
    LeastConn,
    /// The client's /24 (IPv4) or whole address (IPv6) picks the server (nginx `ip_hash`).
    IpHash,
    /// A key built from variables picks the server (nginx `hash KEY [consistent]`).
    Hash {
        key: String,
        #[serde(default)]
        consistent: bool,
    },
}

/// Upstream keep-alive (nginx `keepalive`, `keepalive_timeout`, `keepalive_requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keepalive {
    /// Idle connections to keep per worker thread.
    pub connections: u32,
    /// How long an idle upstream connection is kept.
    #[serde(rename = "timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
    /// Requests per upstream connection before it is closed.
    pub requests: u32,
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
    /// Failed requests within `fail_timeout` that make the server unavailable for
    /// `fail_timeout` (nginx passive health; 0 disables). Default 1.
    pub max_fails: u32,
    #[serde(rename = "fail_timeout_ms", serialize_with = "as_millis")]
    pub fail_timeout: Duration,
    /// Requests in flight at most (0: no limit).
    #[serde(skip_serializing_if = "is_default")]
    pub max_conns: u32,
    /// Used only when every other server is unusable.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
    /// Never used (nginx `down`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
    /// Only requests that a pin or a sticky cookie sends here (nginx `drain`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// The host name is re-resolved while running, every address a server (nginx
    /// `resolve`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resolve: bool,
    /// The sticky cookie value for this server (nginx `route=`); otherwise the MD5 of
    /// its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

impl Server {
    /// nginx's defaults for the passive health of a server.
    pub const DEFAULT_MAX_FAILS: u32 = 1;
    pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

    /// A server with nginx's defaults for everything but its name and address.
    pub fn new(name: String, addr: String, origin: Origin) -> Server {
        Server {
            name,
            addr,
            weight: 1,
            max_fails: Server::DEFAULT_MAX_FAILS,
            fail_timeout: Server::DEFAULT_FAIL_TIMEOUT,
            max_conns: 0,
            backup: false,
            down: false,
            drain: false,
            resolve: false,
            route: None,
            origin,
        }
    }
}

/// nginx `map SOURCE $variable { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapVar {
    /// The value mapped, a template such as `$http_upgrade`.
    pub source: String,
    /// The variable defined, without `$`.
    pub variable: String,
    /// Entries in the order written; exact keys win over regexes, as in nginx.
    pub entries: Vec<MapEntry>,
    /// The value when nothing matches (nginx: empty).
    pub default: String,
    #[serde(skip)]
    pub origin: Origin,
}

/// nginx `geo [$source] $variable { ... }`: a value by the longest network that holds the
/// client's address (or the address in `$source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeoVar {
    /// The variable whose value is the address to look up (without `$`); `None`: the
    /// client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The variable defined, without `$`.
    pub variable: String,
    /// The block's entries as written (`10.0.0.0/8 1`, `default 0`, `proxy 10.0.0.1`...),
    /// checked when the config is compiled.
    pub entries: Vec<GeoEntry>,
    #[serde(skip)]
    pub origin: Origin,
}

/// One line of a `geo` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GeoEntry {
    pub words: Vec<String>,
    #[serde(skip)]
    pub origin: Origin,
}

/// One line of a `map` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapEntry {
    pub key: MapKey,
    /// A template: may refer to other variables.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MapKey {
    Exact(String),
    Regex {
        pattern: String,
        case_insensitive: bool,
    },
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
