//! The native JSON config file: serde structs (`*Conf`) that mirror the file, and their
//! translation into the [`Config`] model with JSON paths as origins.

mod acme;
mod limits;
mod tls;

use super::{
    AccessLogTarget, Action, Balance, CheckKind, ClientLimits, Config, ConfigError, HeaderBuffers,
    HealthCheck, Keepalive, Listener, LogEscape, LogFormat, NextUpstream, OnUnhealthy, Origin,
    PathMatch, PinMatch, PinRule, PinSource, ProxyPass, ProxySettings, RealIp, RealIpFrom,
    Resolver, ReturnAction, Route, RouteLimits, Server, SetHeader, StickyConf, Upstream,
    UpstreamTls, VirtualServer,
};
use limits::{ConnZoneConf, LimitsConf, ReqZoneConf};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Parses a native JSON config. Unknown keys, duplicate keys and values of the wrong type
/// are errors that name the JSON path, line and column.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let conf: ConfigConf = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." || inner.is_syntax() || inner.is_eof() {
            format!("invalid JSON: {inner}")
        } else {
            format!("{path}: {inner}")
        };
        ConfigError::Syntax {
            file: file.to_path_buf(),
            msg,
        }
    })?;
    conf.into_config(file)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigConf {
    #[serde(default)]
    threads: Threads,
    listeners: Vec<ListenerConf>,
    #[serde(deserialize_with = "unique_keys")]
    upstreams: BTreeMap<String, UpstreamConf>,
    routes: Vec<RouteConf>,
    #[serde(default)]
    served_by_header: Option<String>,
    #[serde(default)]
    served_by_reason: bool,
    /// Defaults for every route.
    #[serde(default)]
    proxy: ProxyConf,
    /// Limits of every route.
    #[serde(default)]
    limits: LimitsConf,
    /// Which client address to believe (nginx's realip), for every route.
    #[serde(default)]
    real_ip: Option<RealIpConf>,
    #[serde(default, deserialize_with = "unique_keys")]
    limit_req_zones: BTreeMap<String, ReqZoneConf>,
    #[serde(default, deserialize_with = "unique_keys")]
    limit_conn_zones: BTreeMap<String, ConnZoneConf>,
    #[serde(default = "default_true")]
    merge_slashes: bool,
    #[serde(default = "default_keepalive_timeout_ms")]
    keepalive_timeout_ms: u64,
    #[serde(default)]
    pid_file: Option<PathBuf>,
    #[serde(default)]
    admin: Option<AdminConf>,
    #[serde(default)]
    shutdown: ShutdownConf,
    /// Default for every route; absent: stdout in the `upstream` format.
    #[serde(default)]
    access_log: Option<AccessLogConf>,
    #[serde(default, deserialize_with = "unique_keys")]
    log_formats: BTreeMap<String, String>,
    // The client limits: nginx's names, times in milliseconds, sizes in bytes.
    #[serde(default)]
    client_header_timeout_ms: Option<u64>,
    #[serde(default)]
    client_body_timeout_ms: Option<u64>,
    #[serde(default)]
    client_send_timeout_ms: Option<u64>,
    #[serde(default)]
    client_header_buffer_size: Option<u64>,
    #[serde(default)]
    large_client_header_buffers: Option<HeaderBuffers>,
    #[serde(default)]
    keepalive_requests: Option<u32>,
    #[serde(default)]
    resolver: Option<ResolverConf>,
    #[serde(default)]
    acme_issuers: BTreeMap<String, acme::IssuerConf>,
}

impl ConfigConf {
    fn limits(&self, root: &Origin) -> ClientLimits {
        let d = ClientLimits::default();
        let ms = |v: Option<u64>, default| v.map_or(default, Duration::from_millis);
        let mut limits = ClientLimits {
            header_timeout: ms(self.client_header_timeout_ms, d.header_timeout),
            body_timeout: ms(self.client_body_timeout_ms, d.body_timeout),
            send_timeout: ms(self.client_send_timeout_ms, d.send_timeout),
            header_buffer_size: self
                .client_header_buffer_size
                .unwrap_or(d.header_buffer_size),
            large_header_buffers: self
                .large_client_header_buffers
                .unwrap_or(d.large_header_buffers),
            keepalive_requests: self.keepalive_requests.unwrap_or(d.keepalive_requests),
            origins: Vec::new(),
        };
        let set = [
            (
                "client_header_timeout_ms",
                self.client_header_timeout_ms.is_some(),
            ),
            (
                "client_body_timeout_ms",
                self.client_body_timeout_ms.is_some(),
            ),
            (
                "client_send_timeout_ms",
                self.client_send_timeout_ms.is_some(),
            ),
            (
                "client_header_buffer_size",
                self.client_header_buffer_size.is_some(),
            ),
            (
                "large_client_header_buffers",
                self.large_client_header_buffers.is_some(),
            ),
            ("keepalive_requests", self.keepalive_requests.is_some()),
        ];
        limits.origins = set
            .into_iter()
            .filter(|(_, written)| *written)
            .map(|(name, _)| (name, root.field(name)))
            .collect();
        limits
    }
}

