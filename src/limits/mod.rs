//! nginx's `limit_req` (leaky bucket per key) and `limit_conn` (requests in progress per
//! key): the zone state, the arithmetic and the parsing of the directives' parameters.
//!
//! Everything is synchronous and clock-free: callers pass `now` as a monotonic millisecond
//! count, so the same code serves the proxy and the tests. Each zone is a `Mutex` around a
//! hash map; a request touches one zone lock at a time, never two, so there is no lock
//! ordering to get wrong.
//!
//! Memory is bounded the way nginx bounds it: a zone of `SIZE` bytes holds as many nodes as
//! nginx's slab allocator would fit in a shared-memory zone of that size (see
//! [`zone_capacity`]); what does not fit is evicted (`limit_req`) or refused
//! (`limit_conn`).
//!
//! One deliberate difference from nginx: a key longer than nginx accounts (65535 bytes for
//! `limit_req`, 255 for `limit_conn`) is limited by its SHA-256 digest, where nginx does
//! not limit it at all ([`stored_key`]).

mod conf;
mod conn;
mod req;

pub use conf::{
    ConfError, ConnConf, ConnZoneConf, ReqConf, ReqZoneConf, parse_limit_conn,
    parse_limit_conn_zone, parse_limit_req, parse_limit_req_zone, parse_rate, parse_size,
};
pub use conn::{ConnGuard, ConnLimit, ConnRejected, ConnZone, acquire_all};
pub use req::{DelayPolicy, RateVerdict, RateZone, RejectCause, ReqLimit, check_all};

use std::borrow::Cow;

/// The key a zone stores for `key`: the key itself, or for a key longer than `max` bytes
/// its SHA-256 digest (32 bytes). nginx logs such a key and lets the request through
/// unlimited, which is a bypass whenever the key comes from the client (a header, an
/// argument); the digest keeps each long key limited on its own. A short key equal to
/// some digest would have to be a SHA-256 preimage, so the two kinds do not mix.
pub(crate) fn stored_key(key: &[u8], max: usize) -> Cow<'_, [u8]> {
    if key.len() <= max {
        return Cow::Borrowed(key);
    }
    Cow::Owned(
        ring::digest::digest(&ring::digest::SHA256, key)
            .as_ref()
            .to_vec(),
    )
}

/// nginx's page size on the platforms pinlb runs on; shared-memory zones are carved into
/// pages of this size by `ngx_slab_alloc`.
const PAGE_SIZE: u64 = 4096;

/// The smallest zone nginx accepts: `8 * ngx_pagesize` ("zone ... is too small").
pub const MIN_ZONE_SIZE: u64 = 8 * PAGE_SIZE;

/// Bytes of a `limit_req` node before its key, on 64-bit nginx: the part of
/// `ngx_rbtree_node_t` before `color` (32) plus `offsetof(ngx_http_limit_req_node_t, data)`
/// (48). A 4-byte `$binary_remote_addr` key makes 84 bytes, which the slab allocator
/// rounds to 128.
pub(crate) const REQ_NODE_HEADER: u64 = 80;

/// Same for `limit_conn`: 32 + `offsetof(ngx_http_limit_conn_node_t, data)` (4). Typical
/// keys round to 64 bytes.
pub(crate) const CONN_NODE_HEADER: u64 = 36;

/// What `ngx_slab_alloc` takes for an object of `len` bytes: the next power of two (at
/// least 8) up to half a page, whole pages above that.
pub(crate) fn slab_cost(len: u64) -> u64 {
    if len > PAGE_SIZE / 2 {
        len.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE)
    } else {
        len.max(8).next_power_of_two()
    }
}

/// Bytes of a zone of `zone_size` bytes that nodes can use, following `ngx_slab_init` on
/// 64-bit Linux: the pool header (200 bytes) and the per-size-class lists and statistics
/// (9 x 56) come first, then one 24-byte descriptor per page, then the pages from the next
/// page boundary. Of those pages, the zone's own bookkeeping takes one slot (the tree root
/// and LRU queue, 128 bytes) and the page holding its log-context string.
pub(crate) fn node_budget(zone_size: u64) -> u64 {
    const POOL_HEADER: u64 = 200 + 9 * (24 + 32);
    const PAGE_DESCRIPTOR: u64 = 24;
    let pages = zone_size.saturating_sub(POOL_HEADER) / (PAGE_SIZE + PAGE_DESCRIPTOR);
    let start = (POOL_HEADER + pages * PAGE_DESCRIPTOR)
        .div_ceil(PAGE_SIZE)
        .saturating_mul(PAGE_SIZE);
    let pages = pages.min(zone_size.saturating_sub(start) / PAGE_SIZE);
    (pages.saturating_sub(1) * PAGE_SIZE).saturating_sub(128)
}

/// How many keys of `key_len` bytes a zone of `zone_size` bytes holds, for `limit_req`
/// (`conn == false`) or `limit_conn` zones. For `$binary_remote_addr` keys (4 or 16 bytes):
/// a `limit_req` node is 128 bytes, so `1m` holds about 8,000 keys and `10m` about 81,000;
/// a `limit_conn` node is 64 bytes, twice as many. This matches nginx's documentation ("one
/// megabyte zone can keep about 16 thousand 64-byte states") and, for `limit_req` zones
/// of 32k (191 keys) and 1m (8095 keys), exactly the count at which a real nginx 1.22
/// starts evicting.
pub fn zone_capacity(zone_size: u64, key_len: usize, conn: bool) -> u64 {
    let header = if conn {
        CONN_NODE_HEADER
    } else {
        REQ_NODE_HEADER
    };
    node_budget(zone_size) / slab_cost(header + key_len as u64)
}

#[cfg(test)]
mod tests;
