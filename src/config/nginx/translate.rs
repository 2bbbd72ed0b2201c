//! nginx directives → the [`Config`] model: the `main`, `events` and `http` contexts, and
//! the shared helpers of the translator. No directive is silently dropped: each is
//! translated, accepted as having no effect here (logged at debug), or refused.

use super::client::ClientLevel;
use super::level::Level;
use super::parser::{Directive, Pos};
use super::tls::TlsLevel;
use super::{acme, limits, server, upstream, variables};
use crate::config::{
    Config, ConfigError, ErrorLog, GeoVar, Lifecycle, LimitConnZone, LimitReqZone, Listener,
    LogEscape, LogFormat, LogLevel, MapVar, Origin, Upstream,
};
use log::debug;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One directive with its argument values at hand.
pub struct Nginx<'a> {
    d: &'a Directive,
    args: Vec<String>,
}

impl<'a> Nginx<'a> {
    pub fn new(d: &'a Directive) -> Self {
        Nginx {
            d,
            args: d.args.iter().map(|a| a.value.clone()).collect(),
        }
    }

    pub fn name(&self) -> &str {
        &self.d.name
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn directive(&self) -> &'a Directive {
        self.d
    }

    pub fn pos(&self) -> &Pos {
        &self.d.pos
    }

    pub fn origin(&self) -> Origin {
        Origin::Nginx {
            file: self.d.pos.file.to_path_buf(),
            line: self.d.pos.line,
        }
    }

    /// The directives of its block; an error if it has none.
    pub fn block(&self) -> Result<&'a [Directive], ConfigError> {
        self.d.block.as_deref().ok_or_else(|| {
            at(
                self,
                format!("directive \"{}\" has no opening \"{{\"", self.name()),
            )
        })
    }

    /// An error if the directive has a block it should not have.
    pub fn simple(&self) -> Result<(), ConfigError> {
        match self.d.block {
            Some(_) => Err(at(
                self,
                format!("directive \"{}\" is not terminated by \";\"", self.name()),
            )),
            None => Ok(()),
        }
    }
}

/// An error located at directive `d`.
pub fn at(d: &Nginx, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: d.pos().file.to_path_buf(),
        origin: d.origin(),
        msg: msg.into(),
    }
}

/// nginx's `invalid number of arguments in "NAME" directive`.
pub fn arg_count(d: &Nginx, range: RangeInclusive<usize>) -> Result<(), ConfigError> {
    d.simple()?;
    if range.contains(&d.args().len()) {
        return Ok(());
    }
    Err(at(
        d,
        format!("invalid number of arguments in \"{}\" directive", d.name()),
    ))
}

/// Directives that nginx knows but that mean nothing for pinlb.
pub fn accepted(d: &Nginx, context: &str) -> bool {
    let known: &[&str] = match context {
        "main" => &[
            "user",
            "worker_rlimit_nofile",
            "daemon",
            "pcre_jit",
            "worker_cpu_affinity",
            "worker_priority",
        ],
        "events" => &["worker_connections", "use", "multi_accept", "accept_mutex"],
        "http" => &[
            "sendfile",
            "tcp_nopush",
            "tcp_nodelay",
            "types",
            "default_type",
            "server_tokens",
            "types_hash_max_size",
            "server_names_hash_bucket_size",
        ],
        "upstream" => &["zone"],
        // Upstreams use the `http` (or `upstream`) resolver, as in nginx; these only
        // serve `proxy_pass` with variables there, which pinlb does not have.
        "server" => &["resolver", "resolver_timeout"],
        "location" => &[
            "proxy_buffering",
            "proxy_buffers",
            "proxy_buffer_size",
            "proxy_busy_buffers_size",
            "proxy_request_buffering",
            "proxy_cache_bypass",
            "resolver",
            "resolver_timeout",
        ],
        _ => &[],
    };
    let gzip = context == "http" && d.name().starts_with("gzip");
    if gzip || known.contains(&d.name()) {
        debug!(
            "{}:{}: \"{}\" has no effect in pinlb",
            d.pos().file.display(),
            d.pos().line,
            d.name()
        );
        return true;
    }
    false
}

pub fn unsupported(d: &Nginx) -> ConfigError {
    at(d, format!("unsupported directive \"{}\"", d.name()))
}

/// nginx's answer to a known directive in the wrong context.
pub fn not_allowed(d: &Nginx) -> ConfigError {
    at(d, format!("\"{}\" directive is not allowed here", d.name()))
}

