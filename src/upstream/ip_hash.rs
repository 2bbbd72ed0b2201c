//! nginx's `ip_hash` as a Pingora [`BackendSelection`]: the same arithmetic as
//! `ngx_http_upstream_get_ip_hash_peer`, so a client lands where nginx would send it.

use pingora::lb::Backend;
use pingora::lb::selection::{BackendIter, BackendSelection};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// nginx gives up hashing after this many unusable picks and walks the servers instead.
const MAX_HASH_TRIES: usize = 20;

/// Backends in config order, `down` ones included: marking a server down must not move
/// the other clients (nginx's advice for `down` with `ip_hash`).
pub struct IpHash {
    backends: Box<[Backend]>,
    total_weight: u64,
}

/// The bytes nginx hashes: the first three octets of an IPv4 address (clients of one
/// /24 stay together) or the whole IPv6 address.
pub fn ip_hash_key(ip: IpAddr) -> ([u8; 16], usize) {
    let mut key = [0; 16];
    match ip {
        IpAddr::V4(v4) => {
            key[..3].copy_from_slice(&v4.octets()[..3]);
            (key, 3)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_hash_key(IpAddr::V4(v4)),
            None => (v6.octets(), 16),
        },
    }
}

impl BackendSelection for IpHash {
    type Iter = IpHashIter;
    /// The backends in config order.
    type Config = Vec<Backend>;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &backends.iter().cloned().collect())
    }

    fn build_with_config(_backends: &BTreeSet<Backend>, ordered: &Vec<Backend>) -> Self {
        IpHash {
            total_weight: ordered.iter().map(|b| b.weight as u64).sum(),
            backends: ordered.clone().into_boxed_slice(),
        }
    }

    /// `key` is the output of [`ip_hash_key`] (its first `len` bytes).
    fn iter(self: &Arc<Self>, key: &[u8]) -> IpHashIter {
        IpHashIter {
            selector: Arc::clone(self),
            key: key.to_vec(),
            hash: 89,
            tries: 0,
        }
    }
}

/// Rehashes on every call, as nginx does when a pick is unusable; after
/// [`MAX_HASH_TRIES`] it offers each backend in turn.
pub struct IpHashIter {
    selector: Arc<IpHash>,
    key: Vec<u8>,
    hash: u64,
    tries: usize,
}

impl BackendIter for IpHashIter {
    fn next(&mut self) -> Option<&Backend> {
        let sel = &self.selector;
        if sel.total_weight == 0 {
            return None;
        }
        self.tries += 1;
        if self.tries > MAX_HASH_TRIES {
            return sel.backends.get(self.tries - MAX_HASH_TRIES - 1);
        }
        for &octet in &self.key {
            self.hash = (self.hash * 113 + u64::from(octet)) % 6271;
        }
        let mut w = self.hash % sel.total_weight;
        for b in sel.backends.iter() {
            let weight = b.weight as u64;
            if w < weight {
                return Some(b);
            }
            w -= weight;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(n: usize) -> Arc<IpHash> {
        let ordered: Vec<Backend> = (0..n)
            .map(|i| Backend::new(&format!("10.0.0.{}:80", i + 1)).unwrap())
            .collect();
        Arc::new(IpHash::build_with_config(&BTreeSet::new(), &ordered))
    }

    fn pick(sel: &Arc<IpHash>, ip: &str) -> u8 {
        let (key, len) = ip_hash_key(ip.parse().unwrap());
        let b = sel.iter(&key[..len]).next().unwrap().clone();
        match b.as_inet().unwrap().ip() {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(_) => unreachable!(),
        }
    }

    #[test]
    fn matches_nginx_arithmetic() {
        // hash = 89; for each of 192, 168, 1: hash = (hash * 113 + octet) % 6271.
        let mut hash: u64 = 89;
        for o in [192u64, 168, 1] {
            hash = (hash * 113 + o) % 6271;
        }
        let expected = (hash % 3) as u8 + 1;
        assert_eq!(pick(&selector(3), "192.168.1.77"), expected);
    }

    #[test]
    fn clients_of_one_slash_24_share_a_server() {
        let sel = selector(5);
        let first = pick(&sel, "203.0.113.1");
        for last in [2, 50, 254] {
            assert_eq!(pick(&sel, &format!("203.0.113.{last}")), first);
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_hashes_like_ipv4() {
        assert_eq!(
            ip_hash_key("::ffff:10.1.2.3".parse().unwrap()),
            ip_hash_key("10.1.2.3".parse().unwrap())
        );
        assert_eq!(ip_hash_key("2001:db8::1".parse().unwrap()).1, 16);
    }

    #[test]
    fn rejected_picks_rehash_then_walk_every_backend() {
        let sel = selector(3);
        let (key, len) = ip_hash_key("198.51.100.9".parse().unwrap());
        let mut it = sel.iter(&key[..len]);
        let mut seen = BTreeSet::new();
        while let Some(b) = it.next() {
            seen.insert(b.clone());
        }
        assert_eq!(seen.len(), 3);
    }
}
