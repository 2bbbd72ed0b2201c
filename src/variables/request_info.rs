//! What variables read from one request, and how each is written out.

use super::{CompiledMap, TlsConn, Var};
use crate::request;
use http::HeaderName;
use pingora::http::RequestHeader;
use std::net::{IpAddr, SocketAddr};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Maps may refer to other maps; deeper chains than this expand to nothing.
const MAX_MAP_DEPTH: usize = 8;

/// Everything a variable may need to know about one request.
pub struct RequestInfo<'a> {
    pub req: &'a RequestHeader,
    /// The normalised request path (`$uri`, see [`crate::routing::uri`]) when it is not
    /// the request's own path; `None`: it is ([`request::path`]), found when asked for.
    pub uri: Option<&'a [u8]>,
    /// `$remote_addr`: the connection's client, or the one realip found.
    pub client_ip: Option<IpAddr>,
    /// The connection's own addresses, when realip or the PROXY protocol is configured;
    /// `None`: `$realip_remote_addr` is `$remote_addr` and there is no PROXY header.
    pub conn: Option<&'a ConnAddrs>,
    /// The connection's TLS, `None` on plain connections.
    pub tls: Option<&'a TlsConn>,
    pub server_port: Option<u16>,
    pub server_name: &'a str,
    pub proxy_host: &'a str,
    pub maps: &'a [CompiledMap],
}

/// A connection's addresses that `$remote_addr` may differ from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnAddrs {
    /// The peer of the socket (`$realip_remote_addr`).
    pub peer: Option<IpAddr>,
    /// The client its PROXY protocol header named (`$proxy_protocol_addr`, `_port`).
    pub proxy_protocol: Option<SocketAddr>,
}

impl RequestInfo<'_> {
    pub(super) fn expand_map(&self, i: usize, out: &mut Vec<u8>, depth: usize) {
        let Some(map) = self.maps.get(i).filter(|_| depth < MAX_MAP_DEPTH) else {
            return;
        };
        map.expand(self, out, depth);
    }

    /// Appends the value of one variable.
    pub fn expand_var(&self, var: &Var, out: &mut Vec<u8>) {
        match var {
            Var::RemoteAddr => {
                if let Some(ip) = self.client_ip {
                    write_ip(ip, out);
                }
            }
            Var::BinaryRemoteAddr => match self.client_ip {
                Some(IpAddr::V4(v4)) => out.extend_from_slice(&v4.octets()),
                Some(IpAddr::V6(v6)) => out.extend_from_slice(&v6.octets()),
                None => {}
            },
            Var::RealipRemoteAddr => match self.conn {
                Some(conn) => {
                    if let Some(ip) = conn.peer {
                        write_ip(ip, out);
                    }
                }
                None => self.expand_var(&Var::RemoteAddr, out),
            },
            Var::ProxyProtocolAddr => {
                if let Some(source) = self.conn.and_then(|c| c.proxy_protocol) {
                    write_ip(source.ip(), out);
                }
            }
            Var::ProxyProtocolPort => {
                if let Some(source) = self.conn.and_then(|c| c.proxy_protocol) {
                    write_decimal(u64::from(source.port()), out);
                }
            }
            Var::ProxyAddXForwardedFor => {
                // Every X-Forwarded-For line the client sent, joined as nginx joins them.
                for prev in self.req.headers.get_all(&X_FORWARDED_FOR) {
                    let prev = prev.as_bytes().trim_ascii();
                    if !prev.is_empty() {
                        out.extend_from_slice(prev);
                        out.extend_from_slice(b", ");
                    }
                }
                self.expand_var(&Var::RemoteAddr, out);
            }
            Var::Scheme => out.extend_from_slice(match self.tls {
                Some(_) => b"https",
                None => b"http",
            }),
            Var::Https => {
                if self.tls.is_some() {
                    out.extend_from_slice(b"on");
                }
            }
            Var::SslProtocol => {
                if let Some(tls) = self.tls {
                    out.extend_from_slice(tls.protocol.as_bytes());
                }
            }
            Var::SslServerName => {
                if let Some(name) = self.tls.and_then(|t| t.server_name.as_deref()) {
                    out.extend_from_slice(name.as_bytes());
                }
            }
            Var::Host => match request::host_bytes(self.req) {
                Some(h) => {
                    let start = out.len();
                    out.extend_from_slice(h);
                    out[start..].make_ascii_lowercase();
                }
                None => out.extend_from_slice(self.server_name.as_bytes()),
            },
            Var::Http(name) => {
                // A header sent more than once: its values joined with ", " (cookies with
                // "; "), as nginx 1.23 and later do.
                let mut values = self.req.headers.get_all(name).iter();
                if let Some(first) = values.next() {
                    out.extend_from_slice(first.as_bytes());
                    let sep: &[u8] = if name == http::header::COOKIE {
                        b"; "
                    } else {
                        b", "
                    };
                    for v in values {
                        out.extend_from_slice(sep);
                        out.extend_from_slice(v.as_bytes());
                    }
                }
            }
            Var::Cookie(name) => {
                if let Some(v) = request::nginx_cookie(self.req, name) {
                    out.extend_from_slice(v);
                }
            }
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::ServerPort => {
                if let Some(port) = self.server_port {
                    write_decimal(u64::from(port), out);
                }
            }
            Var::RequestUri => {
                let pq = self.req.uri.path_and_query().map_or("/", |pq| pq.as_str());
                out.extend_from_slice(pq.as_bytes());
            }
            Var::Uri => {
                let uri = self.uri.unwrap_or_else(|| request::path(self.req));
                out.extend_from_slice(uri);
            }
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
            // Written into an array and copied once: a push per digit checks the
            // vector's room each time.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                len += write_octet(octet, &mut text[len..len + 3]);
            }
            out.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes `n` in decimal at the start of `out` (3 bytes); how many digits it took.
fn write_octet(n: u8, out: &mut [u8]) -> usize {
    match n {
        0..=9 => {
            out[0] = b'0' + n;
            1
        }
        10..=99 => {
            out[0] = b'0' + n / 10;
            out[1] = b'0' + n % 10;
            2
        }
        _ => {
            out[0] = b'0' + n / 100;
            out[1] = b'0' + n / 10 % 10;
            out[2] = b'0' + n % 10;
            3
        }
    }
}

/// Writes a number in decimal, without `fmt` (a `write!` of one number costs several hundred
/// instructions, this a few dozen).
pub fn write_decimal(mut n: u64, out: &mut Vec<u8>) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n > 0 {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}