/// `{ "servers": ["10.0.0.2", "10.0.0.3:5353"], "valid_ms": 5000, "ipv4": true,
/// "ipv6": true, "timeout_ms": 30000 }`: nginx's `resolver` and `resolver_timeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolverConf {
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default)]
    valid_ms: Option<u64>,
    #[serde(default = "yes")]
    ipv4: bool,
    #[serde(default = "yes")]
    ipv6: bool,
    #[serde(default = "default_resolver_timeout_ms")]
    timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_resolver_timeout_ms() -> u64 {
    Resolver::DEFAULT_TIMEOUT.as_secs() * 1000
}

impl ResolverConf {
    fn into_resolver(self, file: &Path, origin: Origin) -> Result<Resolver, ConfigError> {
        let mut servers = Vec::with_capacity(self.servers.len());
        for (i, written) in self.servers.iter().enumerate() {
            let addr = super::resolver_addr(written).ok_or_else(|| {
                ConfigError::invalid(
                    file,
                    &origin.field("servers").field(&format!("[{i}]")),
                    format!("\"{written}\" is not an ip or ip:port address"),
                )
            })?;
            servers.push(addr);
        }
        Ok(Resolver {
            servers,
            valid: self.valid_ms.map(Duration::from_millis),
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            timeout: Duration::from_millis(self.timeout_ms),
            origin,
        })
    }
}

/// `{ "cookie": "srv_id", "expires_ms": 3600000, "domain": ..., "path": "/",
/// "httponly": true, "secure": true, "samesite": "lax" }`: nginx's `sticky cookie`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StickyJson {
    cookie: String,
    #[serde(default)]
    expires_ms: Option<u64>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    httponly: bool,
    #[serde(default)]
    secure: bool,
    #[serde(default)]
    samesite: Option<String>,
}

/// `{ "path": "stdout" | "stderr" | FILE | "off", "format": NAME }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessLogConf {
    path: String,
    #[serde(default = "default_log_format")]
    format: String,
}

fn default_log_format() -> String {
    "upstream".into()
}

impl AccessLogConf {
    fn targets(&self, origin: &Origin) -> Vec<AccessLogTarget> {
        if self.path == "off" {
            return Vec::new();
        }
        vec![AccessLogTarget {
            path: self.path.clone(),
            format: self.format.clone(),
            origin: origin.clone(),
        }]
    }
}

