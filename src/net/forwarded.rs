//! The `X-Forwarded-For` walk of nginx (`ngx_http_get_forwarded_addr`): which address a
//! request came from when trusted proxies sit in front, entry by entry from the right.
//! Shared by `geo { proxy ...; }` and the real-IP rules that build on it.
//!
//! Sources: `ngx_http_get_forwarded_addr()` / `ngx_http_get_forwarded_addr_internal()` in
//! src/http/ngx_http_core_module.c, `ngx_parse_addr_port()` in src/core/ngx_inet.c.

use super::cidr::CidrList;
use super::ngx_addr;
use std::fmt;
use std::net::IpAddr;

/// A connection's client address as nginx keeps it in `c->sockaddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    /// An IP peer. `port` 0 means "no port", which nginx prints as an empty
    /// `$remote_port` (an address taken from a header without `:port`).
    Ip {
        /// The address.
        ip: IpAddr,
        /// The port, 0 when unknown.
        port: u16,
    },
    /// A UNIX-domain-socket peer (`$remote_addr` is `unix:`).
    Unix,
}

impl ClientAddr {
    /// Convenience constructor for an IP peer.
    pub fn ip(ip: IpAddr, port: u16) -> Self {
        ClientAddr::Ip { ip, port }
    }

    /// The IP, if any.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        match *self {
            ClientAddr::Ip { ip, .. } => Some(ip),
            ClientAddr::Unix => None,
        }
    }

    /// `$remote_port` text: the port, or `None` for "empty".
    pub fn port(&self) -> Option<u16> {
        match *self {
            ClientAddr::Ip { port, .. } if port != 0 => Some(port),
            _ => None,
        }
    }
}

impl fmt::Display for ClientAddr {
    /// `$remote_addr` exactly as nginx prints it (`ngx_sock_ntop`, no port).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClientAddr::Ip { ip, .. } => ngx_addr::write_ip(f, ip),
            ClientAddr::Unix => f.write_str("unix:"),
        }
    }
}

/// Is this peer trusted? `ngx_cidr_match()` including the `unix:` entry.
fn trusted(proxies: &CidrList, addr: &ClientAddr) -> bool {
    match addr {
        ClientAddr::Ip { ip, .. } => proxies.contains(*ip),
        ClientAddr::Unix => proxies.trusts_unix(),
    }
}

/// The outcome of [`forwarded_addr`], mirroring nginx's return codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// `NGX_DECLINED`: the address was not changed (peer untrusted, or the
    /// first entry examined was not an address).
    Declined,
    /// `NGX_OK`: the address was changed and the walk ran to its natural end.
    Replaced,
    /// `NGX_DONE`: the address was changed, then the walk stopped at an
    /// untrusted address or an entry that is not an address.
    Stopped,
}

impl Walk {
    /// True when the address was changed (nginx: `rc != NGX_DECLINED`).
    pub fn changed(self) -> bool {
        self != Walk::Declined
    }
}

fn is_sep(c: u8) -> bool {
    c == b' ' || c == b','
}

/// `ngx_http_get_forwarded_addr_internal()` for one header value.
///
/// Walks `value` from the right: while `addr` is trusted, take the rightmost
/// remaining entry (entries are separated by any run of `' '` and `','`),
/// parse it with [`ngx_addr::parse_addr_port`] and make it `addr`; without
/// `recursive` stop after one entry.
fn forwarded_addr_one(
    addr: &mut ClientAddr,
    value: &[u8],
    proxies: &CidrList,
    recursive: bool,
) -> Walk {
    let fail = |found: bool| if found { Walk::Stopped } else { Walk::Declined };
    let mut found = false;
    // Length of the part of `value` not yet consumed (C: `xfflen`).
    let mut len = value.len();

    loop {
        if !trusted(proxies, addr) {
            return fail(found);
        }

        if len == 0 {
            // The C code would parse the single byte *before* the value here
            // (an empty header, or a value that starts with a separator);
            // one byte can never be an address, so this is a parse failure.
            return fail(found);
        }

        // Skip trailing separators; value[0] is never examined (C: p > xff).
        let mut p = len - 1;
        while p > 0 && is_sep(value[p]) {
            p -= 1;
            len -= 1;
        }
        // Find the start of the entry; if none is found it starts at 0,
        // even when value[0] is a separator (so ",1.2.3.4" is not an address).
        while p > 0 {
            if is_sep(value[p]) {
                p += 1;
                break;
            }
            p -= 1;
        }

        let entry = value.get(p..len).unwrap_or_default();
        match ngx_addr::parse_addr_port(entry) {
            Some((ip, port)) => *addr = ClientAddr::Ip { ip, port },
            None => return fail(found),
        }
        found = true;

        if !(recursive && p > 0) {
            return Walk::Replaced;
        }
        len = p - 1;
    }
}

