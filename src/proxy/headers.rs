//! Request headers sent upstream (`proxy_set_header` rules) and response headers added
//! on the way back.

use crate::routing::uri;
use crate::runtime::HeaderRule;
use crate::variables::RequestInfo;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

/// Applies `rules` to the request going upstream. Values are computed from `info`, which
/// describes the request as the client sent it; a value that comes out empty removes the
/// header, as in nginx.
pub fn apply_set_headers(
    upstream_req: &mut RequestHeader,
    rules: &[HeaderRule],
    info: &RequestInfo<'_>,
) -> Result<()> {
    // Room for every new name at once: inserting one by one grows both of the request's
    // header maps (values and wire case) again and again.
    upstream_req.reserve_headers(rules.len())?;
    // One buffer for all values: each value is copied out once into its own header.
    let mut buf = Vec::with_capacity(128);
    for rule in rules {
        if let Some(value) = &rule.literal {
            upstream_req.insert_wire_header(|| rule.name.clone(), &rule.header, value.clone())?;
            continue;
        }
        if let Some(text) = rule.value.as_ref().and_then(|t| t.as_static(info)) {
            let value = HeaderValue::from_static(text);
            upstream_req.insert_wire_header(|| rule.name.clone(), &rule.header, value)?;
            continue;
        }
        buf.clear();
        if let Some(template) = &rule.value {
            // The usual forwarding headers are one variable each.
            match template.as_var() {
                Some(var) => info.expand_var(var, &mut buf),
                None => template.expand(info, &mut buf),
            }
        }
        if buf.is_empty() {
            upstream_req.remove_header(&rule.header.name);
            continue;
        }
        let value = HeaderValue::from_bytes(&buf)
            .or_err(InvalidHTTPHeader, "header value built from variables")?;
        upstream_req.insert_wire_header(|| rule.name.clone(), &rule.header, value)?;
    }
    Ok(())
}

/// nginx's `proxy_pass http://name/uri` in `location /prefix`: the matched prefix of the
/// normalised path (`$uri`) is replaced by `/uri`; the query string is kept. The rest of
/// the path is sent percent-encoded when the client's path had a `%` in it (`quoted`), as
/// it came out of normalisation otherwise: what nginx sends.
pub fn rewrite_uri(
    upstream_req: &mut RequestHeader,
    prefix: &str,
    replacement: &str,
    normalized: &[u8],
    quoted: bool,
) -> Result<()> {
    let Some(rest) = normalized.strip_prefix(prefix.as_bytes()) else {
        return Ok(());
    };
    let raw = upstream_req.raw_path();
    let query = raw.iter().position(|&b| b == b'?').map(|i| &raw[i..]);
    let mut target = Vec::with_capacity(replacement.len() + rest.len() + 16);
    target.extend_from_slice(replacement.as_bytes());
    match quoted {
        true => uri::encode_path(rest, &mut target),
        false => target.extend_from_slice(rest),
    }
    target.extend_from_slice(query.unwrap_or_default());
    upstream_req.set_raw_path(&target)
}

/// The served-by header's value with the reason the server was chosen: `app2; pinned`.
pub fn served_by_with_reason(server: &str, reason: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!("{server}; {reason}"))
        .or_err(InvalidHTTPHeader, "served-by header value")
}

