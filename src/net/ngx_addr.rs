//! nginx's textual IP address parsers and printers (`ngx_inet_addr`, `ngx_inet6_addr`, `ngx_parse_addr`, `ngx_parse_addr_port`, `ngx_atoi`, `ngx_sock_ntop`), ported byte for byte so every module that reads addresses from config or headers accepts exactly what nginx accepts.
//!
//! Rust's `std` parsers are stricter than nginx in some places and looser in
//! others, so they must not be used where nginx compatibility matters:
//!
//! | input                    | nginx                  | `std`            |
//! |--------------------------|------------------------|------------------|
//! | `010.001.1.1`            | 10.1.1.1               | error            |
//! | `1..2.3`                 | 1.0.2.3                | error            |
//! | `...`                    | 0.0.0.0                | error            |
//! | `255.255.255.255`        | **error** (INADDR_NONE)| ok               |
//! | `:1:2:3:4:5:6:7:8`       | 1:2:3:4:5:6:7:8        | error            |
//! | `1:2:3:4:5:6:7::`        | **error**              | ok               |
//! | `::ffff:255.255.255.255` | **error**              | ok               |
//!
//! All functions work on bytes (header values are not guaranteed UTF-8),
//! never panic and never allocate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// nginx's `ngx_atoi()` (src/core/ngx_string.c): a non-empty run of ASCII
/// digits, no sign, no spaces, leading zeros allowed, `None` on overflow of
/// a 64-bit `ngx_int_t`.
pub fn atoi(text: &[u8]) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(value)
}

/// nginx's `ngx_inet_addr()` (src/core/ngx_inet.c).
///
/// Exactly three dots; each octet is any run of decimal digits whose value
/// stays <= 255 (so leading zeros are fine and an empty octet is 0).
/// `255.255.255.255` is rejected because it equals `INADDR_NONE`, the
/// function's error value.
pub fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let mut addr: u32 = 0;
    let mut octet: u32 = 0;
    let mut dots = 0u32;

    for &c in text {
        if c.is_ascii_digit() {
            octet = octet * 10 + u32::from(c - b'0');
            if octet > 255 {
                return None;
            }
            continue;
        }
        if c == b'.' {
            addr = (addr << 8).wrapping_add(octet);
            octet = 0;
            dots += 1;
            continue;
        }
        return None;
    }

    if dots != 3 {
        return None;
    }
    let addr = (addr << 8).wrapping_add(octet);
    if addr == u32::MAX {
        // INADDR_NONE doubles as the error value in C.
        return None;
    }
    Some(Ipv4Addr::from(addr))
}

/// nginx's `ngx_inet6_addr()` (src/core/ngx_inet.c), including its quirks:
/// one leading `:` is skipped (so `:1:2:3:4:5:6:7:8` parses), a `::` that
/// stands for exactly one trailing group is rejected, an embedded IPv4 tail
/// goes through [`parse_ipv4`] (so `::ffff:255.255.255.255` is rejected),
/// no zone ids, no brackets.
pub fn parse_ipv6(text: &[u8]) -> Option<Ipv6Addr> {
    if text.is_empty() {
        return None;
    }

    let mut out = [0u8; 16];
    // `a` plays the role of the C `addr` write pointer.
    let mut a = 0usize;
    let mut zero: Option<usize> = None;
    let mut digit: Option<usize> = None;
    let mut nibbles = 0u32;
    let mut word: u32 = 0;
    let mut n: u32 = 8;

    let mut i = usize::from(text[0] == b':');

    while i < text.len() {
        let c = text[i];
        i += 1;

        if c == b':' {
            if nibbles > 0 {
                digit = Some(i);
                put_word(&mut out, &mut a, word)?;
                n -= 1;
                if n > 0 {
                    nibbles = 0;
                    word = 0;
                    continue;
                }
            } else if zero.is_none() {
                digit = Some(i);
                zero = Some(a);
                continue;
            }
            return None;
        }

        if c == b'.' && nibbles > 0 {
            let start = match digit {
                Some(d) if n >= 2 => d,
                _ => return None,
            };
            // The C code re-parses everything after the last colon.
            let v4 = u32::from(parse_ipv4(text.get(start..)?)?);
            put_word(&mut out, &mut a, v4 >> 16)?;
            n -= 1;
            word = v4 & 0xffff;
            nibbles = 1;
            break;
        }

        nibbles += 1;
        if nibbles > 4 {
            return None;
        }

        let v = match c {
            b'0'..=b'9' => c - b'0',
            _ => match c | 0x20 {
                b'a'..=b'f' => (c | 0x20) - b'a' + 10,
                _ => return None,
            },
        };
        word = word * 16 + u32::from(v);
    }

    if nibbles == 0 && zero.is_none() {
        return None;
    }

    put_word(&mut out, &mut a, word)?;
    n -= 1;

    if n > 0 {
        let z = zero?;
        // Move the groups written after "::" to the end and zero the gap.
        let gap = (n as usize) * 2;
        if a + gap > 16 {
            return None;
        }
        out.copy_within(z..a, z + gap);
        out[z..z + gap].fill(0);
        return Some(Ipv6Addr::from(out));
    }

    if zero.is_none() {
        Some(Ipv6Addr::from(out))
    } else {
        None
    }
}

