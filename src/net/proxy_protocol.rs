//! PROXY protocol v1/v2 header parsing (incremental, nginx's acceptance rules from src/core/ngx_proxy_protocol.c) and encoding (haproxy doc/proxy-protocol.txt).
//!
//! # Reading
//!
//! [`parse`] looks at the bytes received so far and answers
//! [`Parse::Incomplete`] (read more), [`Parse::Done`] (the header is the
//! first `header_len` bytes; what follows is payload) or
//! [`Parse::Invalid`] (close the connection). It is a pure function of the
//! buffer, so the usual loop is: peek (or read into a buffer that is kept),
//! call `parse`, repeat on `Incomplete`. It never answers `Incomplete` for a
//! buffer of [`MAX_HEADER`] bytes or more, so a reader needs at most that
//! many bytes; after `Done` exactly `header_len` bytes must be consumed.
//!
//! nginx itself parses whatever one `recv()` returned and treats a header
//! split across reads as broken; being incremental here only accepts more.
//!
//! # Acceptance rules (nginx's, where it differs from the spec)
//!
//! v1 (`ngx_proxy_protocol_read`):
//! - `PROXY UNKNOWN` may be followed by anything up to the first CRLF
//!   (even without a space: `PROXY UNKNOWNxyz\r\n`).
//! - `TCP4`/`TCP6` do not constrain the address family: nginx only checks
//!   that each address consists of `0-9a-fA-F:.` (it may even be empty).
//!   The text is turned into an address the way nginx's realip does it
//!   (`ngx_parse_addr_port`, nginx's own IPv4/IPv6 syntax, the header's port
//!   overriding any `:port` in the text); text that is not an address is
//!   accepted with `source`/`destination` = `None`, as in nginx, where such
//!   a header is accepted and realip then declines to use it.
//! - Ports are decimal 0..=65535 with leading zeros allowed (`ngx_atoi`);
//!   the spec forbids leading zeros.
//! - Exactly one space between fields; the line ends in CRLF.
//! - Length: the spec's 107 bytes ([`V1_MAX_HEADER`]) is enforced here.
//!   nginx enforces no v1 limit of its own beyond its read buffer (1 KiB for
//!   plain HTTP, 4 KiB under TLS), so it also accepts longer lines padded
//!   with leading zeros; no real sender produces them.
//!
//! v2 (`ngx_proxy_protocol_v2_read`):
//! - The version nibble must be 2.
//! - The header (16 bytes + length field) must fit in [`MAX_HEADER`]
//!   (nginx's `NGX_PROXY_PROTOCOL_MAX_HEADER`, 4096); the spec allows
//!   16 + 65535.
//! - Any command other than PROXY (LOCAL, but also the unassigned values
//!   2..15 the spec says to reject) is accepted with no addresses, as are
//!   non-STREAM transports and families other than INET/INET6 (UNSPEC,
//!   UNIX, unassigned).
//! - PROXY over STREAM with INET needs length >= 12, with INET6 >= 36;
//!   shorter is invalid.
//! - TLVs are skipped without validation (nginx only walks them when a
//!   `$proxy_protocol_tlv_*` variable is read). No CRC32c check.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ngx_addr;

/// Longest v1 header, CRLF included (spec section 2.1, worst case
/// `PROXY UNKNOWN` with two full IPv6 addresses and ports).
pub const V1_MAX_HEADER: usize = 107;

/// Longest header accepted, for either version: nginx's
/// `NGX_PROXY_PROTOCOL_MAX_HEADER` (src/core/ngx_proxy_protocol.h), the size
/// of the buffer it peeks the header into.
pub const MAX_HEADER: usize = 4096;

/// The 12-byte v2 signature (spec section 2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Size of the fixed part of a v2 header (signature, ver/cmd, fam, len).
pub const V2_FIXED: usize = 16;

