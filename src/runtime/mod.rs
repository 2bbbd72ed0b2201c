//! The running form of a [`Config`](crate::config::Config): pools with resolved servers,
//! virtual servers and locations prepared for matching, pins bound to servers, variables
//! parsed. Compiled once per config load (`compile`, which is also the validation) and
//! shared by every request that starts while it is current.

mod client;
mod compile;
mod limits;
mod real_ip;
mod routes;
mod static_names;
mod variables;

pub use client::ClientSettings;
pub use compile::CompileEnv;
pub use limits::{ConnLimitZone, ConnRule, RateLimitZone, ReqRule, RouteLimits, Zones};

use crate::config::{OnUnhealthy, ProxySettings};
use crate::net::realip::RealIpRule;
use crate::observe::LogTarget;
use crate::routing::locations::Locations;
use crate::routing::pin::{Pin, PinGuard};
use crate::routing::server_names::{self, Names, Quality};
use crate::upstream::Pool;
use crate::variables::{CompiledMap, Template};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::WireName;
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
    /// Whether that header also says why the server was chosen.
    pub served_by_reason: bool,
    /// The `limit_req_zone`s and `limit_conn_zone`s.
    pub zones: Zones,
    /// Which `merge_slashes` applies, when every server agrees (the usual case).
    merge_slashes: Option<bool>,
    /// Idle time allowed on client keep-alive connections; zero disables keep-alive.
    pub keepalive_timeout: Duration,
    /// Whether any virtual server has names (otherwise the Host header is not consulted).
    any_server_names: bool,
    /// Whether requests need their connection's own addresses besides `$remote_addr`:
    /// some realip rule or PROXY protocol listener exists. When not, nothing per request
    /// looks at them.
    pub conn_addrs: bool,
    /// Each TLS listener's certificates by SNI, read from the files of this config; the
    /// listeners read them from [`crate::tls::CertStore`], which reloads update.
    pub tls: crate::tls::SniTables,
    /// Whether any listener speaks TLS (otherwise requests never look for TLS details).
    pub any_tls: bool,
    /// The certificates ordered from ACME issuers.
    pub acme: Vec<Arc<crate::tls::acme::plan::CertPlan>>,
    /// Whether plain listeners answer ACME's HTTP-01 challenges (some certificate is
    /// ordered); when not, requests never look.
    pub acme_http01: bool,
}

pub struct VirtualServer {
    listen: Vec<SocketAddr>,
    default_for: Vec<SocketAddr>,
    names: Names,
    merge_slashes: bool,
    /// The first `server_name`, for `$server_name`.
    pub server_name: String,
    locations: Locations,
    pub routes: Vec<Route>,
    /// Where requests that match no route are logged.
    pub access_log: Vec<LogTarget>,
    /// What it allows its clients.
    pub client: ClientSettings,
    /// Its realip rule, applied once the server is known; `None`: off.
    pub real_ip: Option<Box<RealIpRule>>,
}

pub struct Route {
    pub action: RouteAction,
    /// `None` when the route has no `limit_req` or `limit_conn`.
    pub limits: Option<Box<RouteLimits>>,
    pub settings: ProxySettings,
    pub set_headers: Vec<HeaderRule>,
    pub add_headers: Vec<AddHeaderRule>,
    pub access_log: Vec<LogTarget>,
    /// A realip rule of its own, applied when its server's left the address alone;
    /// `None`: the server's is all.
    pub real_ip: Option<Box<RealIpRule>>,
}

pub enum RouteAction {
    Proxy(ProxyRoute),
    Return { status: u16, text: Option<Template> },
}

pub struct ProxyRoute {
    pub pool: Arc<Pool>,
    pub pins: Vec<Pin>,
    pub on_unhealthy: OnUnhealthy,
    /// Who may pin, and whether pins must be signed; `None`: anyone, bare names.
    pub pin_guard: Option<Box<PinGuard>>,
    /// `proxy_pass http://name/uri` in `location /prefix`: `/prefix` becomes `/uri`.
    pub rewrite: Option<(String, String)>,
    /// `$proxy_host`: the upstream name.
    pub proxy_host: String,
    /// TLS to the servers (`proxy_pass https://`); `None`: plain HTTP.
    pub tls: Option<Arc<crate::tls::upstream::PeerTls>>,
}

/// One request header to set (or, with no value, remove) before going upstream.
pub struct HeaderRule {
    /// The name as written in the config, sent with that case.
    pub name: Bytes,
    /// The name recognised once, with whether `name` is its title case (so that its case
    /// is not checked again on every request).
    pub header: WireName,
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
    /// The route for the normalised `path` in virtual server `vs`, as indexes for
    /// [`Runtime::route_at`].
    pub fn find_route(&self, vs: usize, path: &[u8]) -> Option<(usize, usize)> {
        Some((vs, self.virtual_servers.get(vs)?.locations.find(path)?))
    }

    /// Whether runs of `/` are merged in the paths of requests arriving on `local`: the
    /// `merge_slashes` of that address's default server, since nginx normalises the path
    /// before it reads `Host`.
    pub fn merge_slashes(&self, local: Option<SocketAddr>) -> bool {
        if let Some(all) = self.merge_slashes {
            return all;
        }
        self.find_virtual_server(local, || None)
            .and_then(|vs| self.virtual_servers.get(vs))
            .is_none_or(|vs| vs.merge_slashes)
    }

    /// The location in virtual server `vs` whose automatic redirect answers the
    /// normalised `path` (`/api` for a proxying `location /api/`), as indexes for
    /// [`Runtime::route_at`], with the location's name.
    pub fn find_redirect(&self, vs: usize, path: &[u8]) -> Option<((usize, usize), &str)> {
        let (i, name) = self.virtual_servers.get(vs)?.locations.redirect(path)?;
        Some(((vs, i), name))
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
