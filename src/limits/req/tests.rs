//! Tests of the leaky bucket: nginx's arithmetic case by case, several limits per request,
//! eviction, and properties.

use super::*;
use proptest::prelude::*;

const R1: u64 = 1000; // 1r/s
const BIG: u64 = 1 << 30;

fn zone(rate: u64) -> RateZone {
    RateZone::with_budget(rate, BIG)
}

/// A zone with room for exactly `n` short keys.
fn small_zone(rate: u64, n: u64) -> RateZone {
    RateZone::with_budget(rate, n * 128)
}

fn delay(ms: u64, excess: u64) -> RateVerdict {
    RateVerdict::Delay {
        delay: Duration::from_millis(ms),
        excess,
        limit: 0,
    }
}

fn reject(excess: u64) -> RateVerdict {
    RateVerdict::Reject {
        excess,
        limit: 0,
        cause: RejectCause::Excess,
    }
}

#[test]
fn burst_with_delay() {
    // rate=1r/s burst=5: the first request passes with excess 0, the next five are
    // queued 1 s apart, the seventh is over the burst.
    let z = zone(R1);
    let t = 1_000_000;
    assert_eq!(z.check(b"k", 5, DelayPolicy::Delay, t), RateVerdict::Pass);
    for i in 1..=5 {
        assert_eq!(
            z.check(b"k", 5, DelayPolicy::Delay, t),
            delay(i * 1000, i * 1000)
        );
    }
    assert_eq!(z.check(b"k", 5, DelayPolicy::Delay, t), reject(6000));
    // Rejections are not committed: another one sees the same excess.
    assert_eq!(z.check(b"k", 5, DelayPolicy::Delay, t), reject(6000));
    // After a second one request has leaked out, so one more fits (at the end of the
    // queue), and the next is rejected again.
    assert_eq!(
        z.check(b"k", 5, DelayPolicy::Delay, t + 1000),
        delay(5000, 5000)
    );
    assert_eq!(z.check(b"k", 5, DelayPolicy::Delay, t + 1000), reject(6000));
}

#[test]
fn burst_nodelay() {
    let z = zone(R1);
    for _ in 0..6 {
        assert_eq!(z.check(b"k", 5, DelayPolicy::NoDelay, 0), RateVerdict::Pass);
    }
    assert_eq!(z.check(b"k", 5, DelayPolicy::NoDelay, 0), reject(6000));
    assert_eq!(z.check(b"k", 5, DelayPolicy::NoDelay, 999), reject(5001));
    assert_eq!(
        z.check(b"k", 5, DelayPolicy::NoDelay, 1000),
        RateVerdict::Pass
    );
    assert_eq!(z.check(b"k", 5, DelayPolicy::NoDelay, 1000), reject(6000));
}

#[test]
fn two_stage_delay() {
    // burst=5 delay=2: excess up to 2 requests passes at once, 3..5 are delayed by the
    // part above 2.
    let z = zone(R1);
    let p = DelayPolicy::After(2);
    assert_eq!(z.check(b"k", 5, p, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"k", 5, p, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"k", 5, p, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"k", 5, p, 0), delay(1000, 3000));
    assert_eq!(z.check(b"k", 5, p, 0), delay(2000, 4000));
    assert_eq!(z.check(b"k", 5, p, 0), delay(3000, 5000));
    assert_eq!(z.check(b"k", 5, p, 0), reject(6000));
    assert_eq!(
        DelayPolicy::After(0).threshold(),
        DelayPolicy::Delay.threshold()
    );
}

#[test]
fn no_burst_spacing() {
    // burst 0 at 2r/s: requests must be 500 ms apart.
    let z = zone(2000);
    assert_eq!(
        z.check(b"k", 0, DelayPolicy::Delay, 10_000),
        RateVerdict::Pass
    );
    assert_eq!(z.check(b"k", 0, DelayPolicy::Delay, 10_499), reject(2));
    assert_eq!(
        z.check(b"k", 0, DelayPolicy::Delay, 10_500),
        RateVerdict::Pass
    );
}

