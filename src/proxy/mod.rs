//! The Pingora `ProxyHttp` implementation: route and pin in `request_filter`, choose the
//! server in `upstream_peer`, retry in `fail_to_connect`, set headers on the way.

mod ctx;
mod errors;
mod headers;

pub use ctx::RequestCtx;

use crate::request;
use crate::routing::{self, PinDecision, Requested};
use crate::runtime::Runtime;
use crate::variables::RequestInfo;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::debug;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;

/// The proxy. Holds the current [`Runtime`]; each request takes the one that is current
/// when it starts.
pub struct Proxy {
    runtime: Arc<ArcSwap<Runtime>>,
}

impl Proxy {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        Proxy { runtime }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let runtime = self.runtime.load_full();
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        let req = session.req_header();
        let Some(at) = runtime.find_route(local, request::host(req), req.uri.path()) else {
            errors::respond_text(
                session,
                404,
                "404 Not Found: no route for this path\n".into(),
            )
            .await?;
            return Ok(true);
        };
        let route = runtime.route_at(at);
        if let Requested::Server(i) =
            routing::requested_server(&route.pins, req, |name| route.pool.find(name))
        {
            match routing::decide(route.pool.is_healthy(i), route.on_unhealthy) {
                PinDecision::Pinned => {
                    ctx.pinned = Some(i);
                    ctx.strict_pin = route.on_unhealthy != crate::config::OnUnhealthy::Fallback;
                }
                PinDecision::FallBack => {
                    debug!(
                        "pinned server \"{}\" is down; balancing instead",
                        route.pool.servers[i].name
                    );
                }
                PinDecision::Refuse => {
                    let body = format!(
                        "503 Service Unavailable: server \"{}\" of upstream \"{}\" is down\n",
                        route.pool.servers[i].name, route.pool.name
                    );
                    errors::respond_text(session, 503, body).await?;
                    return Ok(true);
                }
            }
        }
        if session.is_upgrade_req() {
            // Pingora's 60 s downstream read timeout would otherwise close idle websockets.
            session.set_read_timeout(Some(route.settings.websocket_idle_timeout));
        }
        ctx.route = Some(at);
        ctx.runtime = Some(runtime);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.attempts += 1;
        let first = ctx.attempts == 1;
        let Some(route) = ctx.route() else {
            return Error::e_explain(InternalError, "no route chosen before upstream_peer");
        };
        let pinned = ctx.pinned.filter(|_| first);
        let chosen = pinned.or_else(|| route.pool.select(|i| !ctx.tried.contains(&i)));
        let Some(server) = chosen else {
            return Error::e_explain(
                HTTPStatus(503),
                format!("no usable server in upstream \"{}\"", route.pool.name),
            );
        };
        let settings = &route.settings;
        let mut peer = HttpPeer::new(route.pool.servers[server].addr, false, String::new());
        peer.options.connection_timeout = Some(settings.connect_timeout);
        peer.options.write_timeout = Some(settings.send_timeout);
        peer.options.read_timeout = Some(if session.is_upgrade_req() {
            settings.websocket_idle_timeout
        } else {
            settings.read_timeout
        });
        ctx.current = Some(server);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(route) = ctx.route() else {
            return Ok(());
        };
        let info = RequestInfo {
            req: session.req_header(),
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            tls: false,
            server_port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
            server_name: "",
            proxy_host: &route.pool.name,
        };
        headers::apply_set_headers(upstream_request, &route.set_headers, &info)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(runtime), Some(route), Some(server)) = (&ctx.runtime, ctx.route(), ctx.current)
        else {
            return Ok(());
        };
        if let Some(name) = &runtime.served_by {
            upstream_response
                .insert_header(name.clone(), route.pool.servers[server].name.as_str())?;
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
        ctx.current_failed();
        // Nothing reached the server: any method may go to the next one.
        if ctx.may_retry() {
            e.set_retry(true);
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
        let Some(route) = ctx.route() else {
            e.set_retry(false);
            return e;
        };
        let next = route.settings.next_upstream;
        let method_allows = session.req_header().method.is_idempotent() || next.non_idempotent;
        if !method_allows
            || session.as_ref().retry_buffer_truncated()
            || session.response_written().is_some()
        {
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
            let retry = ctx.may_retry();
            e.set_retry(retry);
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
            let upstream = ctx.route().map(|r| r.pool.name.as_str());
            let body = errors::body_for(code, e, upstream);
            if let Err(write_err) = errors::respond_text(session, code, body).await {
                debug!("could not send the {code} response: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}
