//! What a request head must be before it is routed, as RFC 9112 and nginx have it: an
//! HTTP/1.1 request names its host, and its target is in origin form (`/path`), absolute
//! form (`http://host/path`, made origin form here with its authority as the `Host`) or,
//! for `OPTIONS`, `*`. HTTP/1.0 requests need no `Host`.

use http::header::HOST;
use http::{HeaderValue, Method, Uri, Version};
use pingora::http::RequestHeader;
use pingora::http::authority::{RawTargetAuthority, raw_target_authority};
use pingora::prelude::*;

/// Whether the target is in absolute form (Pingora keeps its bytes and puts only the
/// path in the `Uri`).
pub fn is_absolute(req: &RequestHeader) -> bool {
    let target = req.raw_path();
    target.first() != Some(&b'/')
        && matches!(
            raw_target_authority(target),
            RawTargetAuthority::Absolute { .. }
        )
}

/// Why the head is refused with 400, if it is.
pub fn refusal(req: &RequestHeader) -> Option<&'static str> {
    let target = req.raw_path();
    let origin = target.first() == Some(&b'/');
    let absolute = !origin && is_absolute(req);
    if !(origin || absolute || (target == b"*" && req.method == Method::OPTIONS)) {
        return Some("400 Bad Request: invalid request target");
    }
    let named = || req.headers.contains_key(HOST);
    // Also with an absolute target: RFC 9112 3.2 and nginx want `Host` in every HTTP/1.1
    // request.
    if req.version == Version::HTTP_11 && !named() {
        return Some("400 Bad Request: HTTP/1.1 request without Host header");
    }
    // HTTP/2 names its host by `:authority` (kept in the URI) or `Host`, as nginx reads it.
    if req.version == Version::HTTP_2 && req.uri.authority().is_none() && !named() {
        return Some("400 Bad Request: HTTP/2 request without :authority or Host");
    }
    None
}

/// An absolute-form target (`GET http://host:port/path?q`) becomes origin form, and its
/// authority the `Host` header (RFC 9112 3.2.2: the target's host wins over `Host`;
/// Pingora has refused a `Host` that differs). An HTTP/1.1 request without `Host` is left
/// without it, for [`refusal`] to answer 400 as nginx does. Nothing to do, and nothing
/// spent, for origin-form targets.
pub fn absolute_to_origin(req: &mut RequestHeader) -> Result<()> {
    let RawTargetAuthority::Absolute { authority, .. } = raw_target_authority(req.raw_path())
    else {
        return Ok(());
    };
    let host = HeaderValue::from_bytes(authority)
        .or_err(InvalidHTTPHeader, "authority of an absolute request target")?;
    // Pingora put the target's path (and query) in the Uri already.
    let origin: Uri = req
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()
        .or_err(
            InvalidHTTPHeader,
            "origin form of an absolute request target",
        )?;
    req.set_uri(origin);
    if req.version >= Version::HTTP_11 && !req.headers.contains_key(HOST) {
        return Ok(());
    }
    req.insert_header(HOST, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, version: Version, host: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        r.set_version(version);
        if let Some(h) = host {
            r.insert_header(HOST, h).unwrap();
        }
        r
    }

    #[test]
    fn http2_names_its_host_by_authority_or_host() {
        let v2 = Version::HTTP_2;
        let mut authority = req("GET", "/x", v2, None);
        authority.set_uri("https://a.test/x".parse().unwrap());
        assert_eq!(refusal(&authority), None);
        assert_eq!(refusal(&req("GET", "/x", v2, Some("a.test"))), None);
        assert!(refusal(&req("GET", "/x", v2, None)).is_some());
    }

    #[test]
    fn host_is_required_from_http_1_1_on() {
        let v11 = Version::HTTP_11;
        assert_eq!(refusal(&req("GET", "/", v11, Some("a"))), None);
        assert!(
            refusal(&req("GET", "/", v11, None))
                .unwrap()
                .contains("without Host")
        );
        assert_eq!(refusal(&req("GET", "/", Version::HTTP_10, None)), None);
        // nginx: "client sent HTTP/1.1 request without "Host" header", whatever the target.
        assert!(refusal(&req("GET", "http://a/x", v11, None)).is_some());
        assert_eq!(refusal(&req("GET", "http://a/x", v11, Some("a"))), None);
        assert_eq!(
            refusal(&req("GET", "http://a/x", Version::HTTP_10, None)),
            None
        );
    }

    #[test]
    fn targets_in_origin_absolute_or_asterisk_form_only() {
        let v = Version::HTTP_11;
        assert_eq!(refusal(&req("OPTIONS", "*", v, Some("a"))), None);
        assert!(refusal(&req("GET", "*", v, Some("a"))).is_some());
        assert!(refusal(&req("GET", "foo", v, Some("a"))).is_some());
        assert!(refusal(&req("GET", "a:80", v, Some("a"))).is_some());
        assert_eq!(refusal(&req("GET", "https://a/x?y", v, Some("a"))), None);
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_host() {
        let mut r = req("GET", "http://b.example:81/p?q=1", Version::HTTP_10, None);
        absolute_to_origin(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/p?q=1");
        assert_eq!(r.raw_path(), b"/p?q=1");
        assert_eq!(r.headers.get(HOST).unwrap(), "b.example:81");
        // HTTP/1.1 without Host stays without it, to be refused.
        let mut r = req("GET", "http://b.example:81/p", Version::HTTP_11, None);
        absolute_to_origin(&mut r).unwrap();
        assert_eq!(r.raw_path(), b"/p");
        assert!(refusal(&r).unwrap().contains("without Host"));
        let mut r = req(
            "GET",
            "http://b.example",
            Version::HTTP_11,
            Some("b.example"),
        );
        absolute_to_origin(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/");
        assert_eq!(r.headers.get_all(HOST).iter().count(), 1);
        let mut r = req("GET", "/x", Version::HTTP_11, Some("a"));
        absolute_to_origin(&mut r).unwrap();
        assert_eq!(
            (
                r.uri.to_string().as_str(),
                r.headers.get(HOST).unwrap().as_bytes()
            ),
            ("/x", &b"a"[..])
        );
    }
}