#[test]
fn per_minute_truncation() {
    // 30r/m is 500 milli-r/s; 1r/m is 16 (not 16.67), so it takes 62.5 s, not 60 s, for
    // a request to leak out.
    let z = zone(16);
    assert_eq!(z.check(b"k", 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"k", 0, DelayPolicy::Delay, 60_000), reject(40));
    assert_eq!(
        z.check(b"k", 0, DelayPolicy::Delay, 62_500),
        RateVerdict::Pass
    );
}

#[test]
fn delay_rounds_to_pass_at_high_rates() {
    // 100r/s: one request of excess is a 10 ms delay. At 100000r/s it would be 0.01 ms,
    // which rounds to 0, and the request passes undelayed.
    let z = zone(100_000);
    assert_eq!(z.check(b"k", 1, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"k", 1, DelayPolicy::Delay, 0), delay(10, 1000));
    let z = zone(100_000_000);
    assert_eq!(z.check(b"k", 1, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"k", 1, DelayPolicy::Delay, 0), RateVerdict::Pass);
}

#[test]
fn clock_going_backwards() {
    let z = zone(R1);
    assert_eq!(
        z.check(b"k", 5, DelayPolicy::NoDelay, 100_000),
        RateVerdict::Pass
    );
    // Up to a minute behind counts as no time passing.
    assert_eq!(
        z.check(b"k", 5, DelayPolicy::NoDelay, 50_000),
        RateVerdict::Pass
    );
    assert_eq!(
        z.check(b"k", 5, DelayPolicy::NoDelay, 100_001),
        RateVerdict::Pass
    );
    // More than a minute behind counts as 1 ms (and would move `last` back if the
    // request passed).
    let z = zone(R1);
    assert_eq!(
        z.check(b"k", 0, DelayPolicy::NoDelay, 100_000),
        RateVerdict::Pass
    );
    assert_eq!(z.check(b"k", 0, DelayPolicy::NoDelay, 10_000), reject(999));
    assert_eq!(
        z.check(b"k", 0, DelayPolicy::NoDelay, 101_000),
        RateVerdict::Pass
    );
}