/// Directives of the `http` context only, refused by name in `server` and `location`.
pub const HTTP_ONLY: [&str; 6] = [
    "limit_req_zone",
    "limit_conn_zone",
    "geo",
    "map",
    "upstream",
    "log_format",
];

/// `NAME on|off`, as nginx's flag directives read it.
pub fn flag(d: &Nginx) -> Result<bool, ConfigError> {
    arg_count(d, 1..=1)?;
    match d.args()[0].to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(at(
            d,
            format!(
                "invalid value \"{other}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                d.name()
            ),
        )),
    }
}

/// The state of one translation.
pub struct Translator {
    pub main_file: PathBuf,
    threads: usize,
    pid_file: Option<PathBuf>,
    admin: Option<SocketAddr>,
    admin_token: Option<String>,
    lifecycle: Lifecycle,
    error_log: Option<ErrorLog>,
    keepalive_timeout: Duration,
    pub upstreams: BTreeMap<String, Upstream>,
    /// Where each upstream block was written, for messages.
    pub upstream_pos: BTreeMap<String, Pos>,
    pub maps: Vec<MapVar>,
    pub geos: Vec<GeoVar>,
    pub limit_req_zones: BTreeMap<String, LimitReqZone>,
    pub limit_conn_zones: BTreeMap<String, LimitConnZone>,
    /// `merge_slashes` at the http level: the default of every server.
    pub merge_slashes: bool,
    pub log_formats: BTreeMap<String, LogFormat>,
    pub virtual_servers: Vec<crate::config::VirtualServer>,
    pub listeners: Vec<Listener>,
    /// `health_check` directives found in locations, by upstream, with where they were.
    pub health_checks: BTreeMap<String, (crate::config::HealthCheck, Pos)>,
    /// The TLS settings and `listen`s of each virtual server, in the same order.
    pub server_tls: Vec<ServerTls>,
    /// `resolver` and `resolver_timeout` of the `http` block.
    pub resolver: Option<crate::config::Resolver>,
    resolver_timeout: Option<Duration>,
    /// `acme_issuer` blocks, by name.
    pub acme_issuers: BTreeMap<String, crate::config::AcmeIssuer>,
}

/// What [`Translator::finish`] needs to give TLS listeners their settings.
pub struct ServerTls {
    pub level: TlsLevel,
    pub listens: Vec<(SocketAddr, Origin)>,
}

/// Translates a parsed nginx configuration.
pub fn translate(main_file: &Path, directives: &[Directive]) -> Result<Config, ConfigError> {
    let mut t = Translator {
        main_file: main_file.to_path_buf(),
        threads: 1,
        pid_file: None,
        admin: crate::config::DEFAULT_ADMIN.parse().ok(),
        admin_token: None,
        lifecycle: Lifecycle::default(),
        error_log: None,
        keepalive_timeout: Duration::from_secs(75),
        upstreams: BTreeMap::new(),
        upstream_pos: BTreeMap::new(),
        maps: Vec::new(),
        geos: Vec::new(),
        limit_req_zones: BTreeMap::new(),
        limit_conn_zones: BTreeMap::new(),
        merge_slashes: true,
        log_formats: BTreeMap::new(),
        virtual_servers: Vec::new(),
        listeners: Vec::new(),
        health_checks: BTreeMap::new(),
        server_tls: Vec::new(),
        resolver: None,
        resolver_timeout: None,
        acme_issuers: BTreeMap::new(),
    };
    let mut http_seen = false;
    for d in directives.iter().map(Nginx::new) {
        match d.name() {
            "worker_processes" => {
                arg_count(&d, 1..=1)?;
                t.threads = match d.args()[0].as_str() {
                    "auto" => std::thread::available_parallelism().map_or(1, usize::from),
                    n => n
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| at(&d, format!("invalid value \"{n}\"")))?,
                };
            }
            "pid" => {
                arg_count(&d, 1..=1)?;
                t.pid_file = (d.args()[0] != "off").then(|| PathBuf::from(&d.args()[0]));
            }
            "error_log" => t.error_log = Some(error_log(&d)?),
            "worker_shutdown_timeout" => t.lifecycle.grace_period = time_value(&d)?,
            // pinlb's own directives, named in nginx's style.
            "pinlb_admin" => {
                arg_count(&d, 1..=2)?;
                t.admin = match d.args()[0].as_str() {
                    "off" => None,
                    addr => Some(addr.parse().map_err(|_| {
                        at(&d, format!("invalid address \"{addr}\" in \"pinlb_admin\""))
                    })?),
                };
                t.admin_token = match d.args().get(1) {
                    None => None,
                    Some(p) => match p.strip_prefix("token=").filter(|t| !t.is_empty()) {
                        Some(token) if t.admin.is_some() => Some(token.to_string()),
                        _ => return Err(at(&d, format!("invalid parameter \"{p}\""))),
                    },
                };
            }
            "pinlb_drain_delay" => t.lifecycle.drain_delay = time_value(&d)?,
            "pinlb_upgrade_sock" => {
                arg_count(&d, 1..=1)?;
                t.lifecycle.upgrade_sock = PathBuf::from(&d.args()[0]);
            }
            "events" => {
                for e in d.block()?.iter().map(Nginx::new) {
                    if !accepted(&e, "events") {
                        return Err(unsupported(&e));
                    }
                }
            }
            "http" if http_seen => return Err(at(&d, "\"http\" directive is duplicate")),
            "http" => {
                http_seen = true;
                t.http(d.block()?)?;
            }
            "load_module" => {
                return Err(at(
                    &d,
                    "dynamic modules cannot be loaded by pinlb (\"load_module\")",
                ));
            }
            _ if accepted(&d, "main") => d.simple()?,
            _ => return Err(unsupported(&d)),
        }
    }
    if !http_seen {
        return Err(ConfigError::Invalid {
            file: main_file.to_path_buf(),
            origin: Origin::Nginx {
                file: main_file.to_path_buf(),
                line: 1,
            },
            msg: "no \"http\" block: nothing to serve".into(),
        });
    }
    t.finish()
}

