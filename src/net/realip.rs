//! nginx's realip module (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive`): which
//! address becomes `$remote_addr` when trusted proxies sit in front, on the
//! `X-Forwarded-For` walk of [`super::forwarded`]. Built once per configuration level;
//! applying it to a request reads one header and never allocates.
//!
//! Sources: src/http/modules/ngx_http_realip_module.c (directives, header selection,
//! `proxy_protocol`) and `ngx_http_get_forwarded_addr()` in src/http/ngx_http_core_module.c.

use super::cidr::{Cidr, CidrList};
use super::forwarded::{ClientAddr, forwarded_addr_lines};
use http::HeaderName;
use std::net::SocketAddr;

/// Where the client's address is read from (`real_ip_header`, default `X-Real-IP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RealIpHeader {
    /// `X-Forwarded-For` spelled exactly so: every line, walked from the last.
    XForwardedFor,
    /// `proxy_protocol`: the source address of the connection's PROXY protocol header.
    ProxyProtocol,
    /// `X-Real-IP` or any other name: the first line with that name only. nginx compares
    /// the directive's argument case-sensitively with `X-Forwarded-For`, so
    /// `x-forwarded-for` lands here too, first line only.
    Line(HeaderName),
}

impl RealIpHeader {
    /// `real_ip_header NAME` as nginx reads it; `None` for a name no header can have.
    pub fn parse(name: &str) -> Option<RealIpHeader> {
        Some(match name {
            "X-Forwarded-For" => RealIpHeader::XForwardedFor,
            "proxy_protocol" => RealIpHeader::ProxyProtocol,
            other => RealIpHeader::Line(HeaderName::from_bytes(other.as_bytes()).ok()?),
        })
    }
}

/// The realip settings in force at one level (nginx's merged location configuration).
#[derive(Clone, Debug)]
pub struct RealIpRule {
    from: CidrList,
    header: RealIpHeader,
    recursive: bool,
}

/// What one `set_real_ip_from` argument adds: nginx's warning for host bits, if any.
pub fn parse_from(list: &mut CidrList, text: &str) -> Result<Option<String>, String> {
    if text == "unix:" {
        list.push_unix();
        return Ok(None);
    }
    match Cidr::parse(text) {
        Ok(parsed) => {
            list.push(parsed.cidr);
            Ok(parsed.warning(text))
        }
        // nginx would try to resolve a name here; pinlb takes addresses only.
        Err(_) => Err(format!("host not found in set_real_ip_from \"{text}\"")),
    }
}

impl RealIpRule {
    /// A rule trusting `from` (not empty: without trusted addresses realip is off).
    pub fn new(from: CidrList, header: RealIpHeader, recursive: bool) -> RealIpRule {
        RealIpRule {
            from,
            header,
            recursive,
        }
    }

    /// The header to read; `None` for `proxy_protocol`.
    pub fn header(&self) -> Option<&HeaderName> {
        match &self.header {
            RealIpHeader::XForwardedFor => Some(&X_FORWARDED_FOR),
            RealIpHeader::ProxyProtocol => None,
            RealIpHeader::Line(name) => Some(name),
        }
    }

    /// Whether the rule reads the PROXY protocol source address.
    pub fn uses_proxy_protocol(&self) -> bool {
        self.header == RealIpHeader::ProxyProtocol
    }

