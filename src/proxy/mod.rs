//! The Pingora `ProxyHttp` implementation. Each hook is a short dispatcher over plain
//! functions: the routing decision (`route`), server choice and peer settings
//! (`upstream`), retries (`retry`), headers (`headers`), answers of pinlb's own
//! (`answer`, `errors`) and the end of a request (`finish`).

mod answer;
mod body;
mod ctx;
mod errors;
mod finish;
mod head;
pub mod headers;
mod limits;
mod proxy_protocol;
mod retry;
pub mod route;
mod upstream;

pub use ctx::{Pinned, RequestCtx, Routed};
pub use proxy_protocol::ProxyProtocolReader;

use crate::observe::metrics::{METRICS, PinOutcome};
use crate::request;
use crate::routing::uri;
use crate::runtime::{RouteAction, Runtime};
use crate::state::Shared;
use crate::upstream::InFlightGuard;
use crate::variables::{ConnAddrs, RequestInfo, TlsConn};
use bytes::Bytes;
use log::debug;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use route::Answer;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The proxy. Each request takes the configuration that is current when it starts and
/// finishes with it, whatever reloads happen meanwhile.
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Proxy { shared }
    }

    /// The keep-alive this response offers the client, in seconds; `None` closes.
    fn client_keepalive(&self, ctx: &RequestCtx) -> Option<u64> {
        // Winding down: `Connection: close`, so keep-alive clients reconnect between
        // requests (to the new process after an upgrade) instead of hitting a closed socket.
        if self.shared.winding_down.load(Ordering::Relaxed) {
            return None;
        }
        Some(ctx.generation.runtime.keepalive_timeout.as_secs()).filter(|&secs| secs > 0)
    }
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The connection's TLS, when the config has TLS listeners (plain configs ask nothing).
fn tls_conn<'a>(session: &'a Session, runtime: &Runtime) -> Option<&'a TlsConn> {
    if !runtime.any_tls {
        return None;
    }
    let ssl = session.digest()?.ssl_digest.as_deref()?;
    Some(ssl.extension.get::<TlsConn>().unwrap_or(&TlsConn::UNKNOWN))
}

/// What `$variables` see for this request.
fn request_info<'a>(
    session: &'a Session,
    ctx: &'a RequestCtx,
    proxy_host: &'a str,
) -> RequestInfo<'a> {
    let runtime = &ctx.generation.runtime;
    RequestInfo {
        req: session.req_header(),
        uri: ctx.normalized.as_deref(),
        client_ip: match ctx.real_ip {
            Some(ip) => Some(ip),
            None => client_ip(session),
        },
        conn: ctx.conn.as_ref(),
        tls: tls_conn(session, runtime),
        server_port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port()),
        server_name: runtime
            .virtual_servers
            .get(ctx.virtual_server.unwrap_or(0))
            .map_or("", |vs| vs.server_name.as_str()),
        proxy_host,
        maps: &runtime.maps,
    }
}

impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        // Pingora asks for the context once the request head has been read.
        let counted = InFlightGuard::new(&self.shared.requests_in_flight);
        RequestCtx::new(self.shared.current.load_full(), counted)
    }

    /// No downstream modules. Pingora's default adds its response compression module,
    /// switched off; pinlb does not compress (nginx's `gzip` directives are accepted and
    /// ignored), and the idle module still cost an allocation and four filter calls per
    /// request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// What a connection keeps for all its requests. nginx takes these from the default
    /// server of the address the connection arrived on, since the server of its first
    /// request is not known before that request's head is read; so does pinlb.
    fn init_downstream_connection(&self, session: &mut ServerSession) {
        let generation = self.shared.current.load();
        let runtime = &generation.runtime;
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        let Some(vs) = runtime.find_virtual_server(local, || None) else {
            return;
        };
        let client = &runtime.virtual_servers[vs].client;
        session.set_head_limits(client.head);
        // Pingora counts the reuses after this request; nginx counts requests.
        session.set_keepalive_reuses_remaining(Some(client.keepalive_requests.saturating_sub(1)));
        session.set_pipelining_enabled(true);
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        session.set_keepalive(self.client_keepalive(ctx));
        // ACME's HTTP-01 validation comes before routing (and any `return 301`).
        if ctx.generation.runtime.acme_http01 {
            if let Some(answering) = answer::acme_challenge(session, &self.shared.acme.challenges) {
                answering.await?;
                return Ok(true);
            }
        }
        let refused = match route_request(session, ctx)? {
            None => None,
            Some(Answer::Refused(body)) => Some(body),
            Some(early) => {
                answer_early(session, ctx, early).await?;
                return Ok(true);
            }
        };
        // nginx's preaccess phase: after `return`, before the request goes anywhere.
        if let Some(status) = preaccess(session, ctx).await {
            answer::respond_text(session, status, answer::default_text(status)).await?;
            return Ok(true);
        }
        if let Some(body) = refused {
            answer::respond_text(session, 503, body).await?;
            return Ok(true);
        }
        if body::buffer_chunked(session, ctx).await? {
            session.set_keepalive(None);
            answer::respond_text(session, 413, answer::default_text(413)).await?;
            return Ok(true);
        }
        if let Some(route) = ctx.route().filter(|_| session.is_upgrade_req()) {
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
        let counted = body::count(session, ctx, body);
        if counted.is_err() {
            session.set_keepalive(None);
        }
        counted
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.upstream.count += 1;
        let (Some(pool), Some(route)) = (ctx.pool().cloned(), ctx.route()) else {
            return Error::e_explain(InternalError, "no route chosen before upstream_peer");
        };
        let pinned = ctx.routed.as_ref().and_then(|r| r.pin);
        let tried = |i: usize| !ctx.upstream.tried.contains(&i);
        let server = match pinned.filter(|_| ctx.upstream.count == 1) {
            // One address: no selection to make (`use` sends it even when unusable).
            Some(pin)
                if pin.server.len == 1 && (pin.strict || pool.is_usable(pin.server.first)) =>
            {
                Some(pin.server.first)
            }
            pinned => {
                let proxy_host = ctx.proxy_route().map_or("", |p| p.proxy_host.as_str());
                let mut key = Vec::new();
                let key = pool.selection_key(|| request_info(session, ctx, proxy_host), &mut key);
                match pinned {
                    Some(pin) => pool
                        .select_in(key, pin.server, tried)
                        .or_else(|| (pin.strict && pin.server.len > 0).then_some(pin.server.first))
                        .or_else(|| match pin.strict {
                            true => None,
                            false => pool.select(key, tried),
                        }),
                    None => pool.select(key, tried),
                }
            }
        };
        let Some(server) = server else {
            return Error::e_explain(
                HTTPStatus(503),
                format!("no usable server in upstream \"{}\"", pool.name),
            );
        };
        let mut peer = upstream::peer(&pool, server, &route.settings, session.is_upgrade_req());
        if let Some(tls) = ctx.proxy_route().and_then(|p| p.tls.as_deref()) {
            tls.apply(&mut peer, pool.servers[server].addr);
        }
        ctx.start_attempt(&pool, server);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(proxy), Some(route)) = (ctx.proxy_route(), ctx.route()) else {
            return Ok(());
        };
        if let Some((prefix, replacement)) = &proxy.rewrite {
            let client = session.req_header();
            let quoted = uri::was_quoted(request::path(client));
            headers::rewrite_uri(
                upstream_request,
                prefix,
                replacement,
                ctx.uri(client),
                quoted,
            )?;
        }
        let info = request_info(session, ctx, &proxy.proxy_host);
        headers::apply_set_headers(upstream_request, &route.set_headers, &info)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        ctx.upstream.status = Some(status);
        match retry::after_status(session, ctx, status) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if end_of_stream {
            // The server is done with this request: it no longer counts as in flight
            // (least_conn, max_conns), before the client sees the end and sends its next
            // request, as nginx frees the peer.
            ctx.upstream.inflight = None;
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if session.req_header().version == http::Version::HTTP_10
            && headers::unchunk_for_http10(upstream_response)
        {
            // The body ends when the connection does.
            session.set_keepalive(None);
        }
        let (Some(route), Some(proxy)) = (ctx.route(), ctx.proxy_route()) else {
            return Ok(());
        };
        let served_by = &ctx.generation.runtime.served_by;
        if let (Some((name, case)), Some(pool), Some(i)) =
            (served_by, ctx.pool(), ctx.upstream.current)
        {
            let value = match ctx.generation.runtime.served_by_reason {
                false => pool.servers[i].name_value.clone(),
                true => headers::served_by_with_reason(&pool.servers[i].label, served_reason(ctx))?,
            };
            upstream_response.insert_parsed_header(name, case.clone(), value)?;
        }
        if let (Some(pool), Some(i)) = (ctx.pool(), ctx.upstream.current) {
            let carried = ctx.routed.as_ref().and_then(|r| r.sticky);
            if let Some(sticky) = pool
                .sticky
                .as_ref()
                .filter(|s| s.renews() || carried != Some(i))
            {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                upstream_response
                    .append_header("Set-Cookie", sticky.set_cookie(&pool.servers[i].sid, now))?;
                pool.metrics.sticky_set.inc();
            }
        }
        if !route.add_headers.is_empty() {
            let info = request_info(session, ctx, &proxy.proxy_host);
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
        if let (Some(pool), Some(i)) = (ctx.pool(), ctx.upstream.current) {
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
        let e = e.more_context(format!("Peer: {peer}"));
        retry::after_error(session, ctx, e, client_reused)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e);
        // A client too slow to send its body gets no answer (nginx's 408: logged only).
        if code > 0 && code != 408 && session.response_written().is_none() {
            let upstream = ctx.pool().map(|p| p.name.as_str());
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
        if ctx.virtual_server.is_none() && ctx.routed.is_none() {
            // A request refused before `request_filter` (its head was refused while read):
            // logged where its server would have logged it.
            let local = session.server_addr().and_then(|a| a.as_inet()).copied();
            let req = session.req_header();
            ctx.virtual_server = ctx
                .generation
                .runtime
                .find_virtual_server(local, || crate::request::host(req));
        }
        let status = session
            .response_written()
            .map_or_else(|| e.map_or(0, errors::status_for), |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        finish::count(ctx, status, e.is_none(), elapsed);
        finish::log_access(session, ctx, status, elapsed);
    }
}

/// Routes the request (see [`route::decide`]) and records the decision in `ctx`; the
/// answer, if pinlb answers it itself.
fn route_request(session: &mut Session, ctx: &mut RequestCtx) -> Result<Option<Answer>> {
    if head::is_absolute(session.req_header()) {
        head::absolute_to_origin(session.req_header_mut())?;
    }
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    let runtime = &ctx.generation.runtime;
    if runtime.conn_addrs {
        ctx.conn = Some(conn_addrs(session));
    }
    let conn = ctx.conn.as_ref();
    let tls = tls_conn(session, runtime);
    let routing = route::decide(
        runtime,
        local,
        client_ip(session),
        conn,
        tls,
        session.req_header(),
    );
    if let Some(outcome) = routing.pin {
        METRICS.pin(outcome);
    }
    if let Some(vs) = routing.virtual_server {
        let client = &runtime.virtual_servers[vs].client;
        session.set_read_timeout(Some(client.body_timeout));
        session.set_write_timeout(Some(client.send_timeout));
    }
    ctx.virtual_server = routing.virtual_server;
    ctx.routed = routing.routed;
    ctx.normalized = routing.uri.map(Vec::into_boxed_slice);
    ctx.pin_outcome = routing.pin;
    ctx.real_ip = routing.real_ip;
    Ok(routing.answer)
}

/// The connection's own addresses: its peer, and the client its PROXY protocol header
/// named.
fn conn_addrs(session: &Session) -> ConnAddrs {
    let header = session
        .digest()
        .and_then(|d| d.socket_digest.as_ref())
        .and_then(|s| s.proxy_protocol.get());
    ConnAddrs {
        peer: client_ip(session),
        proxy_protocol: header.and_then(|h| h.source),
    }
}

/// Writes an answer given before the limits: a text of pinlb's own, the route's `return`
/// or nginx's automatic redirect.
async fn answer_early(session: &mut Session, ctx: &RequestCtx, early: Answer) -> Result<()> {
    // The listen address, for the port of an absolute `Location`.
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    match early {
        Answer::Text(status, body) => {
            // nginx closes the connection after a malformed request or a refused body.
            if status == 400 || status == 413 {
                session.set_keepalive(None);
            }
            answer::respond_text(session, status, body).await
        }
        Answer::Return => answer_return(session, ctx, local).await,
        Answer::AddSlash(location) => {
            let add_headers = ctx.route().map_or(&[][..], |r| &r.add_headers);
            let info = request_info(session, ctx, "");
            let (resp, body) =
                answer::build_redirect(301, location.into_bytes(), add_headers, &info, local)?;
            answer::write_text(session, resp, body).await
        }
        Answer::Refused(body) => answer::respond_text(session, 503, body).await,
    }
}

/// nginx's preaccess phase: the route's `limit_req` (the request may wait its turn), then
/// its `limit_conn`, whose slots `ctx` holds until the request ends. The status to answer
/// with when a limit refuses the request.
async fn preaccess(session: &Session, ctx: &mut RequestCtx) -> Option<u16> {
    let limits = ctx.route().and_then(|r| r.limits.as_deref())?;
    let proxy_host = ctx.proxy_route().map_or("", |p| p.proxy_host.as_str());
    let info = request_info(session, ctx, proxy_host);
    let verdict = match limits::wait(limits, &info) {
        Err(status) => limits::Verdict::Reject(status),
        Ok(delay) => {
            if !delay.is_zero() {
                // Boxed: only a delayed request pays for a timer in its future.
                Box::pin(tokio::time::sleep(delay)).await;
            }
            limits::acquire(limits, &info)
        }
    };
    match verdict {
        limits::Verdict::Pass(slots) => {
            ctx.conn_slots = slots;
            None
        }
        limits::Verdict::Reject(status) => Some(status),
    }
}

/// Writes the `return` of the request's route.
async fn answer_return(
    session: &mut Session,
    ctx: &RequestCtx,
    local: Option<SocketAddr>,
) -> Result<()> {
    let Some(RouteAction::Return { status, text }) = ctx.route().map(|r| &r.action) else {
        return Error::e_explain(InternalError, "return answer without its route");
    };
    let add_headers = ctx.route().map_or(&[][..], |r| &r.add_headers);
    let info = request_info(session, ctx, "");
    let (resp, body) = answer::build_return(*status, text.as_ref(), add_headers, &info, local)?;
    answer::write_text(session, resp, body).await
}

/// Why the server that answers was chosen: `pinned`, `sticky` (the sticky cookie named
/// it), `fell back` (a pin or the cookie named another server, which was down or failed)
/// or `balanced`.
fn served_reason(ctx: &RequestCtx) -> &'static str {
    let current = ctx.upstream.current;
    match (ctx.routed.as_ref().and_then(|r| r.pin), ctx.pin_outcome) {
        (Some(pin), Some(PinOutcome::Pinned))
            if current.is_some_and(|c| pin.server.contains(c)) =>
        {
            "pinned"
        }
        (Some(pin), _) if current.is_some_and(|c| pin.server.contains(c)) => "sticky",
        (Some(_), _) | (None, Some(PinOutcome::FellBack)) => "fell back",
        (None, Some(PinOutcome::Pinned)) => "pinned",
        _ => "balanced",
    }
}
