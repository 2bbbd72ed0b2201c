//! CIDR parsing and matching with nginx's rules (`ngx_ptocidr`, `ngx_cidr_match` in src/core/ngx_inet.c): the network type shared by `set_real_ip_from`, `geo`, `allow`/`deny`-style lists and the debug-pin allow list.
//!
//! Why not the `ipnet` crate: its parser is `std`'s, which rejects forms
//! nginx accepts (`010.0.0.0/8`, `10.0.0.0/08`, `:1:2:3:4:5:6:7:8/128`) and
//! rejects host bits that nginx merely warns about, so the parser must be
//! ours anyway; what would remain (mask and compare) is a few lines. Keeping
//! it local also keeps nginx's one matching quirk explicit: an IPv4-mapped
//! IPv6 client is matched as IPv4 and never against IPv6 networks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ngx_addr;

/// An IPv4 or IPv6 network: address with host bits cleared, prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cidr {
    /// IPv4 network; `prefix` is 0..=32.
    V4 {
        /// Network address, host bits zero.
        network: Ipv4Addr,
        /// Prefix length.
        prefix: u8,
    },
    /// IPv6 network; `prefix` is 0..=128.
    V6 {
        /// Network address, host bits zero.
        network: Ipv6Addr,
        /// Prefix length.
        prefix: u8,
    },
}

/// The result of [`Cidr::parse`]: the network and whether nginx would warn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedCidr {
    /// The network, host bits already cleared.
    pub cidr: Cidr,
    /// The text had host bits set (`192.168.1.1/24`). nginx accepts this,
    /// clears them and logs a warning; see [`ParsedCidr::warning`].
    pub host_bits_set: bool,
}

impl ParsedCidr {
    /// nginx's warning text for host bits set, or `None`:
    /// `low address bits of 192.168.1.1/24 are meaningless`.
    pub fn warning(&self, original: &str) -> Option<String> {
        self.host_bits_set
            .then(|| format!("low address bits of {original} are meaningless"))
    }
}

/// Why a CIDR text was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The address part is neither nginx IPv4 nor nginx IPv6 text.
    Address,
    /// The part after `/` is not a decimal number (empty, sign, garbage).
    PrefixSyntax,
    /// The prefix is longer than the address (`/33`, `/129`).
    PrefixTooLong,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CidrError::Address => "invalid address",
            CidrError::PrefixSyntax => "invalid prefix length",
            CidrError::PrefixTooLong => "prefix length too long",
        })
    }
}

impl std::error::Error for CidrError {}

fn v4_mask(prefix: u8) -> u32 {
    // `checked_shl` keeps /0 well defined (nginx special-cases it too).
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Cidr {
    /// Parses `addr`, `addr/len` as nginx's `ngx_ptocidr()` does.
    ///
    /// - a bare address means /32 or /128;
    /// - the address uses nginx's parsers ([`ngx_addr::parse_ipv4`], then
    ///   [`ngx_addr::parse_ipv6`]); so `255.255.255.255` is *not* accepted
    ///   here (callers that special-case it, like `geo`, do so themselves);
    /// - the length is `ngx_atoi` text (leading zeros fine, `/` alone not);
    /// - host bits are cleared and reported in [`ParsedCidr::host_bits_set`].
    pub fn parse(text: &str) -> Result<ParsedCidr, CidrError> {
        let bytes = text.as_bytes();
        let slash = bytes.iter().position(|&c| c == b'/');
        let addr = &bytes[..slash.unwrap_or(bytes.len())];

        let ip = if let Some(v4) = ngx_addr::parse_ipv4(addr) {
            IpAddr::V4(v4)
        } else if let Some(v6) = ngx_addr::parse_ipv6(addr) {
            IpAddr::V6(v6)
        } else {
            return Err(CidrError::Address);
        };

        let prefix = match slash {
            None => match ip {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
            Some(s) => {
                let n = ngx_addr::atoi(&bytes[s + 1..]).ok_or(CidrError::PrefixSyntax)?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if n > max {
                    return Err(CidrError::PrefixTooLong);
                }
                n as u8
            }
        };

        let (cidr, host_bits_set) = Cidr::new_masked(ip, prefix);
        Ok(ParsedCidr {
            cidr,
            host_bits_set,
        })
    }

    /// Builds a network from any address, clearing host bits; the flag says
    /// whether any were set. `prefix` is clamped to the family's maximum.
    pub fn new_masked(ip: IpAddr, prefix: u8) -> (Cidr, bool) {
        match ip {
            IpAddr::V4(a) => {
                let prefix = prefix.min(32);
                let bits = u32::from(a);
                let net = bits & v4_mask(prefix);
                (
                    Cidr::V4 {
                        network: net.into(),
                        prefix,
                    },
                    net != bits,
                )
            }
            IpAddr::V6(a) => {
                let prefix = prefix.min(128);
                let bits = u128::from(a);
                let net = bits & v6_mask(prefix);
                (
                    Cidr::V6 {
                        network: net.into(),
                        prefix,
                    },
                    net != bits,
                )
            }
        }
    }

    /// A single host: /32 or /128.
    pub fn host(ip: IpAddr) -> Cidr {
        match ip {
            IpAddr::V4(network) => Cidr::V4 {
                network,
                prefix: 32,
            },
            IpAddr::V6(network) => Cidr::V6 {
                network,
                prefix: 128,
            },
        }
    }

    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        match *self {
            Cidr::V4 { prefix, .. } | Cidr::V6 { prefix, .. } => prefix,
        }
    }

    /// Does `ip` belong to this network, by nginx's `ngx_cidr_match()` rule?
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is matched as its IPv4
    /// address, and therefore never matches an IPv6 network, not even
    /// `::ffff:0:0/96`. No other IPv6 address matches an IPv4 network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, normalize(ip)) {
            (Cidr::V4 { network, prefix }, IpAddr::V4(a)) => {
                u32::from(a) & v4_mask(prefix) == u32::from(network)
            }
            (Cidr::V6 { network, prefix }, IpAddr::V6(a)) => {
                u128::from(a) & v6_mask(prefix) == u128::from(network)
            }
            _ => false,
        }
    }
}

