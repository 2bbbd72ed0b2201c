//! The running form of a [`Config`](crate::config::Config): pools with resolved servers,
//! virtual servers and locations prepared for matching, pins bound to servers, variables
//! parsed. Compiled once per config load (`compile`, which is also the validation) and
//! shared by every request that starts while it is current.

mod client;
mod compile;
mod routes;

pub use client::ClientSettings;
pub use compile::CompileEnv;

use crate::config::{OnUnhealthy, ProxySettings};
use crate::observe::LogTarget;
use crate::routing::locations::Locations;
use crate::routing::pin::Pin;
use crate::routing::server_names::{self, Names, Quality};
use crate::upstream::Pool;
use crate::variables::{CompiledMap, Template};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::net::SocketAddr;
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
    /// What it allows its clients.
    pub client: ClientSettings,
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

/// One `add_header`.
pub struct AddHeaderRule {
    pub name: Bytes,
    pub value: Template,
    pub always: bool,
}

impl Runtime {
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
