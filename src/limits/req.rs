//! `limit_req`: nginx's leaky bucket per key, as `ngx_http_limit_req_module.c` computes it.
//!
//! Units are nginx's: a rate is in milli-requests per second (`10r/s` is 10000, `30r/m` is
//! 500, `1r/m` is 16 because nginx truncates `1000 / 60`), and a key's `excess` is in
//! milli-requests. Each request of a key does
//!
//! ```text
//! excess = max(0, previous_excess - rate * elapsed_ms / 1000 + 1000)
//! ```
//!
//! and is rejected when `excess > burst * 1000`, delayed by
//! `(excess - delay * 1000) * 1000 / rate` ms when above the delay threshold, and passed
//! otherwise. A key seen for the first time starts at `excess = 0`, so with no time passing
//! exactly `burst + 1` requests of a key get through.

use ahash::RandomState;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{REQ_NODE_HEADER, node_budget, slab_cost, stored_key};

/// Longest key stored as it is. nginx does not limit a longer key at all
/// (`ngx_http_limit_req_handler`: "the value of the ... key is more than 65535 bytes"),
/// which lets a client that controls the key (`$http_x_api_key`) skip the limit by
/// sending a long one; pinlb limits it by its digest instead (see [`super::stored_key`]).
pub(super) const MAX_KEY_LEN: usize = 65535;

/// A node idle this long (and fully drained) may be dropped by `expire`.
const EXPIRE_IDLE_MS: u64 = 60_000;

/// End of the LRU list.
const NIL: usize = usize::MAX;

/// When requests over the rate are delayed rather than passed straight through (the
/// `nodelay` / `delay=N` parameters of `limit_req`). Rejection always happens above
/// `burst`, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayPolicy {
    /// nginx's default: every request over the rate is delayed so that requests leave at
    /// the rate.
    #[default]
    Delay,
    /// `nodelay`: requests within the burst pass at once.
    NoDelay,
    /// `delay=N` (two-stage limiting): the first `N` excess requests pass at once, the
    /// rest of the burst is delayed. `After(0)` is the same as `Delay`.
    After(u64),
}

impl DelayPolicy {
    /// The threshold in milli-requests (`limit->delay` in nginx, which stores `delay * 1000`
    /// and uses `NGX_MAX_INT_T_VALUE / 1000 * 1000` for `nodelay`).
    fn threshold(self) -> u64 {
        match self {
            DelayPolicy::Delay => 0,
            DelayPolicy::NoDelay => u64::MAX,
            DelayPolicy::After(n) => n.saturating_mul(1000),
        }
    }
}

/// The outcome of the `limit_req`s of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// No limit applied: there were none, or every key was empty (nginx skips empty keys,
    /// so `$limit_req_status` stays empty).
    Skipped,
    /// Within the rate, or within the `nodelay` / `delay=N` allowance (`PASSED`).
    Pass,
    /// Go ahead after `delay` (`DELAYED`; nginx logs "delaying request, excess: E, by zone
    /// Z" one level below `limit_req_log_level`). `excess` is in milli-requests (log it as
    /// `excess / 1000 . excess % 1000`); `limit` indexes the slice given to [`check_all`].
    Delay {
        delay: Duration,
        excess: u64,
        limit: usize,
    },
    /// Answer with `limit_req_status` (default 503) (`REJECTED`). Nothing was committed
    /// to any zone.
    Reject {
        excess: u64,
        limit: usize,
        cause: RejectCause,
    },
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCause {
    /// The key's excess is over the burst: nginx logs "limiting requests, excess: E by
    /// zone Z" at `limit_req_log_level` (default `error`).
    Excess,
    /// The zone is full and nothing could be evicted: nginx logs "could not allocate node
    /// in limit_req zone Z" at `alert` and still answers with `limit_req_status`.
    NoMemory,
}

/// One `limit_req` directive applied to a request: its zone, the key the zone's key
/// expression produced, and the directive's parameters.
#[derive(Debug, Clone, Copy)]
pub struct ReqLimit<'a> {
    pub zone: &'a RateZone,
    pub key: &'a [u8],
    /// `burst=N` (default 0).
    pub burst: u64,
    pub delay: DelayPolicy,
}

