//! Translation tests for directives that map one to one onto a model field: pinlb's own
//! `pinlb_*` directives and the shutdown timeout, the keep-alive settings, and the
//! settings inherited from `http` to `server` to `location`.

use super::tests::{http, translate_str};
use std::path::Path;
use std::time::Duration;

#[test]
fn pinlb_directives_and_worker_shutdown_timeout_set_the_lifecycle() {
    let c = translate_str(
        "pinlb_admin 127.0.0.1:9911; pinlb_drain_delay 2s; pinlb_upgrade_sock /run/up.sock;
         worker_shutdown_timeout 45s;
         http { server { location / { return 200; } } }",
    )
    .unwrap();
    assert_eq!(c.admin, Some("127.0.0.1:9911".parse().unwrap()));
    assert_eq!(c.lifecycle.drain_delay, Duration::from_secs(2));
    assert_eq!(c.lifecycle.upgrade_sock, Path::new("/run/up.sock"));
    assert_eq!(c.lifecycle.grace_period, Duration::from_secs(45));
    let off = translate_str("pinlb_admin off; http { }").unwrap();
    assert_eq!(off.admin, None);
}

#[test]
fn keepalive_settings_translate_for_clients_and_upstreams() {
    let c = translate_str(&http(
        "keepalive_timeout 20s 20s;
         upstream u { server 10.0.0.1; keepalive 4; keepalive_timeout 5s; keepalive_requests 50; }
         upstream bare { server 10.0.0.2; keepalive_requests 50; }
         server { location / { proxy_pass http://u; } location /b { proxy_pass http://bare; } }",
    ))
    .unwrap();
    assert_eq!(c.keepalive_timeout, Duration::from_secs(20));
    let k = c.upstreams["u"].keepalive.as_ref().unwrap();
    assert_eq!(
        (k.connections, k.timeout, k.requests),
        (4, Duration::from_secs(5), 50)
    );
    // Without `keepalive N` nginx keeps no idle connections of its own for the upstream.
    assert_eq!(c.upstreams["bare"].keepalive, None);
}

#[test]
fn hash_without_consistent_is_the_plain_hash() {
    let c = translate_str(&http(
        "upstream u { hash $remote_addr$http_x_user; server 10.0.0.1; server 10.0.0.2; }
         server { location / { proxy_pass http://u; } }",
    ))
    .unwrap();
    assert_eq!(
        c.upstreams["u"].balance,
        crate::config::Balance::Hash {
            key: "$remote_addr$http_x_user".into(),
            consistent: false
        }
    );
}

#[test]
fn settings_inherit_from_http_to_server_to_location() {
    let c = translate_str(&http(
        "add_header X-Http h;
         access_log /var/log/http.log;
         client_max_body_size 2k;
         proxy_send_timeout 7s;
         upstream u { server 10.0.0.1; }
         server {
             location /a { proxy_pass http://u; }
         }
         server {
             listen 8081;
             add_header X-Server s always;
             access_log /var/log/server.log combined;
             client_max_body_size 3k;
             location /b { proxy_pass http://u; }
             location /c {
                 proxy_pass http://u;
                 add_header X-Location l;
                 access_log off;
                 client_max_body_size 4k;
                 proxy_send_timeout 9s;
             }
         }",
    ))
    .unwrap();
    let route = |vs: usize, r: usize| &c.virtual_servers[vs].routes[r];
    let headers = |vs: usize, r: usize| {
        route(vs, r)
            .add_headers
            .iter()
            .map(|h| (h.name.as_str(), h.always))
            .collect::<Vec<_>>()
    };
    assert_eq!(headers(0, 0), [("X-Http", false)]);
    assert_eq!(headers(1, 0), [("X-Server", true)]);
    assert_eq!(headers(1, 1), [("X-Location", false)]);
    assert_eq!(route(0, 0).access_log[0].path, "/var/log/http.log");
    assert_eq!(route(1, 0).access_log[0].path, "/var/log/server.log");
    assert!(route(1, 1).access_log.is_empty());
    let body = |vs: usize, r: usize| route(vs, r).proxy.client_max_body_size;
    assert_eq!(
        (body(0, 0), body(1, 0), body(1, 1)),
        (Some(2048), Some(3072), Some(4096))
    );
    assert_eq!(route(0, 0).proxy.send_timeout, Duration::from_secs(7));
    assert_eq!(route(1, 1).proxy.send_timeout, Duration::from_secs(9));
}

#[test]
fn merge_slashes_is_read_at_http_and_server_level() {
    let c = translate_str(&http(
        "merge_slashes off;
         server { listen 8080; return 200; }
         server { listen 8081; merge_slashes on; return 200; }",
    ))
    .unwrap();
    let merged: Vec<bool> = c
        .virtual_servers
        .iter()
        .map(|vs| vs.merge_slashes)
        .collect();
    assert_eq!(merged, [false, true]);
    let default = translate_str(&http("server { listen 8080; return 200; }")).unwrap();
    assert!(default.virtual_servers[0].merge_slashes);
}
