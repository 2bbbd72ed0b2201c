//! nginx-style variables (`$remote_addr`, `$http_NAME`, `map` results, ...) in header
//! values, hash keys and `return` texts: parsed once when the config is loaded, expanded
//! per request.

use crate::config::{MapKey, MapVar};
use crate::request;
use http::HeaderName;
use pingora::http::RequestHeader;
use regex::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Maps may refer to other maps; deeper chains than this expand to nothing.
const MAX_MAP_DEPTH: usize = 8;

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
    Http(HeaderName),
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
    /// `$request_method`
    RequestMethod,
    /// A variable defined by the `map` with this index.
    Map(usize),
}

impl Var {
    /// The variable called `name` (without `$`), or one of the `maps`.
    pub fn parse(name: &str, maps: &[String]) -> Option<Var> {
        if let Some(i) = maps.iter().position(|m| m == name) {
            return Some(Var::Map(i));
        }
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
            "request_method" => Var::RequestMethod,
            _ => {
                if let Some(h) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
                    Var::Http(
                        HeaderName::from_bytes(h.replace('_', "-").to_ascii_lowercase().as_bytes())
                            .ok()?,
                    )
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
    /// Parses `$name` and `${name}` references; `$` must start a known variable or one
    /// of the `maps` (variable names without `$`).
    pub fn parse(text: &str, maps: &[String]) -> Result<Template, String> {
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
            let var =
                Var::parse(name, maps).ok_or_else(|| format!("unknown \"{name}\" variable"))?;
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
        self.expand_at(req, out, 0);
    }

    fn expand_at(&self, req: &RequestInfo<'_>, out: &mut Vec<u8>, depth: usize) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(Var::Map(i)) => req.expand_map(*i, out, depth),
                Part::Var(v) => req.expand_var(v, out),
            }
        }
    }

    /// The text when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// The value when it is one of a few fixed strings whatever the request (`$scheme`),
    /// so that no copy has to be made of it.
    pub fn as_static(&self, req: &RequestInfo<'_>) -> Option<&'static str> {
        match self.parts.as_slice() {
            [Part::Var(Var::Scheme)] => Some(if req.tls { "https" } else { "http" }),
            _ => None,
        }
    }

    /// Indexes of the maps this template refers to.
    pub fn maps_used(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(Var::Map(i)) => Some(*i),
            _ => None,
        })
    }
}

/// A `map` ready to evaluate: exact keys by hash, then regexes in order, else the default.
pub struct CompiledMap {
    source: Template,
    exact: HashMap<Vec<u8>, Template>,
    regexes: Vec<(Regex, Template)>,
    default: Template,
}

impl CompiledMap {
    /// Compiles every map of a config; `Err` names the map variable and the problem.
    pub fn compile_all(maps: &[MapVar]) -> Result<Vec<CompiledMap>, (usize, String)> {
        let names: Vec<String> = maps.iter().map(|m| m.variable.clone()).collect();
        let compiled = maps
            .iter()
            .enumerate()
            .map(|(i, m)| CompiledMap::compile(m, &names).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..compiled.len() {
            if compiled[i].reaches(i, &compiled, 0) {
                return Err((i, format!("\"${}\" refers to itself", maps[i].variable)));
            }
        }
        Ok(compiled)
    }

    fn compile(m: &MapVar, names: &[String]) -> Result<CompiledMap, String> {
        let mut exact = HashMap::new();
        let mut regexes = Vec::new();
        for entry in &m.entries {
            let value = Template::parse(&entry.value, names)?;
            match &entry.key {
                MapKey::Exact(key) => {
                    exact.entry(key.as_bytes().to_vec()).or_insert(value);
                }
                MapKey::Regex {
                    pattern,
                    case_insensitive,
                } => {
                    let re = RegexBuilder::new(pattern)
                        .case_insensitive(*case_insensitive)
                        .build()
                        .map_err(|e| format!("invalid regex \"{pattern}\": {e}"))?;
                    regexes.push((re, value));
                }
            }
        }
        Ok(CompiledMap {
            source: Template::parse(&m.source, names)?,
            exact,
            regexes,
            default: Template::parse(&m.default, names)?,
        })
    }

    /// Whether evaluating this map can lead back to map `target`.
    fn reaches(&self, target: usize, all: &[CompiledMap], depth: usize) -> bool {
        if depth > all.len() {
            return false;
        }
        let templates = std::iter::once(&self.source)
            .chain(self.exact.values())
            .chain(self.regexes.iter().map(|(_, t)| t))
            .chain(std::iter::once(&self.default));
        templates
            .flat_map(Template::maps_used)
            .collect::<Vec<_>>()
            .into_iter()
            .any(|i| {
                i == target
                    || all
                        .get(i)
                        .is_some_and(|m| m.reaches(target, all, depth + 1))
            })
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
    pub maps: &'a [CompiledMap],
}

impl RequestInfo<'_> {
    fn expand_map(&self, i: usize, out: &mut Vec<u8>, depth: usize) {
        let Some(map) = self.maps.get(i).filter(|_| depth < MAX_MAP_DEPTH) else {
            return;
        };
        let mut key = Vec::new();
        map.source.expand_at(self, &mut key, depth + 1);
        let value = map
            .exact
            .get(&key)
            .or_else(|| {
                map.regexes
                    .iter()
                    .find(|(re, _)| re.is_match(&key))
                    .map(|(_, v)| v)
            })
            .unwrap_or(&map.default);
        value.expand_at(self, out, depth + 1);
    }

    /// Appends the value of one variable.
    pub fn expand_var(&self, var: &Var, out: &mut Vec<u8>) {
        match var {
            Var::RemoteAddr => {
                if let Some(ip) = self.client_ip {
                    write_ip(ip, out);
                }
            }
            Var::ProxyAddXForwardedFor => {
                if let Some(prev) =
                    request::header(self.req, &X_FORWARDED_FOR).filter(|v| !v.is_empty())
                {
                    out.extend_from_slice(prev);
                    out.extend_from_slice(b", ");
                }
                self.expand_var(&Var::RemoteAddr, out);
            }
            Var::Scheme => out.extend_from_slice(if self.tls { b"https" } else { b"http" }),
            Var::Host => match request::host(self.req) {
                Some(h) => out.extend(h.bytes().map(|b| b.to_ascii_lowercase())),
                None => out.extend_from_slice(self.server_name.as_bytes()),
            },
            Var::Http(name) => {
                if let Some(v) = self.req.headers.get(name) {
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
                    write_decimal(u32::from(port), out);
                }
            }
            Var::RequestUri => {
                let pq = self.req.uri.path_and_query().map_or("/", |pq| pq.as_str());
                out.extend_from_slice(pq.as_bytes());
            }
            Var::Uri => out.extend_from_slice(self.req.uri.path().as_bytes()),
            Var::Args => out.extend_from_slice(self.req.uri.query().unwrap_or("").as_bytes()),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host.as_bytes()),
            Var::RequestMethod => out.extend_from_slice(self.req.method.as_str().as_bytes()),
            Var::Map(i) => self.expand_map(*i, out, 0),
        }
    }
}

