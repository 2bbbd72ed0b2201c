//! Compiling virtual servers and their routes: locations, `return`s, `proxy_pass` with its
//! pins, the header rules and access logs of each route, checked as they are built.

use super::compile::{header_name, wire_header_name};
use super::limits::Zones;
use super::real_ip;
use super::static_names::static_name;
use super::{AddHeaderRule, HeaderRule, ProxyRoute, Route, RouteAction, VirtualServer};
use crate::config::{
    AccessLogTarget, Action, AddHeader, Config, ConfigError, Origin, PathMatch, PinMatch,
    PinSource, PinTarget, ProxyPass, ProxySettings, Route as RouteConf, ServerName, SetHeader,
    VirtualServer as VirtualServerConf,
};
use crate::net::geo::AllowList;
use crate::observe::LogTarget;
use crate::observe::access_log::{DropCounter, Sinks};
use crate::observe::log_format::Format;
use crate::routing::locations::Locations;
use crate::routing::pin::{Pin, PinBinding, PinFrom, PinGuard};
use crate::routing::server_names::Names;
use crate::routing::signed_pin::PinKey;
use crate::tls::upstream::PeerTls;
use crate::upstream::{Group, Pool};
use crate::variables::Template;
use bytes::Bytes;
use http::HeaderValue;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

type Pools = BTreeMap<String, Arc<Pool>>;

/// Access log targets of one compile: formats compiled once each, sinks shared.
pub(super) struct Logs<'a> {
    config: &'a Config,
    sinks: &'a Sinks,
    maps: &'a [String],
    formats: BTreeMap<String, Arc<Format>>,
    on_drop: DropCounter,
}

impl<'a> Logs<'a> {
    pub(super) fn new(
        config: &'a Config,
        sinks: &'a Sinks,
        maps: &'a [String],
        on_drop: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        Logs {
            config,
            sinks,
            maps,
            formats: BTreeMap::new(),
            on_drop: Arc::new(on_drop),
        }
    }

    fn targets(
        &mut self,
        file: &Path,
        targets: &[AccessLogTarget],
    ) -> Result<Vec<LogTarget>, ConfigError> {
        targets
            .iter()
            .map(|t| {
                let format = match self.formats.get(&t.format) {
                    Some(f) => Arc::clone(f),
                    None => {
                        let f = Format::named(&t.format, &self.config.log_formats, self.maps)
                            .map_err(|msg| {
                                let origin = self
                                    .config
                                    .log_formats
                                    .get(&t.format)
                                    .map_or(&t.origin, |f| &f.origin);
                                ConfigError::invalid(file, origin, msg)
                            })?;
                        let f = Arc::new(f);
                        self.formats.insert(t.format.clone(), Arc::clone(&f));
                        f
                    }
                };
                let sink = self
                    .sinks
                    .get(&t.path, &self.on_drop)
                    .map_err(|msg| ConfigError::invalid(file, &t.origin, msg))?;
                Ok(LogTarget { sink, format })
            })
            .collect()
    }
}

