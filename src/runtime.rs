//! The running form of a [`Config`]: pools with resolved servers, virtual servers and
//! locations prepared for matching, pins bound to servers, variables parsed. Built once
//! per config load and shared by every request that starts while it is current.

use crate::config::{
    AccessLogTarget, Action, AddHeader, Config, ConfigError, OnUnhealthy, PathMatch, PinMatch,
    PinSource, PinTarget, ProxySettings, SetHeader, VirtualServer as VirtualServerConf,
};
use crate::observe::LogTarget;
use crate::observe::access_log::{DropCounter, Sinks};
use crate::observe::log_format::Format;
use crate::observe::metrics::METRICS;
use crate::routing::locations::Locations;
use crate::routing::server_names::{self, Names, Quality};
use crate::upstream::Pool;
use crate::variables::{CompiledMap, Template};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Runtime {
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub virtual_servers: Vec<VirtualServer>,
    pub maps: Vec<CompiledMap>,
    /// Response header naming the server that answered: the name, and its case as
    /// configured (the case it is sent with).
    pub served_by: Option<(HeaderName, Bytes)>,
    /// Idle time allowed on client keep-alive connections; zero disables keep-alive.
    pub keepalive_timeout: Duration,
    /// Whether any virtual server has names (otherwise the Host header is not consulted).
    any_server_names: bool,
}

pub struct VirtualServer {
    listen: Vec<SocketAddr>,
    default_for: Vec<SocketAddr>,
    names: Names,
    /// The first `server_name`, for `$server_name`.
    pub server_name: String,
    locations: Locations,
    pub routes: Vec<Route>,
    /// Where requests that match no route are logged.
    pub access_log: Vec<LogTarget>,
}

pub struct Route {
    pub action: RouteAction,
    pub settings: ProxySettings,
    pub set_headers: Vec<HeaderRule>,
    pub add_headers: Vec<AddHeaderRule>,
    pub access_log: Vec<LogTarget>,
}

pub enum RouteAction {
    Proxy(ProxyRoute),
    Return { status: u16, text: Option<Template> },
}

pub struct ProxyRoute {
    pub pool: Arc<Pool>,
    pub pins: Vec<Pin>,
    pub on_unhealthy: OnUnhealthy,
    /// `proxy_pass http://name/uri` in `location /prefix`: `/prefix` becomes `/uri`.
    pub rewrite: Option<(String, String)>,
    /// `$proxy_host`: the upstream name.
    pub proxy_host: String,
    /// The key template of a `hash` upstream.
    pub hash_key: Option<Template>,
}

/// A pin bound to the runtime's pools.
pub struct Pin {
    pub source: PinKey,
    pub target: PinBinding,
}

/// Where a pin value is read, prepared for lookups.
pub enum PinKey {
    Header(HeaderName),
    Cookie(String),
}

pub enum PinBinding {
    /// The value names a server of the route's pool.
    ServerName,
    /// This value sends the request to a server of a pool, sharing its health.
    Server {
        equals: Vec<u8>,
        pool: Arc<Pool>,
        server: usize,
    },
    /// This value sends the request to a whole pool.
    Pool { equals: Vec<u8>, pool: Arc<Pool> },
}

/// One request header to set (or, with no value, remove) before going upstream.
pub struct HeaderRule {
    /// The name as written in the config, sent with that case.
    pub name: Bytes,
    pub header: HeaderName,
    /// `None`: the configured value was empty, which removes the header (as in nginx).
    pub value: Option<Template>,
    /// The value ready to send when it has no variables (no work per request).
    pub literal: Option<HeaderValue>,
}

impl HeaderRule {
    /// Prepares `proxy_set_header name value`; `maps` are the config's `map` variables.
    pub fn new(name: &str, value: &str, maps: &[String]) -> Result<Self, String> {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header \"{name}\": {e}"))?;
        let value = if value.is_empty() {
            None
        } else {
            Some(Template::parse(value, maps)?)
        };
        let literal = value
            .as_ref()
            .and_then(Template::as_literal)
            .and_then(|text| HeaderValue::from_str(text).ok());
        Ok(HeaderRule {
            name: Bytes::from(name.to_owned()),
            header,
            value,
            literal,
        })
    }
}

/// One `add_header`.
pub struct AddHeaderRule {
    pub name: Bytes,
    pub value: Template,
    pub always: bool,
}

