//! Balancing and routes through the real binary: smooth weighted round robin with exact
//! shares in nginx's order, `hash` keys, `max_conns`, route prefixes and `return` routes.

mod common;

use common::*;
use serde_json::json;

fn weighted(backends: &[(&Backend, u32)]) -> serde_json::Value {
    backends
        .iter()
        .map(|(b, w)| json!({ "name": b.name, "addr": b.addr.to_string(), "weight": w }))
        .collect()
}

#[test]
fn weights_2_1_1_give_each_server_exactly_its_share_every_4_requests() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = Pinlb::start(&config(
        weighted(&[(&a, 2), (&b, 1), (&c, 1)]),
        json!({}),
        json!({}),
    ));
    let mut client = lb.client();
    for _ in 0..5 {
        let mut round = served_by(&mut client, 4, &[]);
        round.sort();
        assert_eq!(round, ["a", "a", "b", "c"]);
    }
    assert_eq!((a.requests(), b.requests(), c.requests()), (10, 5, 5));
}

#[test]
fn weights_5_1_1_interleave_like_nginx() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = Pinlb::start(&config(
        weighted(&[(&a, 5), (&b, 1), (&c, 1)]),
        json!({}),
        json!({}),
    ));
    let order = served_by(&mut lb.client(), 14, &[]).concat();
    assert_eq!(order, "aabacaaaabacaa");
}

#[test]
fn equal_weights_rotate_across_connections() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = Pinlb::start(&config(servers(&[&a, &b, &c]), json!({}), json!({})));
    // A new connection per request: the rotation is per pool, not per connection.
    let order: Vec<String> = (0..6)
        .map(|_| {
            get(lb.addr, "/", &[])
                .unwrap()
                .header("x-served-by")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order.concat(), "abcabc");
}

#[test]
fn longest_route_prefix_wins() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut cfg = config(servers(&[&a]), json!({}), json!({}));
    merge(
        &mut cfg,
        json!({
            "upstreams": { "api": { "servers": servers(&[&b]) } },
            "routes": [ { "path": "/", "upstream": "web" }, { "path": "/api/", "upstream": "api" } ]
        }),
    );
    let lb = Pinlb::start(&cfg);
    let mut client = lb.client();
    assert_eq!(client.get("/api/users", &[]).unwrap().text(), "b");
    assert_eq!(client.get("/apix", &[]).unwrap().text(), "a");
    assert_eq!(client.get("/", &[]).unwrap().text(), "a");
}

#[test]
fn a_path_no_route_covers_gets_404() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "path": "/only/" }),
        json!({}),
    ));
    let r = get(lb.addr, "/other", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(a.requests(), 0);
}

/// For each of `keys`, the server that answers a request with cookie `sid=KEY`.
fn server_by_key(lb: &Pinlb, keys: std::ops::Range<usize>) -> Vec<String> {
    let mut client = lb.client();
    keys.map(|k| {
        let cookie = format!("sid={k}");
        served_by(&mut client, 1, &[("Cookie", &cookie)]).remove(0)
    })
    .collect()
}

/// pinlb over `backends` balanced by `hash $cookie_sid`, consistent or not.
fn hashed(backends: &[&Backend], consistent: bool) -> Pinlb {
    let balance = json!({ "hash": { "key": "$cookie_sid", "consistent": consistent } });
    Pinlb::start(&config(
        servers(backends),
        json!({}),
        json!({ "upstreams": { "web": { "balance": balance } } }),
    ))
}

#[test]
fn hash_sends_each_key_to_one_server_and_spreads_the_keys() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = hashed(&[&a, &b, &c], false);
    let first = server_by_key(&lb, 0..30);
    assert_eq!(server_by_key(&lb, 0..30), first, "a key moved");
    for name in ["a", "b", "c"] {
        assert!(
            first.iter().any(|s| s == name),
            "{name} got no key: {first:?}"
        );
    }
}

/// Where 60 keys go over two servers, then over the same two and a third: a consistent
/// hash moves keys only to the new server; the plain hash (nginx's `hash` without
/// `consistent`: a CRC32 modulo the weights) also moves keys between the two old ones.
fn keys_moved_between_old_servers(consistent: bool) -> usize {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let before = server_by_key(&hashed(&[&a, &b], consistent), 0..60);
    let after = server_by_key(&hashed(&[&a, &b, &c], consistent), 0..60);
    assert!(after.iter().any(|s| s == "c"), "c got no key: {after:?}");
    before
        .iter()
        .zip(&after)
        .filter(|(was, now)| *now != "c" && was != now)
        .count()
}

