//! nginx syntax for upstreams that move and sessions that stick: `resolver`,
//! `resolver_timeout`, `server ... resolve`, `sticky cookie`, `route=` and `drain`, each
//! through the binary against a name server the test controls and real backends.

mod common;

use common::dns::{DnsServer, Records, backends, ip};
use common::*;
use md5::{Digest, Md5};
use std::collections::BTreeSet;
use std::time::Duration;

const NAME: &str = "app.pinlb.test";

/// The backend names that answered `n` requests to `path`.
fn answered_by(lb: &Pinlb, path: &str, n: usize) -> BTreeSet<String> {
    let mut client = lb.client();
    (0..n)
        .map(|_| {
            let r = client.get(path, &[]).expect("request through pinlb");
            assert_eq!(r.status, 200, "body: {}; log:\n{}", r.body, lb.log());
            r.text().trim().to_string()
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn get_with_cookie(lb: &Pinlb, cookie: &str) -> Response {
    let r = lb
        .client()
        .get("/", &[("Cookie", cookie)])
        .expect("request through pinlb");
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

/// nginx's server ID: the hex MD5 of `ip:port`.
fn sid(b: &Backend) -> String {
    Md5::digest(b.addr.to_string().as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The value of the `srv` cookie a response sets, if it sets one.
fn set_cookie(r: &Response) -> Option<String> {
    let v = r.header("set-cookie")?;
    v.split(';')
        .next()?
        .strip_prefix("srv=")
        .map(str::to_string)
}

#[test]
fn nginx_resolver_and_server_resolve_follow_the_name() {
    let b = backends(3);
    let dns = DnsServer::start();
    // A second name server for the upstream with its own `resolver`.
    let own = DnsServer::start();
    dns.set(NAME, Records::A(vec![ip(2)], 300));
    own.set(NAME, Records::A(vec![ip(4)], 300));
    let dir = TempDir::new();
    let listen = free_addr();
    let port = b[0].addr.port();
    let conf = dir.write(
        "nginx.conf",
        &format!(
            "events {{}}
http {{
    resolver {dns} valid=1s ipv6=off;
    resolver_timeout 300ms;
    upstream web {{
        zone web 64k;
        server {NAME}:{port} resolve;
    }}
    upstream other {{
        zone other 64k;
        resolver {own} valid=1s;
        resolver_timeout 400ms;
        server {NAME}:{port} resolve;
    }}
    server {{
        listen {listen};
        location / {{ proxy_pass http://web; }}
        location /other {{ proxy_pass http://other; }}
    }}
}}
",
            dns = dns.addr,
            own = own.addr
        ),
    );
    let lb = Pinlb::start_file(&conf, dir, listen);
    assert_eq!(answered_by(&lb, "/", 3), set(&["b2"]));
    assert_eq!(answered_by(&lb, "/other", 3), set(&["b4"]));
    // valid=1s: looked up again every second although the TTL says 300.
    dns.set(NAME, Records::A(vec![ip(2), ip(3)], 300));
    assert!(
        poll_until(Duration::from_secs(4), || answered_by(&lb, "/", 4).len()
            == 2),
        "{}",
        lb.log()
    );
    assert_eq!(dns.aaaa_queries(), 0, "ipv6=off asks for A records only");
    // resolver_timeout (300ms in http, 400ms in `other`) bounds each lookup: silent
    // name servers fail within a second or two, not nginx's default 30 s, and the last
    // addresses stay.
    dns.set(NAME, Records::Silent);
    own.set(NAME, Records::Silent);
    for upstream in ["web", "other"] {
        let failed = poll_until(Duration::from_secs(4), || {
            let state = lb.status()["upstreams"][upstream]["resolve"][0].clone();
            state["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("timed out"))
        });
        assert!(failed, "{upstream}: {}", lb.status()["upstreams"][upstream]);
    }
    assert_eq!(answered_by(&lb, "/", 4), set(&["b2", "b3"]));
    assert_eq!(answered_by(&lb, "/other", 2), set(&["b4"]));
}

#[test]
fn nginx_sticky_cookie_sets_nginx_s_attributes() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let dir = TempDir::new();
    let listen = free_addr();
    let conf = dir.write(
        "nginx.conf",
        &format!(
            "events {{}}
http {{
    upstream web {{
        server {a} route=alpha;
        server {b} drain;
        sticky cookie srv expires=1h domain=.example.com path=/ httponly secure samesite=lax;
    }}
    server {{
        listen {listen};
        location / {{ proxy_pass http://web; }}
    }}
}}
",
            a = a.addr,
            b = b.addr
        ),
    );
    let lb = Pinlb::start_file(&conf, dir, listen);
    let r = lb.client().get("/", &[]).unwrap();
    assert_eq!(r.text().trim(), "a");
    let cookie = r.header("set-cookie").unwrap();
    let (value, attrs) = cookie.split_once("; expires=").unwrap();
    assert_eq!(value, "srv=alpha");
    assert!(
        attrs.ends_with(
            " GMT; max-age=3600; domain=.example.com; httponly; secure; samesite=lax; path=/"
        ),
        "{cookie}"
    );
    // With `expires`, every response renews the cookie, as nginx's does.
    let r = get_with_cookie(&lb, "srv=alpha");
    assert_eq!(set_cookie(&r).as_deref(), Some("alpha"));
    // `drain`: b only answers requests that name it.
    let mut client = lb.client();
    for _ in 0..4 {
        assert_eq!(client.get("/", &[]).unwrap().text().trim(), "a");
    }
    assert_eq!(
        get_with_cookie(&lb, &format!("srv={}", sid(&b)))
            .text()
            .trim(),
        "b"
    );
}
