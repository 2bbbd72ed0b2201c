//! `tutorial-3apps.conf` and `weighted-ports.conf`, unchanged but for addresses: round
//! robin, pins by header and cookie with the last matching `if` winning, the tutorial's
//! forwarding headers, and nginx's default `Host: $proxy_host`.

mod common;

use common::*;

struct Tutorial {
    lb: Pinlb,
    apps: [Backend; 3],
}

/// The tutorial's `app1:80`..`app3:80` pointed at local backends, `listen 80` at a free port.
fn tutorial() -> Tutorial {
    let apps = [
        Backend::start("app1"),
        Backend::start("app2"),
        Backend::start("app3"),
    ];
    let listen = free_addr();
    let mut replacements = vec![("listen 80;", format!("listen {listen};"))];
    for (i, app) in apps.iter().enumerate() {
        replacements.push((
            ["server app1:80;", "server app2:80;", "server app3:80;"][i],
            format!("server {};", app.addr),
        ));
        let pass = [
            "proxy_pass http://app1;",
            "proxy_pass http://app2;",
            "proxy_pass http://app3;",
        ][i];
        // Each `if` target appears twice (header and cookie); replace all of them.
        replacements.push((pass, format!("proxy_pass http://{};", app.addr)));
    }
    let (dir, conf) = nginx_fixture("tutorial-3apps.conf", &replacements);
    Tutorial {
        lb: Pinlb::start_file(&conf, dir, listen),
        apps,
    }
}

fn bodies(client: &mut Client, n: usize, headers: &[(&str, &str)]) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = client.get("/", headers).expect("request through pinlb");
            assert_eq!(r.status, 200, "{}", r.body);
            r.text().to_string()
        })
        .collect()
}

#[test]
fn tutorial_balances_round_robin() {
    let t = tutorial();
    assert_eq!(
        bodies(&mut t.lb.client(), 6, &[]).join(" "),
        "app1 app2 app3 app1 app2 app3"
    );
}

#[test]
fn tutorial_pins_by_header_and_by_cookie() {
    let t = tutorial();
    let mut client = t.lb.client();
    assert_eq!(bodies(&mut client, 3, &[("app", "app2")]), ["app2"; 3]);
    assert_eq!(
        bodies(&mut client, 3, &[("Cookie", "app=app3")]),
        ["app3"; 3]
    );
    assert_eq!(t.apps[0].requests(), 0);
}

#[test]
fn tutorial_last_matching_if_wins_so_the_cookie_beats_the_header() {
    let t = tutorial();
    // The cookie `if`s come after the header ones in the file.
    let got = bodies(
        &mut t.lb.client(),
        3,
        &[("app", "app1"), ("Cookie", "app=app3")],
    );
    assert_eq!(got, ["app3"; 3]);
}

#[test]
fn tutorial_unknown_pin_value_is_balanced() {
    let t = tutorial();
    assert_eq!(
        bodies(&mut t.lb.client(), 3, &[("app", "app7")]).join(" "),
        "app1 app2 app3"
    );
}

#[test]
fn tutorial_cookie_pins_read_the_cookie_as_nginx_does() {
    let t = tutorial();
    let mut client = t.lb.client();
    // nginx's `$cookie_app` matches the name in any case...
    assert_eq!(
        bodies(&mut client, 2, &[("Cookie", "APP=app2")]),
        ["app2"; 2]
    );
    // ...and keeps quotes, so `if ($cookie_app = "app2")` does not match `app="app2"`.
    assert_eq!(
        bodies(&mut client, 3, &[("Cookie", "app=\"app2\"")]).join(" "),
        "app1 app2 app3"
    );
}

#[test]
fn tutorial_pin_shares_the_pool_servers_health() {
    let t = tutorial();
    // A dead pinned server is a failed attempt of the pool's server: the request moves on.
    t.apps[1].stop();
    let got = bodies(&mut t.lb.client(), 4, &[("app", "app2")]);
    assert!(got.iter().all(|b| b != "app2"), "{got:?}");
}

#[test]
fn tutorial_sends_its_forwarding_headers() {
    let t = tutorial();
    let r =
        t.lb.client()
            .get(
                "/headers",
                &[
                    ("Host", "Shop.Example:8080"),
                    ("X-Forwarded-For", "198.51.100.4"),
                ],
            )
            .unwrap();
    let lines: Vec<&str> = r.body.lines().collect();
    assert!(
        lines.contains(&"Host: shop.example"),
        "Host $host: {lines:?}"
    );
    assert!(lines.contains(&"X-Real-IP: 127.0.0.1"), "{lines:?}");
    assert!(
        lines.contains(&"X-Forwarded-For: 198.51.100.4, 127.0.0.1"),
        "{lines:?}"
    );
    // `X-Forwarded-Host $server_name` is empty without a server_name: nginx sends nothing.
    assert!(
        !r.body.to_ascii_lowercase().contains("x-forwarded-host"),
        "{lines:?}"
    );
}

/// `weighted-ports.conf`: weights 3,1,1 on three ports of one host.
fn weighted() -> (Pinlb, [Backend; 3]) {
    let apps = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let listen = free_addr();
    let (dir, conf) = nginx_fixture(
        "weighted-ports.conf",
        &[
            ("listen 8080;", format!("listen {listen};")),
            ("127.0.0.1:1000", apps[0].addr.to_string()),
            ("127.0.0.1:2000", apps[1].addr.to_string()),
            ("127.0.0.1:3000", apps[2].addr.to_string()),
        ],
    );
    (Pinlb::start_file(&conf, dir, listen), apps)
}

#[test]
fn weighted_ports_interleave_3_1_1_like_nginx() {
    let (lb, apps) = weighted();
    let got = bodies(&mut lb.client(), 10, &[]).concat();
    assert_eq!(got, "abacaabaca");
    assert_eq!(
        apps.iter().map(Backend::requests).collect::<Vec<_>>(),
        [6, 2, 2]
    );
}

#[test]
fn without_proxy_set_header_host_is_the_upstream_name() {
    let (lb, _apps) = weighted();
    let r = lb
        .client()
        .get("/headers", &[("Host", "client.example")])
        .unwrap();
    assert!(r.body.lines().any(|l| l == "Host: backend"), "{}", r.body);
    assert!(
        !r.body.to_ascii_lowercase().contains("x-real-ip"),
        "{}",
        r.body
    );
}
