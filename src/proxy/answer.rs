//! Responses pinlb writes itself: `return` routes, error pages, and `add_header`.

use crate::request;
use crate::runtime::AddHeaderRule;
use crate::tls::acme::challenge::Challenges;
use crate::variables::{RequestInfo, Template};
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// Statuses nginx adds `add_header` headers to unless `always` is given.
const ADD_HEADER_STATUSES: [u16; 10] = [200, 201, 204, 206, 301, 302, 303, 304, 307, 308];

/// Adds the `add_header` headers that apply to a response with this status.
pub fn add_headers(
    resp: &mut ResponseHeader,
    rules: &[AddHeaderRule],
    info: &RequestInfo<'_>,
) -> Result<()> {
    let status = resp.status.as_u16();
    for rule in rules
        .iter()
        .filter(|r| r.always || ADD_HEADER_STATUSES.contains(&status))
    {
        let mut value = Vec::new();
        rule.value.expand(info, &mut value);
        if value.is_empty() {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(Bytes::from(value))
            .or_err(InvalidHTTPHeader, "add_header value")?;
        resp.append_header(rule.name.clone(), value)?;
    }
    Ok(())
}

/// nginx's `return`: a redirect with `Location`, or a status with an optional body.
/// `local` is the address the request came in on (for an absolute `Location`).
pub fn build_return(
    status: u16,
    text: Option<&Template>,
    rules: &[AddHeaderRule],
    info: &RequestInfo<'_>,
    local: Option<SocketAddr>,
) -> Result<(ResponseHeader, Vec<u8>)> {
    let mut expanded = Vec::new();
    if let Some(t) = text {
        t.expand(info, &mut expanded);
    }
    let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
    match (redirect, text.is_some()) {
        (true, true) => build_redirect(status, expanded, rules, info, local),
        (false, true) => build(status, None, expanded, rules, info),
        (_, false) => build(status, None, default_body(status), rules, info),
    }
}

/// A redirect to `location`, made absolute as nginx makes it.
pub fn build_redirect(
    status: u16,
    location: Vec<u8>,
    rules: &[AddHeaderRule],
    info: &RequestInfo<'_>,
    local: Option<SocketAddr>,
) -> Result<(ResponseHeader, Vec<u8>)> {
    let location = absolute_location(location, info.req, local);
    build(status, Some(location), default_body(status), rules, info)
}

fn build(
    status: u16,
    location: Option<Vec<u8>>,
    body: Vec<u8>,
    rules: &[AddHeaderRule],
    info: &RequestInfo<'_>,
) -> Result<(ResponseHeader, Vec<u8>)> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    if let Some(location) = location {
        let location = HeaderValue::from_maybe_shared(Bytes::from(location))
            .or_err(InvalidHTTPHeader, "return URL")?;
        // Named as nginx writes it.
        resp.insert_header("Location", location)?;
    }
    add_headers(&mut resp, rules, info)?;
    Ok((resp, body))
}

/// [`default_body`] as text, for answers such as a limit's `503` or `429`.
pub fn default_text(status: u16) -> String {
    String::from_utf8_lossy(&default_body(status)).into_owned()
}

/// nginx's `absolute_redirect on` and `port_in_redirect on` (its defaults): a `Location`
/// that starts with `/` gets `http://`, the request's host (else the local address) and
/// the local port unless it is 80.
fn absolute_location(location: Vec<u8>, req: &RequestHeader, local: Option<SocketAddr>) -> Vec<u8> {
    if !location.starts_with(b"/") {
        return location;
    }
    let host = match (request::host(req), local) {
        (Some(host), _) => host.to_ascii_lowercase(),
        (None, Some(SocketAddr::V6(a))) => format!("[{}]", a.ip()),
        (None, Some(a)) => a.ip().to_string(),
        (None, None) => String::new(),
    };
    let mut out = format!("http://{host}").into_bytes();
    if let Some(port) = local.map(|a| a.port()).filter(|p| *p != 80) {
        out.extend_from_slice(format!(":{port}").as_bytes());
    }
    out.extend_from_slice(&location);
    out
}

/// The body nginx-like servers send with a bare status: its reason phrase for errors and
/// redirects, nothing for the rest.
fn default_body(status: u16) -> Vec<u8> {
    if status < 300 {
        return Vec::new();
    }
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}\n")
        .trim_end_matches(' ')
        .as_bytes()
        .to_vec()
}

