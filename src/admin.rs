//! The admin listener (loopback by default): `/healthz` for the balancer in front,
//! `/status` (JSON) for people, `/metrics` (Prometheus) for scrapers.

use crate::config::{Action, PinMatch, PinSource, PinTarget};
use crate::observe::metrics::METRICS;
use crate::state::Shared;
use async_trait::async_trait;
use http::{HeaderValue, Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;
use subtle::ConstantTimeEq;

pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminApp { shared }
    }

    /// `/status`: the process, the config generation and reload outcome, every upstream
    /// and server with its state and counters, what is known of each `resolve` name, and
    /// the pins, and each ACME certificate.
    pub fn status(&self) -> Value {
        let shared = &self.shared;
        let current = shared.current.load();
        let mut names: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
        let known = shared.discovery.snapshot();
        for (key, state) in &known {
            let mut entry = serde_json::to_value(state).unwrap_or(Value::Null);
            if let Value::Object(fields) = &mut entry {
                fields.insert("name".into(), Value::from(key.host_port.as_str()));
            }
            names.entry(key.upstream.as_str()).or_default().push(entry);
        }
        let upstreams: serde_json::Map<String, Value> = current
            .runtime
            .pools
            .iter()
            .map(|(name, pool)| {
                let servers: Vec<Value> = pool
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        json!({
                            "name": s.name,
                            "label": s.label,
                            "addr": s.addr.to_string(),
                            "configured_addr": s.configured_addr,
                            "weight": s.backend.weight,
                            "backup": s.backup,
                            "down": s.down,
                            "drain": s.drain,
                            "sticky_value": pool.sticky.as_ref().map(|_| s.sid.as_str()),
                            "healthy": pool.is_healthy(i),
                            "usable": pool.is_usable(i),
                            "inflight": s.inflight.load(Ordering::Relaxed),
                            "requests": pool.metrics.servers[i].requests(),
                            "failures": pool.metrics.servers[i].failures.get(),
                        })
                    })
                    .collect();
                let mut upstream = json!({ "balance": pool.conf.balance, "servers": servers });
                if let Some(sticky) = &pool.sticky {
                    upstream["sticky_cookie"] = Value::from(sticky.cookie.as_str());
                }
                if let Some(resolved) = names.remove(name.as_str()) {
                    upstream["resolve"] = Value::from(resolved);
                }
                (name.clone(), upstream)
            })
            .collect();
        let last_reload = shared.last_reload.lock().map(|r| r.clone()).unwrap_or(None);
        json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "started": shared.started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "ready": shared.ready.load(Ordering::Acquire),
            "draining": shared.draining.load(Ordering::Relaxed),
            "listeners": listening(&shared.started_with),
            "requests_in_flight": shared.requests_in_flight.load(Ordering::Relaxed),
            "config": {
                "file": shared.config_path.display().to_string(),
                "generation": current.number,
            },
            "last_reload": last_reload,
            "upstreams": upstreams,
            "pins": pins(&current.config),
            "acme": shared.acme.status(),
        })
    }
}

/// The addresses this process accepts on: its proxy listeners and its admin listener.
fn listening(config: &crate::config::Config) -> Vec<String> {
    let proxy = config.listeners.iter().map(|l| l.addr);
    proxy.chain(config.admin).map(|a| a.to_string()).collect()
}

/// Every pin of the config, with where it applies.
fn pins(config: &crate::config::Config) -> Vec<Value> {
    let mut out = Vec::new();
    for vs in &config.virtual_servers {
        for route in &vs.routes {
            let Action::Proxy(pass) = &route.action else {
                continue;
            };
            for pin in &pass.pins {
                let (kind, name) = match &pin.source {
                    PinSource::Header(h) => ("header", h),
                    PinSource::Cookie(c) => ("cookie", c),
                    PinSource::Variable(v) => ("variable", v),
                };
                let (value, target) = match &pin.matches {
                    PinMatch::ServerName => (
                        Value::Null,
                        json!({ "server_named_by_value": pass.upstream }),
                    ),
                    PinMatch::Value { equals, target } => (
                        Value::from(equals.clone()),
                        match target {
                            PinTarget::Server { upstream, server } => {
                                json!({ "upstream": upstream, "server": server })
                            }
                            PinTarget::Upstream(upstream) => json!({ "upstream": upstream }),
                        },
                    ),
                };
                out.push(json!({
                    "location": route.path,
                    "upstream": pass.upstream,
                    kind: name,
                    "equals": value,
                    "target": target,
                    "on_unhealthy": pass.on_unhealthy,
                    "allow_from": pass.pin_allow_from,
                    "signed": pass.pin_secret.is_some(),
                }));
            }
        }
    }
    out
}