/// Why a header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Starts with neither `PROXY ` nor the v2 signature.
    NotProxyProtocol,
    /// v1: a byte that cannot appear at this point.
    V1Syntax,
    /// v1: an address field with a byte outside `0-9a-fA-F:.`.
    V1Address,
    /// v1: a port that is empty, not decimal, or above 65535.
    V1Port,
    /// v1: no CRLF within [`V1_MAX_HEADER`] bytes.
    V1TooLong,
    /// v2: the version nibble is not 2 (nginx: "unknown PROXY protocol
    /// version").
    V2Version(u8),
    /// v2: 16 + length exceeds [`MAX_HEADER`] (nginx: "header is too large").
    V2TooLarge(usize),
    /// v2: PROXY/STREAM with an address block shorter than the family needs.
    V2AddressTooShort,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotProxyProtocol => f.write_str("broken header: not a PROXY protocol header"),
            Invalid::V1Syntax => f.write_str("broken header: bad PROXY protocol v1 syntax"),
            Invalid::V1Address => f.write_str("broken header: bad PROXY protocol v1 address"),
            Invalid::V1Port => f.write_str("broken header: bad PROXY protocol v1 port"),
            Invalid::V1TooLong => write!(
                f,
                "broken header: PROXY protocol v1 line longer than {V1_MAX_HEADER} bytes"
            ),
            Invalid::V2Version(v) => write!(f, "unknown PROXY protocol version: {v}"),
            Invalid::V2TooLarge(n) => write!(
                f,
                "header is too large: PROXY protocol v2 header of {n} bytes exceeds {MAX_HEADER}"
            ),
            Invalid::V2AddressTooShort => {
                f.write_str("broken header: PROXY protocol v2 address block too short")
            }
        }
    }
}

impl std::error::Error for Invalid {}

/// The answer of [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed (the buffer is a proper prefix of something
    /// that could still be a valid header, and shorter than the limit).
    Incomplete,
    /// A complete header.
    Done {
        /// Bytes taken by the header; the connection's payload starts here.
        header_len: usize,
        /// The original client (`$proxy_protocol_addr`/`_port`); `None` for
        /// v1 `UNKNOWN`, v2 LOCAL and the other address-less forms.
        source: Option<SocketAddr>,
        /// The address the client connected to
        /// (`$proxy_protocol_server_addr`/`_port`); `None` as above.
        destination: Option<SocketAddr>,
    },
    /// Not a header nginx would accept.
    Invalid(Invalid),
}

/// Internal early exit: out of bytes, or definitely invalid.
enum Stop {
    More,
    Bad(Invalid),
}

impl From<Invalid> for Stop {
    fn from(i: Invalid) -> Self {
        Stop::Bad(i)
    }
}

/// Parses the start of a connection. See the module docs for the rules.
/// Never panics, never allocates, looks at no more than [`MAX_HEADER`] bytes.
pub fn parse(buf: &[u8]) -> Parse {
    match buf.first() {
        None => Parse::Incomplete,
        Some(b'\r') => parse_v2(buf),
        Some(_) => {
            let window = &buf[..buf.len().min(V1_MAX_HEADER)];
            match parse_v1(window) {
                Ok(done) => done,
                Err(Stop::Bad(why)) => Parse::Invalid(why),
                Err(Stop::More) if buf.len() >= V1_MAX_HEADER => Parse::Invalid(Invalid::V1TooLong),
                Err(Stop::More) => Parse::Incomplete,
            }
        }
    }
}

/// Checks `buf[*pos..]` against `lit`, advancing `pos`.
fn literal(buf: &[u8], pos: &mut usize, lit: &[u8], err: Invalid) -> Result<(), Stop> {
    for &want in lit {
        match buf.get(*pos) {
            None => return Err(Stop::More),
            Some(&c) if c == want => *pos += 1,
            Some(_) => return Err(Stop::Bad(err)),
        }
    }
    Ok(())
}

/// `ngx_proxy_protocol_read_addr`: `[0-9a-fA-F:.]*` then one space.
fn v1_addr<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Stop> {
    let start = *pos;
    loop {
        let &c = buf.get(*pos).ok_or(Stop::More)?;
        *pos += 1;
        if c == b' ' {
            return Ok(&buf[start..*pos - 1]);
        }
        if !(c == b':' || c == b'.' || c.is_ascii_hexdigit()) {
            return Err(Invalid::V1Address.into());
        }
    }
}