/// A `limit_req_zone`: the rate and the per-key state, shared by every worker thread.
#[derive(Debug)]
pub struct RateZone {
    /// Milli-requests per second, at least 1.
    rate: u64,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Node {
    key: Box<[u8]>,
    /// LRU neighbours: `prev` is more recent, `next` older.
    prev: usize,
    next: usize,
    /// When the excess was last committed; `None` for a node created by a `limit_req` that
    /// is not the last one of the request and not yet accounted (nginx sets `last = 0`,
    /// i.e. "long ago": the node counts as fully drained).
    last: Option<u64>,
    /// Milli-requests.
    excess: u64,
    /// Requests between lookup and account (`lr->count`): such a node is never evicted.
    pins: u32,
    /// Bytes charged against the zone budget.
    cost: u64,
}

#[derive(Debug)]
struct Table {
    /// ahash with per-process random keys: fast, and keys chosen by clients cannot be
    /// made to collide.
    index: HashMap<Box<[u8]>, usize, RandomState>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    /// Most and least recently used nodes.
    head: usize,
    tail: usize,
    used: u64,
    budget: u64,
}

enum Lookup {
    /// Over the burst; nothing committed.
    Busy(u64),
    /// No node could be allocated.
    NoMemory,
    /// Committed (the last `limit_req` of the request).
    Done(u64),
    /// Passed and pinned, to be committed by `account`.
    Pinned(usize),
}

impl RateZone {
    /// A zone with `rate_milli_per_sec` (as [`super::parse_limit_req_zone`] returns it; 0
    /// is taken as 1) holding as many keys as nginx fits in `zone_size` bytes (see
    /// [`super::zone_capacity`]).
    pub fn new(rate_milli_per_sec: u64, zone_size: u64) -> RateZone {
        RateZone::with_budget(rate_milli_per_sec, node_budget(zone_size))
    }

    fn with_budget(rate_milli_per_sec: u64, budget: u64) -> RateZone {
        RateZone {
            rate: rate_milli_per_sec.max(1),
            table: Mutex::new(Table {
                index: HashMap::default(),
                nodes: Vec::new(),
                free: Vec::new(),
                head: NIL,
                tail: NIL,
                used: 0,
                budget,
            }),
        }
    }

    /// The rate in milli-requests per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Number of keys currently held.
    pub fn key_count(&self) -> usize {
        self.lock().index.len()
    }