pub(super) fn compile_virtual_server(
    file: &Path,
    vs: &VirtualServerConf,
    pools: &Pools,
    zones: &Zones,
    maps: &[String],
    logs: &mut Logs<'_>,
) -> Result<VirtualServer, ConfigError> {
    let at = |msg: String| ConfigError::invalid(file, &vs.origin, msg);
    let mut seen = HashSet::new();
    let mut routes = Vec::with_capacity(vs.routes.len());
    for r in &vs.routes {
        if !seen.insert(&r.path) {
            let at = r.origin.field("path");
            return Err(ConfigError::invalid(file, &at, "duplicate location"));
        }
        let mut route = compile_route(file, r, pools, zones, maps, logs)?;
        route.real_ip = real_ip::compile_route(file, r.real_ip.as_ref(), vs.real_ip.as_ref())?;
        routes.push(route);
    }
    let paths: Vec<&PathMatch> = vs.routes.iter().map(|r| &r.path).collect();
    let first_name = vs.server_names.first().map(|n| match n {
        ServerName::Exact(s) | ServerName::Regex(s) => s.clone(),
        ServerName::Suffix(s) => format!("*{s}"),
        ServerName::Prefix(s) => format!("{s}*"),
    });
    let mut locations = Locations::new(&paths)
        .map_err(|(i, msg)| ConfigError::invalid(file, &vs.routes[i].origin.field("path"), msg))?;
    for (i, r) in vs.routes.iter().enumerate() {
        let name = match &r.path {
            PathMatch::Exact(p) | PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) => p,
            PathMatch::Regex { .. } => continue,
        };
        if matches!(&r.action, Action::Proxy(pass) if pass.auto_redirect) {
            locations.auto_redirect(i, name);
        }
    }
    Ok(VirtualServer {
        listen: vs.listen.clone(),
        default_for: vs.default_for.clone(),
        names: Names::new(&vs.server_names).map_err(at)?,
        merge_slashes: vs.merge_slashes,
        server_name: first_name.unwrap_or_default(),
        locations,
        routes,
        access_log: logs.targets(file, &vs.access_log)?,
        client: super::client::compile(file, &vs.client, &vs.origin)?,
        real_ip: real_ip::compile(file, vs.real_ip.as_ref())?,
    })
}

fn compile_route(
    file: &Path,
    r: &RouteConf,
    pools: &Pools,
    zones: &Zones,
    maps: &[String],
    logs: &mut Logs<'_>,
) -> Result<Route, ConfigError> {
    let origin = &r.origin;
    let invalid = |at: &Origin, msg: String| ConfigError::invalid(file, at, msg);
    if let PathMatch::Exact(p) | PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) = &r.path {
        if !p.starts_with('/') {
            return Err(invalid(
                &origin.field("path"),
                "must start with \"/\"".into(),
            ));
        }
    }
    let action = match &r.action {
        Action::Proxy(pass) => {
            let at = origin.field("upstream");
            let pool = pool_named(pools, &pass.upstream).map_err(|m| invalid(&at, m))?;
            let rewrite = match (&pass.uri, &r.path) {
                (Some(_), PathMatch::Regex { .. }) => {
                    return Err(invalid(
                        &at,
                        "\"proxy_pass\" cannot have URI part in location given by regular expression"
                            .into(),
                    ));
                }
                (
                    Some(uri),
                    PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) | PathMatch::Exact(p),
                ) => Some((p.clone(), uri.clone())),
                (None, _) => None,
            };
            let http_check = pool
                .conf
                .health_check
                .as_ref()
                .is_some_and(|c| matches!(c.kind, crate::config::CheckKind::Http { .. }));
            if r.proxy.upstream_tls.enabled && http_check {
                return Err(invalid(
                    &at,
                    format!(
                        "the health checks of upstream \"{}\" speak plain HTTP to servers reached over TLS; use a tcp check",
                        pass.upstream
                    ),
                ));
            }
            if r.proxy.http2 && http_check {
                return Err(invalid(
                    &at,
                    format!(
                        "the health checks of upstream \"{}\" speak HTTP/1.1 to servers reached over HTTP/2; use a tcp check",
                        pass.upstream
                    ),
                ));
            }
            let at = origin.field("pin");
            let pins = pass
                .pins
                .iter()
                .map(|pin| bind_pin(pools, maps, &pin.source, &pin.matches))
                .collect::<Result<_, _>>()
                .map_err(|(field, m)| invalid(&at.field(field), m))?;
            RouteAction::Proxy(ProxyRoute {
                pool,
                pins,
                on_unhealthy: pass.on_unhealthy,
                pin_guard: pin_guard(file, &at, pass)?,
                rewrite,
                proxy_host: pass.upstream.clone(),
                tls: PeerTls::compile(
                    file,
                    &origin.field("proxy"),
                    &r.proxy.upstream_tls,
                    &pass.upstream,
                )?,
            })
        }
        Action::Return(answer) => {
            let at = origin.field("return");
            if answer.status > 999 {
                return Err(invalid(
                    &at.field("status"),
                    "must be between 0 and 999".into(),
                ));
            }
            let text = match &answer.text {
                Some(text) => {
                    let at = at.field("text");
                    if answer.is_redirect() {
                        header_value(text).map_err(|m| invalid(&at, m))?;
                    }
                    Some(Template::parse(text, maps).map_err(|m| invalid(&at, m))?)
                }
                None => None,
            };
            RouteAction::Return {
                status: answer.status,
                text,
            }
        }
    };
    check_timeouts(file, &origin.field("proxy"), &r.proxy)?;
    Ok(Route {
        limits: zones.bind(file, origin, &r.limits)?,
        action,
        settings: r.proxy.clone(),
        set_headers: header_rules(file, &r.proxy.set_headers, maps)?,
        add_headers: add_header_rules(file, &r.add_headers, maps)?,
        access_log: logs.targets(file, &r.access_log)?,
        real_ip: None,
    })
}

