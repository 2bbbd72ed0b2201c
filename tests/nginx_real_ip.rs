//! nginx's realip (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive`) through the
//! real binary: clients on 127.0.0.2 (a trusted proxy) and 127.0.0.3 (not trusted) send
//! forwarding headers, and `$remote_addr`, the headers sent upstream, `ip_hash`,
//! `limit_req` keys, the access log and the JSON config all follow what realip found.

mod common;

use common::*;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const TRUSTED: &str = "127.0.0.2";
const UNTRUSTED: &str = "127.0.0.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// pinlb on an nginx config written from `text`, where `LISTEN` is replaced by the
/// address it listens on.
fn nginx(text: &str) -> Pinlb {
    let dir = TempDir::new();
    let listen = free_addr();
    let conf = dir.write("nginx.conf", &text.replace("LISTEN", &listen.to_string()));
    Pinlb::start_file(&conf, dir, listen)
}

/// One GET from the local address `from`.
fn get_from(addr: SocketAddr, from: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut client = Client::connect_from(addr, ip(from)).expect("connect");
    client.get(path, headers).expect("answer")
}

/// The value of `name` in a `/headers` echo.
fn echoed(body: &str, name: &str) -> Option<String> {
    body.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[test]
fn a_trusted_proxy_names_the_client_and_an_untrusted_one_cannot() {
    let app = Backend::start("app");
    let lb = nginx(&format!(
        r#"http {{
            set_real_ip_from {TRUSTED};
            set_real_ip_from 10.0.0.0/8;
            real_ip_header X-Forwarded-For;
            real_ip_recursive on;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            server {{
                listen LISTEN;
                location / {{ proxy_pass http://{}; }}
                location = /addr {{ return 200 "$remote_addr|$realip_remote_addr"; }}
            }}
        }}"#,
        app.addr
    ));
    let xff = [("X-Forwarded-For", "203.0.113.9, 10.1.2.3")];
    // Trusted peer, trusted hop skipped (recursive): the first untrusted address.
    let trusted = get_from(lb.addr, TRUSTED, "/addr", &xff);
    assert_eq!(trusted.body, "203.0.113.9|127.0.0.2");
    let up = get_from(lb.addr, TRUSTED, "/headers", &xff);
    assert_eq!(
        echoed(&up.body, "X-Real-IP").as_deref(),
        Some("203.0.113.9")
    );
    // nginx appends $remote_addr, the address realip found, to what the client sent.
    assert_eq!(
        echoed(&up.body, "X-Forwarded-For").as_deref(),
        Some("203.0.113.9, 10.1.2.3, 203.0.113.9")
    );
    // The same header from a client that is no trusted proxy changes nothing.
    let spoofed = get_from(lb.addr, UNTRUSTED, "/addr", &xff);
    assert_eq!(spoofed.body, "127.0.0.3|127.0.0.3");
    let up = get_from(lb.addr, UNTRUSTED, "/headers", &xff);
    assert_eq!(echoed(&up.body, "X-Real-IP").as_deref(), Some("127.0.0.3"));
    // Garbage in the header: the address stays.
    let garbage = get_from(lb.addr, TRUSTED, "/addr", &[("X-Forwarded-For", "unknown")]);
    assert_eq!(garbage.body, "127.0.0.2|127.0.0.2");
    // A thousand hops, all trusted, on a thousand lines: the first one, and no harm done.
    let hops: Vec<String> = (0..1000)
        .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let lines: Vec<(&str, &str)> = hops
        .iter()
        .map(|h| ("X-Forwarded-For", h.as_str()))
        .collect();
    let many = get_from(lb.addr, TRUSTED, "/addr", &lines);
    assert_eq!(many.body, "10.0.0.1|127.0.0.2");
    // Eight hundred on one line, within nginx's 8k line limit, the same way.
    let long = vec!["10.9.9.9"; 800].join(",");
    let one = get_from(lb.addr, TRUSTED, "/addr", &[("X-Forwarded-For", &long)]);
    assert_eq!(one.body, "10.9.9.9|127.0.0.2");
}

#[test]
fn without_recursion_the_last_hop_is_the_client_and_x_real_ip_is_the_default() {
    let lb = nginx(&format!(
        r#"http {{
            server {{
                listen LISTEN;
                set_real_ip_from {TRUSTED};
                location = /xff {{
                    real_ip_header X-Forwarded-For;
                    return 200 "$remote_addr";
                }}
                location / {{ return 200 "$remote_addr"; }}
            }}
        }}"#
    ));
    // Not recursive: the last entry, even a trusted one.
    let xff = [("X-Forwarded-For", "203.0.113.9, 10.1.2.3")];
    assert_eq!(get_from(lb.addr, TRUSTED, "/xff", &xff).body, "10.1.2.3");
    // The default header is X-Real-IP; X-Forwarded-For means nothing there.
    let real = [("X-Real-IP", "198.51.100.4")];
    assert_eq!(get_from(lb.addr, TRUSTED, "/", &real).body, "198.51.100.4");
    assert_eq!(get_from(lb.addr, TRUSTED, "/", &xff).body, "127.0.0.2");
    // The server's settings run first (nginx's post-read phase) and win when they find
    // an address, whatever the location says.
    assert_eq!(
        get_from(lb.addr, TRUSTED, "/xff", &real).body,
        "198.51.100.4"
    );
}