/// A response being written. Boxed: hooks that may answer themselves would otherwise carry
/// this future's state inline, and Pingora copies every hook's future into a box on every
/// request, answered or not.
pub type Answering<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Writes a small `text/plain` response.
pub fn respond_text(session: &mut Session, code: u16, body: String) -> Answering<'_> {
    match ResponseHeader::build(code, Some(3)) {
        Ok(resp) => write_text(session, resp, body.into_bytes()),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    }
}

/// Writes `resp` with `body` as `text/plain` (no body for `HEAD`).
pub fn write_text(session: &mut Session, mut resp: ResponseHeader, body: Vec<u8>) -> Answering<'_> {
    Box::pin(async move {
        if !body.is_empty() {
            resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        }
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(resp), head_only || body.is_empty())
            .await?;
        if !head_only && !body.is_empty() {
            session
                .write_response_body(Some(Bytes::from(body)), true)
                .await?;
        }
        Ok(())
    })
}

/// The answer to ACME's HTTP-01 validation (`GET /.well-known/acme-challenge/TOKEN` on a
/// plain connection): the pending challenge's key authorization. `None` for other
/// requests, unknown tokens included, which go on to routing. Not `async`, as
/// [`respond_text`]: the hook's future stays small when it does not answer.
pub fn acme_challenge<'a>(
    session: &'a mut Session,
    challenges: &Challenges,
) -> Option<Answering<'a>> {
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let answer = challenges
        .answer(session.req_header().uri.path())
        .filter(|_| !tls)?;
    Some(match ResponseHeader::build(200, Some(3)) {
        Ok(resp) => write_text(session, resp, answer.as_bytes().to_vec()),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_statuses_get_nginx_like_bodies() {
        assert_eq!(default_body(200), b"");
        assert_eq!(default_body(403), b"403 Forbidden\n");
        assert_eq!(default_body(301), b"301 Moved Permanently\n");
    }

    /// nginx 1.22 answers `return 301 /target` on 127.0.0.1:28111 with `Host:
    /// Mixed.Test:8080` with `Location: http://mixed.test:28111/target`; port 80 is left out.
    #[test]
    fn relative_redirects_are_made_absolute_as_nginx_does() {
        let req = |host: Option<&str>| {
            let mut r = RequestHeader::build("GET", b"/r/", None).unwrap();
            if let Some(h) = host {
                r.insert_header("Host", h).unwrap();
            }
            r
        };
        let local: SocketAddr = "127.0.0.1:28111".parse().unwrap();
        let abs = |req: &RequestHeader, loc: &str, local| {
            String::from_utf8(absolute_location(loc.into(), req, local)).unwrap()
        };
        let named = req(Some("Mixed.Test:8080"));
        assert_eq!(
            abs(&named, "/target", Some(local)),
            "http://mixed.test:28111/target"
        );
        assert_eq!(
            abs(&req(None), "/target", Some(local)),
            "http://127.0.0.1:28111/target"
        );
        let port80: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(
            abs(&named, "/t?a=1", Some(port80)),
            "http://mixed.test/t?a=1"
        );
        assert_eq!(
            abs(&named, "https://x.test/", Some(local)),
            "https://x.test/"
        );
    }

    #[test]
    fn add_header_skips_error_statuses_unless_always() {
        let req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        let info = RequestInfo {
            req: &req,
            uri: None,
            client_ip: None,
            conn: None,
            tls: None,
            server_port: None,
            server_name: "",
            proxy_host: "",
            maps: &[],
        };
        let rule = |name: &str, always| AddHeaderRule {
            name: Bytes::from(name.to_string()),
            value: Template::parse("v", &[]).unwrap(),
            always,
        };
        let rules = [rule("X-Plain", false), rule("X-Always", true)];
        let mut ok = ResponseHeader::build(200, None).unwrap();
        add_headers(&mut ok, &rules, &info).unwrap();
        assert!(ok.headers.contains_key("x-plain") && ok.headers.contains_key("x-always"));
        let mut err = ResponseHeader::build(502, None).unwrap();
        add_headers(&mut err, &rules, &info).unwrap();
        assert!(!err.headers.contains_key("x-plain") && err.headers.contains_key("x-always"));
    }
}
