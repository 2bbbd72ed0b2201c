//! The admin listener (loopback by default): `/healthz` for the balancer in front,
//! `/status` (JSON) for people, `/metrics` (Prometheus) for scrapers.

use crate::config::{Action, PinMatch, PinSource, PinTarget};
use crate::observe::metrics::METRICS;
use crate::state::Shared;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminApp { shared }
    }

    /// `/status`: the process, the config generation and reload outcome, every upstream
    /// and server with its state and counters, and the pins.
    pub fn status(&self) -> Value {
        let shared = &self.shared;
        let current = shared.current.load();
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
                            "addr": s.addr.to_string(),
                            "configured_addr": s.configured_addr,
                            "weight": s.backend.weight,
                            "backup": s.backup,
                            "down": s.down,
                            "healthy": pool.is_healthy(i),
                            "usable": pool.is_usable(i),
                            "inflight": s.inflight.load(Ordering::Relaxed),
                            "requests": pool.metrics.servers[i].requests(),
                            "failures": pool.metrics.servers[i].failures.get(),
                        })
                    })
                    .collect();
                (
                    name.clone(),
                    json!({ "balance": pool.conf.balance, "servers": servers }),
                )
            })
            .collect();
        let last_reload = shared.last_reload.lock().map(|r| r.clone()).unwrap_or(None);
        json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "started": shared.started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "draining": shared.draining.load(Ordering::Relaxed),
            "requests_in_flight": shared.requests_in_flight.load(Ordering::Relaxed),
            "config": {
                "file": shared.config_path.display().to_string(),
                "generation": current.number,
            },
            "last_reload": last_reload,
            "upstreams": upstreams,
            "pins": pins(&current.config),
        })
    }
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
        match session.req_header().uri.path() {
            "/healthz" if self.shared.draining.load(Ordering::Relaxed) => {
                response(503, text, b"draining\n".to_vec())
            }
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