/// Writes an IP address as text; IPv4 without `fmt`, which costs more than the rest of
/// a forwarding header (two formats per proxied request).
pub fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_decimal(u32::from(octet), out);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

fn write_decimal(mut n: u32, out: &mut Vec<u8>) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
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
            maps: &[],
        }
    }

    fn expand(template: &str, req: &RequestHeader) -> String {
        let mut out = Vec::new();
        Template::parse(template, &[])
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
    fn only_a_lone_scheme_is_a_fixed_string() {
        let req = get(b"/", &[]);
        let mut i = info(&req);
        let scheme = Template::parse("$scheme", &[]).unwrap();
        assert_eq!(scheme.as_static(&i), Some("http"));
        i.tls = true;
        assert_eq!(scheme.as_static(&i), Some("https"));
        let url = Template::parse("$scheme://$host", &[]).unwrap();
        assert_eq!(url.as_static(&i), None);
    }

    #[test]
    fn ip_addresses_are_written_as_fmt_would() {
        for ip in [
            "0.0.0.0",
            "10.0.0.7",
            "192.168.100.255",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let mut out = Vec::new();
            write_ip(ip.parse().unwrap(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), ip);
        }
        let mut port = Vec::new();
        write_decimal(65535, &mut port);
        assert_eq!(port, b"65535");
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
            Template::parse("$nope", &[]).unwrap_err(),
            "unknown \"nope\" variable"
        );
        assert!(Template::parse("a $ b", &[]).is_err());
        assert!(Template::parse("${host", &[]).is_err());
        assert!(Template::parse("$http_", &[]).is_err());
    }

    fn map(source: &str, variable: &str, entries: &[(&str, &str)], default: &str) -> MapVar {
        MapVar {
            source: source.into(),
            variable: variable.into(),
            entries: entries
                .iter()
                .map(|(k, v)| crate::config::MapEntry {
                    key: match k.strip_prefix('~') {
                        Some(re) => MapKey::Regex {
                            pattern: re.into(),
                            case_insensitive: false,
                        },
                        None => MapKey::Exact((*k).into()),
                    },
                    value: (*v).into(),
                })
                .collect(),
            default: default.into(),
        }
    }

    fn expand_with_maps(template: &str, maps: &[MapVar], req: &RequestHeader) -> String {
        let names: Vec<String> = maps.iter().map(|m| m.variable.clone()).collect();
        let compiled = CompiledMap::compile_all(maps).unwrap();
        let mut info = info(req);
        info.maps = &compiled;
        let mut out = Vec::new();
        Template::parse(template, &names)
            .unwrap()
            .expand(&info, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn connection_upgrade_map_idiom() {
        let maps = [map(
            "$http_upgrade",
            "connection_upgrade",
            &[("", "close")],
            "upgrade",
        )];
        let ws = get(b"/", &[("Upgrade", "websocket")]);
        assert_eq!(
            expand_with_maps("$connection_upgrade", &maps, &ws),
            "upgrade"
        );
        assert_eq!(
            expand_with_maps("$connection_upgrade", &maps, &get(b"/", &[])),
            "close"
        );
    }

    #[test]
    fn map_exact_keys_win_over_regexes_in_order() {
        let maps = [map(
            "$uri",
            "kind",
            &[
                ("~^/api/", "api-re"),
                ("/api/v1", "exact"),
                ("~^/a", "a-re"),
            ],
            "other-$scheme",
        )];
        let kind = |path: &[u8]| expand_with_maps("$kind", &maps, &get(path, &[]));
        assert_eq!(kind(b"/api/v1"), "exact");
        assert_eq!(kind(b"/api/v2"), "api-re");
        assert_eq!(kind(b"/about"), "a-re");
        assert_eq!(kind(b"/x"), "other-http");
    }

    #[test]
    fn maps_may_use_maps_but_not_themselves() {
        let chain = [
            map("$http_x", "inner", &[("1", "one")], "none"),
            map("$inner", "outer", &[("one", "[$inner]")], "-"),
        ];
        assert_eq!(
            expand_with_maps("$outer", &chain, &get(b"/", &[("X", "1")])),
            "[one]"
        );
        let cycle = [map("$b", "a", &[], ""), map("$a", "b", &[], "")];
        assert_eq!(CompiledMap::compile_all(&cycle).err().map(|e| e.0), Some(0));
    }
}
