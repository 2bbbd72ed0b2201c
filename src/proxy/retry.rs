//! When a request that failed on one server goes to the next (nginx `proxy_next_upstream`):
//! after a listed status, and after an error while proxying. Connect failures are always
//! retried (nothing reached the server); they need no decision here.

use super::ctx::RequestCtx;
use crate::config::NextUpstream;
use pingora::prelude::*;
use pingora::proxy::Session;

/// nginx retries a request that reached a server only if it is idempotent (or
/// `non_idempotent` is listed) and its body is still buffered.
fn allowed(session: &Session, next: &NextUpstream) -> bool {
    (session.req_header().method.is_idempotent() || next.non_idempotent)
        && !session.as_ref().retry_buffer_truncated()
}

/// The server answered `status`: `Some(error)` moves the request on to the next server,
/// `None` sends the answer to the client.
pub fn after_status(session: &Session, ctx: &mut RequestCtx, status: u16) -> Option<Box<Error>> {
    let next = &ctx.route()?.settings.next_upstream;
    if !next.statuses.contains(&status) || !allowed(session, next) {
        return None;
    }
    if let (Some(i), Some(pool)) = (ctx.upstream.current, ctx.pool()) {
        // nginx: 403 and 404 move the request on but do not count against the server.
        if !matches!(status, 403 | 404) {
            pool.report_failure(i);
        }
        ctx.upstream.tried.push(i);
    }
    if !ctx.may_retry() {
        // Nowhere left to go: the client gets this response, as nginx would send it.
        ctx.upstream.tried.pop();
        return None;
    }
    ctx.upstream.current = None;
    let mut e = Error::explain(HTTPStatus(status), "status listed in next_upstream").into_up();
    ctx.retry(&mut e);
    Some(e)
}

/// Decides whether `e`, raised while proxying to the current server, sends the request
/// to the next one.
pub fn after_error(
    session: &Session,
    ctx: &mut RequestCtx,
    mut e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    if matches!(e.etype(), HTTPStatus(_)) && *e.esource() == ErrorSource::Upstream {
        // Raised by `after_status`, which already decided.
        return e;
    }
    let next = match ctx.route() {
        Some(route) if allowed(session, &route.settings.next_upstream) => {
            &route.settings.next_upstream
        }
        _ => {
            e.set_retry(false);
            return e;
        }
    };
    if session.response_written().is_some() {
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
