//! Choosing a server the way nginx does, over the servers of one tier in config order:
//! smooth weighted round robin (`ngx_http_upstream_get_peer`), `least_conn` with round
//! robin among equals, `ip_hash`, and `hash KEY [consistent]` with nginx's CRC32
//! arithmetic, each falling back to round robin where nginx does (an empty key, one
//! server, twenty unusable picks). So a request goes where nginx would send it.
//!
//! Selectors work on positions in the tier's member list; the caller says which members
//! may be picked for this request (usable, not tried yet, not `down`), so that every
//! algorithm skips them exactly where nginx skips them, before any state changes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// nginx gives up hashing after this many unusable picks and uses round robin.
const MAX_HASH_TRIES: usize = 20;

/// Points a weight of 1 puts on the consistent-hash circle (`ngx_http_upstream_chash`).
const POINTS_PER_WEIGHT: usize = 160;

/// One member of a tier as the selectors see it.
pub struct Member {
    pub weight: u32,
    /// The address as written in the config (`app1:80`): consistent hashing places a
    /// server on the circle by this text, as nginx does.
    pub configured_addr: String,
    /// Requests in flight on the server, for `least_conn`.
    pub inflight: Arc<AtomicUsize>,
}

/// The balancing algorithm of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastConn,
    IpHash,
    Hash,
    Consistent,
}

/// Picks members of one tier.
pub struct Selector {
    algorithm: Algorithm,
    weights: Box<[i64]>,
    total_weight: u64,
    inflight: Box<[Arc<AtomicUsize>]>,
    /// nginx's `current_weight` of each member: smooth round robin, `least_conn` among
    /// equals and the round robin that hashing falls back to all use it.
    scores: Mutex<Box<[i64]>>,
    /// Consistent hashing: the circle, sorted by hash, each point naming a server text.
    points: Box<[Point]>,
    /// Consistent hashing: which server text (an index into the texts) each member has.
    member_text: Box<[u32]>,
}

impl Selector {
    pub fn new(algorithm: Algorithm, members: &[Member]) -> Selector {
        let weights: Box<[i64]> = members.iter().map(|m| i64::from(m.weight)).collect();
        let (points, member_text) = match algorithm {
            Algorithm::Consistent => circle(members),
            _ => (Box::default(), Box::default()),
        };
        Selector {
            algorithm,
            total_weight: members.iter().map(|m| u64::from(m.weight)).sum(),
            inflight: members.iter().map(|m| Arc::clone(&m.inflight)).collect(),
            scores: Mutex::new(vec![0; members.len()].into_boxed_slice()),
            weights,
            points,
            member_text,
        }
    }

    /// The member for a request with selection `key` (see [`ip_hash_key`] for `ip_hash`,
    /// the expanded key for `hash`, empty otherwise) among those `eligible` allows.
    pub fn pick(&self, key: &[u8], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let several = self.weights.len() >= 2;
        let hashed = match self.algorithm {
            Algorithm::RoundRobin => None,
            Algorithm::LeastConn => return self.least_conn(&eligible),
            Algorithm::IpHash if several => Some(self.ip_hash(key, &eligible)),
            Algorithm::Hash if several && !key.is_empty() => Some(self.hash(key, &eligible)),
            Algorithm::Consistent if several && !key.is_empty() => {
                Some(self.consistent(key, &eligible))
            }
            _ => None,
        };
        match hashed {
            Some(Some(found)) => Some(found),
            _ => self.round_robin(eligible),
        }
    }

