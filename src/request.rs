//! Reading facts off a request header without allocating: one header's value, one
//! cookie, the host name.

use pingora::http::RequestHeader;

/// The value of header `name` (the first one if repeated), trimmed of spaces. Pass a
/// prepared [`http::HeaderName`] on hot paths: a `&str` is parsed on every call.
pub fn header(req: &RequestHeader, name: impl http::header::AsHeaderName) -> Option<&[u8]> {
    req.headers.get(name).map(|v| v.as_bytes().trim_ascii())
}

/// The value of cookie `name` from the `Cookie` header(s), without surrounding quotes.
/// HTTP/2 clients may split cookies over several headers, so all of them are read.
pub fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a [u8]> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes())
                .then(|| unquote(pair[eq + 1..].trim_ascii()))
        })
}

/// nginx's `$cookie_NAME` (`ngx_http_parse_cookie_lines`): the first cookie whose name
/// matches `name` in any case, over all `Cookie` headers in order, its value exactly as
/// sent (quotes included). Spaces after `;` and around `=` are skipped; the value runs to
/// the next `;`.
pub fn nginx_cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .find_map(|v| cookie_in_line(v.as_bytes(), name))
}

fn cookie_in_line<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let end = line.len();
    let mut start = 0;
    while start < end {
        let matched = line
            .get(start..start + name.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(name));
        if matched {
            let mut p = start + name.len();
            while p < end && line[p] == b' ' {
                p += 1;
            }
            if p < end && line[p] == b'=' {
                p += 1;
                while p < end && line[p] == b' ' {
                    p += 1;
                }
                let last = line[p..]
                    .iter()
                    .position(|&c| c == b';')
                    .map_or(end, |i| p + i);
                return Some(&line[p..last]);
            }
            // nginx consumes the byte that did not match `=`, even a `;` ending the pair.
            start = if p < end { p + 1 } else { p };
        }
        while start < end {
            let c = line[start];
            start += 1;
            if c == b';' {
                break;
            }
        }
        while start < end && line[start] == b' ' {
            start += 1;
        }
    }
    None
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// The path of the request target as the client sent it: what the path normaliser
/// ([`crate::routing::uri`]) reads. Bytes after a `?` may follow; the normaliser stops
/// there. The URI's path for the usual UTF-8 targets, the raw bytes otherwise (the URI
/// holds only a lossy copy of those).
pub fn path(req: &RequestHeader) -> &[u8] {
    if req.raw_path_is_utf8() {
        return req.uri.path().as_bytes();
    }
    let raw = req.raw_path();
    if raw.first() == Some(&b'/') {
        return raw;
    }
    // Absolute form: the path starts at the first `/` after `scheme://authority`.
    let after_scheme = raw
        .windows(3)
        .position(|w| w == b"://")
        .map_or(raw, |i| &raw[i + 3..]);
    after_scheme
        .iter()
        .position(|&b| b == b'/')
        .map_or(&b"/"[..], |i| &after_scheme[i..])
}

/// nginx's `$host`: the host of an absolute request URI, else the `Host` header, without
/// the port and lowercased by the caller if needed. `None` when the request names no host.
pub fn host(req: &RequestHeader) -> Option<&str> {
    // Both sources are text (the URI's host a `str`, the header's ASCII), so this check
    // cannot fail; it spares an `unsafe`.
    std::str::from_utf8(host_bytes(req)?).ok()
}

/// [`host`] as bytes, for writing it out (`$host`): the same host, with no UTF-8 check.
pub fn host_bytes(req: &RequestHeader) -> Option<&[u8]> {
    if let Some(h) = req.uri.host() {
        return Some(h.as_bytes());
    }
    host_header(req)
}