impl Translator {
    fn http(&mut self, block: &[Directive]) -> Result<(), ConfigError> {
        // Upstreams, variables, zones and log formats first: servers may refer to them
        // before they are written.
        for d in block.iter().map(Nginx::new) {
            match d.name() {
                "upstream" => upstream::translate(self, &d)?,
                "map" => variables::map(self, &d)?,
                "geo" => variables::geo(self, &d)?,
                "limit_req_zone" => limits::req_zone(self, &d)?,
                "limit_conn_zone" => limits::conn_zone(self, &d)?,
                "log_format" => self.log_format(&d)?,
                "acme_issuer" => acme::issuer(self, &d)?,
                _ => {}
            }
        }
        let log_formats: Vec<String> = self.log_formats.keys().cloned().collect();
        let mut level = Level::default();
        let mut client = ClientLevel::default();
        let mut tls = TlsLevel::default();
        let base = self.base_dir();
        let mut servers = Vec::new();
        for d in block.iter().map(Nginx::new) {
            match d.name() {
                "upstream" | "map" | "geo" | "limit_req_zone" | "limit_conn_zone"
                | "log_format" | "acme_issuer" => {}
                "acme_shared_zone" => acme::shared_zone(&d)?,
                "server" => servers.push(d),
                "merge_slashes" => self.merge_slashes = flag(&d)?,
                "keepalive_timeout" => {
                    arg_count(&d, 1..=2)?;
                    self.keepalive_timeout = super::values::time(&d.args()[0])
                        .ok_or_else(|| at(&d, format!("invalid value \"{}\"", d.args()[0])))?;
                }
                "resolver" if self.resolver.is_some() => {
                    return Err(at(&d, "\"resolver\" directive is duplicate"));
                }
                "resolver" => self.resolver = Some(resolver(&d)?),
                "resolver_timeout" => self.resolver_timeout = Some(time_value(&d)?),
                _ if level.apply(&d, &log_formats)? => {}
                _ if client.apply(&d)? => {}
                _ if tls.apply(&d, &base)? => {}
                _ if accepted(&d, "http") => {}
                _ => return Err(unsupported(&d)),
            }
        }
        for d in servers {
            server::translate(self, &d, &level, &client, &tls, &log_formats)?;
        }
        Ok(())
    }

    /// `log_format NAME [escape=default|json|none] STRING...`.
    fn log_format(&mut self, d: &Nginx) -> Result<(), ConfigError> {
        arg_count(d, 2..=usize::MAX)?;
        let name = d.args()[0].clone();
        if ["combined", "upstream", "json"].contains(&name.as_str())
            || self.log_formats.contains_key(&name)
        {
            return Err(at(d, format!("duplicate \"log_format\" name \"{name}\"")));
        }
        let mut parts = &d.args()[1..];
        let mut escape = LogEscape::Default;
        if let Some(e) = parts[0].strip_prefix("escape=") {
            escape = match e {
                "default" => LogEscape::Default,
                "json" => LogEscape::Json,
                "none" => LogEscape::None,
                _ => return Err(at(d, format!("unknown log format escaping \"{e}\""))),
            };
            parts = &parts[1..];
        }
        self.log_formats.insert(
            name,
            LogFormat {
                template: parts.concat(),
                escape,
                origin: d.origin(),
            },
        );
        Ok(())
    }

