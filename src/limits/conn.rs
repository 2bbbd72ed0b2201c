//! `limit_conn`: requests in progress per key, as `ngx_http_limit_conn_module.c` counts
//! them. A request takes a [`ConnGuard`] per applicable limit; dropping the guard when the
//! request ends gives the slot back (nginx's pool cleanup handler).

use ahash::RandomState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{CONN_NODE_HEADER, node_budget, slab_cost, stored_key};

/// Longest key stored as it is. nginx does not count a longer key at all
/// (`ngx_http_limit_conn_handler`: "the value of the ... key is more than 255 bytes"), a
/// bypass for any client that controls the key; pinlb counts it by its digest instead
/// (see [`super::stored_key`]).
pub(super) const MAX_KEY_LEN: usize = 255;

/// Why a request was refused. nginx answers with `limit_conn_status` (default 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRejected {
    /// The key already has `limit` requests in progress; nginx logs "limiting connections
    /// by zone Z" at `limit_conn_log_level` (default `error`).
    Limited,
    /// The zone has no room for a new key (nginx's slab allocator logs "no memory").
    /// Unlike `limit_req`, nothing is ever evicted: a key's node lives exactly as long as
    /// its requests.
    NoMemory,
}

/// A `limit_conn_zone`, shared by every worker thread.
#[derive(Debug)]
pub struct ConnZone {
    table: Mutex<Table>,
}

/// One key's entry: its requests in progress, the bytes charged for it, and the key once
/// more, so that a guard shares the map's copy instead of making its own.
#[derive(Debug)]
struct Count {
    requests: u32,
    cost: u64,
    key: Arc<[u8]>,
}

#[derive(Debug)]
struct Table {
    /// Key -> requests in progress. A key with no request is removed.
    /// ahash with per-process random keys: fast, and keys chosen by clients cannot be
    /// made to collide.
    counts: HashMap<Arc<[u8]>, Count, RandomState>,
    used: u64,
    budget: u64,
}

/// One `limit_conn` directive applied to a request.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimit<'a> {
    pub zone: &'a Arc<ConnZone>,
    pub key: &'a [u8],
    /// `limit_conn zone N`: 1..=65535 from the parser.
    pub limit: u32,
}

/// A request in progress for one key of one zone; dropping it releases the slot.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the guard is dropped"]
pub struct ConnGuard {
    zone: Arc<ConnZone>,
    key: Arc<[u8]>,
}

impl ConnZone {
    /// A zone holding as many keys as nginx fits in `zone_size` bytes (see
    /// [`super::zone_capacity`]; about 16,000 per megabyte for address keys).
    pub fn new(zone_size: u64) -> ConnZone {
        ConnZone::with_budget(node_budget(zone_size))
    }

    fn with_budget(budget: u64) -> ConnZone {
        ConnZone {
            table: Mutex::new(Table {
                counts: HashMap::default(),
                used: 0,
                budget,
            }),
        }
    }

    /// Counts one more request for `key` if it has fewer than `limit` in progress.
    ///
    /// `Ok(None)`: the key is empty, and nginx does not count it. A key longer than 255
    /// bytes is counted by its SHA-256 digest.
    /// `Ok(Some(guard))`: counted until the guard is dropped. A `limit` of 0 (which the
    /// parser never produces) refuses everything.
    pub fn acquire(
        self: &Arc<Self>,
        key: &[u8],
        limit: u32,
    ) -> Result<Option<ConnGuard>, ConnRejected> {
        if key.is_empty() {
            return Ok(None);
        }
        let key = stored_key(key, MAX_KEY_LEN);
        let key = key.as_ref();
        let mut t = self.lock();
        let shared = if let Some(count) = t.counts.get_mut(key) {
            if count.requests >= limit {
                return Err(ConnRejected::Limited);
            }
            count.requests += 1;
            Arc::clone(&count.key)
        } else {
            if limit == 0 {
                return Err(ConnRejected::Limited);
            }
            let cost = slab_cost(CONN_NODE_HEADER + key.len() as u64);
            if t.used + cost > t.budget {
                return Err(ConnRejected::NoMemory);
            }
            t.used += cost;
            // One copy of the key, shared by the map and the guard.
            let shared: Arc<[u8]> = Arc::from(key);
            let count = Count {
                requests: 1,
                cost,
                key: Arc::clone(&shared),
            };
            t.counts.insert(Arc::clone(&shared), count);
            shared
        };
        drop(t);
        Ok(Some(ConnGuard {
            zone: Arc::clone(self),
            key: shared,
        }))
    }