fn check_timeouts(file: &Path, origin: &Origin, p: &ProxySettings) -> Result<(), ConfigError> {
    for (field, value) in [
        ("connect_timeout_ms", p.connect_timeout),
        ("read_timeout_ms", p.read_timeout),
        ("send_timeout_ms", p.send_timeout),
        ("websocket_idle_timeout_ms", p.websocket_idle_timeout),
    ] {
        if value == Duration::ZERO {
            let at = origin.field(field);
            return Err(ConfigError::invalid(file, &at, "must be greater than 0"));
        }
    }
    Ok(())
}

fn pool_named(pools: &Pools, name: &str) -> Result<Arc<Pool>, String> {
    pools
        .get(name)
        .cloned()
        .ok_or_else(|| format!("unknown upstream \"{name}\""))
}

/// Who may pin on a route and how (`allow_from`, `secret`); `None` when it says nothing.
fn pin_guard(
    file: &Path,
    at: &Origin,
    pass: &ProxyPass,
) -> Result<Option<Box<PinGuard>>, ConfigError> {
    if pass.pin_allow_from.is_none() && pass.pin_secret.is_none() {
        return Ok(None);
    }
    let allow = match &pass.pin_allow_from {
        Some(cidrs) => {
            let at = at.field("allow_from");
            let (list, warnings) = AllowList::from_cidrs(cidrs)
                .map_err(|e| ConfigError::invalid(file, &at, e.to_string()))?;
            for w in warnings {
                log::warn!("{}", ConfigError::invalid(file, &at, w));
            }
            Some(list)
        }
        None => None,
    };
    let key = match &pass.pin_secret {
        Some(secret) => Some(PinKey::new(secret.as_bytes()).map_err(|_| {
            let msg = format!(
                "a pin secret needs at least {} bytes (32 random ones are best)",
                PinKey::MIN_SECRET
            );
            ConfigError::invalid(file, &at.field("secret"), msg)
        })?),
        None => None,
    };
    Ok(Some(Box::new(PinGuard { allow, key })))
}