    /// The folder relative file names are taken from: the main file's.
    pub fn base_dir(&self) -> PathBuf {
        self.main_file
            .parent()
            .map_or_else(PathBuf::new, Path::to_path_buf)
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        self.finish_listeners()?;
        if let (Some(r), Some(timeout)) = (&mut self.resolver, self.resolver_timeout) {
            r.timeout = timeout;
        }
        if let Some(timeout) = self.resolver_timeout {
            for u in self.upstreams.values_mut() {
                // An upstream's own `resolver_timeout` wins; nginx merges the others.
                let unset = |r: &&mut crate::config::Resolver| {
                    r.timeout == crate::config::Resolver::DEFAULT_TIMEOUT
                };
                if let Some(r) = u.resolver.as_mut().filter(unset) {
                    r.timeout = timeout;
                }
            }
        }
        for (name, (check, _)) in std::mem::take(&mut self.health_checks) {
            if let Some(upstream) = self.upstreams.get_mut(&name) {
                upstream.health_check = Some(check);
            }
        }
        Ok(Config {
            source: self.main_file,
            threads: self.threads,
            listeners: self.listeners,
            virtual_servers: self.virtual_servers,
            upstreams: self.upstreams,
            maps: self.maps,
            geos: self.geos,
            limit_req_zones: self.limit_req_zones,
            limit_conn_zones: self.limit_conn_zones,
            served_by_header: None,
            served_by_reason: false,
            keepalive_timeout: self.keepalive_timeout,
            pid_file: self.pid_file,
            admin: self.admin,
            admin_token: self.admin_token,
            lifecycle: self.lifecycle,
            error_log: self.error_log,
            log_formats: self.log_formats,
            resolver: self.resolver,
            acme_issuers: self.acme_issuers,
        })
    }
}

/// A directive whose one argument is a time, zero allowed.
fn time_value(d: &Nginx) -> Result<Duration, ConfigError> {
    arg_count(d, 1..=1)?;
    super::values::time(&d.args()[0])
        .ok_or_else(|| at(d, format!("invalid value \"{}\"", d.args()[0])))
}

/// `resolver ADDRESS ... [valid=TIME] [ipv4=on|off] [ipv6=on|off] [status_zone=Z]`, in
/// `http` or an `upstream`. Addresses are IP addresses with an optional port: pinlb does
/// not resolve the name of its name server.
pub fn resolver(d: &Nginx) -> Result<crate::config::Resolver, ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    let mut r = crate::config::Resolver::system(d.origin());
    for arg in d.args() {
        let invalid = || at(d, format!("invalid parameter \"{arg}\""));
        let on_off = |v: &str| match v {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(invalid()),
        };
        match arg.split_once('=') {
            Some(("valid", v)) => {
                r.valid = Some(super::values::time(v).ok_or_else(invalid)?);
            }
            Some(("ipv4", v)) => r.ipv4 = on_off(v)?,
            Some(("ipv6", v)) => r.ipv6 = on_off(v)?,
            Some(("status_zone", _)) => {}
            _ => {
                let addr = crate::config::resolver_addr(arg).ok_or_else(|| {
                    at(
                        d,
                        format!("host not found in resolver \"{arg}\" (pinlb takes IP addresses)"),
                    )
                })?;
                r.servers.push(addr);
            }
        }
    }
    if !r.ipv4 && !r.ipv6 {
        return Err(at(d, "\"ipv4\" and \"ipv6\" cannot both be \"off\""));
    }
    if r.servers.is_empty() {
        return Err(at(
            d,
            "invalid number of arguments in \"resolver\" directive",
        ));
    }
    Ok(r)
}

/// `error_log FILE [LEVEL]` with nginx's levels.
fn error_log(d: &Nginx) -> Result<ErrorLog, ConfigError> {
    arg_count(d, 1..=2)?;
    let level = match d.args().get(1).map(String::as_str) {
        None | Some("error" | "crit" | "alert" | "emerg") => LogLevel::Error,
        Some("warn") => LogLevel::Warn,
        Some("notice" | "info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        Some(other) => return Err(at(d, format!("invalid log level \"{other}\""))),
    };
    let path = match d.args()[0].as_str() {
        "stderr" | "/dev/stderr" => "stderr".to_string(),
        p if p.starts_with("syslog:") => return Err(at(d, "syslog error logs are not supported")),
        p => p.to_string(),
    };
    Ok(ErrorLog { path, level })
}