impl Runtime {
    /// Resolves host names, opens access logs (through `sinks`, shared across reloads)
    /// and prepares everything requests need. The config must have passed validation.
    /// Pools of the `previous` runtime are reused or keep their health where they can.
    pub fn build(
        config: &Config,
        sinks: &Sinks,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, ConfigError> {
        let file = config.source.as_path();
        let map_names: Vec<String> = config.maps.iter().map(|m| m.variable.clone()).collect();
        let mut logs = Logs {
            config,
            sinks,
            maps: &map_names,
            formats: BTreeMap::new(),
            on_drop: Arc::new(|| METRICS.access_log_dropped.inc()),
        };
        let maps = CompiledMap::compile_all(&config.maps)
            .map_err(|(i, msg)| invalid(file, &format!("map ${}", config.maps[i].variable), msg))?;
        let mut pools = BTreeMap::new();
        for (name, upstream) in &config.upstreams {
            let prev = previous.and_then(|p| p.pools.get(name));
            pools.insert(name.clone(), Pool::build(file, name, upstream, prev)?);
        }
        let mut virtual_servers = Vec::with_capacity(config.virtual_servers.len());
        for vs in &config.virtual_servers {
            virtual_servers.push(build_virtual_server(file, config, vs, &pools, &mut logs)?);
        }
        let served_by = match &config.served_by_header {
            Some(name) => Some((
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| invalid(file, "served_by_header", e.to_string()))?,
                Bytes::from(name.clone()),
            )),
            None => None,
        };
        Ok(Runtime {
            pools,
            virtual_servers,
            maps,
            served_by,
            keepalive_timeout: config.keepalive_timeout,
            any_server_names: config
                .virtual_servers
                .iter()
                .any(|vs| !vs.server_names.is_empty()),
        })
    }

    /// The route for `path` in virtual server `vs`, as indexes for [`Runtime::route_at`].
    pub fn find_route(&self, vs: usize, path: &str) -> Option<(usize, usize)> {
        Some((vs, self.virtual_servers.get(vs)?.locations.find(path)?))
    }

    /// The virtual server for a connection to `local` asking for `host`, by nginx's rules.
    /// `host` is asked only when names have to decide: most configs have one server.
    pub fn find_virtual_server<'h>(
        &self,
        local: Option<SocketAddr>,
        host: impl FnOnce() -> Option<&'h str>,
    ) -> Option<usize> {
        // Servers of the most specific listen address only, as nginx does.
        let specificity = |vs: &VirtualServer| match local {
            None => Some(false),
            Some(l) => vs
                .listen
                .iter()
                .filter_map(|a| server_names::listen_match(a, &l))
                .max(),
        };
        if self.virtual_servers.len() == 1 {
            return specificity(&self.virtual_servers[0]).map(|_| 0);
        }
        let best = self.virtual_servers.iter().filter_map(specificity).max()?;
        let candidates = || {
            (0..self.virtual_servers.len())
                .filter(move |&i| specificity(&self.virtual_servers[i]) == Some(best))
        };
        let host = match self.any_server_names {
            true => host(),
            false => None,
        };
        if let Some(host) = host.map(server_names::normalize_host) {
            let named = candidates()
                .filter_map(|i| Some((self.virtual_servers[i].names.matches(&host)?, i)))
                .min_by_key(|(quality, i)| {
                    (*quality, if *quality == Quality::Regex { *i } else { 0 })
                });
            if let Some((_, i)) = named {
                return Some(i);
            }
        }
        let is_default = |i: &usize| match local {
            Some(l) => self.virtual_servers[*i]
                .default_for
                .iter()
                .any(|a| server_names::listen_match(a, &l).is_some()),
            None => false,
        };
        candidates()
            .find(is_default)
            .or_else(|| candidates().next())
    }

    pub fn route_at(&self, (vs, route): (usize, usize)) -> &Route {
        &self.virtual_servers[vs].routes[route]
    }
}

fn invalid(file: &Path, at: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::invalid(file, &crate::config::Origin::Json(at.to_string()), msg)
}

/// Access log targets of one build: formats compiled once each, sinks shared.
struct Logs<'a> {
    config: &'a Config,
    sinks: &'a Sinks,
    maps: &'a [String],
    formats: BTreeMap<String, Arc<Format>>,
    on_drop: DropCounter,
}

impl Logs<'_> {
    fn targets(&mut self, targets: &[AccessLogTarget]) -> Result<Vec<LogTarget>, String> {
        targets
            .iter()
            .map(|t| {
                let format = match self.formats.get(&t.format) {
                    Some(f) => Arc::clone(f),
                    None => {
                        let f = Arc::new(Format::named(
                            &t.format,
                            &self.config.log_formats,
                            self.maps,
                        )?);
                        self.formats.insert(t.format.clone(), Arc::clone(&f));
                        f
                    }
                };
                Ok(LogTarget {
                    sink: self.sinks.get(&t.path, &self.on_drop)?,
                    format,
                })
            })
            .collect()
    }
}

