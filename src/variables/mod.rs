//! nginx-style variables (`$remote_addr`, `$http_NAME`, `map` results, ...) in header
//! values, hash keys, `return` texts and log formats: the one tokenizer of `$name` texts,
//! the variables pinlb knows, and their expansion per request.

mod map;
mod request_info;
mod template;

pub use map::CompiledMap;
pub use request_info::{ConnAddrs, RequestInfo, write_decimal, write_ip};
pub use template::Template;

use http::HeaderName;

/// What a TLS connection's handshake settled, kept with the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConn {
    /// `$ssl_protocol`: `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// `$ssl_server_name`: the name the client asked for by SNI.
    pub server_name: Option<Box<str>>,
}

impl TlsConn {
    /// For a TLS connection whose handshake left nothing (not expected).
    pub const UNKNOWN: TlsConn = TlsConn {
        protocol: "",
        server_name: None,
    };
}

/// A variable pinlb can expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$remote_addr`: the client's IP address.
    RemoteAddr,
    /// `$binary_remote_addr`: the client's address as 4 (IPv4) or 16 (IPv6) bytes, the
    /// usual key of limit zones.
    BinaryRemoteAddr,
    /// `$realip_remote_addr`: the connection's own client address, whatever realip made
    /// of `$remote_addr`.
    RealipRemoteAddr,
    /// `$proxy_protocol_addr`: the client address of the connection's PROXY protocol
    /// header (empty without one, or for LOCAL and UNKNOWN).
    ProxyProtocolAddr,
    /// `$proxy_protocol_port`: its port.
    ProxyProtocolPort,
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` with `$remote_addr` appended.
    ProxyAddXForwardedFor,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$https`: `on` on TLS connections, empty otherwise.
    Https,
    /// `$ssl_protocol`: `TLSv1.2` or `TLSv1.3`; empty on plain connections.
    SslProtocol,
    /// `$ssl_server_name`: the SNI the client sent; empty without.
    SslServerName,
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
    /// `$uri`: the normalised path (percent-decoded, `.` and `..` resolved, slashes
    /// merged), without query.
    Uri,
    /// `$args`: the query string.
    Args,
    /// `$proxy_host`: the upstream name from `proxy_pass`.
    ProxyHost,
    /// `$request_method`
    RequestMethod,
    /// A variable defined by the `map` (or `geo`) with this index.
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
            "binary_remote_addr" => Var::BinaryRemoteAddr,
            "realip_remote_addr" => Var::RealipRemoteAddr,
            "proxy_protocol_addr" => Var::ProxyProtocolAddr,
            "proxy_protocol_port" => Var::ProxyProtocolPort,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "scheme" => Var::Scheme,
            "https" => Var::Https,
            "ssl_protocol" => Var::SslProtocol,
            "ssl_server_name" => Var::SslServerName,
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

/// One piece of a text with variables: literal text, or a variable name without `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    Literal(&'a str),
    Var(&'a str),
}

/// Splits `text` at its `$name` and `${name}` references. Every text with variables
/// (header values, `return` texts, hash keys, `map` values, log formats) goes through here,
/// so that they all read `$` alike.
pub fn tokenize(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        if dollar > 0 {
            tokens.push(Token::Literal(&rest[..dollar]));
        }
        let after = &rest[dollar + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("the variable name is not closed in \"{text}\""))?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            return Err(format!("invalid variable name in \"{text}\""));
        }
        tokens.push(Token::Var(name));
        rest = tail;
    }
    if !rest.is_empty() {
        tokens.push(Token::Literal(rest));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests;
