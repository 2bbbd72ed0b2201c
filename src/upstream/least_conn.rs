//! nginx's `least_conn` as a Pingora [`BackendSelection`] (Pingora has none): the server
//! with the fewest requests in flight relative to its weight; ties rotate.

use pingora::lb::Backend;
use pingora::lb::selection::{BackendIter, BackendSelection};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Backends with their in-flight counters, in config order.
pub type LeastConnConfig = Vec<(Backend, Arc<AtomicUsize>)>;

pub struct LeastConn {
    backends: Box<[(Backend, Arc<AtomicUsize>)]>,
    /// Rotates among equally loaded servers so that ties do not all go to the first.
    rotation: AtomicUsize,
}

impl BackendSelection for LeastConn {
    type Iter = LeastConnIter;
    type Config = LeastConnConfig;

    /// Without shared counters every server looks idle: only useful in tests.
    fn build(backends: &BTreeSet<Backend>) -> Self {
        let own = backends
            .iter()
            .map(|b| (b.clone(), Arc::default()))
            .collect();
        Self::build_with_config(backends, &own)
    }

    fn build_with_config(_backends: &BTreeSet<Backend>, config: &LeastConnConfig) -> Self {
        LeastConn {
            backends: config.clone().into_boxed_slice(),
            rotation: AtomicUsize::new(0),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> LeastConnIter {
        LeastConnIter {
            selector: Arc::clone(self),
            rejected: Vec::new(),
            last: None,
        }
    }
}

impl LeastConn {
    /// The least loaded backend not rejected; among equals, the next in rotation.
    fn pick(&self, rejected: &[bool]) -> Option<usize> {
        let load = |i: usize| {
            let (b, inflight) = &self.backends[i];
            (
                inflight.load(Ordering::Relaxed) as u128,
                b.weight.max(1) as u128,
            )
        };
        let candidates =
            (0..self.backends.len()).filter(|&i| !rejected.get(i).copied().unwrap_or(false));
        // a/wa < b/wb  <=>  a*wb < b*wa, without division.
        let mut best: Vec<usize> = Vec::new();
        for i in candidates {
            let Some(&first) = best.first() else {
                best.push(i);
                continue;
            };
            let ((ci, wi), (cb, wb)) = (load(i), load(first));
            match (ci * wb).cmp(&(cb * wi)) {
                std::cmp::Ordering::Less => {
                    best.clear();
                    best.push(i);
                }
                std::cmp::Ordering::Equal => best.push(i),
                std::cmp::Ordering::Greater => {}
            }
        }
        if best.is_empty() {
            return None;
        }
        let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
        Some(best[turn % best.len()])
    }
}

/// Yields the least loaded backend; asked again, the previous one was rejected.
pub struct LeastConnIter {
    selector: Arc<LeastConn>,
    rejected: Vec<bool>,
    last: Option<usize>,
}

impl BackendIter for LeastConnIter {
    fn next(&mut self) -> Option<&Backend> {
        if let Some(last) = self.last.take() {
            if self.rejected.is_empty() {
                self.rejected = vec![false; self.selector.backends.len()];
            }
            self.rejected[last] = true;
        }
        let i = self.selector.pick(&self.rejected)?;
        self.last = Some(i);
        Some(&self.selector.backends[i].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(weights: &[usize]) -> (Arc<LeastConn>, Vec<Arc<AtomicUsize>>) {
        let config: LeastConnConfig = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let b = Backend::new_with_weight(&format!("127.0.0.1:{}", 9001 + i), *w).unwrap();
                (b, Arc::new(AtomicUsize::new(0)))
            })
            .collect();
        let counts = config.iter().map(|(_, c)| Arc::clone(c)).collect();
        (
            Arc::new(LeastConn::build_with_config(&BTreeSet::new(), &config)),
            counts,
        )
    }

    fn first(sel: &Arc<LeastConn>) -> u16 {
        sel.iter(b"").next().unwrap().as_inet().unwrap().port() - 9001
    }

    #[test]
    fn the_least_loaded_server_wins() {
        let (sel, counts) = selector(&[1, 1, 1]);
        counts[0].store(3, Ordering::Relaxed);
        counts[1].store(1, Ordering::Relaxed);
        counts[2].store(2, Ordering::Relaxed);
        assert_eq!(first(&sel), 1);
    }

    #[test]
    fn load_is_relative_to_weight() {
        let (sel, counts) = selector(&[3, 1]);
        counts[0].store(5, Ordering::Relaxed); // 5/3 < 2/1
        counts[1].store(2, Ordering::Relaxed);
        assert_eq!(first(&sel), 0);
    }

    #[test]
    fn ties_rotate() {
        let (sel, _) = selector(&[1, 1, 1]);
        let picks: Vec<u16> = (0..6).map(|_| first(&sel)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_rejected_server_is_skipped_for_the_next_least_loaded() {
        let (sel, counts) = selector(&[1, 1, 1]);
        counts[2].store(9, Ordering::Relaxed);
        counts[1].store(1, Ordering::Relaxed);
        let mut it = sel.iter(b"");
        let port = |b: Option<&Backend>| b.unwrap().as_inet().unwrap().port() - 9001;
        assert_eq!(port(it.next()), 0);
        assert_eq!(port(it.next()), 1);
        assert_eq!(port(it.next()), 2);
        assert!(it.next().is_none());
    }
}
