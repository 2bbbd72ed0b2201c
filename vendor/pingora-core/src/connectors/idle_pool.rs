// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! The keep-alive pool of idle upstream HTTP/1 and L4 connections, watched by one
//! sweeper task per pool instead of one task per idle connection.
//!
//! `pingora_pool::ConnectionPool` spawns a task for every released connection (a timer,
//! a oneshot channel, a notify and a lock hand-off back on reuse), which costs about a
//! microsecond per proxied request. Here a released connection is only put in a list.
//! Reuse takes the most recently released connection of the peer (as nginx's keepalive
//! cache does) and checks that it is still open and within its idle timeout. A sweeper
//! wakes every [`SWEEP_INTERVAL`] and closes connections that the server closed, that sent
//! unexpected data, or that passed their idle timeout; so a connection closed by the server
//! lingers in CLOSE_WAIT for at most that long.

use super::{test_reusable_stream, PoolCallback};
use crate::protocols::Stream;
use crate::upstreams::peer::IdleGroup;
use log::debug;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often idle connections are checked for being closed or expired.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Idle connections grouped by the peer's reuse hash, bounded in total.
pub(crate) struct IdlePool {
    idle: Mutex<Groups>,
    capacity: usize,
    sweeper_running: AtomicBool,
    on_evicted: Option<PoolCallback>,
    unexpected_data: Arc<AtomicU64>,
}

#[derive(Default)]
struct Groups {
    by_key: HashMap<u64, Vec<Idle>, BuildHasherDefault<KeyHasher>>,
    len: usize,
    /// Idle connections per [`IdleGroup`] id, for groups with a bound of their own.
    group_len: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    /// Release order, to find the least recently released connection when full.
    next_seq: u64,
}

struct Idle {
    stream: Stream,
    since: Instant,
    expires: Option<Instant>,
    seq: u64,
    group: Option<u64>,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

impl IdlePool {
    pub(crate) fn new(
        capacity: usize,
        on_evicted: Option<PoolCallback>,
        unexpected_data: Arc<AtomicU64>,
    ) -> Self {
        IdlePool {
            idle: Mutex::default(),
            capacity,
            sweeper_running: AtomicBool::new(false),
            on_evicted,
            unexpected_data,
        }
    }

    /// The most recently released connection for `key` that is still open and within its
    /// idle timeout. Closed or expired ones met on the way are dropped.
    pub(crate) fn take(&self, key: u64) -> Option<Stream> {
        let now = Instant::now();
        loop {
            let idle = {
                let mut groups = self.idle.lock();
                let idle = groups.by_key.get_mut(&key)?.pop()?;
                groups.forget(&idle);
                idle
            };
            if idle.expired(now) {
                debug!("idle connection passed its idle timeout, closing it");
                continue;
            }
            let mut stream = idle.stream;
            if test_reusable_stream(&mut stream, &self.unexpected_data) {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream` for reuse by `key`. When the pool (or the peer's `group`) is full,
    /// its least recently released connection is closed to make room, as nginx's
    /// `keepalive` does.
    pub(crate) fn put(
        self: &Arc<Self>,
        key: u64,
        stream: Stream,
        idle_timeout: Option<Duration>,
        group: Option<IdleGroup>,
    ) {
        if self.capacity == 0 || group.is_some_and(|g| g.max_idle == 0) {
            return;
        }
        let now = Instant::now();
        let evicted = {
            let mut groups = self.idle.lock();
            let group_full = group.filter(|g| {
                groups
                    .group_len
                    .get(&g.id)
                    .is_some_and(|&n| n >= g.max_idle)
            });
            let evicted = match group_full {
                Some(g) => groups.pop_oldest(Some(g.id)),
                None if groups.len >= self.capacity => groups.pop_oldest(None),
                None => None,
            };
            let seq = groups.next_seq;
            groups.next_seq += 1;
            groups.len += 1;
            let group = group.map(|g| g.id);
            if let Some(id) = group {
                *groups.group_len.entry(id).or_default() += 1;
            }
            groups.by_key.entry(key).or_default().push(Idle {
                stream,
                since: now,
                expires: idle_timeout.map(|t| now + t),
                seq,
                group,
            });
            evicted
        };
        if let Some(evicted) = evicted {
            debug!("keep-alive pool full, closing the least recently used connection");
            if let Some(callback) = &self.on_evicted {
                callback(now.saturating_duration_since(evicted.since));
            }
        }
        self.ensure_sweeper();
    }

    /// Starts the sweeper on the current runtime unless one is running. If its runtime
    /// shuts down, the next release starts another.
    fn ensure_sweeper(self: &Arc<Self>) {
        if self.sweeper_running.load(Ordering::Relaxed)
            || self.sweeper_running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool = Arc::downgrade(self);
        pingora_runtime::current_handle().spawn(sweep_forever(pool));
    }

    /// Closes the connections that the server closed or that passed their idle timeout.
    fn sweep(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut groups = self.idle.lock();
            groups.by_key.retain(|_, list| {
                let mut i = 0;
                while i < list.len() {
                    let idle = &mut list[i];
                    if idle.expired(now)
                        || !test_reusable_stream(&mut idle.stream, &self.unexpected_data)
                    {
                        closed.push(list.remove(i));
                    } else {
                        i += 1;
                    }
                }
                !list.is_empty()
            });
            for idle in &closed {
                groups.forget(idle);
            }
        }
        if !closed.is_empty() {
            debug!("closed {} idle upstream connections", closed.len());
        }
        // `closed` is dropped here, outside the lock: closing sockets is a syscall each.
    }
}

impl Groups {
    /// Removes the least recently released connection, of `group` only when given. Each
    /// key's list is in release order, so the candidates are the first entries (of the
    /// group).
    fn pop_oldest(&mut self, group: Option<u64>) -> Option<Idle> {
        let in_group = |idle: &Idle| group.is_none() || idle.group == group;
        let (_, key, index) = self
            .by_key
            .iter()
            .filter_map(|(key, list)| {
                let index = list.iter().position(in_group)?;
                Some((list[index].seq, *key, index))
            })
            .min()?;
        let list = self.by_key.get_mut(&key)?;
        let oldest = list.remove(index);
        if list.is_empty() {
            self.by_key.remove(&key);
        }
        self.forget(&oldest);
        Some(oldest)
    }

    /// Updates the counts for a connection that left the lists.
    fn forget(&mut self, idle: &Idle) {
        self.len -= 1;
        if let Some(id) = idle.group {
            if let Some(n) = self.group_len.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    self.group_len.remove(&id);
                }
            }
        }
    }
}

/// Clears the pool's sweeper flag when the sweeper ends for any reason (pool dropped,
/// runtime shut down), so that the next release starts a new one.
struct SweeperGuard(Weak<IdlePool>);

impl Drop for SweeperGuard {
    fn drop(&mut self) {
        if let Some(pool) = self.0.upgrade() {
            pool.sweeper_running.store(false, Ordering::Release);
        }
    }
}

async fn sweep_forever(pool: Weak<IdlePool>) {
    let _guard = SweeperGuard(pool.clone());
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.sweep();
    }
}

/// The keys are already hashes (`Peer::reuse_hash`): hashing them again is wasted work.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
