//! `client_max_body_size` on request bodies. A body whose length the head states is judged
//! by the head (`route`); a chunked one is read whole before the upstream is chosen, as
//! nginx's `proxy_request_buffering on` reads it, so that one over the limit is refused with
//! 413 and never reaches an upstream. The buffered body is then sent as a retry sends it.

use super::ctx::RequestCtx;
use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;

/// Reads a chunked request body whole, up to `client_max_body_size`, into the session's
/// body buffer. `Ok(true)`: the body is larger than the limit (answer 413). Bodies with a
/// `Content-Length`, upgrades and routes without a limit are left to stream.
pub async fn buffer_chunked(session: &mut Session, ctx: &RequestCtx) -> Result<bool> {
    let Some(max) = ctx.route().and_then(|r| r.settings.client_max_body_size) else {
        return Ok(false);
    };
    if session.is_upgrade_req() || !is_chunked(session) {
        return Ok(false);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    if !session.as_mut().enable_retry_buffering_up_to(limit) {
        return Ok(false);
    }
    let mut read: u64 = 0;
    while let Some(chunk) = session.read_request_body().await? {
        read += chunk.len() as u64;
        if read > max {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Counts a forwarded body chunk against `client_max_body_size`: the last guard for
/// bodies that stream (a `Content-Length` that lied is cut by the framing already).
pub fn count(session: &Session, ctx: &mut RequestCtx, body: &Option<Bytes>) -> Result<()> {
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
        return Error::e_explain(
            HTTPStatus(413),
            "request body larger than client_max_body_size",
        );
    }
    Ok(())
}

/// Whether the request's body is chunked (`Transfer-Encoding` ending in `chunked`; the
/// framing code has already refused any other transfer coding).
fn is_chunked(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .next_back()
        .is_some_and(|v| {
            v.as_bytes()
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        })
}
