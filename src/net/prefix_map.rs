//! A longest-prefix-match table over IPv4 and IPv6 networks (a binary trie per family, as
//! nginx keeps two radix trees): the lookup behind `geo` and address allow lists. Built
//! once at config time; a lookup walks at most 32 or 128 nodes and never allocates.

use super::cidr::{Cidr, normalize};
use std::net::IpAddr;

/// Binary trie keyed by the top `width` bits of a `u128`.
#[derive(Clone, Debug)]
struct Trie<T> {
    /// Node 0 is the root; child index 0 means "no child" (the root is never
    /// anyone's child).
    children: Vec<[u32; 2]>,
    values: Vec<Option<T>>,
    width: u8,
}

impl<T> Trie<T> {
    fn new(width: u8) -> Self {
        Trie {
            children: vec![[0, 0]],
            values: vec![None],
            width,
        }
    }

    fn bit(&self, key: u128, i: u8) -> usize {
        ((key >> (self.width - 1 - i)) & 1) as usize
    }

    /// Finds the node for an exact prefix, optionally creating the path.
    fn node(&mut self, key: u128, prefix: u8, create: bool) -> Option<usize> {
        let mut n = 0usize;
        for i in 0..prefix.min(self.width) {
            let b = self.bit(key, i);
            let next = self.children[n][b] as usize;
            n = if next != 0 {
                next
            } else if create {
                let id = self.children.len();
                // Tables beyond u32::MAX nodes are not a real configuration;
                // refuse rather than wrap.
                let id32 = u32::try_from(id).ok()?;
                self.children.push([0, 0]);
                self.values.push(None);
                self.children[n][b] = id32;
                id
            } else {
                return None;
            };
        }
        Some(n)
    }

    fn insert(&mut self, key: u128, prefix: u8, value: T) -> Result<Option<T>, T> {
        match self.node(key, prefix, true) {
            Some(n) => Ok(self.values[n].replace(value)),
            None => Err(value),
        }
    }

    fn remove(&mut self, key: u128, prefix: u8) -> Option<T> {
        let n = self.node(key, prefix, false)?;
        self.values[n].take()
    }

    fn get_exact(&self, key: u128, prefix: u8) -> Option<&T> {
        let mut n = 0usize;
        for i in 0..prefix.min(self.width) {
            n = self.children[n][self.bit(key, i)] as usize;
            if n == 0 {
                return None;
            }
        }
        self.values[n].as_ref()
    }

    /// Longest-prefix match. No allocation.
    fn lookup(&self, key: u128) -> Option<&T> {
        let mut n = 0usize;
        let mut best = self.values[0].as_ref();
        for i in 0..self.width {
            n = self.children[n][self.bit(key, i)] as usize;
            if n == 0 {
                break;
            }
            if let Some(v) = self.values[n].as_ref() {
                best = Some(v);
            }
        }
        best
    }
}

/// A longest-prefix-match map from networks to values, IPv4 and IPv6 kept
/// apart as nginx keeps two radix trees. IPv4-mapped IPv6 addresses are
/// looked up as IPv4 (as `ngx_http_geo_cidr_variable` does).
#[derive(Clone, Debug)]
pub struct PrefixMap<T> {
    v4: Trie<T>,
    v6: Trie<T>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn key(cidr: &Cidr) -> (bool, u128, u8) {
    match *cidr {
        Cidr::V4 { network, prefix } => (true, u128::from(u32::from(network)), prefix),
        Cidr::V6 { network, prefix } => (false, u128::from(network), prefix),
    }
}

impl<T> PrefixMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        PrefixMap {
            v4: Trie::new(32),
            v6: Trie::new(128),
        }
    }

    fn trie(&mut self, v4: bool) -> &mut Trie<T> {
        if v4 { &mut self.v4 } else { &mut self.v6 }
    }

    /// Sets the value for exactly this network; returns the previous value.
    /// (`Err` hands the value back only if the table would exceed 2^32
    /// nodes.)
    pub fn insert(&mut self, cidr: Cidr, value: T) -> Result<Option<T>, T> {
        let (v4, k, p) = key(&cidr);
        self.trie(v4).insert(k, p, value)
    }

    /// Removes exactly this network (not the ones inside it).
    pub fn remove(&mut self, cidr: Cidr) -> Option<T> {
        let (v4, k, p) = key(&cidr);
        self.trie(v4).remove(k, p)
    }

    /// The value stored for exactly this network.
    pub fn get_exact(&self, cidr: Cidr) -> Option<&T> {
        let (v4, k, p) = key(&cidr);
        if v4 {
            self.v4.get_exact(k, p)
        } else {
            self.v6.get_exact(k, p)
        }
    }

    /// The value of the longest network containing `ip`. No allocation.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        match normalize(ip) {
            IpAddr::V4(a) => self.v4.lookup(u128::from(u32::from(a))),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn reference(entries: &[(Cidr, u32)], ip: IpAddr) -> Option<u32> {
            // Later entries for the same network replace earlier ones.
            let mut best: Option<(u8, u32)> = None;
            for (c, v) in entries {
                if c.contains(ip) {
                    match best {
                        Some((p, _)) if p > c.prefix() => {}
                        _ => best = Some((c.prefix(), *v)),
                    }
                }
            }
            best.map(|(_, v)| v)
        }

        fn cidr() -> impl Strategy<Value = Cidr> {
            prop_oneof![
                (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Cidr::new_masked(
                    IpAddr::V4(a.into()),
                    p
                )
                .0),
                // few distinct prefixes so that entries nest
                (any::<u8>(), 0u8..=12).prop_map(|(a, p)| Cidr::new_masked(
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) << 24)),
                    p
                )
                .0),
                (any::<u128>(), 0u8..=128).prop_map(|(a, p)| Cidr::new_masked(
                    IpAddr::V6(a.into()),
                    p
                )
                .0),
                (any::<u8>(), 0u8..=16).prop_map(|(a, p)| Cidr::new_masked(
                    IpAddr::V6((u128::from(a) << 120).into()),
                    p
                )
                .0),
            ]
        }

        fn addr() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                any::<u32>().prop_map(|a| IpAddr::V4(a.into())),
                any::<u8>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(u32::from(a) << 24 | 1))),
                any::<u128>().prop_map(|a| IpAddr::V6(a.into())),
                any::<u8>().prop_map(|a| IpAddr::V6(((u128::from(a) << 120) | 1).into())),
                any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
            ]
        }

        proptest! {
            #[test]
            fn lpm_matches_linear_reference(entries in proptest::collection::vec((cidr(), 0u32..5), 0..24),
                                            probes in proptest::collection::vec(addr(), 1..16)) {
                let mut m = PrefixMap::new();
                for (c, v) in &entries {
                    let _ = m.insert(*c, *v);
                }
                for ip in probes {
                    prop_assert_eq!(m.lookup(ip).copied(), reference(&entries, ip), "ip {}", ip);
                }
            }
        }
    }
}