    /// `ngx_http_upstream_get_peer`: every eligible member's weight is added to its
    /// score, the highest score wins (the earliest on ties) and loses the sum.
    fn round_robin(&self, mut eligible: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0;
        let mut best: Option<usize> = None;
        for i in 0..self.weights.len() {
            if !eligible(i) {
                continue;
            }
            scores[i] += self.weights[i];
            total += self.weights[i];
            if best.is_none_or(|b| scores[i] > scores[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        scores[best] -= total;
        Some(best)
    }

    /// `ngx_http_upstream_get_least_conn_peer`: fewest requests in flight relative to
    /// weight; several equals are chosen among by round robin.
    fn least_conn(&self, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        let load = |i: usize| self.inflight[i].load(Ordering::Relaxed) as i128;
        // a/wa < b/wb  <=>  a*wb < b*wa, without division.
        let cmp = |i: usize, b: usize| {
            (load(i) * i128::from(self.weights[b])).cmp(&(load(b) * i128::from(self.weights[i])))
        };
        let mut best: Option<usize> = None;
        let mut many = false;
        for i in (0..self.weights.len()).filter(|&i| eligible(i)) {
            match best.map(|b| cmp(i, b)) {
                None | Some(std::cmp::Ordering::Less) => {
                    best = Some(i);
                    many = false;
                }
                Some(std::cmp::Ordering::Equal) => many = true,
                Some(std::cmp::Ordering::Greater) => {}
            }
        }
        let best = best?;
        if !many {
            return Some(best);
        }
        self.round_robin(|i| i >= best && eligible(i) && cmp(i, best).is_eq())
    }

    /// `ngx_http_upstream_get_ip_hash_peer`: `hash = (hash * 113 + byte) % 6271` over
    /// the key, rehashing while the pick is not eligible.
    fn ip_hash(&self, key: &[u8], eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        // A client without an IP address (a Unix socket) hashes nginx's pseudo address.
        let key = if key.is_empty() { &[0u8; 3][..] } else { key };
        let mut hash: u64 = 89;
        for _ in 0..=MAX_HASH_TRIES {
            for &byte in key {
                hash = (hash * 113 + u64::from(byte)) % 6271;
            }
            let member = self.by_weight(hash)?;
            if eligible(member) {
                return Some(member);
            }
        }
        None
    }

    /// `ngx_http_upstream_get_hash_peer`: the CRC32 of the key (prefixed by the try
    /// number after the first), its high 15 bits summed over the tries.
    fn hash(&self, key: &[u8], eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        let mut sum: u64 = 0;
        for rehash in 0..=MAX_HASH_TRIES {
            let mut crc = crc32fast::Hasher::new();
            if rehash > 0 {
                crc.update(rehash.to_string().as_bytes());
            }
            crc.update(key);
            sum += u64::from((crc.finalize() >> 16) & 0x7fff);
            let member = self.by_weight(sum)?;
            if eligible(member) {
                return Some(member);
            }
        }
        None
    }

    /// The member whose share of the total weight `hash` falls in.
    fn by_weight(&self, hash: u64) -> Option<usize> {
        let mut w = hash.checked_rem(self.total_weight)?;
        for (i, &weight) in self.weights.iter().enumerate() {
            let weight = weight as u64;
            if w < weight {
                return Some(i);
            }
            w -= weight;
        }
        None
    }

    /// `ngx_http_upstream_get_chash_peer`: the first point at or after the key's CRC32;
    /// the members with that point's server text take it by round robin; a point with
    /// none eligible passes to the next one.
    fn consistent(&self, key: &[u8], eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let hash = crc32fast::hash(key);
        let start = self.points.partition_point(|&(point, _)| point < hash);
        for step in 0..=MAX_HASH_TRIES {
            let (_, text) = self.points[(start + step) % self.points.len()];
            let found = self.round_robin(|i| self.member_text[i] == text && eligible(i));
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// A point of the consistent-hash circle: its hash and the server text it belongs to.
type Point = (u32, u32);

/// nginx's consistent-hash circle: `160 * weight` points per server, each the CRC32 of
/// `host \0 port` followed by the previous point (little-endian), sorted, duplicates
/// dropped. Servers with the same text share their points.
fn circle(members: &[Member]) -> (Box<[Point]>, Box<[u32]>) {
    let mut texts: Vec<&str> = Vec::new();
    let mut member_text = Vec::with_capacity(members.len());
    let mut points = Vec::new();
    for m in members {
        let text = m.configured_addr.as_str();
        let id = match texts.iter().position(|t| *t == text) {
            Some(id) => id,
            None => {
                texts.push(text);
                texts.len() - 1
            }
        };
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        member_text.push(id);
        let (host, port) = split_host_port(text);
        let mut base = crc32fast::Hasher::new();
        base.update(host.as_bytes());
        base.update(b"\0");
        base.update(port.as_bytes());
        let mut prev: u32 = 0;
        for _ in 0..POINTS_PER_WEIGHT * m.weight as usize {
            let mut h = base.clone();
            h.update(&prev.to_le_bytes());
            prev = h.finalize();
            points.push((prev, id));
        }
    }
    points.sort_by_key(|&(hash, _)| hash);
    points.dedup_by_key(|&mut (hash, _)| hash);
    (points.into_boxed_slice(), member_text.into_boxed_slice())
}

/// nginx's split of a server text for the circle: the digits after the last `:` are the
/// port; without them the whole text is the host.
fn split_host_port(text: &str) -> (&str, &str) {
    match text.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, port),
        _ => (text, ""),
    }
}

/// The bytes `ip_hash` hashes: the first three octets of an IPv4 address (clients of one
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

#[cfg(test)]
mod tests;