fn build_virtual_server(
    file: &Path,
    config: &Config,
    vs: &VirtualServerConf,
    pools: &BTreeMap<String, Arc<Pool>>,
    logs: &mut Logs<'_>,
) -> Result<VirtualServer, ConfigError> {
    let maps = logs.maps;
    let at = |msg: String| ConfigError::invalid(file, &vs.origin, msg);
    let mut routes = Vec::with_capacity(vs.routes.len());
    for r in &vs.routes {
        let err = |msg: String| ConfigError::invalid(file, &r.origin, msg);
        let action = match &r.action {
            Action::Proxy(pass) => {
                let pool = pool_named(pools, &pass.upstream).map_err(err)?;
                let hash_key = match &config.upstreams[&pass.upstream].balance {
                    crate::config::Balance::Hash { key, .. } => {
                        Some(Template::parse(key, maps).map_err(err)?)
                    }
                    _ => None,
                };
                let rewrite = match (&pass.uri, &r.path) {
                    (
                        Some(uri),
                        PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) | PathMatch::Exact(p),
                    ) => Some((p.clone(), uri.clone())),
                    _ => None,
                };
                let pins = pass
                    .pins
                    .iter()
                    .map(|pin| bind_pin(pools, pin.source.clone(), &pin.matches))
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                RouteAction::Proxy(ProxyRoute {
                    pool,
                    pins,
                    on_unhealthy: pass.on_unhealthy,
                    rewrite,
                    proxy_host: pass.upstream.clone(),
                    hash_key,
                })
            }
            Action::Return(answer) => RouteAction::Return {
                status: answer.status,
                text: match &answer.text {
                    Some(text) => Some(Template::parse(text, maps).map_err(err)?),
                    None => None,
                },
            },
        };
        routes.push(Route {
            action,
            settings: r.proxy.clone(),
            set_headers: header_rules(&r.proxy.set_headers, maps).map_err(err)?,
            add_headers: add_header_rules(&r.add_headers, maps).map_err(err)?,
            access_log: logs.targets(&r.access_log).map_err(err)?,
        });
    }
    let paths: Vec<&PathMatch> = vs.routes.iter().map(|r| &r.path).collect();
    let first_name = vs.server_names.first().map(|n| match n {
        crate::config::ServerName::Exact(s) | crate::config::ServerName::Regex(s) => s.clone(),
        crate::config::ServerName::Suffix(s) => format!("*{s}"),
        crate::config::ServerName::Prefix(s) => format!("{s}*"),
    });
    Ok(VirtualServer {
        listen: vs.listen.clone(),
        default_for: vs.default_for.clone(),
        names: Names::new(&vs.server_names).map_err(at)?,
        server_name: first_name.unwrap_or_default(),
        locations: Locations::new(&paths).map_err(at)?,
        routes,
        access_log: logs.targets(&vs.access_log).map_err(at)?,
    })
}

fn pool_named(pools: &BTreeMap<String, Arc<Pool>>, name: &str) -> Result<Arc<Pool>, String> {
    pools
        .get(name)
        .cloned()
        .ok_or_else(|| format!("unknown upstream \"{name}\""))
}

fn bind_pin(
    pools: &BTreeMap<String, Arc<Pool>>,
    source: PinSource,
    matches: &PinMatch,
) -> Result<Pin, String> {
    let source = match source {
        PinSource::Header(name) => PinKey::Header(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("pin header \"{name}\": {e}"))?,
        ),
        PinSource::Cookie(name) => PinKey::Cookie(name),
    };
    let target = match matches {
        PinMatch::ServerName => PinBinding::ServerName,
        PinMatch::Value { equals, target } => {
            let equals = equals.as_bytes().to_vec();
            match target {
                PinTarget::Upstream(name) => PinBinding::Pool {
                    equals,
                    pool: pool_named(pools, name)?,
                },
                PinTarget::Server { upstream, server } => {
                    let pool = pool_named(pools, upstream)?;
                    let server = pool.find(server.as_bytes()).ok_or_else(|| {
                        format!("upstream \"{upstream}\" has no server \"{server}\"")
                    })?;
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

fn header_rules(headers: &[SetHeader], maps: &[String]) -> Result<Vec<HeaderRule>, String> {
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
        .map(|h| HeaderRule::new(&h.name, &h.value, maps))
        .collect()
}

fn add_header_rules(headers: &[AddHeader], maps: &[String]) -> Result<Vec<AddHeaderRule>, String> {
    headers
        .iter()
        .map(|h| {
            Ok(AddHeaderRule {
                name: Bytes::from(h.name.clone()),
                value: Template::parse(&h.value, maps)?,
                always: h.always,
            })
        })
        .collect()
}
