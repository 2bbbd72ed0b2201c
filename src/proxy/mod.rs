//! The Pingora `ProxyHttp` implementation: route and pin in `request_filter`, choose the
//! server in `upstream_peer`, retry in `fail_to_connect` / `error_while_proxy`, set
//! headers on the way, and count every attempt for passive health.

mod answer;
mod ctx;
mod errors;
pub mod headers;

pub use ctx::RequestCtx;

use crate::observe::log_format::Outcome;
use crate::observe::metrics::{METRICS, PinOutcome};
use crate::request;
use crate::routing::{self, PinDecision, Requested};
use crate::runtime::{RouteAction, Runtime};
use crate::state::Shared;
use crate::upstream::{InFlightGuard, KeyKind, ip_hash_key};
use crate::variables::RequestInfo;
use async_trait::async_trait;
use bytes::Bytes;
use log::debug;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The proxy. Each request takes the [`Runtime`] that is current when it starts and
/// finishes with it, whatever reloads happen meanwhile.
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Proxy { shared }
    }
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// What `$variables` see for this request, taken by virtual server `vs`.
fn request_info<'a>(
    session: &'a Session,
    runtime: &'a Runtime,
    vs: usize,
    proxy_host: &'a str,
) -> RequestInfo<'a> {
    RequestInfo {
        req: session.req_header(),
        client_ip: client_ip(session),
        tls: false,
        server_port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port()),
        server_name: &runtime.virtual_servers[vs].server_name,
        proxy_host,
        maps: &runtime.maps,
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            counted: Some(InFlightGuard::new(&self.shared.requests_in_flight)),
            ..RequestCtx::default()
        }
    }

    /// No downstream modules. Pingora's default adds its response compression module,
    /// switched off; pinlb does not compress (nginx's `gzip` directives are accepted and
    /// ignored), and the idle module still cost an allocation and four filter calls per
    /// request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.started = Some(Instant::now());
        let runtime = self.shared.runtime.load_full();
        ctx.runtime = Some(Arc::clone(&runtime));
        match runtime.keepalive_timeout.as_secs() {
            // Winding down: `Connection: close`, so keep-alive clients reconnect between
            // requests (to the new process after an upgrade) instead of hitting a closed socket.
            _ if self.shared.winding_down.load(Ordering::Relaxed) => session.set_keepalive(None),
            0 => session.set_keepalive(None),
            secs => session.set_keepalive(Some(secs)),
        }
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        let req = session.req_header();
        let Some(vs) = runtime.find_virtual_server(local, || request::host(req)) else {
            let body = "404 Not Found: no server for this address\n".into();
            answer::respond_text(session, 404, body).await?;
            return Ok(true);
        };
        ctx.virtual_server = Some(vs);
        let Some(at) = runtime.find_route(vs, req.uri.path()) else {
            let body = "404 Not Found: no route for this path\n".into();
            answer::respond_text(session, 404, body).await?;
            return Ok(true);
        };
        ctx.route = Some(at);
        let route = runtime.route_at(at);
        if let Some(max) = route.settings.client_max_body_size {
            let declared = request::header(req, "content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            if declared.is_some_and(|len| len > max) {
                session.set_keepalive(None);
                answer::respond_text(session, 413, "413 Request Entity Too Large\n".into()).await?;
                return Ok(true);
            }
        }
        let proxy = match &route.action {
            RouteAction::Return { status, text } => {
                let info = request_info(session, &runtime, vs, "");
                let (resp, body) =
                    answer::build_return(*status, text.as_ref(), &route.add_headers, &info)?;
                answer::write_text(session, resp, body).await?;
                return Ok(true);
            }
            RouteAction::Proxy(proxy) => proxy,
        };
        let mut pool = &proxy.pool;
        match routing::requested(&proxy.pins, &proxy.pool, req) {
            Requested::Server(pinned_pool, i) => {
                match routing::decide(pinned_pool.is_usable(i), proxy.on_unhealthy) {
                    PinDecision::Pinned => {
                        METRICS.pin(PinOutcome::Pinned);
                        pool = pinned_pool;
                        ctx.pinned = Some(i);
                        ctx.strict_pin = proxy.on_unhealthy != crate::config::OnUnhealthy::Fallback;
                    }
                    PinDecision::FallBack => {
                        METRICS.pin(PinOutcome::FellBack);
                        debug!(
                            "pinned server \"{}\" is unusable; balancing instead",
                            pinned_pool.servers[i].name
                        );
                    }
                    PinDecision::Refuse => {
                        METRICS.pin(PinOutcome::Refused);
                        let body = format!(
                            "503 Service Unavailable: server \"{}\" of upstream \"{}\" is down\n",
                            pinned_pool.servers[i].name, pinned_pool.name
                        );
                        answer::respond_text(session, 503, body).await?;
                        return Ok(true);
                    }
                }
            }
            Requested::Pool(pinned_pool) => {
                METRICS.pin(PinOutcome::Pinned);
                pool = pinned_pool;
            }
            Requested::Unknown => METRICS.pin(PinOutcome::Unknown),
            Requested::Nothing => {}
        }
        ctx.pool = Some(Arc::clone(pool));
        if session.is_upgrade_req() {
            // Pingora's 60 s downstream read timeout would otherwise close idle websockets.
            session.set_read_timeout(Some(route.settings.websocket_idle_timeout));
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // An upgraded connection's bytes are a stream, not a request body.
        let Some(max) = ctx
            .route()
            .and_then(|r| r.settings.client_max_body_size)
            .filter(|_| !session.was_upgraded())
        else {
            return Ok(());
        };
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > max {
            session.set_keepalive(None);
            return Error::e_explain(
                HTTPStatus(413),
                "request body larger than client_max_body_size",
            );
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.attempts += 1;
        let (Some(pool), Some(proxy), Some(route)) =
            (ctx.pool.clone(), ctx.proxy_route(), ctx.route())
        else {
            return Error::e_explain(InternalError, "no route chosen before upstream_peer");
        };
        let server = match ctx.pinned.filter(|_| ctx.attempts == 1) {
            Some(pinned) => Some(pinned),
            None => {
                let mut key_buf = Vec::new();
                let key: &[u8] = match pool.key_kind {
                    KeyKind::None => b"",
                    KeyKind::ClientIp => {
                        let (bytes, len) = client_ip(session).map_or(([0; 16], 0), ip_hash_key);
                        key_buf.extend_from_slice(&bytes[..len]);
                        &key_buf
                    }
                    KeyKind::Template => {
                        if let (Some(t), Some(rt), Some(at)) =
                            (&proxy.hash_key, &ctx.runtime, ctx.route)
                        {
                            t.expand(
                                &request_info(session, rt, at.0, &proxy.proxy_host),
                                &mut key_buf,
                            );
                        }
                        &key_buf
                    }
                };
                pool.select(key, |i| !ctx.tried.contains(&i))
            }
        };
        let Some(server) = server else {
            return Error::e_explain(
                HTTPStatus(503),
                format!("no usable server in upstream \"{}\"", pool.name),
            );
        };
        let settings = &route.settings;
        let mut peer = HttpPeer::new(pool.servers[server].addr, false, String::new());
        peer.options.connection_timeout = Some(settings.connect_timeout);
        peer.options.write_timeout = Some(settings.send_timeout);
        peer.options.read_timeout = Some(if session.is_upgrade_req() {
            settings.websocket_idle_timeout
        } else {
            settings.read_timeout
        });
        peer.options.idle_timeout = pool.idle_timeout;
        ctx.upstream_started.get_or_insert_with(Instant::now);
        ctx.inflight = Some(pool.start_request(server));
        ctx.current = Some(server);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(runtime), Some(at), Some(proxy), Some(route)) =
            (&ctx.runtime, ctx.route, ctx.proxy_route(), ctx.route())
        else {
            return Ok(());
        };
        if let Some((prefix, replacement)) = &proxy.rewrite {
            headers::rewrite_uri(upstream_request, prefix, replacement)?;
        }
        let info = request_info(session, runtime, at.0, &proxy.proxy_host);
        headers::apply_set_headers(upstream_request, &route.set_headers, &info)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        ctx.upstream_status = Some(status);
        let Some(route) = ctx.route() else {
            return Ok(());
        };
        let next = &route.settings.next_upstream;
        if !next.statuses.contains(&status) || !retry_allowed(session, next) {
            return Ok(());
        }
        // nginx: 403 and 404 move the request on but do not count against the server.
        let counts = !matches!(status, 403 | 404);
        let (server, pool) = (ctx.current, ctx.pool.clone());
        if let (Some(i), Some(pool)) = (server, &pool) {
            if counts {
                pool.report_failure(i);
            }
            ctx.tried.push(i);
        }
        if !ctx.may_retry() {
            // Nowhere left to go: the client gets this response, as nginx would send it.
            ctx.tried.pop();
            return Ok(());
        }
        ctx.current = None;
        let mut e = Error::explain(HTTPStatus(status), "status listed in next_upstream").into_up();
        ctx.retry(&mut e);
        Err(e)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(runtime), Some(at), Some(route), Some(proxy)) =
            (&ctx.runtime, ctx.route, ctx.route(), ctx.proxy_route())
        else {
            return Ok(());
        };
        if let (Some((name, case)), Some(pool), Some(i)) =
            (&runtime.served_by, &ctx.pool, ctx.current)
        {
            let value = pool.servers[i].name_value.clone();
            upstream_response.insert_parsed_header(name, case.clone(), value)?;
        }
        if !route.add_headers.is_empty() {
            let info = request_info(session, runtime, at.0, &proxy.proxy_host);
            answer::add_headers(upstream_response, &route.add_headers, &info)?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(pool), Some(i)) = (&ctx.pool, ctx.current) {
            pool.metrics.servers[i].connect_errors.inc();
        }
        ctx.current_failed();
        // Nothing reached the server: any method may go to the next one.
        if ctx.may_retry() {
            ctx.retry(&mut e);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if matches!(e.etype(), HTTPStatus(_)) && *e.esource() == ErrorSource::Upstream {
            // Raised by upstream_response_filter, which already decided.
            return e;
        }
        let Some(next) = ctx.route().map(|r| r.settings.next_upstream.clone()) else {
            e.set_retry(false);
            return e;
        };
        if !retry_allowed(session, &next) || session.response_written().is_some() {
            e.set_retry(false);
            return e;
        }
        let condition_met = *e.esource() == ErrorSource::Upstream
            && match e.etype() {
                ReadTimedout | WriteTimedout => next.timeout,
                _ => next.error,
            };
        if condition_met {
            ctx.current_failed();
            match ctx.may_retry() {
                true => ctx.retry(&mut e),
                false => e.set_retry(false),
            }
        } else {
            // A pooled connection the server had already closed: try again, as Pingora does.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e);
        if code > 0 && session.response_written().is_none() {
            let upstream = ctx.pool.as_ref().map(|p| p.name.as_str());
            let body = errors::body_for(code, e, upstream);
            if let Err(write_err) = answer::respond_text(session, code, body).await {
                debug!("could not send the {code} response: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map_or_else(|| e.map_or(0, errors::status_for), |r| r.status.as_u16());
        let elapsed = ctx.started.map(|t| t.elapsed()).unwrap_or_default();
        match (&ctx.pool, ctx.current) {
            (Some(pool), Some(i)) => {
                if e.is_none() {
                    pool.report_success(i);
                }
                pool.metrics.servers[i].answered(status);
                pool.metrics.duration.observe(elapsed.as_secs_f64());
            }
            (pool, _) => METRICS.request_without_server(
                pool.as_ref().map_or("", |p| p.name.as_str()),
                status,
                elapsed,
            ),
        }
        log_access(session, ctx, status, elapsed);
    }
}

/// Writes the request's access log lines, if its route (or virtual server) has any.
fn log_access(session: &Session, ctx: &RequestCtx, status: u16, elapsed: std::time::Duration) {
    let Some(runtime) = &ctx.runtime else { return };
    let targets = match (ctx.route(), ctx.virtual_server) {
        (Some(route), _) => &route.access_log,
        (None, Some(vs)) => &runtime.virtual_servers[vs].access_log,
        (None, None) => return,
    };
    if targets.is_empty() {
        return;
    }
    let pool = ctx.pool.as_deref();
    let mut addrs: Vec<std::net::SocketAddr> = Vec::with_capacity(ctx.tried.len() + 1);
    if let Some(pool) = pool {
        addrs.extend(
            ctx.tried
                .iter()
                .chain(ctx.current.iter())
                .map(|&i| pool.servers[i].addr),
        );
    }
    let proxy_host = ctx.proxy_route().map_or("", |p| p.proxy_host.as_str());
    let info = request_info(
        session,
        runtime,
        ctx.virtual_server.unwrap_or(0),
        proxy_host,
    );
    let outcome = Outcome {
        status,
        body_bytes_sent: session.body_bytes_sent(),
        request_time: elapsed,
        upstream_addrs: &addrs,
        upstream_name: pool.map(|p| p.name.as_str()),
        upstream_response_time: ctx.upstream_started.map(|t| t.elapsed()),
        upstream_status: ctx.upstream_status,
        now: std::time::SystemTime::now(),
    };
    for target in targets {
        let mut line = Vec::with_capacity(256);
        target.format.render(&info, &outcome, &mut line);
        target.sink.write(line);
    }
}

/// nginx retries a request that reached a server only if it is idempotent (or
/// `non_idempotent` is listed) and its body is still buffered.
fn retry_allowed(session: &Session, next: &crate::config::NextUpstream) -> bool {
    (session.req_header().method.is_idempotent() || next.non_idempotent)
        && !session.as_ref().retry_buffer_truncated()
}