/// `ngx_proxy_protocol_read_port`: `ngx_atoi` text up to `sep`, <= 65535.
/// Rejects a non-digit as soon as it is seen (nginx would reject the same
/// header once it found `sep`).
fn v1_port(buf: &[u8], pos: &mut usize, sep: u8) -> Result<u16, Stop> {
    let mut value: u32 = 0;
    let mut digits = 0usize;
    loop {
        let &c = buf.get(*pos).ok_or(Stop::More)?;
        *pos += 1;
        if c == sep {
            if digits == 0 {
                return Err(Invalid::V1Port.into());
            }
            // Bounded below, so the conversion cannot fail.
            return u16::try_from(value).map_err(|_| Invalid::V1Port.into());
        }
        if !c.is_ascii_digit() {
            return Err(Invalid::V1Port.into());
        }
        digits += 1;
        value = value * 10 + u32::from(c - b'0');
        if value > 65535 {
            return Err(Invalid::V1Port.into());
        }
    }
}

/// What nginx's realip would make of a v1 address text.
fn v1_socket_addr(text: &[u8], port: u16) -> Option<SocketAddr> {
    ngx_addr::parse_addr_port(text).map(|(ip, _)| SocketAddr::new(ip, port))
}

fn parse_v1(buf: &[u8]) -> Result<Parse, Stop> {
    let mut pos = 0;
    literal(buf, &mut pos, b"PROXY ", Invalid::NotProxyProtocol)?;

    if buf.get(pos) == Some(&b'U') {
        literal(buf, &mut pos, b"UNKNOWN", Invalid::V1Syntax)?;
        // Anything up to the first CRLF (nginx's `skip:` loop).
        let rest = &buf[pos..];
        return match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => Ok(Parse::Done {
                header_len: pos + i + 2,
                source: None,
                destination: None,
            }),
            None => Err(Stop::More),
        };
    }

    literal(buf, &mut pos, b"TCP", Invalid::V1Syntax)?;
    match buf.get(pos) {
        None => return Err(Stop::More),
        Some(b'4' | b'6') => pos += 1,
        Some(_) => return Err(Invalid::V1Syntax.into()),
    }
    literal(buf, &mut pos, b" ", Invalid::V1Syntax)?;

    let src = v1_addr(buf, &mut pos)?;
    let dst = v1_addr(buf, &mut pos)?;
    let src_port = v1_port(buf, &mut pos, b' ')?;
    let dst_port = v1_port(buf, &mut pos, b'\r')?;
    literal(buf, &mut pos, b"\n", Invalid::V1Syntax)?;

    Ok(Parse::Done {
        header_len: pos,
        source: v1_socket_addr(src, src_port),
        destination: v1_socket_addr(dst, dst_port),
    })
}

fn parse_v2(buf: &[u8]) -> Parse {
    let sig_seen = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig_seen] != V2_SIGNATURE[..sig_seen] {
        return Parse::Invalid(Invalid::NotProxyProtocol);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Parse::Incomplete;
    };
    let version = ver_cmd >> 4;
    if version != 2 {
        return Parse::Invalid(Invalid::V2Version(version));
    }
    let (Some(&fam), Some(&l0), Some(&l1)) = (buf.get(13), buf.get(14), buf.get(15)) else {
        return Parse::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let total = V2_FIXED + len;
    if total > MAX_HEADER {
        return Parse::Invalid(Invalid::V2TooLarge(total));
    }
    let Some(body) = buf.get(V2_FIXED..total) else {
        return Parse::Incomplete;
    };

    let none = Parse::Done {
        header_len: total,
        source: None,
        destination: None,
    };

    // Same order of checks as ngx_proxy_protocol_v2_read().
    if ver_cmd & 0x0f != 1 {
        return none; // LOCAL (or unassigned): no addresses
    }
    if fam & 0x0f != 1 {
        return none; // not STREAM
    }
    match fam >> 4 {
        1 => {
            let Some(a) = body.get(..12) else {
                return Parse::Invalid(Invalid::V2AddressTooShort);
            };
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            Parse::Done {
                header_len: total,
                source: Some(SocketAddr::new(ip(0), port(8))),
                destination: Some(SocketAddr::new(ip(4), port(10))),
            }
        }
        2 => {
            let Some(a) = body.get(..36) else {
                return Parse::Invalid(Invalid::V2AddressTooShort);
            };
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            Parse::Done {
                header_len: total,
                source: Some(SocketAddr::new(ip(0), port(32))),
                destination: Some(SocketAddr::new(ip(16), port(34))),
            }
        }
        _ => none, // UNSPEC, UNIX, unassigned
    }
}

mod encode;
pub use encode::{V2Command, V2TooLong, encode_v1, encode_v2};

#[cfg(test)]
mod tests;