/// `{ "addr": "127.0.0.1:9901", "token": "..." }`, or `"off"` as the address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminConf {
    #[serde(default)]
    addr: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShutdownConf {
    drain_delay_ms: Option<u64>,
    grace_period_ms: Option<u64>,
    upgrade_sock: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

/// nginx's `keepalive_timeout` default.
fn default_keepalive_timeout_ms() -> u64 {
    75_000
}

/// `threads`: a count, or `"auto"` for one per CPU (`None`). Default 1, as nginx's
/// `worker_processes`.
#[derive(Debug)]
struct Threads(Option<usize>);

impl Default for Threads {
    fn default() -> Self {
        Threads(Some(1))
    }
}

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ThreadsVisitor;
        impl Visitor<'_> for ThreadsVisitor {
            type Value = Threads;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of threads or \"auto\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Threads, E> {
                Ok(Threads(Some(usize::try_from(v).map_err(E::custom)?)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Threads, E> {
                match v {
                    "auto" => Ok(Threads(None)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(ThreadsVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerConf {
    addr: String,
    /// Connections start with a PROXY protocol header (nginx `listen ... proxy_protocol`).
    #[serde(default)]
    proxy_protocol: bool,
    #[serde(default)]
    tls: Option<tls::TlsConf>,
    #[serde(default)]
    http2: bool,
}

/// nginx's realip: `{ "from": ["10.0.0.0/8"], "header": "X-Forwarded-For",
/// "recursive": true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RealIpConf {
    from: Vec<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    recursive: bool,
}

impl RealIpConf {
    /// The model; `None` for an empty `from` (realip off, as nginx without
    /// `set_real_ip_from`).
    fn model(&self, origin: &Origin) -> Option<RealIp> {
        if self.from.is_empty() {
            return None;
        }
        let from = self.from.iter().enumerate().map(|(i, source)| RealIpFrom {
            source: source.clone(),
            origin: origin.field("from").field(&format!("[{i}]")),
        });
        Some(RealIp {
            from: from.collect(),
            header: self
                .header
                .clone()
                .unwrap_or_else(|| super::DEFAULT_REAL_IP_HEADER.to_string()),
            recursive: self.recursive,
            origin: origin.field("header"),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamConf {
    servers: Vec<ServerConf>,
    #[serde(default)]
    balance: Balance,
    #[serde(default)]
    health_check: Option<HealthCheckConf>,
    #[serde(default)]
    keepalive: Option<KeepaliveConf>,
    #[serde(default)]
    sticky: Option<StickyJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerConf {
    name: String,
    addr: String,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default = "default_max_fails")]
    max_fails: u32,
    #[serde(default = "default_fail_timeout_ms")]
    fail_timeout_ms: u64,
    #[serde(default)]
    max_conns: u32,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    down: bool,
    #[serde(default)]
    drain: bool,
    #[serde(default)]
    resolve: bool,
    #[serde(default)]
    route: Option<String>,
}

fn default_weight() -> u32 {
    1
}
fn default_max_fails() -> u32 {
    Server::DEFAULT_MAX_FAILS
}
fn default_fail_timeout_ms() -> u64 {
    Server::DEFAULT_FAIL_TIMEOUT.as_secs() * 1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeepaliveConf {
    connections: u32,
    #[serde(default = "default_upstream_keepalive_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_keepalive_requests")]
    requests: u32,
}

/// nginx's upstream `keepalive_timeout` and `keepalive_requests` defaults.
fn default_upstream_keepalive_timeout_ms() -> u64 {
    60_000
}
fn default_keepalive_requests() -> u32 {
    1000
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CheckType {
    Http,
    Tcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckConf {
    #[serde(rename = "type")]
    kind: CheckType,
    #[serde(default)]
    path: Option<String>,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_check_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_threshold")]
    fails: u32,
    #[serde(default = "default_threshold")]
    passes: u32,
}

/// NGINX Plus's `health_check` defaults: every 5 s, one failure or pass flips.
fn default_interval_ms() -> u64 {
    5000
}
fn default_check_timeout_ms() -> u64 {
    1000
}
fn default_threshold() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteConf {
    path: String,
    /// Proxy to this upstream; or answer directly with `return`.
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default, rename = "return")]
    answer: Option<ReturnConf>,
    #[serde(default)]
    pin: Option<PinConf>,
    /// Overrides of the top-level `proxy` settings for this route.
    #[serde(default)]
    proxy: ProxyConf,
    #[serde(default)]
    access_log: Option<AccessLogConf>,
    /// Overrides of the top-level `limits`.
    #[serde(default)]
    limits: LimitsConf,
    /// Replaces the top-level `real_ip` for this route.
    #[serde(default)]
    real_ip: Option<RealIpConf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnConf {
    status: u16,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinConf {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
    #[serde(default)]
    on_unhealthy: OnUnhealthy,
    /// Client networks whose pins are honoured (CIDR, nginx syntax).
    #[serde(default)]
    allow_from: Option<Vec<String>>,
    /// Pins must be `NAME.MAC` signed with this secret.
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyConf {
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    websocket_idle_timeout_ms: Option<u64>,
    next_upstream_tries: Option<u32>,
    next_upstream: Option<Vec<NextUpstreamCond>>,
    /// Replaces the inherited header list as a whole, as `proxy_set_header` does in nginx.
    #[serde(default, deserialize_with = "unique_keys_opt")]
    set_headers: Option<BTreeMap<String, String>>,
    client_max_body_size: Option<u64>,
    /// TLS to the servers, with nginx's `proxy_ssl_*` meaning.
    tls: Option<bool>,
    ssl_server_name: Option<bool>,
    ssl_name: Option<String>,
    ssl_verify: Option<bool>,
    ssl_trusted_certificate: Option<PathBuf>,
    /// HTTP/2 to the servers (gRPC): h2c, or ALPN h2 with `tls`.
    http2: Option<bool>,
}

/// The `proxy_next_upstream` conditions pinlb understands, named as nginx names them.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum NextUpstreamCond {
    Error,
    Timeout,
    NonIdempotent,
    #[serde(rename = "http_500")]
    Http500,
    #[serde(rename = "http_502")]
    Http502,
    #[serde(rename = "http_503")]
    Http503,
    #[serde(rename = "http_504")]
    Http504,
    #[serde(rename = "http_403")]
    Http403,
    #[serde(rename = "http_404")]
    Http404,
    #[serde(rename = "http_429")]
    Http429,
    Off,
}

impl NextUpstreamCond {
    fn status(&self) -> Option<u16> {
        Some(match self {
            NextUpstreamCond::Http500 => 500,
            NextUpstreamCond::Http502 => 502,
            NextUpstreamCond::Http503 => 503,
            NextUpstreamCond::Http504 => 504,
            NextUpstreamCond::Http403 => 403,
            NextUpstreamCond::Http404 => 404,
            NextUpstreamCond::Http429 => 429,
            _ => return None,
        })
    }
}

impl ProxyConf {
    /// These settings (written at `origin`) applied over `base`.
    fn apply(&self, base: &ProxySettings, origin: &Origin) -> ProxySettings {
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        let next_upstream = match self.next_upstream.as_deref() {
            None => base.next_upstream.clone(),
            Some(conds) => NextUpstream {
                error: conds.contains(&NextUpstreamCond::Error),
                timeout: conds.contains(&NextUpstreamCond::Timeout),
                non_idempotent: conds.contains(&NextUpstreamCond::NonIdempotent),
                statuses: conds.iter().filter_map(NextUpstreamCond::status).collect(),
            },
        };
        let set_headers = match &self.set_headers {
            None => base.set_headers.clone(),
            Some(headers) => headers
                .iter()
                .map(|(name, value)| SetHeader {
                    name: name.clone(),
                    value: value.clone(),
                    origin: origin.field("set_headers").field(name),
                })
                .collect(),
        };
        ProxySettings {
            connect_timeout: ms(self.connect_timeout_ms, base.connect_timeout),
            read_timeout: ms(self.read_timeout_ms, base.read_timeout),
            send_timeout: ms(self.send_timeout_ms, base.send_timeout),
            websocket_idle_timeout: ms(self.websocket_idle_timeout_ms, base.websocket_idle_timeout),
            next_upstream_tries: self.next_upstream_tries.unwrap_or(base.next_upstream_tries),
            next_upstream,
            set_headers,
            client_max_body_size: self.client_max_body_size.or(base.client_max_body_size),
            upstream_tls: UpstreamTls {
                enabled: self.tls.unwrap_or(base.upstream_tls.enabled),
                server_name: self
                    .ssl_server_name
                    .unwrap_or(base.upstream_tls.server_name),
                name: self
                    .ssl_name
                    .clone()
                    .or_else(|| base.upstream_tls.name.clone()),
                verify: self.ssl_verify.unwrap_or(base.upstream_tls.verify),
                trusted_certificate: self
                    .ssl_trusted_certificate
                    .clone()
                    .or_else(|| base.upstream_tls.trusted_certificate.clone()),
            },
            http2: self.http2.unwrap_or(base.http2),
        }
    }

    /// `off` cannot be combined with other conditions (nginx refuses that too).
    fn check(&self, file: &Path, origin: &Origin) -> Result<(), ConfigError> {
        match self.next_upstream.as_deref() {
            Some(conds) if conds.contains(&NextUpstreamCond::Off) && conds.len() > 1 => {
                Err(ConfigError::invalid(
                    file,
                    &origin.field("next_upstream"),
                    "\"off\" cannot be combined with other conditions",
                ))
            }
            _ => Ok(()),
        }
    }
}

impl ConfigConf {
    fn into_config(self, file: &Path) -> Result<Config, ConfigError> {
        let threads = match self.threads.0 {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let root = Origin::Json(String::new());
        let client_limits = self.limits(&root);
        let acme_issuers = acme::issuers(file, &self.acme_issuers)?;
        let mut listeners = Vec::with_capacity(self.listeners.len());
        for (i, l) in self.listeners.iter().enumerate() {
            let origin = root.field("listeners").field(&format!("[{i}]"));
            let addr = l.addr.parse().map_err(|_| {
                ConfigError::invalid(
                    file,
                    &origin.field("addr"),
                    format!("\"{}\" is not an ip:port address", l.addr),
                )
            })?;
            let tls = match &l.tls {
                Some(t) => Some(t.listener(file, origin.field("tls"), &acme_issuers)?),
                None => None,
            };
            listeners.push(Listener {
                addr,
                proxy_protocol: l.proxy_protocol,
                tls,
                http2: l.http2,
                origin,
            });
        }

        let admin = match self.admin.as_ref().and_then(|a| a.addr.as_deref()) {
            Some("off") => None,
            written => {
                let addr = written.unwrap_or(super::DEFAULT_ADMIN);
                Some(addr.parse().map_err(|_| {
                    let at = root.field("admin").field("addr");
                    ConfigError::invalid(
                        file,
                        &at,
                        format!("\"{addr}\" is not an ip:port address or \"off\""),
                    )
                })?)
            }
        };
        let defaults = super::Lifecycle::default();
        let lifecycle = super::Lifecycle {
            drain_delay: self
                .shutdown
                .drain_delay_ms
                .map_or(defaults.drain_delay, Duration::from_millis),
            grace_period: self
                .shutdown
                .grace_period_ms
                .map_or(defaults.grace_period, Duration::from_millis),
            upgrade_sock: self
                .shutdown
                .upgrade_sock
                .clone()
                .unwrap_or(defaults.upgrade_sock),
        };

        let mut upstreams = BTreeMap::new();
        for (name, u) in self.upstreams {
            let origin = root.field("upstreams").field(&name);
            let upstream = u.into_upstream(file, &origin)?;
            upstreams.insert(name, upstream);
        }

        let log_origin = root.field("access_log");
        let default_log = self.access_log.as_ref().map_or_else(
            || {
                vec![AccessLogTarget {
                    path: "stdout".into(),
                    format: default_log_format(),
                    origin: Origin::Builtin,
                }]
            },
            |log| log.targets(&log_origin),
        );
        self.proxy.check(file, &root.field("proxy"))?;
        let defaults = self
            .proxy
            .apply(&ProxySettings::default(), &root.field("proxy"));
        let default_limits =
            self.limits
                .apply(&RouteLimits::default(), file, &root.field("limits"))?;
        let mut limit_req_zones = BTreeMap::new();
        for (name, zone) in self.limit_req_zones {
            let origin = root.field("limit_req_zones").field(&name);
            limit_req_zones.insert(name, zone.into_zone(file, origin)?);
        }
        let mut limit_conn_zones = BTreeMap::new();
        for (name, zone) in self.limit_conn_zones {
            let origin = root.field("limit_conn_zones").field(&name);
            limit_conn_zones.insert(name, zone.into_zone(file, origin)?);
        }
        let real_ip = self
            .real_ip
            .as_ref()
            .and_then(|r| r.model(&root.field("real_ip")));
        let mut routes = Vec::with_capacity(self.routes.len());
        for (i, r) in self.routes.into_iter().enumerate() {
            let origin = root.field("routes").field(&format!("[{i}]"));
            r.proxy.check(file, &origin.field("proxy"))?;
            routes.push(Route {
                action: r.action(file, &origin)?,
                path: PathMatch::Prefix(r.path),
                proxy: r.proxy.apply(&defaults, &origin.field("proxy")),
                add_headers: Vec::new(),
                access_log: r.access_log.as_ref().map_or_else(
                    || default_log.clone(),
                    |log| log.targets(&origin.field("access_log")),
                ),
                limits: r
                    .limits
                    .apply(&default_limits, file, &origin.field("limits"))?,
                real_ip: match &r.real_ip {
                    Some(own) => own.model(&origin.field("real_ip")),
                    None => real_ip.clone(),
                },
                origin,
            });
        }

        let resolver = match self.resolver {
            Some(r) => Some(r.into_resolver(file, root.field("resolver"))?),
            None => None,
        };
        Ok(Config {
            resolver,
            acme_issuers,
            source: file.to_path_buf(),
            threads,
            virtual_servers: vec![VirtualServer {
                listen: listeners.iter().map(|l| l.addr).collect(),
                default_for: Vec::new(),
                server_names: Vec::new(),
                certificates: Vec::new(),
                acme: None,
                acme_serves: false,
                routes,
                merge_slashes: self.merge_slashes,
                access_log: default_log,
                client: client_limits,
                real_ip,
                origin: root.clone(),
            }],
            listeners,
            upstreams,
            maps: Vec::new(),
            geos: Vec::new(),
            limit_req_zones,
            limit_conn_zones,
            served_by_header: self.served_by_header,
            served_by_reason: self.served_by_reason,
            keepalive_timeout: Duration::from_millis(self.keepalive_timeout_ms),
            pid_file: self.pid_file,
            admin,
            admin_token: self.admin.and_then(|a| a.token),
            lifecycle,
            error_log: None,
            log_formats: self
                .log_formats
                .into_iter()
                .map(|(name, template)| {
                    let format = LogFormat {
                        template,
                        escape: LogEscape::Default,
                        origin: root.field("log_formats").field(&name),
                    };
                    (name, format)
                })
                .collect(),
        })
    }
}

impl RouteConf {
    /// Exactly one of `upstream` and `return`.
    fn action(&self, file: &Path, origin: &Origin) -> Result<Action, ConfigError> {
        match (&self.upstream, &self.answer) {
            (Some(upstream), None) => Ok(Action::Proxy(ProxyPass {
                upstream: upstream.clone(),
                uri: None,
                auto_redirect: false,
                pins: match &self.pin {
                    Some(pin) => pin.rules(file, &origin.field("pin"))?,
                    None => Vec::new(),
                },
                on_unhealthy: self
                    .pin
                    .as_ref()
                    .map(|p| p.on_unhealthy)
                    .unwrap_or_default(),
                pin_allow_from: self.pin.as_ref().and_then(|p| p.allow_from.clone()),
                pin_secret: self.pin.as_ref().and_then(|p| p.secret.clone()),
            })),
            (None, Some(_)) if self.pin.is_some() => Err(ConfigError::invalid(
                file,
                &origin.field("pin"),
                "a route with \"return\" has no upstream to pin to",
            )),
            (None, Some(answer)) => Ok(Action::Return(ReturnAction {
                status: answer.status,
                text: answer.text.clone(),
            })),
            _ => Err(ConfigError::invalid(
                file,
                origin,
                "a route needs either \"upstream\" or \"return\"",
            )),
        }
    }
}

impl UpstreamConf {
    fn into_upstream(self, file: &Path, origin: &Origin) -> Result<Upstream, ConfigError> {
        let servers = self
            .servers
            .into_iter()
            .enumerate()
            .map(|(i, s)| Server {
                name: s.name,
                addr: s.addr,
                weight: s.weight,
                max_fails: s.max_fails,
                fail_timeout: Duration::from_millis(s.fail_timeout_ms),
                max_conns: s.max_conns,
                backup: s.backup,
                down: s.down,
                drain: s.drain,
                resolve: s.resolve,
                route: s.route,
                origin: origin.field("servers").field(&format!("[{i}]")),
            })
            .collect();
        let health_check = match self.health_check {
            Some(hc) => Some(hc.into_check(file, &origin.field("health_check"))?),
            None => None,
        };
        Ok(Upstream {
            servers,
            balance: self.balance,
            health_check,
            keepalive: self.keepalive.map(|k| Keepalive {
                connections: k.connections,
                timeout: Duration::from_millis(k.timeout_ms),
                requests: k.requests,
            }),
            resolver: None,
            sticky: self.sticky.map(|s| StickyConf {
                cookie: s.cookie,
                expires: s
                    .expires_ms
                    .map(|ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX)),
                domain: s.domain,
                path: s.path,
                httponly: s.httponly,
                secure: s.secure,
                samesite: s.samesite,
                origin: origin.field("sticky"),
            }),
            origin: origin.clone(),
        })
    }
}

impl HealthCheckConf {
    fn into_check(self, file: &Path, origin: &Origin) -> Result<HealthCheck, ConfigError> {
        let kind = match (self.kind, self.path) {
            (CheckType::Http, path) => CheckKind::Http {
                path: path.unwrap_or_else(|| "/".into()),
            },
            (CheckType::Tcp, None) => CheckKind::Tcp,
            (CheckType::Tcp, Some(_)) => {
                return Err(ConfigError::invalid(
                    file,
                    &origin.field("path"),
                    "only http health checks have a path",
                ));
            }
        };
        Ok(HealthCheck {
            kind,
            interval: Duration::from_millis(self.interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            fails: self.fails,
            passes: self.passes,
        })
    }
}

impl PinConf {
    /// The header is consulted before the cookie.
    fn rules(&self, file: &Path, origin: &Origin) -> Result<Vec<PinRule>, ConfigError> {
        let header = self.header.clone().map(PinSource::Header);
        let cookie = self.cookie.clone().map(PinSource::Cookie);
        let rules: Vec<PinRule> = header
            .into_iter()
            .chain(cookie)
            .map(|source| PinRule {
                source,
                matches: PinMatch::ServerName,
            })
            .collect();
        if rules.is_empty() {
            return Err(ConfigError::invalid(
                file,
                origin,
                "a pin needs a \"header\", a \"cookie\" or both",
            ));
        }
        Ok(rules)
    }
}

/// Deserializes a JSON object into a map, refusing duplicate keys (serde_json would
/// silently keep the last one).
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueKeys<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueKeys<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate key \"{key}\"")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(UniqueKeys(PhantomData))
}

fn unique_keys_opt<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    unique_keys(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("t.json"), text)
    }

    const MINIMAL: &str = r#"{
        "listeners": [{ "addr": "127.0.0.1:8080" }],
        "upstreams": { "web": { "servers": [ { "name": "a", "addr": "127.0.0.1:9001" } ] } },
        "routes": [ { "path": "/", "upstream": "web" } ]
    }"#;

    #[test]
    fn minimal_config_gets_nginx_defaults() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.threads, 1);
        let route = &c.virtual_servers[0].routes[0];
        assert_eq!(route.proxy, ProxySettings::default());
        assert_eq!(c.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(route.proxy.connect_timeout, Duration::from_secs(60));
        let server = &c.upstreams["web"].servers[0];
        assert_eq!(
            (server.weight, server.max_fails, server.fail_timeout),
            (1, 1, Duration::from_secs(10))
        );
        assert_eq!(
            c.virtual_servers[0].listen,
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
    }

    #[test]
    fn client_limits_are_top_level_keys_with_nginx_defaults() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.virtual_servers[0].client, ClientLimits::default());
        let text = MINIMAL.replace(
            r#""routes""#,
            r#""client_header_timeout_ms": 5000, "client_body_timeout_ms": 6000,
               "client_send_timeout_ms": 7000, "client_header_buffer_size": 2048,
               "large_client_header_buffers": { "number": 2, "size": 4096 },
               "keepalive_requests": 50, "routes""#,
        );
        let client = parse_str(&text).unwrap().virtual_servers[0].client.clone();
        assert_eq!(client.header_timeout, Duration::from_millis(5000));
        assert_eq!(client.body_timeout, Duration::from_millis(6000));
        assert_eq!(client.send_timeout, Duration::from_millis(7000));
        assert_eq!(client.header_buffer_size, 2048);
        assert_eq!(
            client.large_header_buffers,
            HeaderBuffers {
                number: 2,
                size: 4096
            }
        );
        assert_eq!(client.keepalive_requests, 50);
        let bad = MINIMAL.replace(
            r#""routes""#,
            r#""large_client_header_buffers": { "number": 2 }, "routes""#,
        );
        let e = parse_str(&bad).unwrap_err().to_string();
        assert!(
            e.contains("large_client_header_buffers: missing field `size`"),
            "{e}"
        );
    }

    #[test]
    fn pin_reads_header_before_cookie() {
        let text = MINIMAL.replace(
            r#""upstream": "web" }"#,
            r#""upstream": "web", "pin": { "cookie": "c", "header": "h", "on_unhealthy": "refuse" } }"#,
        );
        let route = parse_str(&text).unwrap().virtual_servers[0].routes[0].clone();
        let Action::Proxy(pass) = route.action else {
            panic!("not a proxy route")
        };
        let rule = |source| PinRule {
            source,
            matches: PinMatch::ServerName,
        };
        assert_eq!(
            pass.pins,
            vec![
                rule(PinSource::Header("h".into())),
                rule(PinSource::Cookie("c".into()))
            ]
        );
        assert_eq!(pass.on_unhealthy, OnUnhealthy::Refuse);
    }

    #[test]
    fn route_proxy_settings_override_the_top_level_ones() {
        let text = MINIMAL
            .replace(
                r#""routes""#,
                r#""proxy": { "read_timeout_ms": 5000, "next_upstream": ["error", "http_503"] }, "routes""#,
            )
            .replace(
                r#""upstream": "web" }"#,
                r#""upstream": "web", "proxy": { "connect_timeout_ms": 250, "set_headers": { "X-A": "1" } } }"#,
            );
        let p = parse_str(&text).unwrap().virtual_servers[0].routes[0]
            .proxy
            .clone();
        assert_eq!(p.read_timeout, Duration::from_secs(5));
        assert_eq!(p.connect_timeout, Duration::from_millis(250));
        assert!(p.next_upstream.error && !p.next_upstream.timeout);
        assert_eq!(p.next_upstream.statuses, [503]);
        assert_eq!(
            p.set_headers,
            vec![SetHeader {
                name: "X-A".into(),
                value: "1".into(),
                origin: Origin::Json("routes[0].proxy.set_headers.X-A".into()),
            }]
        );
    }

    #[test]
    fn unknown_key_names_its_path() {
        let text = MINIMAL.replace(r#""name": "a""#, r#""name": "a", "wieght": 2"#);
        let msg = parse_str(&text).unwrap_err().to_string();
        assert!(
            msg.starts_with("upstreams.web.servers[0].wieght: unknown field `wieght`"),
            "{msg}"
        );
        assert!(msg.ends_with("in t.json"), "{msg}");
    }

    #[test]
    fn duplicate_upstream_key_is_refused() {
        let text = MINIMAL.replace(
            r#""upstreams": {"#,
            r#""upstreams": { "web": { "servers": [] },"#,
        );
        let msg = parse_str(&text).unwrap_err().to_string();
        assert!(msg.contains("duplicate key \"web\""), "{msg}");
    }

    #[test]
    fn broken_json_reports_line_and_column() {
        let msg = parse_str("{\n  \"listeners\": [\n}")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("invalid JSON: "), "{msg}");
        assert!(msg.contains("line 3 column 1"), "{msg}");
    }

    #[test]
    fn threads_accept_auto_and_refuse_other_words() {
        let auto = MINIMAL.replace(r#""listeners""#, r#""threads": "auto", "listeners""#);
        assert!(parse_str(&auto).unwrap().threads >= 1);
        let bad = MINIMAL.replace(r#""listeners""#, r#""threads": "many", "listeners""#);
        let msg = parse_str(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("threads: invalid value: string \"many\""),
            "{msg}"
        );
    }

    #[test]
    fn a_route_may_answer_directly() {
        let text = MINIMAL.replace(
            r#"{ "path": "/", "upstream": "web" }"#,
            r#"{ "path": "/", "upstream": "web" }, { "path": "/ping", "return": { "status": 200, "text": "pong" } }"#,
        );
        let c = parse_str(&text).unwrap();
        let Action::Return(answer) = &c.virtual_servers[0].routes[1].action else {
            panic!("not a return route")
        };
        assert_eq!((answer.status, answer.text.as_deref()), (200, Some("pong")));
        let neither = MINIMAL.replace(r#", "upstream": "web""#, "");
        assert_eq!(
            parse_str(&neither).unwrap_err().to_string(),
            "routes[0]: a route needs either \"upstream\" or \"return\" in t.json"
        );
    }

    #[test]
    fn balance_names_nginx_algorithms() {
        let text = MINIMAL.replace(
            r#"} ] } }"#,
            r#"} ], "balance": { "hash": { "key": "$cookie_sid", "consistent": true } } } }"#,
        );
        let c = parse_str(&text).unwrap();
        assert_eq!(
            c.upstreams["web"].balance,
            Balance::Hash {
                key: "$cookie_sid".into(),
                consistent: true
            }
        );
        let lc = MINIMAL.replace(r#"} ] } }"#, r#"} ], "balance": "least_conn" } }"#);
        assert_eq!(
            parse_str(&lc).unwrap().upstreams["web"].balance,
            Balance::LeastConn
        );
    }

    #[test]
    fn tcp_check_with_a_path_is_refused() {
        let text = MINIMAL.replace(
            r#"} ] } }"#,
            r#"} ], "health_check": { "type": "tcp", "path": "/x" } } }"#,
        );
        let msg = parse_str(&text).unwrap_err().to_string();
        assert_eq!(
            msg,
            "upstreams.web.health_check.path: only http health checks have a path in t.json"
        );
    }
}
