//! The end of a request: passive health and metrics for the server that answered, and
//! the access log lines of its route.

use super::ctx::RequestCtx;
use super::request_info;
use crate::observe::log_format::Outcome;
use crate::observe::metrics::METRICS;
use pingora::proxy::Session;
use std::time::Duration;

/// Counts the request for its server (or its upstream when no server answered).
pub fn count(ctx: &RequestCtx, status: u16, succeeded: bool, elapsed: Duration) {
    match (ctx.pool(), ctx.upstream.current) {
        (Some(pool), Some(i)) => {
            if succeeded {
                pool.report_success(i);
            }
            pool.metrics.servers[i].answered(status);
            pool.metrics.duration.observe(elapsed.as_secs_f64());
        }
        (pool, _) => {
            METRICS.request_without_server(pool.map_or("", |p| p.name.as_str()), status, elapsed)
        }
    }
}

/// Writes the request's access log lines, if its route (or virtual server) has any.
pub fn log_access(session: &Session, ctx: &RequestCtx, status: u16, elapsed: Duration) {
    let runtime = &ctx.generation.runtime;
    let targets = match (ctx.route(), ctx.virtual_server) {
        (Some(route), _) => &route.access_log,
        (None, Some(vs)) => &runtime.virtual_servers[vs].access_log,
        (None, None) => return,
    };
    if targets.is_empty() {
        return;
    }
    let pool = ctx.pool().map(|p| p.as_ref());
    let mut addrs: Vec<std::net::SocketAddr> = Vec::with_capacity(ctx.upstream.tried.len() + 1);
    if let Some(pool) = pool {
        let servers = ctx.upstream.tried.iter().chain(&ctx.upstream.current);
        addrs.extend(servers.map(|&i| pool.servers[i].addr));
    }
    let proxy_host = ctx.proxy_route().map_or("", |p| p.proxy_host.as_str());
    let info = request_info(session, ctx, proxy_host);
    let timed = targets
        .iter()
        .any(|t| t.format.shows_upstream_response_time());
    let outcome = Outcome {
        status,
        body_bytes_sent: session.body_bytes_sent(),
        request_time: elapsed,
        upstream_addrs: &addrs,
        upstream_name: pool.map(|p| p.name.as_str()),
        upstream_response_time: ctx.upstream.started.filter(|_| timed).map(|t| t.elapsed()),
        upstream_status: ctx.upstream.status,
        now: std::time::SystemTime::now(),
    };
    for target in targets {
        let mut line = Vec::with_capacity(256);
        target.format.render(&info, &outcome, &mut line);
        target.sink.write(line);
    }
}