/// `ngx_http_get_forwarded_addr()`: the walk over header lines.
///
/// `lines` are the values of every line of the header, in the order they were
/// received. They are *not* joined: nginx walks the lines from the last to
/// the first, running the per-line walk on each and carrying the address over;
/// without `recursive` only the last line is looked at. (Joining them with
/// `", "` gives the same answer except when the last line is empty or ends in
/// garbage.)
///
/// On return `addr` holds the new address when the result is
/// [`Walk::changed`], and may hold an intermediate address otherwise (as in
/// nginx, where the caller discards it). No allocation.
pub fn forwarded_addr(
    addr: &mut ClientAddr,
    lines: &[&[u8]],
    proxies: &CidrList,
    recursive: bool,
) -> Walk {
    let mut rc = Walk::Declined;
    let mut found = false;

    for line in lines.iter().rev() {
        rc = forwarded_addr_one(addr, line, proxies, recursive);

        if !recursive {
            break;
        }
        if rc == Walk::Declined && found {
            rc = Walk::Stopped;
            break;
        }
        if rc != Walk::Replaced {
            break;
        }
        found = true;
    }
    rc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cidr::Cidr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn trusted(from: &[&str]) -> CidrList {
        let mut list = CidrList::new();
        for f in from {
            list.push(Cidr::parse(f).expect("valid network").cidr);
        }
        list
    }

    /// Walks `lines` from `peer` (port 5555) and prints `$remote_addr:$remote_port` as
    /// nginx's realip would set them: the walk's address when it changed, else the peer.
    fn run(proxies: &CidrList, recursive: bool, peer: &str, lines: &[&str]) -> String {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let peer = ClientAddr::ip(ip(peer), 5555);
        let mut addr = peer;
        let remote = match forwarded_addr(&mut addr, &lines, proxies, recursive).changed() {
            true => addr,
            false => peer,
        };
        match remote.port() {
            Some(p) => format!("{remote}:{p}"),
            None => format!("{remote}:-"),
        }
    }

    /// Table derived from ngx_http_get_forwarded_addr_internal() and
    /// ngx_http_get_forwarded_addr() (src/http/ngx_http_core_module.c).
    /// Trusted: 127.0.0.1 (the peer) and 10.0.0.0/8.
    #[test]
    fn forwarded_walk_table() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // (recursive, lines, expected $remote_addr:$remote_port)
        let cases: &[(bool, &[&str], &str)] = &[
            // Non-recursive: the rightmost entry, trusted or not.
            (false, &["1.1.1.1"], "1.1.1.1:-"),
            (false, &["1.1.1.1, 2.2.2.2"], "2.2.2.2:-"),
            (false, &["1.1.1.1, 10.0.0.2"], "10.0.0.2:-"),
            // Recursive: skip trusted entries from the right.
            (true, &["1.1.1.1, 10.0.0.2"], "1.1.1.1:-"),
            (true, &["1.1.1.1, 2.2.2.2, 10.0.0.2"], "2.2.2.2:-"),
            // All trusted: the leftmost entry is used.
            (true, &["10.0.0.1, 10.0.0.2"], "10.0.0.1:-"),
            // Separators: any run of spaces and commas; trailing ones skipped.
            (false, &["1.1.1.1 ,, 2.2.2.2 , ,"], "2.2.2.2:-"),
            (true, &["1.1.1.1,10.0.0.2"], "1.1.1.1:-"),
            (true, &["1.1.1.1 10.0.0.2"], "1.1.1.1:-"),
            // Tabs are not separators.
            (false, &["1.1.1.1,\t2.2.2.2"], "127.0.0.1:5555"),
            // Garbage as the first entry examined: nothing changes.
            (false, &["1.1.1.1, unknown"], "127.0.0.1:5555"),
            (true, &["1.1.1.1, unknown"], "127.0.0.1:5555"),
            // Garbage after a trusted hop: stop at the trusted hop.
            (true, &["unknown, 10.0.0.2"], "10.0.0.2:-"),
            // Garbage after an untrusted hop is never looked at.
            (true, &["unknown, 1.1.1.1, 10.0.0.2"], "1.1.1.1:-"),
            // Ports, as ngx_parse_addr_port() reads them.
            (false, &["1.1.1.1:8080"], "1.1.1.1:8080"),
            (false, &["1.1.1.1:0"], "127.0.0.1:5555"),
            (false, &["[2001:db8::1]:443"], "2001:db8::1:443"),
            (false, &["[2001:db8::1]"], "2001:db8::1:-"),
            (false, &["2001:db8::1"], "2001:db8::1:-"),
            (true, &["1.1.1.1, 10.0.0.2:80"], "1.1.1.1:-"),
            // nginx-style numbers.
            (false, &["001.001.001.001"], "1.1.1.1:-"),
            (false, &["255.255.255.255"], "127.0.0.1:5555"),
            // Empty and separator-only values.
            (false, &[""], "127.0.0.1:5555"),
            (false, &[", ,"], "127.0.0.1:5555"),
            // A leading separator makes the leftmost entry unparseable.
            (false, &[",1.1.1.1"], "127.0.0.1:5555"),
            (false, &[", 1.1.1.1"], "1.1.1.1:-"),
            (true, &[",10.0.0.2"], "127.0.0.1:5555"),
            (true, &[", 10.0.0.2"], "10.0.0.2:-"),
            // Several lines: walked from the last line to the first.
            (false, &["1.1.1.1", "2.2.2.2"], "2.2.2.2:-"),
            (true, &["1.1.1.1", "10.0.0.2"], "1.1.1.1:-"),
            (true, &["1.1.1.1", "10.0.0.2, 10.0.0.3"], "1.1.1.1:-"),
            (true, &["1.1.1.1", "2.2.2.2, 10.0.0.3"], "2.2.2.2:-"),
            // Non-recursive looks at the last line only, even if empty
            // (joining the lines would have given 1.1.1.1).
            (false, &["1.1.1.1", ""], "127.0.0.1:5555"),
            (true, &["1.1.1.1", ""], "127.0.0.1:5555"),
            // Recursive: an empty earlier line stops at the trusted hop.
            (true, &["", "10.0.0.2"], "10.0.0.2:-"),
            (true, &["unknown", "10.0.0.2"], "10.0.0.2:-"),
        ];
        for (recursive, lines, want) in cases {
            assert_eq!(
                run(&proxies, *recursive, "127.0.0.1", lines),
                *want,
                "recursive={recursive} lines={lines:?}"
            );
        }
    }

    #[test]
    fn untrusted_peer_is_kept() {
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            run(&proxies, true, "192.0.2.1", &["1.1.1.1"]),
            "192.0.2.1:5555"
        );
    }

    #[test]
    fn mapped_peer_is_matched_as_ipv4() {
        let proxies = trusted(&["127.0.0.1"]);
        assert_eq!(
            run(&proxies, false, "::ffff:127.0.0.1", &["1.1.1.1"]),
            "1.1.1.1:-"
        );
    }

    #[test]
    fn remote_addr_text_is_nginx_text() {
        assert_eq!(ClientAddr::ip(ip("::1.2.3.4"), 0).to_string(), "::1.2.3.4");
    }
}