#[test]
fn location_settings_apply_when_the_server_found_nothing() {
    let lb = nginx(&format!(
        r#"http {{
            server {{
                listen LISTEN;
                location / {{ return 200 "$remote_addr"; }}
                location /inner {{
                    set_real_ip_from {TRUSTED};
                    real_ip_header X-Forwarded-For;
                    return 200 "$remote_addr";
                }}
            }}
        }}"#
    ));
    let xff = [("X-Forwarded-For", "192.0.2.44")];
    assert_eq!(get_from(lb.addr, TRUSTED, "/", &xff).body, "127.0.0.2");
    assert_eq!(
        get_from(lb.addr, TRUSTED, "/inner", &xff).body,
        "192.0.2.44"
    );
}

#[test]
fn ip_hash_limits_and_the_access_log_follow_the_real_address() {
    let backends: Vec<Backend> = (0..3).map(|i| Backend::start(&format!("b{i}"))).collect();
    let servers: String = backends
        .iter()
        .map(|b| format!("server {};", b.addr))
        .collect();
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let listen = free_addr();
    let conf = dir.write(
        "nginx.conf",
        &format!(
            r#"http {{
                log_format addr '$remote_addr $realip_remote_addr $status';
                limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
                set_real_ip_from {TRUSTED};
                upstream u {{ ip_hash; {servers} }}
                server {{
                    listen {listen};
                    access_log {} addr;
                    location / {{ proxy_pass http://u; }}
                    location /limited {{ limit_req zone=one; proxy_pass http://u; }}
                }}
            }}"#,
            log.display()
        ),
    );
    let lb = Pinlb::start_file(&conf, dir, listen);

    // ip_hash: each real client sticks to one server, and the clients spread although
    // they all arrive from the same proxy.
    let mut seen = std::collections::HashSet::new();
    for i in 0..12 {
        let client = format!("198.51.{i}.7");
        let first = get_from(lb.addr, TRUSTED, "/", &[("X-Real-IP", &client)]);
        let again = get_from(lb.addr, TRUSTED, "/", &[("X-Real-IP", &client)]);
        assert_eq!(first.body, again.body, "{client} moved");
        seen.insert(first.body);
    }
    assert!(seen.len() > 1, "every client went to {seen:?}");

    // limit_req by $binary_remote_addr: one request a minute per real client.
    let a = [("X-Real-IP", "192.0.2.1")];
    let b = [("X-Real-IP", "192.0.2.2")];
    assert_eq!(get_from(lb.addr, TRUSTED, "/limited", &a).status, 200);
    assert_eq!(get_from(lb.addr, TRUSTED, "/limited", &a).status, 503);
    assert_eq!(get_from(lb.addr, TRUSTED, "/limited", &b).status, 200);

    // The access log names the real client and the proxy it came through.
    let logged = poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("192.0.2.2 127.0.0.2 200"))
    });
    assert!(logged, "{:?}", std::fs::read_to_string(&log));
}

#[test]
fn json_real_ip_and_pin_allow_lists_see_the_real_address() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let cfg = config(
        servers(&[&a, &b]),
        json!({ "pin": { "header": "app", "allow_from": ["192.0.2.0/24"] } }),
        json!({ "real_ip": { "from": [TRUSTED], "header": "X-Forwarded-For" } }),
    );
    let lb = Pinlb::start(&cfg);
    let pin = |from: &str, client: &str| {
        let headers = [("X-Forwarded-For", client), ("app", "b")];
        let r = get_from(lb.addr, from, "/", &headers);
        r.header("X-Served-By").unwrap_or("").to_string()
    };
    // Only clients in 192.0.2.0/24 may pin; the proxy itself is not one of them.
    for _ in 0..4 {
        assert_eq!(pin(TRUSTED, "192.0.2.9"), "b");
    }
    let balanced: Vec<String> = (0..4).map(|_| pin(TRUSTED, "203.0.113.1")).collect();
    assert!(balanced.iter().any(|s| s == "a"), "{balanced:?}");
    // An untrusted client cannot claim an allowed address.
    let spoofed: Vec<String> = (0..4).map(|_| pin(UNTRUSTED, "192.0.2.9")).collect();
    assert!(spoofed.iter().any(|s| s == "a"), "{spoofed:?}");
}
