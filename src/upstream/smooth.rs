//! nginx's smooth weighted round robin as a Pingora [`BackendSelection`]: weights 5,1,1
//! give `a a b a c a a`, not the bursty `a a a a a b c` of Pingora's `RoundRobin`.

use pingora::lb::Backend;
use pingora::lb::selection::{BackendIter, BackendSelection};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

/// The selector. Each step adds every eligible server's weight to its running score,
/// picks the highest score (the earliest in config order on ties) and takes the sum of
/// the eligible weights off the winner, as `ngx_http_upstream_get_peer` does.
pub struct SmoothWeighted {
    /// Backends in config order (ties go to the earlier one, as in nginx).
    backends: Box<[Backend]>,
    scores: Mutex<Box<[i64]>>,
}

impl BackendSelection for SmoothWeighted {
    type Iter = SmoothIter;
    /// The addresses in config order; without it, address order is used.
    type Config = Vec<pingora::protocols::l4::socket::SocketAddr>;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::from_ordered(backends.iter().cloned().collect())
    }

    fn build_with_config(backends: &BTreeSet<Backend>, order: &Self::Config) -> Self {
        let mut ordered: Vec<Backend> = backends.iter().cloned().collect();
        ordered.sort_by_key(|b| {
            order
                .iter()
                .position(|a| *a == b.addr)
                .unwrap_or(usize::MAX)
        });
        Self::from_ordered(ordered)
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> SmoothIter {
        SmoothIter {
            selector: Arc::clone(self),
            rejected: Vec::new(),
            last: None,
        }
    }
}

impl SmoothWeighted {
    fn from_ordered(backends: Vec<Backend>) -> Self {
        let scores = vec![0; backends.len()].into_boxed_slice();
        SmoothWeighted {
            backends: backends.into_boxed_slice(),
            scores: Mutex::new(scores),
        }
    }

    fn weight(&self, i: usize) -> i64 {
        i64::try_from(self.backends[i].weight).unwrap_or(i64::MAX)
    }

    /// One smooth step over the backends not in `rejected`; returns the winner.
    fn step(&self, rejected: &[bool]) -> Option<usize> {
        let eligible = |i: usize| !rejected.get(i).copied().unwrap_or(false);
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0;
        let mut best: Option<usize> = None;
        for i in (0..self.backends.len()).filter(|&i| eligible(i)) {
            scores[i] += self.weight(i);
            total += self.weight(i);
            if best.is_none_or(|b| scores[i] > scores[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        scores[best] -= total;
        Some(best)
    }

    /// Takes back a step whose winner the caller could not use, so that only the step
    /// over usable servers counts: exactly nginx's arithmetic.
    fn undo(&self, winner: usize, rejected: &[bool]) {
        let eligible = |i: usize| !rejected.get(i).copied().unwrap_or(false);
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0;
        for i in (0..self.backends.len()).filter(|&i| eligible(i)) {
            scores[i] -= self.weight(i);
            total += self.weight(i);
        }
        scores[winner] += total;
    }
}

/// Yields the smooth winner; asked again, it means the caller rejected the last one
/// (unhealthy, already tried), so that step is undone and redone without it.
pub struct SmoothIter {
    selector: Arc<SmoothWeighted>,
    /// Allocated only once a candidate is rejected: the common path does not allocate.
    rejected: Vec<bool>,
    last: Option<usize>,
}

impl BackendIter for SmoothIter {
    fn next(&mut self) -> Option<&Backend> {
        if let Some(last) = self.last.take() {
            self.selector.undo(last, &self.rejected);
            if self.rejected.is_empty() {
                self.rejected = vec![false; self.selector.backends.len()];
            }
            self.rejected[last] = true;
        }
        let winner = self.selector.step(&self.rejected)?;
        self.last = Some(winner);
        Some(&self.selector.backends[winner])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(weights: &[usize]) -> Arc<SmoothWeighted> {
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Backend::new_with_weight(&format!("127.0.0.1:{}", 9001 + i), *w).unwrap())
            .collect();
        Arc::new(SmoothWeighted::build(&backends))
    }

    /// Picks `n` times, skipping the backends (by port offset) that `down` names.
    fn picks(sel: &Arc<SmoothWeighted>, n: usize, down: &[usize]) -> String {
        (0..n)
            .map(|_| {
                let mut it = sel.iter(b"");
                loop {
                    let b = it.next().expect("a usable backend");
                    let i = usize::from(b.as_inet().unwrap().port() - 9001);
                    if !down.contains(&i) {
                        break char::from(b'a' + u8::try_from(i).unwrap());
                    }
                }
            })
            .collect()
    }

    #[test]
    fn weights_5_1_1_interleave_like_nginx() {
        assert_eq!(picks(&selector(&[5, 1, 1]), 14, &[]), "aabacaaaabacaa");
    }

    #[test]
    fn weights_2_1_1_give_exact_shares_every_4_requests() {
        let sel = selector(&[2, 1, 1]);
        for _ in 0..3 {
            let mut round: Vec<char> = picks(&sel, 4, &[]).chars().collect();
            round.sort_unstable();
            assert_eq!(round, ['a', 'a', 'b', 'c']);
        }
    }

    #[test]
    fn skipping_a_server_keeps_the_others_shares_exact() {
        // nginx with a down and weights b=1, c=1 alternates b and c.
        assert_eq!(picks(&selector(&[5, 1, 1]), 6, &[0]), "bcbcbc");
        // Over a long run a and c keep their 2:1 ratio while b is skipped.
        let got = picks(&selector(&[2, 1, 1]), 300, &[1]);
        assert_eq!(got.matches('a').count(), 200, "{got}");
        assert_eq!(got.matches('c').count(), 100, "{got}");
    }

    #[test]
    fn iterator_ends_when_everything_is_rejected() {
        let sel = selector(&[1, 1]);
        let mut it = sel.iter(b"");
        assert!(it.next().is_some());
        assert!(it.next().is_some());
        assert!(it.next().is_none());
        // Rejections were undone: the pool still alternates from a clean state.
        assert_eq!(picks(&sel, 4, &[]), "abab");
    }

    #[test]
    fn config_order_breaks_ties_not_address_order() {
        let a = Backend::new_with_weight("127.0.0.1:9003", 1).unwrap();
        let b = Backend::new_with_weight("127.0.0.1:9001", 1).unwrap();
        let order = vec![a.addr.clone(), b.addr.clone()];
        let sel = Arc::new(SmoothWeighted::build_with_config(
            &[a.clone(), b].into_iter().collect(),
            &order,
        ));
        assert_eq!(sel.iter(b"").next(), Some(&a));
    }
}
