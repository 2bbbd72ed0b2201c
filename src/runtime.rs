//! The running form of a [`Config`]: pools with resolved servers, virtual servers and
//! routes prepared for matching, header rules parsed. Built once per config load and
//! shared by every request that starts while it is current.

use crate::config::{Config, ConfigError, OnUnhealthy, PathMatch, PinSource, ProxySettings};
use crate::upstream::Pool;
use crate::variables::Template;
use bytes::Bytes;
use http::HeaderName;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct Runtime {
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub virtual_servers: Vec<VirtualServer>,
    /// Response header naming the server that answered.
    pub served_by: Option<HeaderName>,
}

pub struct VirtualServer {
    listen: Vec<SocketAddr>,
    names: Vec<String>,
    /// Longest prefix first, so the first match is the best one.
    pub routes: Vec<Route>,
}

pub struct Route {
    pub prefix: String,
    pub pool: Arc<Pool>,
    pub pins: Vec<PinSource>,
    pub on_unhealthy: OnUnhealthy,
    pub settings: ProxySettings,
    pub set_headers: Vec<HeaderRule>,
}

/// One request header to set (or, with no value, remove) before going upstream.
pub struct HeaderRule {
    /// The name as written in the config, sent with that case.
    pub name: Bytes,
    pub header: HeaderName,
    /// `None`: the configured value was empty, which removes the header (as in nginx).
    pub value: Option<Template>,
}

impl Runtime {
    /// Resolves host names and prepares everything requests need. The config must have
    /// passed validation.
    pub fn build(config: &Config) -> Result<Runtime, ConfigError> {
        let file = config.source.as_path();
        let mut pools = BTreeMap::new();
        for (name, upstream) in &config.upstreams {
            pools.insert(name.clone(), Arc::new(Pool::build(file, name, upstream)?));
        }
        let mut virtual_servers = Vec::with_capacity(config.virtual_servers.len());
        for vs in &config.virtual_servers {
            let mut routes = Vec::with_capacity(vs.routes.len());
            for r in &vs.routes {
                let invalid = |msg: String| ConfigError::invalid(file, &r.origin, msg);
                let pool = pools
                    .get(&r.upstream)
                    .ok_or_else(|| invalid(format!("unknown upstream \"{}\"", r.upstream)))?;
                let PathMatch::Prefix(prefix) = &r.path;
                routes.push(Route {
                    prefix: prefix.clone(),
                    pool: Arc::clone(pool),
                    pins: r.pins.iter().map(|p| p.source.clone()).collect(),
                    on_unhealthy: r.on_unhealthy,
                    settings: r.proxy.clone(),
                    set_headers: header_rules(&r.proxy).map_err(invalid)?,
                });
            }
            routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
            virtual_servers.push(VirtualServer {
                listen: vs.listen.clone(),
                names: vs
                    .server_names
                    .iter()
                    .map(|n| n.to_ascii_lowercase())
                    .collect(),
                routes,
            });
        }
        let served_by = match &config.served_by_header {
            Some(name) => Some(HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                ConfigError::invalid(
                    file,
                    &crate::config::Origin::Json("served_by_header".into()),
                    e.to_string(),
                )
            })?),
            None => None,
        };
        Ok(Runtime {
            pools,
            virtual_servers,
            served_by,
        })
    }

    /// The virtual server for a connection to `local` asking for `host`, then the route
    /// for `path` in it, as indexes for [`Runtime::route_at`].
    pub fn find_route(
        &self,
        local: Option<SocketAddr>,
        host: Option<&str>,
        path: &str,
    ) -> Option<(usize, usize)> {
        let on_listener = |vs: &&VirtualServer| {
            local.is_none_or(|l| {
                vs.listen
                    .iter()
                    .any(|a| a.port() == l.port() && (a.ip().is_unspecified() || a.ip() == l.ip()))
            })
        };
        let by_name = host.and_then(|h| {
            self.virtual_servers.iter().position(|vs| {
                on_listener(&vs) && vs.names.iter().any(|n| n.eq_ignore_ascii_case(h))
            })
        });
        let vs_index =
            by_name.or_else(|| self.virtual_servers.iter().position(|vs| on_listener(&vs)))?;
        let route_index = self.virtual_servers[vs_index]
            .routes
            .iter()
            .position(|r| path.starts_with(&r.prefix))?;
        Some((vs_index, route_index))
    }

    pub fn route_at(&self, (vs, route): (usize, usize)) -> &Route {
        &self.virtual_servers[vs].routes[route]
    }
}

fn header_rules(settings: &ProxySettings) -> Result<Vec<HeaderRule>, String> {
    settings
        .set_headers
        .iter()
        .map(|h| {
            let header = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|e| format!("header \"{}\": {e}", h.name))?;
            let value = if h.value.is_empty() {
                None
            } else {
                Some(Template::parse(&h.value)?)
            };
            Ok(HeaderRule {
                name: Bytes::from(h.name.clone()),
                header,
                value,
            })
        })
        .collect()
}