#[test]
fn keys_are_isolated() {
    let z = zone(R1);
    assert_eq!(z.check(b"a", 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"a", 0, DelayPolicy::Delay, 0), reject(1000));
    assert_eq!(z.check(b"b", 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.key_count(), 2);
}

#[test]
fn empty_keys_are_skipped_and_huge_ones_limited() {
    let z = zone(R1);
    for _ in 0..3 {
        assert_eq!(z.check(b"", 0, DelayPolicy::Delay, 0), RateVerdict::Skipped);
    }
    let max = vec![b'x'; MAX_KEY_LEN];
    assert_eq!(z.check(&max, 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.key_count(), 1);
    // nginx would skip these; pinlb limits each by its digest, apart from the others.
    let huge = vec![b'x'; MAX_KEY_LEN + 1];
    assert_eq!(z.check(&huge, 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.check(&huge, 0, DelayPolicy::Delay, 0), reject(1000));
    let other = vec![b'y'; MAX_KEY_LEN + 1];
    assert_eq!(z.check(&other, 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.key_count(), 3);
    assert_eq!(check_all(&[], 0), RateVerdict::Skipped);
}

#[test]
fn full_zone_evicts_least_recently_used() {
    let z = small_zone(R1, 3);
    for k in [b"a", b"b", b"c"] {
        assert_eq!(z.check(k, 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    }
    // Touch "a" (a rejection still counts as use), so "b" is the oldest.
    assert_eq!(z.check(b"a", 0, DelayPolicy::Delay, 0), reject(1000));
    // "d" does not fit: nothing is idle for a minute, so "b" is evicted by force.
    assert_eq!(z.check(b"d", 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.key_count(), 3);
    // "b" was forgotten, so it passes again; "a" and "c" were kept.
    assert_eq!(z.check(b"a", 0, DelayPolicy::Delay, 0), reject(1000));
    assert_eq!(z.check(b"b", 0, DelayPolicy::Delay, 0), RateVerdict::Pass);
    assert_eq!(z.check(b"d", 0, DelayPolicy::Delay, 0), reject(1000));
}

#[test]
fn idle_drained_nodes_expire_on_new_keys() {
    let z = zone(R1);
    for k in [b"a", b"b", b"c", b"d"] {
        assert_eq!(z.check(k, 1, DelayPolicy::NoDelay, 0), RateVerdict::Pass);
    }
    assert_eq!(z.check(b"d", 1, DelayPolicy::NoDelay, 0), RateVerdict::Pass);
    // A minute later a new key drops at most two old, drained nodes ("a", "b").
    assert_eq!(
        z.check(b"e", 1, DelayPolicy::NoDelay, 60_000),
        RateVerdict::Pass
    );
    assert_eq!(z.key_count(), 3);
    // Not before a minute of idleness: "c" was last used at 0.
    assert_eq!(
        z.check(b"f", 1, DelayPolicy::NoDelay, 30_000),
        RateVerdict::Pass
    );
    assert_eq!(z.key_count(), 4);
    // An old node with excess still to drain stays: "d" has excess 1000 at t=0, which
    // at 16 milli-r/s takes 62.5 s to leak.
    let slow = zone(16);
    slow.check(b"d", 1, DelayPolicy::NoDelay, 0);
    slow.check(b"d", 1, DelayPolicy::NoDelay, 0);
    slow.check(b"e", 1, DelayPolicy::NoDelay, 61_000);
    assert_eq!(slow.key_count(), 2);
    assert!(slow.lock().index.contains_key(&b"d"[..]));
    // At 63 s it has drained, and goes.
    slow.check(b"f", 1, DelayPolicy::NoDelay, 63_000);
    assert!(!slow.lock().index.contains_key(&b"d"[..]));
    assert_eq!(slow.key_count(), 2);
}

#[test]
fn no_memory_when_nothing_can_be_evicted() {
    // A zone too small for even one node.
    let z = RateZone::with_budget(R1, 64);
    assert_eq!(
        z.check(b"a", 5, DelayPolicy::Delay, 0),
        RateVerdict::Reject {
            excess: 0,
            limit: 0,
            cause: RejectCause::NoMemory
        }
    );
    // A full zone whose oldest node is pinned by a request in progress.
    let z = small_zone(R1, 1);
    let mut t = z.lock();
    assert!(matches!(t.lookup(b"a", R1, 0, 0, false), Lookup::Pinned(_)));
    assert!(matches!(t.lookup(b"b", R1, 0, 0, true), Lookup::NoMemory));
}

#[test]
fn several_limits_roll_back_on_reject() {
    // limit_req zone=a burst=1 nodelay; limit_req zone=b nodelay; (b is last)
    let a = zone(16);
    let b = zone(16);
    let req = |ka: &'static [u8], kb: &'static [u8]| {
        check_all(
            &[
                ReqLimit {
                    zone: &a,
                    key: ka,
                    burst: 1,
                    delay: DelayPolicy::NoDelay,
                },
                ReqLimit {
                    zone: &b,
                    key: kb,
                    burst: 0,
                    delay: DelayPolicy::NoDelay,
                },
            ],
            100_000,
        )
    };
    assert_eq!(req(b"x", b"1"), RateVerdict::Pass);
    // b rejects; a's lookup (excess 1000, within burst) is not committed.
    assert_eq!(
        req(b"x", b"1"),
        RateVerdict::Reject {
            excess: 1000,
            limit: 1,
            cause: RejectCause::Excess
        }
    );
    // So a still has room for one more.
    assert_eq!(req(b"x", b"2"), RateVerdict::Pass);
    assert_eq!(
        req(b"x", b"3"),
        RateVerdict::Reject {
            excess: 2000,
            limit: 0,
            cause: RejectCause::Excess
        }
    );
    // An empty key in the last limit leaves the others working.
    assert_eq!(req(b"y", b""), RateVerdict::Pass);
    assert_eq!(req(b"y", b""), RateVerdict::Pass);
    assert!(matches!(
        req(b"y", b""),
        RateVerdict::Reject { limit: 0, .. }
    ));
    // No pins left behind.
    assert!(a.lock().nodes.iter().all(|n| n.pins == 0));
}

#[test]
fn several_limits_take_the_longest_delay() {
    let a = zone(R1); // 1r/s
    let b = zone(2 * R1); // 2r/s
    let req = |now| {
        check_all(
            &[
                ReqLimit {
                    zone: &a,
                    key: b"k",
                    burst: 10,
                    delay: DelayPolicy::Delay,
                },
                ReqLimit {
                    zone: &b,
                    key: b"k",
                    burst: 10,
                    delay: DelayPolicy::Delay,
                },
            ],
            now,
        )
    };
    assert_eq!(req(0), RateVerdict::Pass);
    // Both at excess 1000: a's delay (1000 ms) beats b's (500 ms).
    assert_eq!(
        req(0),
        RateVerdict::Delay {
            delay: Duration::from_millis(1000),
            excess: 1000,
            limit: 0
        }
    );
}

#[test]
fn new_key_in_an_earlier_limit_starts_drained() {
    // nginx creates such a node with last = 0; the account step then finds it fully
    // drained, so it ends with excess 0 like a new key in the last limit.
    let a = zone(R1);
    let b = zone(R1);
    let limits = [
        ReqLimit {
            zone: &a,
            key: b"k",
            burst: 0,
            delay: DelayPolicy::Delay,
        },
        ReqLimit {
            zone: &b,
            key: b"k",
            burst: 5,
            delay: DelayPolicy::NoDelay,
        },
    ];
    assert_eq!(check_all(&limits, 5), RateVerdict::Pass);
    assert_eq!(a.check(b"k", 0, DelayPolicy::Delay, 5), reject(1000));
}

#[test]
fn threads_share_a_zone() {
    let z = zone(R1);
    let passed = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    if z.check(b"k", 49, DelayPolicy::NoDelay, 7) == RateVerdict::Pass {
                        passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(passed.into_inner(), 50);
}

proptest! {
    #[test]
    fn burst_plus_one_pass_without_time(burst in 0u64..50, rate in 1u64..100_000,
                                        now: u64, nodelay: bool) {
        let z = zone(rate);
        let policy = if nodelay { DelayPolicy::NoDelay } else { DelayPolicy::Delay };
        let accepted = (0..burst + 10)
            .filter(|_| !matches!(z.check(b"k", burst, policy, now),
                                  RateVerdict::Reject { .. }))
            .count() as u64;
        prop_assert_eq!(accepted, burst + 1);
    }

    #[test]
    fn accepted_never_exceeds_rate(
        rate in 1u64..20_000,
        burst in 0u64..20,
        gaps in proptest::collection::vec(0u64..400, 1..400),
        start in 0u64..1_000_000_000,
    ) {
        let z = zone(rate);
        let mut now = start;
        let mut accepted = 0u64;
        for gap in gaps {
            now += gap;
            if !matches!(z.check(b"k", burst, DelayPolicy::Delay, now),
                         RateVerdict::Reject { .. }) {
                accepted += 1;
            }
            // Requests the bucket can have let through by `now`, in milli-requests.
            let allowed = u128::from(rate) * u128::from(now - start) / 1000
                + u128::from(burst + 1) * 1000;
            prop_assert!(u128::from(accepted) * 1000 <= allowed,
                         "accepted {} by {} ms", accepted, now - start);
        }
    }

    #[test]
    fn lru_bookkeeping_stays_consistent(
        ops in proptest::collection::vec((0u8..12, 0u64..70_000), 1..200),
        cap in 1u64..6,
    ) {
        let z = small_zone(R1, cap);
        let mut now = 0;
        for (k, gap) in ops {
            now += gap;
            let v = z.check(&[k], 1, DelayPolicy::NoDelay, now);
            let no_memory = matches!(
                v,
                RateVerdict::Reject { cause: RejectCause::NoMemory, .. }
            );
            prop_assert!(!no_memory);
            let t = z.lock();
            prop_assert!(t.index.len() as u64 <= cap);
            prop_assert_eq!(t.used, t.index.len() as u64 * 128);
            // Walk the list both ways.
            let mut seen = 0;
            let mut s = t.head;
            let mut prev = NIL;
            while s != NIL {
                prop_assert_eq!(t.nodes[s].prev, prev);
                prop_assert_eq!(t.index.get(&t.nodes[s].key), Some(&s));
                prev = s;
                s = t.nodes[s].next;
                seen += 1;
            }
            prop_assert_eq!(prev, t.tail);
            prop_assert_eq!(seen, t.index.len());
        }
    }
}
