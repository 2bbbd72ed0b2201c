//! pinlb: a load balancer and reverse proxy on Pingora. Pin a request to a named server
//! by the `app` header or cookie, otherwise balance over a health-checked pool.
//!
//! The binary is a thin shell over [`build_server`]; the same pieces can be used from
//! another program's `main`.

pub mod cli;
pub mod config;
pub mod health;
pub mod logging;
pub mod observe;
pub mod proxy;
pub mod request;
pub mod routing;
pub mod runtime;
pub mod upstream;
pub mod variables;

use arc_swap::ArcSwap;
use config::Config;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use runtime::Runtime;
use std::sync::Arc;

/// Pingora stops retrying after this many attempts; pinlb's own limit
/// (`next_upstream_tries`, one attempt per server) always comes first.
const MAX_ATTEMPTS: usize = 1024;

/// Builds the Pingora server for `config`: the proxy service on every listener and the
/// background health checks. `runtime` must have been built from the same config.
pub fn build_server(config: &Config, runtime: Runtime, opt: Opt) -> Server {
    let keepalive: usize = config
        .upstreams
        .values()
        .filter_map(|u| u.keepalive.as_ref())
        .map(|k| k.connections as usize)
        .sum();
    let conf = ServerConf {
        threads: config.threads,
        max_retries: MAX_ATTEMPTS,
        pid_file: "/tmp/pinlb.pid".into(),
        upgrade_sock: "/tmp/pinlb_upgrade.sock".into(),
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        // Pingora pools idle upstream connections globally; nginx's `keepalive N` is per
        // upstream, so the pool holds at least their sum.
        upstream_keepalive_pool_size: keepalive.max(128),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let runtime = Arc::new(ArcSwap::from_pointee(runtime));
    let health = background_service(
        "health checks",
        health::HealthService::new(Arc::clone(&runtime)),
    );
    server.add_service(health);

    let mut proxy = http_proxy_service(&server.configuration, proxy::Proxy::new(runtime));
    for listener in &config.listeners {
        let addr = listener.addr.to_string();
        if listener.addr.is_ipv6() {
            // As nginx does: `[::]:80` takes IPv6 only, so that `0.0.0.0:80` can coexist.
            let mut options = TcpSocketOptions::default();
            options.ipv6_only = Some(true);
            proxy.add_tcp_with_settings(&addr, options);
        } else {
            proxy.add_tcp(&addr);
        }
    }
    server.add_service(proxy);
    server
}

/// Binds every listener address once, so that a port in use is a clear error at start
/// instead of Pingora's 30 s of retries followed by a dead service.
pub fn check_listeners_free(config: &Config) -> Result<(), String> {
    for l in &config.listeners {
        std::net::TcpListener::bind(l.addr)
            .map_err(|e| format!("bind() to {} failed ({e})", l.addr))?;
    }
    Ok(())
}
