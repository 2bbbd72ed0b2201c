//! Smooth weighted round robin through the real binary: exact shares, nginx's order.

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