/// An HTTP/1.0 client cannot read a chunked body: the response goes without
/// `Transfer-Encoding`, its end marked by closing the connection (as nginx sends it).
/// Whether it was chunked.
pub fn unchunk_for_http10(resp: &mut ResponseHeader) -> bool {
    resp.remove_header(&http::header::TRANSFER_ENCODING)
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, value: &str) -> HeaderRule {
        HeaderRule::new(name, value, &[]).unwrap()
    }

    fn apply(rules: &[HeaderRule], client: &RequestHeader) -> RequestHeader {
        let info = RequestInfo {
            req: client,
            uri: None,
            client_ip: Some("192.0.2.1".parse().unwrap()),
            conn: None,
            tls: None,
            server_port: Some(80),
            server_name: "",
            proxy_host: "web",
            maps: &[],
        };
        let mut upstream = client.clone();
        apply_set_headers(&mut upstream, rules, &info).unwrap();
        upstream
    }

    fn get(r: &RequestHeader, name: &str) -> Option<String> {
        r.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn tutorial_headers_are_set_from_the_client_request() {
        let mut client = RequestHeader::build("GET", b"/", None).unwrap();
        client.insert_header("Host", "Shop.Example:8080").unwrap();
        client
            .insert_header("X-Forwarded-For", "203.0.113.9")
            .unwrap();
        let rules = [
            rule("X-Real-IP", "$remote_addr"),
            rule("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
            rule("X-Forwarded-Proto", "$scheme"),
            rule("X-Forwarded-Host", "$host"),
        ];
        let up = apply(&rules, &client);
        assert_eq!(get(&up, "x-real-ip").as_deref(), Some("192.0.2.1"));
        assert_eq!(
            get(&up, "x-forwarded-for").as_deref(),
            Some("203.0.113.9, 192.0.2.1")
        );
        assert_eq!(up.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(get(&up, "x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(
            get(&up, "x-forwarded-host").as_deref(),
            Some("shop.example")
        );
        assert_eq!(get(&up, "host").as_deref(), Some("Shop.Example:8080"));
    }

    #[test]
    fn literal_values_are_sent_as_configured() {
        let client = RequestHeader::build("GET", b"/", None).unwrap();
        let up = apply(&[rule("X-Env", "production")], &client);
        assert_eq!(get(&up, "x-env").as_deref(), Some("production"));
    }

    #[test]
    fn empty_values_remove_the_header() {
        let mut client = RequestHeader::build("GET", b"/", None).unwrap();
        client.insert_header("Connection", "keep-alive").unwrap();
        client.insert_header("X-Forwarded-Host", "spoofed").unwrap();
        let up = apply(
            &[
                rule("Connection", ""),
                rule("X-Forwarded-Host", "$server_name"),
            ],
            &client,
        );
        assert_eq!(get(&up, "connection"), None);
        assert_eq!(get(&up, "x-forwarded-host"), None);
    }

    #[test]
    fn proxy_pass_uri_replaces_the_location_prefix() {
        let mut r = RequestHeader::build("GET", b"/v1/users?id=3", None).unwrap();
        rewrite_uri(&mut r, "/v1/", "/api/", b"/v1/users", false).unwrap();
        assert_eq!(r.raw_path(), b"/api/users?id=3");
        let mut other = RequestHeader::build("GET", b"/other", None).unwrap();
        rewrite_uri(&mut other, "/v1/", "/api/", b"/other", false).unwrap();
        assert_eq!(other.raw_path(), b"/other");
    }

    #[test]
    fn proxy_pass_uri_sends_the_normalised_path_encoded_when_it_was() {
        // `/v1//a/./b` is `/v1/a/b`: sent as nginx sends it, not as received.
        let mut r = RequestHeader::build("GET", b"/v1//a/./b?x=%20", None).unwrap();
        rewrite_uri(&mut r, "/v1/", "/api/", b"/v1/a/b", false).unwrap();
        assert_eq!(r.raw_path(), b"/api/a/b?x=%20");
        // A quoted path is re-encoded; `%2F` was a separator and stays one.
        let mut q = RequestHeader::build("GET", b"/v1/a%20b%2Fc", None).unwrap();
        rewrite_uri(&mut q, "/v1/", "/api/", b"/v1/a b/c", true).unwrap();
        assert_eq!(q.raw_path(), b"/api/a%20b/c");
    }

    #[test]
    fn header_names_keep_their_configured_case() {
        let client = RequestHeader::build("GET", b"/", None).unwrap();
        let up = apply(&[rule("X-Real-IP", "$remote_addr")], &client);
        let mut wire = Vec::new();
        up.header_to_h1_wire(&mut wire);
        assert!(
            String::from_utf8(wire)
                .unwrap()
                .contains("X-Real-IP: 192.0.2.1")
        );
    }
}