/// Binds a pin to the pools; an error names the field of the pin it is about.
fn bind_pin(
    pools: &Pools,
    maps: &[String],
    source: &PinSource,
    matches: &PinMatch,
) -> Result<Pin, (&'static str, String)> {
    let source = match source {
        PinSource::Variable(text) => {
            PinFrom::Variable(Template::parse(text, maps).map_err(|m| ("variable", m))?)
        }
        PinSource::Header(name) => PinFrom::Header(header_name(name).map_err(|m| ("header", m))?),
        PinSource::Cookie(name) => {
            let bad = name.is_empty()
                || name
                    .bytes()
                    .any(|b| matches!(b, b';' | b'=' | b' ' | b',') || b.is_ascii_control());
            if bad {
                return Err(("cookie", format!("\"{name}\" is not a valid cookie name")));
            }
            PinFrom::Cookie(name.clone())
        }
    };
    let target = match matches {
        PinMatch::ServerName => PinBinding::ServerName,
        PinMatch::Value { equals, target } => {
            let equals = equals.as_bytes().to_vec();
            match target {
                PinTarget::Upstream(name) => PinBinding::Pool {
                    equals,
                    pool: pool_named(pools, name).map_err(|m| ("upstream", m))?,
                },
                PinTarget::Server { upstream, server } => {
                    let pool = pool_named(pools, upstream).map_err(|m| ("upstream", m))?;
                    // A `resolve` server whose name has no address yet is known, empty.
                    let unresolved = pool.conf.servers.iter().any(|s| s.name == *server);
                    let server = match pool.find(server.as_bytes()) {
                        Some(group) => group,
                        None if unresolved => Group { first: 0, len: 0 },
                        None => {
                            return Err((
                                "server",
                                format!("upstream \"{upstream}\" has no server \"{server}\""),
                            ));
                        }
                    };
                    PinBinding::Server {
                        equals,
                        pool,
                        server,
                    }
                }
            }
        }
    };
    Ok(Pin { source, target })
}

/// Hop-by-hop headers belong to one connection: Pingora sets them for the upstream
/// connection itself (keeping it pooled, passing websocket upgrades), so rules for them,
/// such as the `Connection $connection_upgrade` idiom, are not applied.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
];

fn header_rules(
    file: &Path,
    headers: &[SetHeader],
    maps: &[String],
) -> Result<Vec<HeaderRule>, ConfigError> {
    headers
        .iter()
        .filter(|h| {
            let managed = HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n));
            if managed {
                log::debug!(
                    "\"{}\" is a hop-by-hop header that pinlb manages itself",
                    h.name
                );
            }
            !managed
        })
        .map(|h| {
            HeaderRule::new(&h.name, &h.value, maps)
                .map_err(|m| ConfigError::invalid(file, &h.origin, m))
        })
        .collect()
}

impl HeaderRule {
    /// Prepares `proxy_set_header name value`; `maps` are the config's `map` variables.
    pub fn new(name: &str, value: &str, maps: &[String]) -> Result<HeaderRule, String> {
        let header = wire_header_name(name)?;
        header_value(value)?;
        let value = match value.is_empty() {
            true => None,
            false => Some(Template::parse(value, maps)?),
        };
        let literal = value
            .as_ref()
            .and_then(Template::as_literal)
            .and_then(|text| HeaderValue::from_str(text).ok());
        Ok(HeaderRule {
            name: Bytes::from_static(static_name(name).as_bytes()),
            header,
            value,
            literal,
        })
    }
}

/// A header value from the config: a line break would end the header early and start
/// another one of the config's making (header injection), so CR, LF and other control
/// characters but tab are refused.
fn header_value(value: &str) -> Result<(), String> {
    match value.bytes().find(|&b| b != b'\t' && b.is_ascii_control()) {
        Some(b) => Err(format!(
            "header value \"{}\" contains the control character 0x{b:02X}",
            value.escape_debug()
        )),
        None => Ok(()),
    }
}

fn add_header_rules(
    file: &Path,
    headers: &[AddHeader],
    maps: &[String],
) -> Result<Vec<AddHeaderRule>, ConfigError> {
    headers
        .iter()
        .map(|h| {
            let invalid = |m| ConfigError::invalid(file, &h.origin, m);
            header_name(&h.name).map_err(invalid)?;
            header_value(&h.value).map_err(invalid)?;
            Ok(AddHeaderRule {
                name: Bytes::from_static(static_name(&h.name).as_bytes()),
                value: Template::parse(&h.value, maps).map_err(invalid)?,
                always: h.always,
            })
        })
        .collect()
}