    /// Requests in progress for `key`.
    pub fn count(&self, key: &[u8]) -> u32 {
        self.lock().counts.get(key).map_or(0, |c| c.requests)
    }

    /// Number of keys with requests in progress.
    pub fn key_count(&self) -> usize {
        self.lock().counts.len()
    }

    fn release(&self, key: &[u8]) {
        let mut t = self.lock();
        let Some(count) = t.counts.get_mut(key) else {
            return;
        };
        count.requests = count.requests.saturating_sub(1);
        if count.requests == 0 {
            let cost = count.cost;
            t.counts.remove(key);
            t.used = t.used.saturating_sub(cost);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.zone.release(&self.key);
    }
}

/// Applies the `limit_conn`s of a request in configuration order
/// (`ngx_http_limit_conn_handler`). On a refusal, the slots already taken for this request
/// are given back and the error names the limit (index into `limits`) that refused. An
/// empty `Ok` vector means no key applied (`$limit_conn_status` stays empty). Hold the
/// guards until the request ends; nginx applies this once per main request.
pub fn acquire_all(limits: &[ConnLimit<'_>]) -> Result<Vec<ConnGuard>, (usize, ConnRejected)> {
    let mut guards = Vec::new();
    for (n, l) in limits.iter().enumerate() {
        match l.zone.acquire(l.key, l.limit) {
            Ok(Some(g)) => guards.push(g),
            Ok(None) => {}
            // `guards` is dropped here, releasing what this request took.
            Err(e) => return Err((n, e)),
        }
    }
    Ok(guards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zone() -> Arc<ConnZone> {
        Arc::new(ConnZone::with_budget(1 << 30))
    }

    #[test]
    fn limit_and_release_on_drop() {
        let z = zone();
        let g1 = z.acquire(b"k", 2).unwrap().unwrap();
        let g2 = z.acquire(b"k", 2).unwrap().unwrap();
        assert_eq!(z.acquire(b"k", 2).unwrap_err(), ConnRejected::Limited);
        assert_eq!(z.count(b"k"), 2);
        // Other keys are separate.
        let _other = z.acquire(b"j", 2).unwrap().unwrap();
        drop(g1);
        assert_eq!(z.count(b"k"), 1);
        let g3 = z.acquire(b"k", 2).unwrap().unwrap();
        drop(g2);
        drop(g3);
        assert_eq!(z.count(b"k"), 0);
        assert_eq!(z.key_count(), 1);
    }

    #[test]
    fn empty_keys_are_skipped_and_long_ones_counted() {
        let z = zone();
        assert!(z.acquire(b"", 1).unwrap().is_none());
        let _g = z.acquire(&[b'x'; 255], 1).unwrap().unwrap();
        assert_eq!(
            z.acquire(&[b'x'; 255], 1).unwrap_err(),
            ConnRejected::Limited
        );
        // nginx would not count these at all; pinlb counts each by its digest.
        let long = [b'y'; 256];
        let held = z.acquire(&long, 1).unwrap().unwrap();
        assert_eq!(z.acquire(&long, 1).unwrap_err(), ConnRejected::Limited);
        let other = [b'z'; 70_000];
        let _o = z.acquire(&other, 1).unwrap().unwrap();
        drop(held);
        let _again = z.acquire(&long, 1).unwrap().unwrap();
        assert_eq!(z.key_count(), 3);
        assert_eq!(z.acquire(b"k", 0).unwrap_err(), ConnRejected::Limited);
    }

    #[test]
    fn full_zone_refuses_new_keys_only() {
        // Room for two 1-byte keys (64 bytes each).
        let z = Arc::new(ConnZone::with_budget(128));
        let a = z.acquire(b"a", 5).unwrap().unwrap();
        let _b = z.acquire(b"b", 5).unwrap().unwrap();
        assert_eq!(z.acquire(b"c", 5).unwrap_err(), ConnRejected::NoMemory);
        // Known keys still count up to their limit.
        let _a2 = z.acquire(b"a", 5).unwrap().unwrap();
        drop(a);
        assert_eq!(z.acquire(b"c", 5).unwrap_err(), ConnRejected::NoMemory);
        drop(_a2);
        let _c = z.acquire(b"c", 5).unwrap().unwrap();
    }

    #[test]
    fn all_or_nothing() {
        let a = zone();
        let b = zone();
        let _held = b.acquire(b"k", 1).unwrap().unwrap();
        let err = acquire_all(&[
            ConnLimit {
                zone: &a,
                key: b"k",
                limit: 1,
            },
            ConnLimit {
                zone: &b,
                key: b"k",
                limit: 1,
            },
        ])
        .unwrap_err();
        assert_eq!(err, (1, ConnRejected::Limited));
        // The slot taken in `a` was given back.
        assert_eq!(a.count(b"k"), 0);
        let guards = acquire_all(&[ConnLimit {
            zone: &a,
            key: b"",
            limit: 1,
        }])
        .unwrap();
        assert!(guards.is_empty());
    }

    #[test]
    fn threads_acquire_and_release() {
        let z = Arc::new(ConnZone::new(super::super::MIN_ZONE_SIZE));
        let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let z = Arc::clone(&z);
                let peak = Arc::clone(&peak);
                s.spawn(move || {
                    for i in 0..2000u32 {
                        let key = [b'k', (i % 3) as u8];
                        if let Ok(Some(g)) = z.acquire(&key, 2) {
                            let c = z.count(&key);
                            assert!((1..=2).contains(&c), "thread {t}: {c}");
                            peak.fetch_max(c, std::sync::atomic::Ordering::Relaxed);
                            std::thread::yield_now();
                            drop(g);
                        }
                    }
                });
            }
        });
        assert_eq!(z.key_count(), 0);
        assert_eq!(z.lock().used, 0);
        assert!(peak.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    }

    proptest! {
        #[test]
        fn count_matches_live_guards(
            ops in proptest::collection::vec((0u8..4, any::<bool>()), 1..200),
            limit in 1u32..4,
        ) {
            let z = Arc::new(ConnZone::with_budget(3 * 64));
            let mut held: Vec<(u8, ConnGuard)> = Vec::new();
            for (k, take) in ops {
                if take {
                    match z.acquire(&[k], limit) {
                        Ok(Some(g)) => held.push((k, g)),
                        Ok(None) => prop_assert!(false, "non-empty key skipped"),
                        Err(ConnRejected::Limited) => {
                            prop_assert_eq!(held.iter().filter(|h| h.0 == k).count() as u32, limit)
                        }
                        Err(ConnRejected::NoMemory) => {
                            prop_assert!(!held.iter().any(|h| h.0 == k));
                            prop_assert_eq!(z.key_count(), 3);
                        }
                    }
                } else if let Some(i) = held.iter().position(|h| h.0 == k) {
                    drop(held.swap_remove(i));
                }
                for key in 0..4u8 {
                    prop_assert_eq!(z.count(&[key]) as usize,
                                    held.iter().filter(|h| h.0 == key).count());
                }
            }
            held.clear();
            prop_assert_eq!(z.key_count(), 0);
        }
    }
}
