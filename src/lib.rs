//! pinlb: a load balancer and reverse proxy on Pingora. Pin a request to a named server
//! by the `app` header or cookie, otherwise balance over a health-checked pool.
//!
//! The binary is a thin shell over [`build_server`]; the same pieces can be used from
//! another program's `main`.

pub mod admin;
pub mod allocator;
pub mod cli;
pub mod compare;
pub mod config;
pub mod dns;
pub mod health;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod net;
pub mod observe;
pub mod proxy;
pub mod request;
pub mod routing;
pub mod runtime;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod variables;

#[cfg(test)]
mod nginx_harness;

use config::Config;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{ListenerConfig, TcpSocketOptions};
use pingora::prelude::*;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use state::Shared;
use std::sync::Arc;

/// Pingora stops retrying after this many attempts; pinlb's own limit
/// (`next_upstream_tries`, one attempt per server) always comes first.
const MAX_ATTEMPTS: usize = 1024;

/// Builds the Pingora server: the proxy service on every listener, the admin listener,
/// the background health checks and the reload service, all sharing `shared`. Fails
/// when a TLS listener's settings cannot make a rustls config.
pub fn build_server(shared: &Arc<Shared>, opt: Opt) -> Result<Server, String> {
    let config = shared.started_with.clone();
    let keepalive: usize = config
        .upstreams
        .values()
        .filter_map(|u| u.keepalive.as_ref())
        .map(|k| k.connections as usize)
        .sum();
    let conf = ServerConf {
        threads: config.threads,
        max_retries: MAX_ATTEMPTS,
        pid_file: config.pid_file().display().to_string(),
        upgrade_sock: config.lifecycle.upgrade_sock.display().to_string(),
        // A daemon's stderr goes to the error log (Pingora redirects it when it forks).
        error_log: config
            .error_log
            .as_ref()
            .map(|e| e.path.clone())
            .filter(|p| p != "stderr"),
        // An upper bound only: pinlb exits as soon as the last request is done.
        grace_period_seconds: Some(config.lifecycle.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        // One pool of idle upstream connections for all threads; each upstream's
        // `keepalive N` (per worker, as in nginx) bounds its own share of it.
        upstream_keepalive_pool_size: keepalive.saturating_mul(config.threads).max(128),
        // One single-threaded runtime per thread, as nginx has one event loop per worker:
        // no cross-thread task handoff and wakeups on the request path.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    server.add_service(background_service(
        "health checks",
        health::HealthService::new(Arc::clone(shared)),
    ));
    server.add_service(background_service(
        "dns",
        dns::DnsService::new(Arc::clone(shared)),
    ));
    server.add_service(background_service(
        "config reload",
        lifecycle::reload::ReloadService::new(Arc::clone(shared)),
    ));
    server.add_service(background_service(
        "acme",
        tls::acme::AcmeService::new(Arc::clone(&shared.acme)),
    ));
    server.add_service(background_service(
        "readiness",
        lifecycle::ready::ReadyService::new(Arc::clone(shared)),
    ));

    let mut proxy =
        http_proxy_service(&server.configuration, proxy::Proxy::new(Arc::clone(shared)));
    for listener in &config.listeners {
        let tls = match &listener.tls {
            None => None,
            Some(tls) => Some(tls_settings(shared, listener, tls)?),
        };
        let mut endpoint = listener_config(listener.addr, tls);
        if listener.proxy_protocol {
            // The PROXY header comes before any TLS handshake, as HAProxy sends it.
            let reader = proxy::ProxyProtocolReader::new(Arc::clone(shared));
            endpoint = endpoint.pre_tls_callback(Arc::new(reader));
        }
        proxy.add_listener(endpoint);
    }
    if config.listeners.iter().any(|l| l.tls.is_none() && l.http2) {
        // nginx's `http2 on` on a plain listener: a connection that opens with HTTP/2's
        // preface speaks HTTP/2 (h2c with prior knowledge), any other HTTP/1.
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        if let Some(app) = proxy.app_logic_mut() {
            app.server_options = Some(options);
        }
    }
    server.add_service(proxy);

    if let Some(addr) = config.admin {
        let mut admin = Service::new(
            "admin".to_string(),
            admin::AdminApp::new(Arc::clone(shared)),
        );
        admin.threads = Some(1);
        admin.add_listener(listener_config(addr, None));
        server.add_service(admin);
    }
    Ok(server)
}

/// A TLS listener: its rustls config (certificates from `shared.certs`, by SNI), the
/// handshake details kept for variables, and the handshake timeout of its default
/// server's `client_header_timeout`, as nginx bounds the handshake with it.
fn tls_settings(
    shared: &Arc<Shared>,
    listener: &config::Listener,
    tls: &config::ListenerTls,
) -> Result<TlsSettings, String> {
    let resolver = shared.certs.resolver(listener.addr);
    let name = format!("listener {}", listener.addr);
    let rustls = tls::listener::server_config(tls, listener.http2, resolver, &name)?;
    let mut settings = TlsSettings::with_callbacks(Box::new(tls::listener::HandshakeInfo))
        .map_err(|e| format!("{name}: {e}"))?;
    settings.set_server_config(Arc::new(rustls));
    let generation = shared.current.load();
    let runtime = &generation.runtime;
    let timeout = runtime
        .find_virtual_server(Some(listener.addr), || None)
        .and_then(|vs| runtime.virtual_servers[vs].client.head.timeout)
        .unwrap_or(std::time::Duration::from_secs(60));
    settings.set_handshake_timeout(timeout);
    Ok(settings)
}

/// A listening socket, with TLS when `tls` is given.
fn listener_config(addr: std::net::SocketAddr, tls: Option<TlsSettings>) -> ListenerConfig {
    // No read buffer in front of the socket: Pingora reads request heads and bodies into
    // buffers of its own, so the 64 KiB it would allocate per connection (resident for
    // every idle keep-alive connection) saves no read.
    let mut endpoint =
        ListenerConfig::tcp(addr.to_string()).l4_buffer(L4BufferSettings::default().read(0));
    if addr.is_ipv6() {
        // As nginx does: `[::]:80` takes IPv6 only, so that `0.0.0.0:80` can coexist.
        let mut options = TcpSocketOptions::default();
        options.ipv6_only = Some(true);
        endpoint = endpoint.tcp_socket_options(options);
    }
    if let Some(tls) = tls {
        endpoint = endpoint.tls(tls);
    }
    endpoint
}

/// Binds every listener address once, so that a port in use is a clear error at start
/// instead of Pingora's 30 s of retries followed by a dead service.
pub fn check_listeners_free(config: &Config) -> Result<(), String> {
    let admin = config.admin.iter();
    for addr in config.listeners.iter().map(|l| &l.addr).chain(admin) {
        std::net::TcpListener::bind(addr).map_err(|e| format!("bind() to {addr} failed ({e})"))?;
    }
    Ok(())
}

/// `PROPTEST_CASES` when set, else `default`: the property tests run a few hundred cases in
/// `make test` and a million in `make fuzz`.
#[cfg(test)]
pub(crate) fn prop_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
