//! Selection, checked against what nginx 1.22 answered for the same upstreams: servers
//! `127.0.0.1:19101` (a), `:19102` (b) and `:19103` (c), one worker, keys `key0`..`key39`.

use super::*;

fn members(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| Member {
            weight,
            configured_addr: format!("127.0.0.1:{}", 19101 + i),
            inflight: Arc::default(),
        })
        .collect()
}

fn letter(i: usize) -> char {
    char::from(b'a' + u8::try_from(i).unwrap())
}

/// The picks for `keys` (or `n` picks without a key), skipping the members in `down`.
fn picks(sel: &Selector, keys: &[String], down: &[usize]) -> String {
    keys.iter()
        .map(|k| letter(sel.pick(k.as_bytes(), |i| !down.contains(&i)).unwrap()))
        .collect()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key{i}")).collect()
}

fn no_keys(n: usize) -> Vec<String> {
    vec![String::new(); n]
}

#[test]
fn round_robin_weights_5_1_1_interleave_like_nginx() {
    let sel = Selector::new(Algorithm::RoundRobin, &members(&[5, 1, 1]));
    assert_eq!(picks(&sel, &no_keys(14), &[]), "aabacaaaabacaa");
}

#[test]
fn round_robin_skipping_a_server_keeps_the_others_shares_exact() {
    let sel = Selector::new(Algorithm::RoundRobin, &members(&[5, 1, 1]));
    assert_eq!(picks(&sel, &no_keys(6), &[0]), "bcbcbc");
    let sel = Selector::new(Algorithm::RoundRobin, &members(&[2, 1, 1]));
    let got = picks(&sel, &no_keys(300), &[1]);
    assert_eq!(got.matches('a').count(), 200, "{got}");
    assert_eq!(got.matches('c').count(), 100, "{got}");
}

#[test]
fn nothing_eligible_picks_nothing() {
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::LeastConn,
        Algorithm::IpHash,
        Algorithm::Hash,
        Algorithm::Consistent,
    ] {
        let sel = Selector::new(algorithm, &members(&[1, 2]));
        assert_eq!(sel.pick(b"k", |_| false), None, "{algorithm:?}");
    }
}

#[test]
fn least_conn_prefers_the_least_loaded_relative_to_weight() {
    let m = members(&[3, 1]);
    let sel = Selector::new(Algorithm::LeastConn, &m);
    m[0].inflight.store(5, Ordering::Relaxed); // 5/3 < 2/1
    m[1].inflight.store(2, Ordering::Relaxed);
    assert_eq!(sel.pick(b"", |_| true), Some(0));
    m[0].inflight.store(7, Ordering::Relaxed); // 7/3 > 2/1
    assert_eq!(sel.pick(b"", |_| true), Some(1));
}

#[test]
fn least_conn_equals_take_turns_by_weight_like_nginx() {
    // nginx: `least_conn; server a weight=2; server b;`, nine sequential requests.
    let sel = Selector::new(Algorithm::LeastConn, &members(&[2, 1]));
    assert_eq!(picks(&sel, &no_keys(9), &[]), "abaabaaba");
}

#[test]
fn hash_matches_nginx() {
    let sel = Selector::new(Algorithm::Hash, &members(&[1, 2, 1]));
    assert_eq!(
        picks(&sel, &keys(40), &[]),
        "cabbbbacacacbbbbcacabbcaacbbbbbbaccabbbb"
    );
}

#[test]
fn hash_rehashes_past_a_down_server_like_nginx() {
    let sel = Selector::new(Algorithm::Hash, &members(&[1, 1, 1]));
    assert_eq!(
        picks(&sel, &keys(40), &[1]),
        "ccaaccaaaaaacccaaaacaaccccaacaccaccaccca"
    );
}

#[test]
fn consistent_hash_matches_nginx() {
    let sel = Selector::new(Algorithm::Consistent, &members(&[1, 2, 1]));
    assert_eq!(
        picks(&sel, &keys(40), &[]),
        "bbbbbcbabbabaaccbabbcaccbacbbbbbcbcbbbbb"
    );
}

#[test]
fn consistent_hash_moves_only_the_keys_of_a_removed_server() {
    let sel = Selector::new(Algorithm::Consistent, &members(&[1, 2, 1]));
    let all = picks(&sel, &keys(200), &[]);
    let without_c = picks(&sel, &keys(200), &[2]);
    for (before, after) in all.chars().zip(without_c.chars()) {
        if before != 'c' {
            assert_eq!(before, after);
        }
    }
}

#[test]
fn an_empty_key_falls_back_to_round_robin_like_nginx() {
    for algorithm in [Algorithm::Hash, Algorithm::Consistent] {
        let sel = Selector::new(algorithm, &members(&[1, 2, 1]));
        assert_eq!(picks(&sel, &no_keys(9), &[]), "bacbbacbb", "{algorithm:?}");
    }
}

#[test]
fn ip_hash_matches_nginx_arithmetic() {
    // hash = 89; for each of 192, 168, 1: hash = (hash * 113 + octet) % 6271.
    let mut hash: u64 = 89;
    for o in [192u64, 168, 1] {
        hash = (hash * 113 + o) % 6271;
    }
    let sel = Selector::new(Algorithm::IpHash, &members(&[1, 1, 1]));
    let (key, len) = ip_hash_key("192.168.1.77".parse().unwrap());
    assert_eq!(sel.pick(&key[..len], |_| true), Some((hash % 3) as usize));
}

#[test]
fn ip_hash_keeps_a_slash_24_together_and_maps_ipv4_in_ipv6() {
    let sel = Selector::new(Algorithm::IpHash, &members(&[1, 1, 1, 1, 1]));
    let pick = |ip: &str| {
        let (key, len) = ip_hash_key(ip.parse().unwrap());
        sel.pick(&key[..len], |_| true)
    };
    let first = pick("203.0.113.1");
    for last in [2, 50, 254] {
        assert_eq!(pick(&format!("203.0.113.{last}")), first);
    }
    assert_eq!(pick("::ffff:203.0.113.9"), first);
    assert_eq!(ip_hash_key("2001:db8::1".parse().unwrap()).1, 16);
}

#[test]
fn ip_hash_with_every_pick_unusable_falls_back_to_round_robin() {
    let sel = Selector::new(Algorithm::IpHash, &members(&[1, 1, 1]));
    let (key, len) = ip_hash_key("198.51.100.9".parse().unwrap());
    let hashed = sel.pick(&key[..len], |_| true).unwrap();
    let other = sel.pick(&key[..len], |i| i != hashed).unwrap();
    assert_ne!(other, hashed);
}

#[test]
fn servers_with_the_same_text_share_their_points() {
    let mut m = members(&[1, 1]);
    m[1].configured_addr = m[0].configured_addr.clone();
    let sel = Selector::new(Algorithm::Consistent, &m);
    // Every key lands on the one text; its two servers take turns.
    let got = picks(&sel, &keys(10), &[]);
    assert_eq!(got.matches('a').count(), 5, "{got}");
    assert_eq!(got.matches('b').count(), 5, "{got}");
}