#[test]
fn consistent_hash_moves_keys_only_to_an_added_server() {
    assert_eq!(keys_moved_between_old_servers(true), 0);
}

#[test]
fn plain_hash_reshuffles_keys_when_a_server_is_added() {
    assert!(keys_moved_between_old_servers(false) > 0);
}

#[test]
fn max_conns_sends_requests_past_a_full_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let conf = json!([
        { "name": "a", "addr": a.addr.to_string(), "max_conns": 1 },
        { "name": "b", "addr": b.addr.to_string() }
    ]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    // The first request goes to `a` and stays there; `a` takes no second one meanwhile.
    let addr = lb.addr;
    let slow =
        std::thread::spawn(move || get(addr, "/slow/a/3000", &[]).unwrap().text().to_string());
    assert!(poll_until(std::time::Duration::from_secs(5), || a
        .requests()
        == 1));
    let during = served_by(&mut lb.client(), 4, &[]);
    assert_eq!(during, ["b"; 4]);
    assert_eq!(slow.join().unwrap(), "a");
    // Once it is done (counted out just after its response was written), `a` is back.
    let idle = || lb.status()["upstreams"]["web"]["servers"][0]["inflight"] == 0;
    assert!(poll_until(std::time::Duration::from_secs(2), idle));
    let mut after = served_by(&mut lb.client(), 2, &[]);
    after.sort();
    assert_eq!(after, ["a", "b"]);
}

#[test]
fn return_routes_answer_without_a_server() {
    let a = Backend::start("a");
    let mut cfg = config(servers(&[&a]), json!({}), json!({}));
    merge(
        &mut cfg,
        json!({ "routes": [
            { "path": "/", "upstream": "web" },
            { "path": "/ping", "return": { "status": 200, "text": "pong from $host" } },
            { "path": "/gone", "return": { "status": 410 } },
            { "path": "/old/", "return": { "status": 301, "text": "http://new.test$request_uri" } }
        ] }),
    );
    let lb = Pinlb::start(&cfg);
    let mut client = lb.client();
    let r = client.get("/ping", &[]).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "pong from pinlb.test"));
    let r = client.get("/gone", &[]).unwrap();
    assert_eq!((r.status, r.body.as_str()), (410, "410 Gone\n"));
    let r = client.get("/old/page?x=1", &[]).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://new.test/old/page?x=1"));
    assert_eq!(a.requests(), 0);
}

#[test]
fn backup_serves_only_when_no_other_server_can_and_down_never() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let conf = json!([
        { "name": "a", "addr": a.addr.to_string(), "backup": true },
        { "name": "b", "addr": b.addr.to_string() },
        { "name": "c", "addr": c.addr.to_string(), "down": true }
    ]);
    let lb = Pinlb::start(&config(conf, json!({}), json!({})));
    assert_eq!(served_by(&mut lb.client(), 4, &[]), ["b"; 4]);
    b.stop();
    // The request that finds `b` gone moves on to the backup.
    assert_eq!(served_by(&mut lb.client(), 4, &[]), ["a"; 4]);
    assert_eq!(c.requests(), 0);
}

#[test]
fn least_conn_sends_requests_away_from_a_busy_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(
        servers(&[&a, &b]),
        json!({}),
        json!({ "upstreams": { "web": { "balance": "least_conn" } } }),
    ));
    let addr = lb.addr;
    let slow =
        std::thread::spawn(move || get(addr, "/slow/a/3000", &[]).unwrap().text().to_string());
    assert!(poll_until(std::time::Duration::from_secs(5), || a
        .requests()
        == 1));
    for _ in 0..4 {
        // `b` is counted out just after its answer was written: wait until it is idle.
        let b_idle = || lb.status()["upstreams"]["web"]["servers"][1]["inflight"] == 0;
        assert!(poll_until(std::time::Duration::from_secs(2), b_idle));
        assert_eq!(get(lb.addr, "/", &[]).unwrap().text(), "b");
    }
    assert_eq!(slow.join().unwrap(), "a");
}

#[test]
fn ip_hash_sends_one_client_address_to_one_server() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let lb = Pinlb::start(&config(
        servers(&[&a, &b, &c]),
        json!({}),
        json!({ "upstreams": { "web": { "balance": "ip_hash" } } }),
    ));
    // Every request comes from 127.0.0.1, each on a new connection.
    let order: Vec<String> = (0..6)
        .map(|_| get(lb.addr, "/", &[]).unwrap().text().to_string())
        .collect();
    assert!(order.iter().all(|s| *s == order[0]), "{order:?}");
}
