//! PROXY protocol headers written (v1 text, v2 binary), as nginx writes them toward
//! upstreams; the tests send them to pinlb with these.

use super::{V1_MAX_HEADER, V2_SIGNATURE};
use crate::net::ngx_addr;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Appends a v1 header to `out`; returns its length (at most
/// [`V1_MAX_HEADER`]).
///
/// `None` (or a missing side) gives `PROXY UNKNOWN\r\n`, as nginx writes
/// for non-IP clients. When the two sides' families differ the IPv4 side is
/// written as IPv4-mapped IPv6 under `TCP6` (nginx would print `TCP4` with
/// an IPv6 address in it, which the spec does not allow). Addresses are
/// printed as nginx prints them.
pub fn encode_v1(out: &mut Vec<u8>, addrs: Option<(SocketAddr, SocketAddr)>) -> usize {
    use std::fmt::Write as _;

    let start = out.len();
    let Some((src, dst)) = addrs else {
        out.extend_from_slice(b"PROXY UNKNOWN\r\n");
        return out.len() - start;
    };
    let (src_ip, dst_ip, proto) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d), "TCP4"),
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d)), "TCP6"),
    };
    let mut line = String::with_capacity(V1_MAX_HEADER);
    // Writing to a String cannot fail.
    let _ = write!(line, "PROXY {proto} ");
    let _ = ngx_addr::write_ip(&mut line, src_ip);
    line.push(' ');
    let _ = ngx_addr::write_ip(&mut line, dst_ip);
    let _ = write!(line, " {} {}\r\n", src.port(), dst.port());
    out.extend_from_slice(line.as_bytes());
    out.len() - start
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// v2 command for [`encode_v2`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V2Command {
    /// LOCAL: a connection made by the proxy itself (health checks); no
    /// addresses are sent.
    Local,
    /// PROXY over TCP (STREAM) with these source and destination addresses.
    Proxy {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
}

/// Error from [`encode_v2`]: the TLVs do not fit a 16-bit length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2TooLong;

impl fmt::Display for V2TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PROXY protocol v2 header too long")
    }
}

impl std::error::Error for V2TooLong {}

/// Appends a v2 header with the given TLVs (`(type, value)`, written in
/// order) to `out`; returns its length. Families: both IPv4 gives INET;
/// otherwise INET6 with IPv4 sides mapped, and two IPv4-mapped sides are
/// sent as INET (as nginx's `ngx_proxy_protocol_v2_write_header` does).
/// No CRC32c TLV is added.
///
/// Note that headers longer than [`MAX_HEADER`](super::MAX_HEADER) are valid PROXY protocol but
/// an nginx-compatible reader (including [`parse`](super::parse)) refuses them.
pub fn encode_v2(
    out: &mut Vec<u8>,
    command: V2Command,
    tlvs: &[(u8, &[u8])],
) -> Result<usize, V2TooLong> {
    let mut body_len = 0usize;
    for (_, v) in tlvs {
        if v.len() > usize::from(u16::MAX) {
            return Err(V2TooLong);
        }
        body_len += 3 + v.len();
    }

    let (ver_cmd, fam, addrs): (u8, u8, Vec<u8>) = match command {
        V2Command::Local => (0x20, 0x00, Vec::new()),
        V2Command::Proxy {
            source,
            destination,
        } => {
            let v4 = |ip: IpAddr| match ip {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(a) => a.to_ipv4_mapped(),
            };
            let both_v4 = match (source.ip(), destination.ip()) {
                (IpAddr::V4(_), IpAddr::V4(_)) => true,
                (IpAddr::V6(_), IpAddr::V6(_)) => {
                    v4(source.ip()).is_some() && v4(destination.ip()).is_some()
                }
                _ => false,
            };
            let mut a = Vec::with_capacity(36);
            if let (true, Some(s), Some(d)) = (both_v4, v4(source.ip()), v4(destination.ip())) {
                a.extend_from_slice(&s.octets());
                a.extend_from_slice(&d.octets());
                a.extend_from_slice(&source.port().to_be_bytes());
                a.extend_from_slice(&destination.port().to_be_bytes());
                (0x21, 0x11, a)
            } else {
                a.extend_from_slice(&to_v6(source.ip()).octets());
                a.extend_from_slice(&to_v6(destination.ip()).octets());
                a.extend_from_slice(&source.port().to_be_bytes());
                a.extend_from_slice(&destination.port().to_be_bytes());
                (0x21, 0x21, a)
            }
        }
    };
    body_len += addrs.len();
    let len = u16::try_from(body_len).map_err(|_| V2TooLong)?;

    let start = out.len();
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&addrs);
    for (t, v) in tlvs {
        out.push(*t);
        // Checked above.
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    }
    Ok(out.len() - start)
}