fn response(code: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        let req = session.req_header();
        let token = self.shared.started_with.admin_token.as_deref();
        if let Some(refused) = refusal(req, token) {
            return refused;
        }
        match req.uri.path() {
            "/healthz" if self.shared.draining.load(Ordering::Relaxed) => {
                response(503, text, b"draining\n".to_vec())
            }
            "/healthz" if !self.shared.ready.load(Ordering::Acquire) => response(
                503,
                text,
                b"starting: not every listener accepts yet\n".to_vec(),
            ),
            "/healthz" => response(200, text, b"ok\n".to_vec()),
            "/status" => {
                let mut body = serde_json::to_vec_pretty(&self.status()).unwrap_or_default();
                body.push(b'\n');
                response(200, "application/json", body)
            }
            "/metrics" => {
                for pool in self.shared.current.load().runtime.pools.values() {
                    pool.refresh_gauges();
                }
                response(200, "text/plain; version=0.0.4", METRICS.render())
            }
            _ => response(
                404,
                text,
                b"not found: try /healthz, /status or /metrics\n".to_vec(),
            ),
        }
    }
}

/// The answer to a request the admin listener refuses: a method other than GET and
/// HEAD, a `Host` that is not an IP address or `localhost` (a browser tricked by DNS
/// rebinding sends the attacker's name), or a missing or wrong bearer token when one is
/// configured (`/healthz` needs none, so that balancers in front can poll it).
fn refusal(req: &RequestHeader, token: Option<&str>) -> Option<Response<Vec<u8>>> {
    let text = "text/plain; charset=utf-8";
    if !matches!(req.method, Method::GET | Method::HEAD) {
        let mut r = response(405, text, b"method not allowed: use GET or HEAD\n".to_vec());
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    let host = req
        .headers
        .get(http::header::HOST)
        .map(HeaderValue::as_bytes);
    if host.is_some_and(|h| !is_address_host(h)) {
        let body = b"forbidden: name the admin listener by IP address or localhost\n";
        return Some(response(403, text, body.to_vec()));
    }
    let expected = token.filter(|_| req.uri.path() != "/healthz")?;
    let given = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if bool::from(given.ct_eq(expected.as_bytes())) {
        return None;
    }
    let mut r = response(
        401,
        text,
        b"unauthorized: a bearer token is required\n".to_vec(),
    );
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    Some(r)
}

/// Whether a `Host` value names an IP address or `localhost`, with or without a port.
fn is_address_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, port)) = rest.split_once(']') else {
            return false;
        };
        return v6.parse::<Ipv6Addr>().is_ok() && valid_port(port);
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    (name.eq_ignore_ascii_case("localhost") || name.parse::<Ipv4Addr>().is_ok())
        && port.is_none_or(|p| valid_port(&format!(":{p}")))
}

/// An empty suffix, or `:` and a port number.
fn valid_port(suffix: &str) -> bool {
    suffix.is_empty()
        || suffix
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_address_hosts_are_accepted() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:9901",
            "localhost",
            "LOCALHOST:80",
            "[::1]",
            "[::1]:9901",
        ] {
            assert!(is_address_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:9901",
            "127.0.0.1.nip.io",
            "[::1",
            "::1",
            "127.0.0.1:x",
            "localhost.",
            "",
        ] {
            assert!(!is_address_host(bad.as_bytes()), "{bad}");
        }
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn methods_hosts_and_tokens_are_checked() {
        let status = |r: &RequestHeader, token| refusal(r, token).map(|r| r.status().as_u16());
        assert_eq!(
            status(&req("GET", "/status", &[("Host", "127.0.0.1")]), None),
            None
        );
        assert_eq!(status(&req("POST", "/status", &[]), None), Some(405));
        assert_eq!(
            status(&req("GET", "/status", &[("Host", "a.example")]), None),
            Some(403)
        );
        let secret = Some("s3cret");
        assert_eq!(status(&req("GET", "/status", &[]), secret), Some(401));
        let wrong = [("Authorization", "Bearer nope")];
        assert_eq!(status(&req("GET", "/metrics", &wrong), secret), Some(401));
        let right = [("Authorization", "Bearer s3cret")];
        assert_eq!(status(&req("GET", "/metrics", &right), secret), None);
        assert_eq!(status(&req("GET", "/healthz", &[]), secret), None);
    }
}