    /// `ngx_http_realip_handler`: the client address to use instead of `peer`, or `None`
    /// when it stays (`peer` untrusted, no header, nothing usable in it).
    ///
    /// `lines` are the values of every line of [`Self::header`] in arrival order;
    /// `proxy_source` is the PROXY protocol source, when the connection had one with
    /// an address.
    pub fn apply<'a, I>(
        &self,
        peer: ClientAddr,
        lines: I,
        proxy_source: Option<SocketAddr>,
    ) -> Option<ClientAddr>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        let mut addr = peer;
        let changed = match &self.header {
            RealIpHeader::ProxyProtocol => {
                // nginx walks the source address text as a one-entry list, then takes the
                // header's port.
                let source = proxy_source?;
                if !trusts(&self.from, &peer) {
                    return None;
                }
                addr = ClientAddr::ip(source.ip(), source.port());
                true
            }
            RealIpHeader::XForwardedFor => {
                forwarded_addr_lines(&mut addr, lines, &self.from, self.recursive).changed()
            }
            RealIpHeader::Line(_) => {
                let first = lines.into_iter().next()?;
                forwarded_addr_lines(&mut addr, [first], &self.from, self.recursive).changed()
            }
        };
        changed.then_some(addr)
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fn trusts(from: &CidrList, addr: &ClientAddr) -> bool {
    match addr {
        ClientAddr::Ip { ip, .. } => from.contains(*ip),
        ClientAddr::Unix => from.trusts_unix(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &[&str], header: &str, recursive: bool) -> RealIpRule {
        let mut list = CidrList::new();
        for f in from {
            parse_from(&mut list, f).expect("valid from");
        }
        RealIpRule::new(list, RealIpHeader::parse(header).unwrap(), recursive)
    }

    fn run(r: &RealIpRule, peer: &str, lines: &[&str], pp: Option<&str>) -> String {
        let peer = ClientAddr::ip(peer.parse().unwrap(), 5555);
        let lines = lines.iter().map(|l| l.as_bytes());
        let pp = pp.map(|p| p.parse().unwrap());
        match r.apply(peer, lines, pp) {
            Some(a) => match a.port() {
                Some(p) => format!("{a}:{p}"),
                None => format!("{a}:-"),
            },
            None => "unchanged".into(),
        }
    }

    #[test]
    fn x_forwarded_for_walks_every_line_from_the_last() {
        let r = rule(&["127.0.0.1", "10.0.0.0/8"], "X-Forwarded-For", true);
        assert_eq!(
            run(&r, "127.0.0.1", &["1.1.1.1", "10.0.0.2"], None),
            "1.1.1.1:-"
        );
        assert_eq!(
            run(&r, "127.0.0.1", &["1.1.1.1, 2.2.2.2, 10.0.0.2"], None),
            "2.2.2.2:-"
        );
        let once = rule(&["127.0.0.1", "10.0.0.0/8"], "X-Forwarded-For", false);
        assert_eq!(
            run(&once, "127.0.0.1", &["1.1.1.1, 10.0.0.2"], None),
            "10.0.0.2:-"
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof() {
        let r = rule(&["10.0.0.0/8"], "X-Forwarded-For", true);
        assert_eq!(run(&r, "192.0.2.1", &["1.1.1.1"], None), "unchanged");
        let r = rule(&["10.0.0.0/8"], "proxy_protocol", false);
        assert_eq!(run(&r, "192.0.2.1", &[], Some("1.1.1.1:80")), "unchanged");
    }

    #[test]
    fn x_real_ip_and_other_names_use_the_first_line() {
        let r = rule(&["127.0.0.1"], "X-Real-IP", false);
        assert_eq!(
            run(&r, "127.0.0.1", &["1.1.1.1", "2.2.2.2"], None),
            "1.1.1.1:-"
        );
        // The value is still split like X-Forwarded-For.
        assert_eq!(
            run(&r, "127.0.0.1", &["1.1.1.1, 3.3.3.3"], None),
            "3.3.3.3:-"
        );
        assert_eq!(run(&r, "127.0.0.1", &[], None), "unchanged");
        assert_eq!(run(&r, "127.0.0.1", &["unknown"], None), "unchanged");
        let lower = rule(&["127.0.0.1"], "x-forwarded-for", true);
        assert_eq!(lower.header().unwrap().as_str(), "x-forwarded-for");
        assert_eq!(
            run(&lower, "127.0.0.1", &["1.1.1.1", "2.2.2.2"], None),
            "1.1.1.1:-"
        );
    }

    #[test]
    fn proxy_protocol_takes_the_source_and_its_port() {
        let r = rule(&["127.0.0.0/8"], "proxy_protocol", false);
        assert_eq!(
            run(&r, "127.0.0.2", &[], Some("203.0.113.7:4000")),
            "203.0.113.7:4000"
        );
        assert_eq!(run(&r, "127.0.0.2", &["1.1.1.1"], None), "unchanged");
        assert!(r.header().is_none() && r.uses_proxy_protocol());
    }

    #[test]
    fn from_takes_addresses_networks_and_unix() {
        let mut list = CidrList::new();
        assert_eq!(parse_from(&mut list, "unix:"), Ok(None));
        assert!(list.trusts_unix());
        assert!(parse_from(&mut list, "192.168.1.1/24").unwrap().is_some());
        assert_eq!(parse_from(&mut list, "::1"), Ok(None));
        assert_eq!(
            parse_from(&mut list, "localhost"),
            Err("host not found in set_real_ip_from \"localhost\"".into())
        );
        assert!(RealIpHeader::parse("bad name").is_none());
    }
}