fn put_word(out: &mut [u8; 16], a: &mut usize, word: u32) -> Option<()> {
    let slot = out.get_mut(*a..*a + 2)?;
    slot[0] = (word >> 8) as u8;
    slot[1] = word as u8;
    *a += 2;
    Some(())
}

/// nginx's `ngx_parse_addr()`: [`parse_ipv4`] first, then [`parse_ipv6`].
pub fn parse_addr(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(text) {
        return Some(IpAddr::V4(v4));
    }
    parse_ipv6(text).map(IpAddr::V6)
}

/// nginx's `ngx_parse_addr_port()` (src/core/ngx_inet.c), used for every
/// address taken from a request header (`ngx_http_get_forwarded_addr`).
///
/// Returns the address and its port, 0 meaning "no port given". Accepted
/// forms, tried in this order:
/// 1. a bare address ([`parse_addr`]), e.g. `1.2.3.4`, `::1`;
/// 2. `[addr]` (nginx >= 1.27.3; older nginx rejects it) and `[addr]:port`,
///    where `addr` may also be IPv4;
/// 3. `addr:port`, split at the *first* colon (so `1.2.3.4:80` works and
///    unbracketed IPv6 with a port cannot).
///
/// The port must be 1..=65535 as read by [`atoi`] (leading zeros allowed).
pub fn parse_addr_port(text: &[u8]) -> Option<(IpAddr, u16)> {
    if let Some(ip) = parse_addr(text) {
        return Some((ip, 0));
    }

    let (addr, port) = if text.first() == Some(&b'[') {
        let close = text.iter().position(|&c| c == b']')?;
        if close == text.len() - 1 {
            return parse_addr(&text[1..close]).map(|ip| (ip, 0));
        }
        if text.get(close + 1) != Some(&b':') {
            return None;
        }
        (&text[1..close], &text[close + 2..])
    } else {
        let colon = text.iter().position(|&c| c == b':')?;
        (&text[..colon], &text[colon + 1..])
    };

    let port = atoi(port)?;
    if !(1..=65535).contains(&port) {
        return None;
    }
    let ip = parse_addr(addr)?;
    Some((ip, port as u16))
}

/// Writes an address as nginx prints it (`ngx_sock_ntop()` without a port,
/// i.e. `$remote_addr`): dotted quad for IPv4, [`Ipv6Text`] for IPv6.
pub fn write_ip(out: &mut impl fmt::Write, ip: IpAddr) -> fmt::Result {
    match ip {
        IpAddr::V4(v4) => write!(out, "{v4}"),
        IpAddr::V6(v6) => write!(out, "{}", Ipv6Text(v6)),
    }
}

/// Writes `ip:port` as nginx's `ngx_sock_ntop(.., port = 1)` does: IPv6 in
/// brackets (`[::1]:8080`). This is the upstream peer "name" that nginx's
/// sticky SID hashes.
pub fn write_ip_port(out: &mut impl fmt::Write, ip: IpAddr, port: u16) -> fmt::Result {
    match ip {
        IpAddr::V4(v4) => write!(out, "{v4}:{port}"),
        IpAddr::V6(v6) => write!(out, "[{}]:{port}", Ipv6Text(v6)),
    }
}

/// Displays an IPv6 address exactly as nginx's `ngx_inet6_ntop()`.
///
/// Same as RFC 5952 (lowercase, longest run of >= 2 zero groups compressed,
/// first run on ties) except for the embedded-IPv4 forms: nginx prints
/// `::ffff:1.2.3.4` (mapped), `::1.2.3.4` (compatible, when the first six
/// groups are zero), and `::0.0.a.b` for `::x` unless the last byte is 1 or
/// byte 14 is 0. `std` prints `::102:304` for the compatible form.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Text(pub Ipv6Addr);

impl fmt::Display for Ipv6Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0.octets();

        // Find the longest run of zero 16-bit groups (length >= 2).
        let mut zero = usize::MAX;
        let mut last = usize::MAX;
        let mut max = 1usize;
        let mut n = 0usize;
        for i in (0..16).step_by(2) {
            if p[i] != 0 || p[i + 1] != 0 {
                if max < n {
                    zero = last;
                    max = n;
                }
                n = 0;
                continue;
            }
            if n == 0 {
                last = i;
            }
            n += 1;
        }
        if max < n {
            zero = last;
            max = n;
        }

        let mut end = 16;
        if zero == 0 {
            if (max == 5 && p[10] == 0xff && p[11] == 0xff)
                || max == 6
                || (max == 7 && p[14] != 0 && p[15] != 1)
            {
                end = 12;
            }
            f.write_str(":")?;
        }

        let mut i = 0;
        while i < end {
            if i == zero {
                f.write_str(":")?;
                i += max * 2;
                continue;
            }
            write!(f, "{:x}", u16::from_be_bytes([p[i], p[i + 1]]))?;
            if i < 14 {
                f.write_str(":")?;
            }
            i += 2;
        }

        if end == 12 {
            write!(f, "{}.{}.{}.{}", p[12], p[13], p[14], p[15])?;
        }
        Ok(())
    }
}

/// Returns the IPv4 address inside an IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`, C's `IN6_IS_ADDR_V4MAPPED`), which nginx treats as the
/// IPv4 address for CIDR matching (`ngx_cidr_match`) and geo lookups.
pub fn v4_mapped(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    ip.to_ipv4_mapped()
}

#[cfg(test)]
mod tests;
