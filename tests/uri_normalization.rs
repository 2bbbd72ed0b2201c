//! Locations match the path as nginx normalises it (percent-decoded, `//` merged, `.` and
//! `..` resolved), so an access rule cannot be dodged with another spelling of its path;
//! and the upstream receives the request target as nginx would send it. Requests are
//! written byte for byte on raw sockets. (nginx 1.22 answers every case here the same.)

mod common;

use common::*;
use std::net::SocketAddr;

/// pinlb on an nginx config whose `http` block is `body` (`{listen}` and `{app}` filled in).
fn nginx_lb(body: &str, app: &Backend) -> Pinlb {
    let dir = TempDir::new();
    let listen = free_addr();
    let body = body
        .replace("{listen}", &listen.to_string())
        .replace("{app}", &app.addr.to_string());
    let conf = dir.write(
        "nginx.conf",
        &format!(
            "pid {d}/pinlb.pid;\npinlb_upgrade_sock {d}/upgrade.sock;\nhttp {{\naccess_log off;\n{body}\n}}\n",
            d = dir.path().display()
        ),
    );
    Pinlb::start_file(&conf, dir, listen)
}

/// `GET target HTTP/1.1` on a fresh connection, the target sent as is.
fn raw_get(addr: SocketAddr, target: &str) -> Response {
    let head = format!("GET {target} HTTP/1.1\r\nHost: pinlb.test\r\n\r\n");
    Client::connect(addr)
        .and_then(|mut c| c.send_raw(head.as_bytes()))
        .unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

const GUARDED: &str = "server {
    listen {listen};
    location /admin { return 403; }
    location = /x/y { return 200 \"exact x/y\\n\"; }
    location / { proxy_pass http://{app}; }
}";

#[test]
fn an_access_rule_cannot_be_bypassed_by_spelling_the_path_differently() {
    let app = Backend::start("app");
    let lb = nginx_lb(GUARDED, &app);
    for attack in [
        "/admin",
        "//admin",
        "///admin/",
        "/./admin",
        "/x/../admin",
        "/x/./../admin",
        "/%61dmin",
        "/%2fadmin",
        "/x/%2e%2e/admin",
        "/admin/../admin/panel",
    ] {
        let r = raw_get(lb.addr, attack);
        assert_eq!(r.status, 403, "GET {attack} reached: {}", r.body);
    }
    for spelling in ["/x/y", "/x//y", "/x/./y", "/x/z/../y", "/%78/y", "/x%2Fy"] {
        let r = raw_get(lb.addr, spelling);
        assert_eq!((r.status, r.text()), (200, "exact x/y"), "GET {spelling}");
    }
    assert_eq!(app.requests(), 0, "nothing reached the backend");
    // The same server, asked for other paths, proxies them.
    assert_eq!(raw_get(lb.addr, "/x/admin").text(), "app");
}

#[test]
fn a_path_above_the_root_or_with_a_bad_escape_is_a_400_and_closes_the_connection() {
    let app = Backend::start("app");
    let lb = nginx_lb(GUARDED, &app);
    for bad in [
        "/../x",
        "/a/../../x",
        "/%2e%2e/x",
        "/x/..%2f..%2fadmin",
        "/a%00b",
        "/a%zz",
        "/a%4",
    ] {
        let mut client = Client::connect(lb.addr).unwrap();
        let head = format!("GET {bad} HTTP/1.1\r\nHost: pinlb.test\r\n\r\n");
        let r = client.send_raw(head.as_bytes()).unwrap();
        assert_eq!((r.status, r.text()), (400, "400 Bad Request"), "GET {bad}");
        assert!(client.is_closed(), "GET {bad}: the connection stays open");
    }
    assert_eq!(app.requests(), 0);
}

#[test]
fn uri_is_the_normalised_path_and_request_uri_the_raw_one() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "server { listen {listen}; location / { return 200 \"$uri|$request_uri|$args\\n\"; } }",
        &app,
    );
    let r = raw_get(lb.addr, "/a//b/./c/../%64%2Fe?x=%2F&y=1");
    assert_eq!(
        r.text(),
        "/a/b/d/e|/a//b/./c/../%64%2Fe?x=%2F&y=1|x=%2F&y=1"
    );
}

#[test]
fn merge_slashes_off_keeps_runs_of_slashes_as_nginx_does() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "merge_slashes off;
         server { listen {listen};
             location = /x/y { return 200 \"exact\\n\"; }
             location / { return 200 \"$uri\\n\"; } }",
        &app,
    );
    assert_eq!(raw_get(lb.addr, "/x/y").text(), "exact");
    assert_eq!(raw_get(lb.addr, "/x//y").text(), "/x//y");
    // `.` and `..` are still resolved; `..` removes an empty segment too.
    assert_eq!(raw_get(lb.addr, "/a//../b").text(), "/a/b");
}

#[test]
fn without_a_uri_part_proxy_pass_sends_the_request_target_unchanged() {
    let app = Backend::start("app");
    let lb = nginx_lb(GUARDED, &app);
    let targets = ["/a//b/./c/../%64?x=1&y=%2F", "/%7euser/", "/p%20q"];
    for t in targets {
        assert_eq!(raw_get(lb.addr, t).status, 200, "GET {t}");
    }
    assert_eq!(app.targets(), targets);
}

#[test]
fn with_a_uri_part_proxy_pass_sends_the_normalised_path_re_encoded() {
    let app = Backend::start("app");
    let lb = nginx_lb(
        "server { listen {listen}; location /p/ { proxy_pass http://{app}/q/; } }",
        &app,
    );
    // (client target, what nginx 1.22 sends upstream)
    let cases = [
        ("/p/a", "/q/a"),
        ("/p//a/./b/../c?x=1", "/q/a/c?x=1"),
        // A `%` in the path: the rest is sent percent-encoded by nginx's rules;
        // `%2F` was a separator and stays one, `~` is left alone.
        ("/p/a%20b%2Fc?x=%20", "/q/a%20b/c?x=%20"),
        ("/p/%7e%61", "/q/~a"),
        ("/p/%22q%22", "/q/%22q%22"),
        ("/p/x/%2e%2e/y", "/q/y"),
    ];
    for (sent, _) in cases {
        assert_eq!(raw_get(lb.addr, sent).status, 200, "GET {sent}");
    }
    let want: Vec<&str> = cases.iter().map(|(_, upstream)| *upstream).collect();
    assert_eq!(app.targets(), want);
}

#[test]
fn json_routes_match_the_normalised_path_too() {
    let app = Backend::start("app");
    let cfg = config(
        servers(&[&app]),
        serde_json::json!({}),
        serde_json::json!({ "routes": [
            { "path": "/", "upstream": "web" },
            { "path": "/admin", "return": { "status": 403 } }
        ] }),
    );
    let lb = Pinlb::start(&cfg);
    for attack in ["//admin", "/./admin", "/x/../admin", "/%61dmin"] {
        assert_eq!(raw_get(lb.addr, attack).status, 403, "GET {attack}");
    }
    assert_eq!(raw_get(lb.addr, "/../admin").status, 400);
    assert_eq!(app.requests(), 0);
}