    /// Checks and accounts one request against this zone alone; see [`check_all`] for
    /// several `limit_req`s on one request.
    pub fn check(&self, key: &[u8], burst: u64, delay: DelayPolicy, now_ms: u64) -> RateVerdict {
        check_all(
            &[ReqLimit {
                zone: self,
                key,
                burst,
                delay,
            }],
            now_ms,
        )
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Nothing here panics while holding the lock; if something ever did, the table is
        // still consistent enough to keep limiting.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Applies the `limit_req`s of a request, in configuration order, as
/// `ngx_http_limit_req_handler` does:
///
/// 1. each limit in turn looks its key up (`ngx_http_limit_req_lookup`); empty keys are
///    skipped. A limit over its burst, or out of memory, rejects the request at once and
///    the limits looked up before it are released without committing anything;
/// 2. the last limit commits its new excess immediately; the earlier ones are committed
///    afterwards, last to first (`ngx_http_limit_req_account`), recomputing their excess at
///    `now_ms`;
/// 3. the delay is the largest `(excess - delay_threshold) * 1000 / rate` over the limits;
///    ties go to the limit looked at first in step 2 (the last one).
///
/// So a rejected request costs no zone anything, and a passed or delayed one costs every
/// zone one request. The caller applies a verdict once per main request (nginx ignores
/// `limit_req` in subrequests and after an internal redirect once a status is set); for
/// `limit_req_dry_run on`, it treats `Delay` and `Reject` as `Pass`.
pub fn check_all(limits: &[ReqLimit<'_>], now_ms: u64) -> RateVerdict {
    let Some(last) = limits.len().checked_sub(1) else {
        return RateVerdict::Skipped;
    };
    // Limits looked up but not yet accounted: (index into `limits`, node slot). Does not
    // allocate unless a request has more than one `limit_req`.
    let mut pinned: Vec<(usize, usize)> = Vec::new();
    let mut applied = false;
    let mut last_excess = 0;

    for (n, limit) in limits.iter().enumerate() {
        if limit.key.is_empty() {
            continue;
        }
        applied = true;
        let zone = limit.zone;
        let key = stored_key(limit.key, MAX_KEY_LEN);
        let lookup = zone.lock().lookup(
            &key,
            zone.rate,
            limit.burst.saturating_mul(1000),
            now_ms,
            n == last,
        );
        match lookup {
            Lookup::Pinned(slot) => pinned.push((n, slot)),
            Lookup::Done(excess) => last_excess = excess,
            Lookup::Busy(excess) => {
                unpin(limits, &pinned);
                return RateVerdict::Reject {
                    excess,
                    limit: n,
                    cause: RejectCause::Excess,
                };
            }
            Lookup::NoMemory => {
                unpin(limits, &pinned);
                return RateVerdict::Reject {
                    excess: 0,
                    limit: n,
                    cause: RejectCause::NoMemory,
                };
            }
        }
    }
    if !applied {
        return RateVerdict::Skipped;
    }

    // ngx_http_limit_req_account. When the last limit's key was empty, nginx starts from
    // excess 0, which is never above a threshold.
    let mut worst = last;
    let mut excess = last_excess;
    let mut max_delay = delay_ms(excess, &limits[last]);
    for &(n, slot) in pinned.iter().rev() {
        let limit = &limits[n];
        let e = limit.zone.lock().account(slot, limit.zone.rate, now_ms);
        let d = delay_ms(e, limit);
        if d > max_delay {
            max_delay = d;
            excess = e;
            worst = n;
        }
    }
    if max_delay == 0 {
        RateVerdict::Pass
    } else {
        RateVerdict::Delay {
            delay: Duration::from_millis(max_delay),
            excess,
            limit: worst,
        }
    }
}

/// `(excess - delay) * 1000 / rate`, or 0 at or below the threshold. Can round to 0 for
/// very high rates, and then the request passes (nginx: `if (!delay)`).
fn delay_ms(excess: u64, limit: &ReqLimit<'_>) -> u64 {
    let over = excess.saturating_sub(limit.delay.threshold());
    let ms = u128::from(over) * 1000 / u128::from(limit.zone.rate);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn unpin(limits: &[ReqLimit<'_>], pinned: &[(usize, usize)]) {
    for &(n, slot) in pinned.iter().rev() {
        if let Some(limit) = limits.get(n) {
            limit.zone.lock().unpin(slot);
        }
    }
}

/// Milliseconds since `last`, as nginx clamps them: a clock up to a minute behind counts as
/// no time, further behind as 1 ms (so the node's `last` gets reset). `None` is "long ago".
fn elapsed(now: u64, last: Option<u64>) -> u64 {
    let Some(last) = last else {
        return u64::MAX;
    };
    if now >= last {
        now - last
    } else if last - now > EXPIRE_IDLE_MS {
        1
    } else {
        0
    }
}

/// Milli-requests leaked in `ms` (`ctx->rate * ms / 1000`).
fn drained(rate: u64, ms: u64) -> u64 {
    u64::try_from(u128::from(rate) * u128::from(ms) / 1000).unwrap_or(u64::MAX)
}

/// The excess after one more request (`lr->excess - ctx->rate * ms / 1000 + 1000`,
/// floored at 0).
fn next_excess(excess: u64, rate: u64, ms: u64) -> u64 {
    excess
        .saturating_add(1000)
        .saturating_sub(drained(rate, ms))
}

impl Table {
    fn lookup(&mut self, key: &[u8], rate: u64, burst: u64, now: u64, account: bool) -> Lookup {
        if let Some(&slot) = self.index.get(key) {
            // A lookup makes the node most recently used even when it rejects.
            self.unlink(slot);
            self.push_front(slot);
            let Some(node) = self.nodes.get_mut(slot) else {
                return Lookup::NoMemory;
            };
            let ms = elapsed(now, node.last);
            let excess = next_excess(node.excess, rate, ms);
            if excess > burst {
                return Lookup::Busy(excess);
            }
            if account {
                node.excess = excess;
                // Sub-millisecond repeats keep the old `last`, so their drain is not lost.
                if ms != 0 {
                    node.last = Some(now);
                }
                return Lookup::Done(excess);
            }
            node.pins = node.pins.saturating_add(1);
            return Lookup::Pinned(slot);
        }

        // A new key: first drop up to two idle, drained nodes, then allocate; if the zone
        // is full, evict the least recently used node whatever its state and retry.
        let cost = slab_cost(REQ_NODE_HEADER + key.len() as u64);
        self.expire(false, rate, now);
        if self.used + cost > self.budget {
            self.expire(true, rate, now);
            if self.used + cost > self.budget {
                return Lookup::NoMemory;
            }
        }
        let (last, pins) = if account { (Some(now), 0) } else { (None, 1) };
        let slot = self.insert(key, cost, last, pins);
        if account {
            Lookup::Done(0)
        } else {
            Lookup::Pinned(slot)
        }
    }

    /// Commits a pinned node (the per-limit loop of `ngx_http_limit_req_account`).
    fn account(&mut self, slot: usize, rate: u64, now: u64) -> u64 {
        let Some(node) = self.nodes.get_mut(slot) else {
            return 0;
        };
        let ms = elapsed(now, node.last);
        let excess = next_excess(node.excess, rate, ms);
        if ms != 0 {
            node.last = Some(now);
        }
        node.excess = excess;
        node.pins = node.pins.saturating_sub(1);
        excess
    }

    /// Releases a pinned node without committing (`ngx_http_limit_req_unlock`).
    fn unpin(&mut self, slot: usize) {
        if let Some(node) = self.nodes.get_mut(slot) {
            node.pins = node.pins.saturating_sub(1);
        }
    }

    /// `ngx_http_limit_req_expire`: looks at the least recently used nodes, at most three.
    /// Each is dropped if idle for a minute and fully drained; with `force`, the first one
    /// is dropped regardless. Stops at the first node that stays, and at a pinned node
    /// (older nodes behind it would be stale but nginx does not look further).
    fn expire(&mut self, force: bool, rate: u64, now: u64) {
        let mut n = if force { 0 } else { 1 };
        while n < 3 {
            let Some(node) = self.nodes.get(self.tail) else {
                return;
            };
            if node.pins > 0 {
                return;
            }
            if n != 0 {
                let ms = node.last.map_or(u64::MAX, |last| now.abs_diff(last));
                if ms < EXPIRE_IDLE_MS || node.excess > drained(rate, ms) {
                    return;
                }
            }
            n += 1;
            self.remove(self.tail);
        }
    }

    fn insert(&mut self, key: &[u8], cost: u64, last: Option<u64>, pins: u32) -> usize {
        let node = Node {
            key: key.into(),
            prev: NIL,
            next: NIL,
            last,
            excess: 0,
            pins,
            cost,
        };
        let slot = match self.free.pop() {
            Some(slot) if slot < self.nodes.len() => {
                self.nodes[slot] = node;
                slot
            }
            _ => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.index.insert(key.into(), slot);
        self.used += cost;
        self.push_front(slot);
        slot
    }

    fn remove(&mut self, slot: usize) {
        self.unlink(slot);
        if let Some(node) = self.nodes.get_mut(slot) {
            let key = std::mem::take(&mut node.key);
            self.used = self.used.saturating_sub(node.cost);
            self.index.remove(&key);
            self.free.push(slot);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Some(node) = self.nodes.get(slot) else {
            return;
        };
        let (prev, next) = (node.prev, node.next);
        match self.nodes.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(node) = self.nodes.get_mut(slot) {
            node.prev = NIL;
            node.next = NIL;
        }
    }

    fn push_front(&mut self, slot: usize) {
        let old_head = self.head;
        if let Some(node) = self.nodes.get_mut(slot) {
            node.prev = NIL;
            node.next = old_head;
        }
        match self.nodes.get_mut(old_head) {
            Some(h) => h.prev = slot,
            None => self.tail = slot,
        }
        self.head = slot;
    }
}

#[cfg(test)]
mod tests;
