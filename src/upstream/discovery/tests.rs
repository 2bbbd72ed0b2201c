use super::*;
use crate::config::Origin;

fn conf(valid: Option<u64>) -> ResolverConf {
    let mut r = ResolverConf::system(Origin::Builtin);
    r.valid = valid.map(Duration::from_secs);
    r
}

fn key() -> NameKey {
    NameKey {
        upstream: "web".into(),
        host_port: "app:80".into(),
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn lookups_follow_the_ttl_or_valid_with_a_floor_of_one_second() {
    let secs = Duration::from_secs;
    assert_eq!(next_interval(&conf(None), secs(30), false, None), secs(30));
    assert_eq!(next_interval(&conf(None), secs(0), false, None), FLOOR);
    assert_eq!(
        next_interval(&conf(Some(5)), secs(600), false, None),
        secs(5)
    );
    assert_eq!(next_interval(&conf(Some(5)), secs(1), false, None), secs(5));
    assert_eq!(next_interval(&conf(Some(0)), secs(60), false, None), FLOOR);
    // New addresses waiting for a check are looked at again at the check's interval.
    assert_eq!(
        next_interval(&conf(None), secs(600), true, Some(secs(2))),
        secs(2)
    );
    assert_eq!(
        next_interval(&conf(None), secs(600), false, Some(secs(2))),
        secs(600)
    );
}

#[test]
fn failed_lookups_back_off_to_thirty_seconds() {
    let got: Vec<u64> = (1..=8).map(|n| retry_interval(n).as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
}

#[test]
fn unreachable_families_are_left_out_and_counted() {
    let ips: Vec<IpAddr> = ["10.0.0.2", "::1", "10.0.0.1", "10.0.0.1", "2001:db8::1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let (found, dropped) = usable(&ips, 80, |ip| ip.is_ipv4());
    assert_eq!(found, addrs(&["10.0.0.1:80", "10.0.0.2:80"]));
    assert_eq!(dropped, 2);
    let (all, none) = usable(&ips, 80, |_| true);
    assert_eq!((all.len(), none), (4, 0));
}

#[test]
fn failed_empty_and_nxdomain_answers_keep_the_last_addresses() {
    let d = Discovery::default();
    let now = Instant::now();
    let first = addrs(&["127.0.0.2:80", "127.0.0.3:80"]);
    let found = Answer::Found {
        addrs: first.clone(),
        ttl: Duration::from_secs(1),
    };
    assert!(d.record(&key(), &found, &first, &conf(None), None, now));
    assert!(!d.record(&key(), &found, &first, &conf(None), None, now));
    for bad in [
        Answer::NxDomain,
        Answer::Empty("no address records".into()),
        Answer::Failed("timed out".into()),
    ] {
        assert!(!d.record(&key(), &bad, &[], &conf(None), None, now));
        assert_eq!(d.addresses("web", "app:80"), Some(first.clone()));
    }
    let (_, state) = d.snapshot().remove(0);
    assert_eq!(state.failures, 3);
    assert_eq!(state.last_error.as_deref(), Some("timed out"));
    assert_eq!(state.next, Some(now + Duration::from_secs(4)));
}

#[test]
fn new_addresses_wait_until_ready_and_vanished_ones_leave() {
    let d = Discovery::default();
    let now = Instant::now();
    let one = addrs(&["127.0.0.2:80"]);
    let found = |list: &[&str]| Answer::Found {
        addrs: addrs(list),
        ttl: Duration::from_secs(60),
    };
    d.record(
        &key(),
        &found(&["127.0.0.2:80"]),
        &one,
        &conf(None),
        None,
        now,
    );
    // 127.0.0.3 has not passed its check: it waits, and the name is looked at again soon.
    let recheck = Some(Duration::from_secs(2));
    let changed = d.record(
        &key(),
        &found(&["127.0.0.2:80", "127.0.0.3:80"]),
        &[],
        &conf(None),
        recheck,
        now,
    );
    assert!(!changed);
    let (_, state) = d.snapshot().remove(0);
    assert_eq!(state.pending, addrs(&["127.0.0.3:80"]));
    assert_eq!(state.next, Some(now + Duration::from_secs(2)));
    // It passed: it joins. Then 127.0.0.2 vanishes.
    let both = addrs(&["127.0.0.2:80", "127.0.0.3:80"]);
    let ready = addrs(&["127.0.0.3:80"]);
    assert!(d.record(
        &key(),
        &found(&["127.0.0.2:80", "127.0.0.3:80"]),
        &ready,
        &conf(None),
        recheck,
        now
    ));
    assert_eq!(d.addresses("web", "app:80"), Some(both));
    assert!(d.record(
        &key(),
        &found(&["127.0.0.3:80"]),
        &[],
        &conf(None),
        recheck,
        now
    ));
    assert_eq!(d.addresses("web", "app:80"), Some(ready));
}

#[test]
fn host_and_port_split_as_configured() {
    assert_eq!(split("app:80"), Some(("app", 80)));
    assert_eq!(split("[::1]:8080"), Some(("::1", 8080)));
    assert_eq!(split("app"), None);
    assert_eq!(split("app:x"), None);
}