/// The host of the `Host` header, trimmed and without its port; `None` when the value is
/// not text (a byte that `HeaderValue::to_str` refuses: not visible ASCII, space or tab).
/// This runs for every request that sends `X-Forwarded-Host`.
fn host_header(req: &RequestHeader) -> Option<&[u8]> {
    let raw = req.headers.get(http::header::HOST)?.as_bytes();
    // No header value holds a control byte but tab, nor DEL: the HTTP/1 parser (httparse)
    // and `HeaderValue`'s checked constructors refuse them. So a value is text as
    // `to_str` has it exactly when it is ASCII, which is checked a word at a time.
    if !raw.is_ascii() {
        return None;
    }
    // Within text, the only whitespace `str::trim` would remove is space and tab.
    Some(strip_port(raw.trim_ascii()))
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return host
            .iter()
            .position(|&b| b == b']')
            .map_or(host, |end| &host[..=end]);
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) if host[colon + 1..].iter().all(u8::is_ascii_digit) => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn cookie_finds_the_named_pair_among_others() {
        let r = req(&[("Cookie", "a=1; app=app2 ;b=3")]);
        assert_eq!(cookie(&r, "app"), Some(&b"app2"[..]));
        assert_eq!(cookie(&r, "b"), Some(&b"3"[..]));
        assert_eq!(cookie(&r, "ap"), None);
    }

    #[test]
    fn cookie_reads_split_headers_and_strips_quotes() {
        let r = req(&[("Cookie", "x=1"), ("Cookie", "app=\"app3\"")]);
        assert_eq!(cookie(&r, "app"), Some(&b"app3"[..]));
    }

    #[test]
    fn nginx_cookie_matches_names_in_any_case_and_keeps_quotes() {
        // What nginx 1.22's `$cookie_app` was for each Cookie header.
        let cases: [(&str, Option<&str>); 8] = [
            ("APP=app2", Some("app2")),
            ("app=\"app2\"", Some("\"app2\"")),
            ("x=1;  app = app3 ; y=2", Some("app3 ")),
            ("application=1; app=2", Some("2")),
            ("xapp=1", None),
            ("app", None),
            ("a;app=5", Some("5")),
            ("", None),
        ];
        for (line, expected) in cases {
            let r = req(&[("Cookie", line)]);
            assert_eq!(
                nginx_cookie(&r, "app"),
                expected.map(str::as_bytes),
                "{line}"
            );
        }
        let split = req(&[("Cookie", "x=1"), ("Cookie", "App=7")]);
        assert_eq!(nginx_cookie(&split, "app"), Some(&b"7"[..]));
    }

    #[test]
    fn cookie_ignores_pairs_without_equals() {
        let r = req(&[("Cookie", "app; app=ok")]);
        assert_eq!(cookie(&r, "app"), Some(&b"ok"[..]));
    }

    #[test]
    fn header_is_trimmed() {
        let r = req(&[("app", " app1 ")]);
        assert_eq!(header(&r, "app"), Some(&b"app1"[..]));
        assert_eq!(header(&r, "APP"), Some(&b"app1"[..]));
    }

    #[test]
    fn path_is_the_raw_path_even_when_not_utf8() {
        let r = RequestHeader::build("GET", b"/a/../b?x", None).unwrap();
        assert_eq!(path(&r), b"/a/../b");
        let raw = RequestHeader::build("GET", b"/caf\xe9/%2e%2e/x?q", None).unwrap();
        assert_eq!(path(&raw), b"/caf\xe9/%2e%2e/x?q");
        let abs = RequestHeader::build("GET", b"http://h/caf\xe9?q", None).unwrap();
        assert_eq!(path(&abs), b"/caf\xe9?q");
    }

    #[test]
    fn host_drops_the_port() {
        assert_eq!(
            host(&req(&[("Host", "example.com:8080")])),
            Some("example.com")
        );
        assert_eq!(host(&req(&[("Host", "[::1]:80")])), Some("[::1]"));
        assert_eq!(host(&req(&[])), None);
        let mut abs = RequestHeader::build("GET", b"/x", None).unwrap();
        abs.set_uri("http://abs.example/x".parse().unwrap());
        assert_eq!(host(&abs), Some("abs.example"));
        assert_eq!(host_bytes(&abs), Some(&b"abs.example"[..]));
    }

    #[test]
    fn host_is_read_as_text_trimmed_and_without_port() {
        let cases: [(&[u8], Option<&str>); 10] = [
            (b"Example.com", Some("Example.com")),
            (b" example.com:80 ", Some("example.com")),
            (b"\texample.com\t", Some("example.com")),
            (b"example.com:", Some("example.com")),
            (b"example.com:8o", Some("example.com:8o")),
            (b"a:b:80", Some("a:b")),
            (b"[::1]", Some("[::1]")),
            (b"[::1", Some("[::1")),
            (b"caf\xc3\xa9.example", None),
            (b"", Some("")),
        ];
        for (value, expected) in cases {
            let mut r = RequestHeader::build("GET", b"/", None).unwrap();
            r.append_header("Host", http::HeaderValue::from_bytes(value).unwrap())
                .unwrap();
            assert_eq!(host(&r), expected, "{value:?}");
            assert_eq!(host_bytes(&r), expected.map(str::as_bytes), "{value:?}");
        }
    }
}
