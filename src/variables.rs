//! nginx-style variables in header values (`$remote_addr`, `$http_NAME`, ...): parsed once
//! when the config is loaded, expanded per request.

use crate::request;
use pingora::http::RequestHeader;
use std::net::IpAddr;

/// A variable pinlb can expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$remote_addr`: the client's IP address.
    RemoteAddr,
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` with `$remote_addr` appended.
    ProxyAddXForwardedFor,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$host`: the request's host name without port, else the server name.
    Host,
    /// `$http_NAME`: a request header (`_` in NAME stands for `-`).
    Http(String),
    /// `$cookie_NAME`: a request cookie.
    Cookie(String),
    /// `$server_name`: the first name of the virtual server that took the request.
    ServerName,
    /// `$server_port`: the port the request arrived on.
    ServerPort,
    /// `$request_uri`: the original path and query.
    RequestUri,
    /// `$uri`: the path, without query.
    Uri,
    /// `$args`: the query string.
    Args,
    /// `$proxy_host`: the upstream name from `proxy_pass`.
    ProxyHost,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "remote_addr" => Var::RemoteAddr,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "scheme" => Var::Scheme,
            "host" => Var::Host,
            "server_name" => Var::ServerName,
            "server_port" => Var::ServerPort,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "proxy_host" => Var::ProxyHost,
            _ => {
                if let Some(h) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
                    Var::Http(h.replace('_', "-").to_ascii_lowercase())
                } else if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                    Var::Cookie(c.to_string())
                } else {
                    return None;
                }
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A header value with variables, such as `$scheme://$host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `$name` and `${name}` references; `$` must start a known variable.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("the variable name is not closed in \"{text}\""))?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                return Err(format!("invalid variable name in \"{text}\""));
            }
            let var = Var::parse(name).ok_or_else(|| format!("unknown \"{name}\" variable"))?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(var));
            rest = tail;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Appends the value for `req` to `out`. A variable with no value expands to nothing.
    pub fn expand(&self, req: &RequestInfo<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(v) => req.expand(v, out),
            }
        }
    }
}

/// Everything a variable may need to know about one request.
pub struct RequestInfo<'a> {
    pub req: &'a RequestHeader,
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    pub server_port: Option<u16>,
    pub server_name: &'a str,
    pub proxy_host: &'a str,
}

impl RequestInfo<'_> {
    fn expand(&self, var: &Var, out: &mut Vec<u8>) {
        use std::io::Write;
        match var {
            Var::RemoteAddr => {
                if let Some(ip) = self.client_ip {
                    let _ = write!(out, "{ip}");
                }
            }
            Var::ProxyAddXForwardedFor => {
                if let Some(prev) =
                    request::header(self.req, "x-forwarded-for").filter(|v| !v.is_empty())
                {
                    out.extend_from_slice(prev);
                    out.extend_from_slice(b", ");
                }
                self.expand(&Var::RemoteAddr, out);
            }
            Var::Scheme => out.extend_from_slice(if self.tls { b"https" } else { b"http" }),
            Var::Host => match request::host(self.req) {
                Some(h) => out.extend(h.bytes().map(|b| b.to_ascii_lowercase())),
                None => out.extend_from_slice(self.server_name.as_bytes()),
            },
            Var::Http(name) => {
                if let Some(v) = self.req.headers.get(name.as_str()) {
                    out.extend_from_slice(v.as_bytes());
                }
            }
            Var::Cookie(name) => {
                if let Some(v) = request::cookie(self.req, name) {
                    out.extend_from_slice(v);
                }
            }
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::ServerPort => {
                if let Some(port) = self.server_port {
                    let _ = write!(out, "{port}");
                }
            }
            Var::RequestUri => {
                let pq = self.req.uri.path_and_query().map_or("/", |pq| pq.as_str());
                out.extend_from_slice(pq.as_bytes());
            }
            Var::Uri => out.extend_from_slice(self.req.uri.path().as_bytes()),
            Var::Args => out.extend_from_slice(self.req.uri.query().unwrap_or("").as_bytes()),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(req: &RequestHeader) -> RequestInfo<'_> {
        RequestInfo {
            req,
            client_ip: Some("10.0.0.7".parse().unwrap()),
            tls: false,
            server_port: Some(8080),
            server_name: "",
            proxy_host: "web",
        }
    }

    fn expand(template: &str, req: &RequestHeader) -> String {
        let mut out = Vec::new();
        Template::parse(template)
            .unwrap()
            .expand(&info(req), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn get(path: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        assert_eq!(
            expand("$proxy_add_x_forwarded_for", &get(b"/", &[])),
            "10.0.0.7"
        );
        let r = get(b"/", &[("X-Forwarded-For", "1.2.3.4")]);
        assert_eq!(
            expand("$proxy_add_x_forwarded_for", &r),
            "1.2.3.4, 10.0.0.7"
        );
    }

    #[test]
    fn host_is_lowercased_without_port() {
        let r = get(b"/", &[("Host", "Shop.Example:8080")]);
        assert_eq!(expand("$host", &r), "shop.example");
        assert_eq!(expand("$http_host", &r), "Shop.Example:8080");
    }

    #[test]
    fn literals_and_braced_names_mix() {
        let r = get(b"/a/b?x=1", &[("X-Trace-Id", "t1"), ("Cookie", "sid=42")]);
        assert_eq!(
            expand(
                "${scheme}://h$request_uri|$uri|$args|$http_x_trace_id|$cookie_sid|$server_port|$proxy_host",
                &r
            ),
            "http://h/a/b?x=1|/a/b|x=1|t1|42|8080|web"
        );
    }

    #[test]
    fn missing_values_expand_to_nothing() {
        assert_eq!(
            expand("$server_name$http_nope$cookie_nope", &get(b"/", &[])),
            ""
        );
    }

    #[test]
    fn unknown_and_malformed_variables_are_errors() {
        assert_eq!(
            Template::parse("$nope").unwrap_err(),
            "unknown \"nope\" variable"
        );
        assert!(Template::parse("a $ b").is_err());
        assert!(Template::parse("${host").is_err());
        assert!(Template::parse("$http_").is_err());
    }
}