/// nginx's family selection for matching: IPv4-mapped IPv6 becomes IPv4.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match ngx_addr::v4_mapped(&v6) {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl fmt::Display for Cidr {
    /// `network/prefix`, the network printed as nginx prints addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cidr::V4 { network, prefix } => write!(f, "{network}/{prefix}"),
            Cidr::V6 { network, prefix } => {
                write!(f, "{}/{prefix}", ngx_addr::Ipv6Text(network))
            }
        }
    }
}

/// An ordered list of trusted networks, as `set_real_ip_from` builds it
/// (`ngx_array_t` of `ngx_cidr_t`), plus nginx's `unix:` entry that trusts
/// every UNIX-domain-socket peer.
///
/// Matching is a linear scan like `ngx_cidr_match()`; these lists are short.
/// For large tables use `geo::PrefixMap`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrList {
    cidrs: Vec<Cidr>,
    unix: bool,
}

impl CidrList {
    /// An empty list (matches nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a network.
    pub fn push(&mut self, cidr: Cidr) {
        self.cidrs.push(cidr);
    }

    /// Trusts UNIX-domain-socket peers (`set_real_ip_from unix:`).
    pub fn push_unix(&mut self) {
        self.unix = true;
    }

    /// True when nothing was added (nginx: `from == NULL`, realip disabled).
    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty() && !self.unix
    }

    /// The networks, in configuration order.
    pub fn cidrs(&self) -> &[Cidr] {
        &self.cidrs
    }

    /// Whether `unix:` was added.
    pub fn trusts_unix(&self) -> bool {
        self.unix
    }

    /// `ngx_cidr_match()` for an IP peer. No allocation.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        self.cidrs.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(String, bool), CidrError> {
        Cidr::parse(s).map(|p| (p.cidr.to_string(), p.host_bits_set))
    }

    #[test]
    fn ngx_ptocidr_table() {
        use CidrError::*;
        type Want = Result<(&'static str, bool), CidrError>;
        let cases: &[(&str, Want)] = &[
            ("10.0.0.0/8", Ok(("10.0.0.0/8", false))),
            ("10.0.0.1", Ok(("10.0.0.1/32", false))),
            ("192.168.1.1/24", Ok(("192.168.1.0/24", true))),
            ("0.0.0.0/0", Ok(("0.0.0.0/0", false))),
            ("1.2.3.4/0", Ok(("0.0.0.0/0", true))),
            ("10.0.0.0/08", Ok(("10.0.0.0/8", false))),
            ("010.0.0.0/8", Ok(("10.0.0.0/8", false))),
            ("10.0.0.0/32", Ok(("10.0.0.0/32", false))),
            ("10.0.0.0/33", Err(PrefixTooLong)),
            ("10.0.0.0/", Err(PrefixSyntax)),
            ("10.0.0.0/-1", Err(PrefixSyntax)),
            ("10.0.0.0/ 8", Err(PrefixSyntax)),
            ("10.0.0.0/8/8", Err(PrefixSyntax)),
            ("255.255.255.255", Err(Address)),
            ("255.255.255.255/32", Err(Address)),
            ("localhost", Err(Address)),
            ("", Err(Address)),
            ("/8", Err(Address)),
            ("::1", Ok(("::1/128", false))),
            ("::/0", Ok(("::/0", false))),
            ("2001:db8::1/32", Ok(("2001:db8::/32", true))),
            ("2001:db8::/129", Err(PrefixTooLong)),
            ("fe80::/10", Ok(("fe80::/10", false))),
            ("fe80::1/10", Ok(("fe80::/10", true))),
            ("::ffff:10.0.0.0/104", Ok(("::ffff:10.0.0.0/104", false))),
        ];
        for (input, want) in cases {
            let want = want.clone().map(|(c, w)| (c.to_string(), w));
            assert_eq!(parse(input), want, "input {input:?}");
        }
    }

    #[test]
    fn warning_text() {
        let p = Cidr::parse("192.168.1.1/24").expect("valid");
        assert_eq!(
            p.warning("192.168.1.1/24").as_deref(),
            Some("low address bits of 192.168.1.1/24 are meaningless")
        );
        assert_eq!(Cidr::parse("10.0.0.0/8").expect("ok").warning("x"), None);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn ngx_cidr_match_rules() {
        let v4 = Cidr::parse("10.0.0.0/8").expect("ok").cidr;
        assert!(v4.contains(ip("10.1.2.3")));
        assert!(!v4.contains(ip("11.0.0.1")));
        // Mapped IPv6 client matches as IPv4.
        assert!(v4.contains(ip("::ffff:10.1.2.3")));
        assert!(!v4.contains(ip("::10.1.2.3")));

        // ...and therefore never matches an IPv6 network covering it.
        let mapped_net = Cidr::parse("::ffff:0:0/96").expect("ok").cidr;
        assert!(!mapped_net.contains(ip("::ffff:10.1.2.3")));
        let all6 = Cidr::parse("::/0").expect("ok").cidr;
        assert!(!all6.contains(ip("::ffff:10.1.2.3")));
        assert!(all6.contains(ip("2001:db8::1")));
        assert!(!all6.contains(ip("10.0.0.1")));

        let all4 = Cidr::parse("0.0.0.0/0").expect("ok").cidr;
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(!all4.contains(ip("::1")));
    }

    #[test]
    fn list() {
        let mut l = CidrList::new();
        assert!(l.is_empty());
        l.push(Cidr::parse("127.0.0.1").expect("ok").cidr);
        l.push(Cidr::parse("2001:db8::/32").expect("ok").cidr);
        assert!(l.contains(ip("127.0.0.1")));
        assert!(l.contains(ip("::ffff:127.0.0.1")));
        assert!(l.contains(ip("2001:db8:1::5")));
        assert!(!l.contains(ip("127.0.0.2")));
        assert!(!l.trusts_unix());
        l.push_unix();
        assert!(l.trusts_unix());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC{0,40}") {
                let _ = Cidr::parse(&s);
            }

            #[test]
            fn parse_never_panics_alphabet(s in "[0-9a-f:./]{0,44}") {
                let _ = Cidr::parse(&s);
            }

            #[test]
            fn v4_contains_matches_reference(net in any::<u32>(), prefix in 0u8..=32, a in any::<u32>()) {
                let (c, _) = Cidr::new_masked(IpAddr::V4(net.into()), prefix);
                let want = prefix == 0 || (net >> (32 - prefix)) == (a >> (32 - prefix));
                prop_assert_eq!(c.contains(IpAddr::V4(a.into())), want);
                // mapped form behaves the same
                let mapped = IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped());
                prop_assert_eq!(c.contains(mapped), want);
            }

            #[test]
            fn v6_contains_matches_reference(net in any::<u128>(), prefix in 0u8..=128, a in any::<u128>()) {
                let addr = Ipv6Addr::from(a);
                prop_assume!(addr.to_ipv4_mapped().is_none());
                let (c, _) = Cidr::new_masked(IpAddr::V6(net.into()), prefix);
                let want = prefix == 0 || (net >> (128 - u32::from(prefix))) == (a >> (128 - u32::from(prefix)));
                prop_assert_eq!(c.contains(IpAddr::V6(addr)), want);
            }

            #[test]
            fn display_parses_back(net in any::<u128>(), prefix in 0u8..=128, v4 in any::<bool>()) {
                let ip = if v4 { IpAddr::V4(Ipv4Addr::from(net as u32)) } else { IpAddr::V6(net.into()) };
                let (c, _) = Cidr::new_masked(ip, prefix);
                let text = c.to_string();
                // 255.255.255.255/32 is the one network nginx cannot spell.
                if !text.starts_with("255.255.255.255") && !text.contains(":255.255.255.255") {
                    let back = Cidr::parse(&text).expect("own output parses");
                    prop_assert_eq!(back.cidr, c);
                    prop_assert!(!back.host_bits_set);
                }
            }
        }
    }
}
