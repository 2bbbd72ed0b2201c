//! Translation tests: nginx text in, `Config` model out, with nginx's meaning; and a
//! property test that generated configs translate to what they say.

use super::{parser, translate};
use crate::config::{
    Action, Balance, CheckKind, Config, LogEscape, MapKey, PathMatch, PinMatch, PinSource,
    PinTarget, ServerName,
};
use proptest::prelude::*;
use std::path::Path;
use std::time::Duration;

pub(super) fn translate_str(text: &str) -> Result<Config, String> {
    let file = Path::new("/etc/nginx/nginx.conf");
    let directives = parser::parse_str(file, text).map_err(|e| e.to_string())?;
    translate::translate(file, &directives).map_err(|e| e.to_string())
}

pub(super) fn http(body: &str) -> String {
    format!("http {{\n{body}\n}}\n")
}

fn err(text: &str) -> String {
    translate_str(text).expect_err("should be refused")
}

fn proxy(c: &Config, vs: usize, route: usize) -> &crate::config::ProxyPass {
    match &c.virtual_servers[vs].routes[route].action {
        Action::Proxy(p) => p,
        Action::Return(_) => panic!("not a proxy route"),
    }
}

#[test]
fn upstream_parameters_translate() {
    let c = translate_str(&http(
        "upstream api {
            least_conn;
            server 10.0.0.1:9001 weight=2 max_fails=3 fail_timeout=5s;
            server 10.0.0.2 max_conns=10;
            server 10.0.0.3:9003 backup;
            server 10.0.0.4:9004 down;
            keepalive 32;
            keepalive_timeout 30s;
            zone api 64k;
        }
        server { listen 8080; location / { proxy_pass http://api; } }",
    ))
    .unwrap();
    let api = &c.upstreams["api"];
    assert_eq!(api.balance, Balance::LeastConn);
    let s = &api.servers;
    assert_eq!(
        (s[0].weight, s[0].max_fails, s[0].fail_timeout),
        (2, 3, Duration::from_secs(5))
    );
    assert_eq!(
        (s[1].addr.as_str(), s[1].max_conns, s[1].max_fails),
        ("10.0.0.2:80", 10, 1)
    );
    assert!(s[2].backup && !s[2].down && s[3].down);
    let keepalive = api.keepalive.as_ref().unwrap();
    assert_eq!(
        (keepalive.connections, keepalive.timeout),
        (32, Duration::from_secs(30))
    );
}

#[test]
fn hash_and_ip_hash_translate() {
    let c = translate_str(&http(
        "upstream s { hash $cookie_sid consistent; server 10.0.0.1; }
         upstream i { ip_hash; server 10.0.0.2; }
         server { location / { proxy_pass http://s; } location /i { proxy_pass http://i; } }",
    ))
    .unwrap();
    assert_eq!(
        c.upstreams["s"].balance,
        Balance::Hash {
            key: "$cookie_sid".into(),
            consistent: true
        }
    );
    assert_eq!(c.upstreams["i"].balance, Balance::IpHash);
}

#[test]
fn proxy_settings_inherit_from_http_to_location() {
    let c = translate_str(&http(
        "proxy_read_timeout 5s;
         proxy_set_header X-A a;
         client_max_body_size 10m;
         upstream u { server 10.0.0.1; }
         server {
             proxy_connect_timeout 2s;
             location /a { proxy_pass http://u; }
             location /b { proxy_pass http://u; proxy_read_timeout 1m; proxy_set_header X-B b; }
             location /c { proxy_pass http://u; client_max_body_size 0; }
         }",
    ))
    .unwrap();
    let routes = &c.virtual_servers[0].routes;
    let (a, b, c_) = (&routes[0].proxy, &routes[1].proxy, &routes[2].proxy);
    assert_eq!(
        (a.read_timeout, a.connect_timeout),
        (Duration::from_secs(5), Duration::from_secs(2))
    );
    assert_eq!(b.read_timeout, Duration::from_secs(60));
    assert_eq!(
        b.websocket_idle_timeout,
        Duration::from_secs(60),
        "idle limit follows proxy_read_timeout"
    );
    let names = |p: &crate::config::ProxySettings| {
        p.set_headers
            .iter()
            .map(|h| h.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(a),
        ["Host", "X-A"],
        "inherited list plus nginx's default Host"
    );
    assert_eq!(
        names(b),
        ["Host", "X-B"],
        "own list replaces the inherited one"
    );
    assert_eq!(a.client_max_body_size, Some(10 << 20));
    assert_eq!(c_.client_max_body_size, None, "0 disables the limit");
}

#[test]
fn nginx_defaults_apply_without_settings() {
    let c = translate_str(&http(
        "server { location / { proxy_pass http://10.0.0.1:81; } }",
    ))
    .unwrap();
    let route = &c.virtual_servers[0].routes[0];
    assert_eq!(route.proxy.client_max_body_size, Some(1 << 20));
    assert_eq!(route.proxy.connect_timeout, Duration::from_secs(60));
    assert_eq!(route.proxy.set_headers[0].value, "$proxy_host");
    assert_eq!(route.access_log[0].format, "combined");
    assert_eq!(c.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.listeners[0].addr.to_string(), "0.0.0.0:80");
    // proxy_pass to a host makes a one-server upstream named as written.
    assert_eq!(proxy(&c, 0, 0).upstream, "10.0.0.1:81");
    assert_eq!(c.upstreams["10.0.0.1:81"].servers[0].addr, "10.0.0.1:81");
}

#[test]
fn location_kinds_and_proxy_pass_uri() {
    let c = translate_str(&http(
        "upstream u { server 10.0.0.1; }
         server {
             location = /exact { return 204; }
             location =/glued { return 204; }
             location ^~ /static/ { return 404; }
             location ~* \\.(jpg|png)$ { return 403; }
             location ~\\.php$ { return 403; }
             location /v1/ { proxy_pass http://u/api/; }
         }",
    ))
    .unwrap();
    let paths: Vec<&PathMatch> = c.virtual_servers[0]
        .routes
        .iter()
        .map(|r| &r.path)
        .collect();
    assert_eq!(*paths[0], PathMatch::Exact("/exact".into()));
    assert_eq!(*paths[1], PathMatch::Exact("/glued".into()));
    assert_eq!(*paths[2], PathMatch::PrefixNoRegex("/static/".into()));
    assert_eq!(
        *paths[3],
        PathMatch::Regex {
            pattern: "\\.(jpg|png)$".into(),
            case_insensitive: true
        }
    );
    assert_eq!(
        *paths[4],
        PathMatch::Regex {
            pattern: "\\.php$".into(),
            case_insensitive: false
        }
    );
    assert_eq!(proxy(&c, 0, 5).uri.as_deref(), Some("/api/"));
}

#[test]
fn server_names_listen_and_return() {
    let c = translate_str(&http(
        "server { listen 127.0.0.1:8080 default_server; listen [::]:8080; server_name .example.com *.a.test www.b.* ~^api\\d+$ _; return 301 https://$host$request_uri; }
         server { listen 8080; location / { return https://elsewhere.test/; } }",
    ))
    .unwrap();
    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.server_names,
        [
            ServerName::Exact("example.com".into()),
            ServerName::Suffix(".example.com".into()),
            ServerName::Suffix(".a.test".into()),
            ServerName::Prefix("www.b.".into()),
            ServerName::Regex("^api\\d+$".into()),
            ServerName::Exact("_".into()),
        ]
    );
    assert_eq!(vs.default_for[0].to_string(), "127.0.0.1:8080");
    let Action::Return(r) = &vs.routes[0].action else {
        panic!()
    };
    assert_eq!(
        (r.status, r.text.as_deref()),
        (301, Some("https://$host$request_uri"))
    );
    let Action::Return(r) = &c.virtual_servers[1].routes[0].action else {
        panic!()
    };
    assert_eq!(r.status, 302, "return URL is a 302");
    // 0.0.0.0:8080 covers 127.0.0.1:8080: one socket, as nginx binds it.
    let listeners: Vec<String> = c.listeners.iter().map(|l| l.addr.to_string()).collect();
    assert_eq!(listeners, ["[::]:8080", "0.0.0.0:8080"]);
}

#[test]
fn proxy_protocol_is_a_property_of_the_socket() {
    let c = translate_str(&http(
        "server { listen 127.0.0.1:81 proxy_protocol; location / { return 200; } }
         server { listen 127.0.0.1:81; listen 82; location / { return 200; } }",
    ))
    .unwrap();
    let flags: Vec<(String, bool)> = c
        .listeners
        .iter()
        .map(|l| (l.addr.to_string(), l.proxy_protocol))
        .collect();
    assert_eq!(
        flags,
        [("127.0.0.1:81".into(), true), ("0.0.0.0:82".into(), false)]
    );
    for text in [
        "server { listen 81; listen 127.0.0.1:81 proxy_protocol; }",
        "server { listen 127.0.0.1:81 proxy_protocol; listen 81; }",
    ] {
        let err = translate_str(&http(text)).unwrap_err();
        assert!(err.contains("must be set on all or none"), "{err}");
    }
}

#[test]
fn if_pins_translate_last_first_with_their_targets() {
    let c = translate_str(&http(
        "upstream app_servers { server app1:80; server app2:80; }
         upstream beta { server 10.0.0.9; }
         server { location / {
             if ($http_app = \"app1\") { proxy_pass http://app1; }
             if ( $cookie_app = app2 ) { proxy_pass http://app2:80; }
             if ($http_x_env = beta) { proxy_pass http://beta; }
             if ($http_app = \"solo\"){ proxy_pass http://10.0.0.7:8000; }
             proxy_pass http://app_servers;
         } }",
    ))
    .unwrap();
    let pins = &proxy(&c, 0, 0).pins;
    let summary: Vec<(PinSource, String, PinTarget)> = pins
        .iter()
        .map(|p| match &p.matches {
            PinMatch::Value { equals, target } => {
                (p.source.clone(), equals.clone(), target.clone())
            }
            PinMatch::ServerName => panic!("nginx pins match values"),
        })
        .collect();
    let server = |s: &str| PinTarget::Server {
        upstream: "app_servers".into(),
        server: s.into(),
    };
    assert_eq!(
        summary,
        [
            (
                PinSource::Header("app".into()),
                "solo".into(),
                PinTarget::Upstream("10.0.0.7:8000".into())
            ),
            (
                PinSource::Header("x-env".into()),
                "beta".into(),
                PinTarget::Upstream("beta".into())
            ),
            (
                PinSource::Variable("$cookie_app".into()),
                "app2".into(),
                server("app2:80")
            ),
            (
                PinSource::Header("app".into()),
                "app1".into(),
                server("app1:80")
            ),
        ]
    );
}

#[test]
fn map_and_log_format_and_main_directives_translate() {
    let c = translate_str(
        "user nginx; worker_processes 3; pid /run/x.pid; error_log /var/log/x.log warn;
         events { worker_connections 512; }
         http {
             map $http_upgrade $connection_upgrade { default upgrade; '' close; ~*^web $uri; }
             log_format main escape=json '$remote_addr '
                                         '$status';
             access_log /var/log/a.log main;
             server { location / { proxy_pass http://10.0.0.1; access_log off; } location /b { return 200; } }
         }",
    )
    .unwrap();
    assert_eq!(c.threads, 3);
    assert_eq!(c.pid_file.as_deref(), Some(Path::new("/run/x.pid")));
    let error_log = c.error_log.as_ref().unwrap();
    assert_eq!(
        (error_log.path.as_str(), error_log.level),
        ("/var/log/x.log", crate::config::LogLevel::Warn)
    );
    let map = &c.maps[0];
    assert_eq!(
        (
            map.source.as_str(),
            map.variable.as_str(),
            map.default.as_str()
        ),
        ("$http_upgrade", "connection_upgrade", "upgrade")
    );
    assert_eq!(map.entries[0].key, MapKey::Exact(String::new()));
    assert_eq!(
        map.entries[1].key,
        MapKey::Regex {
            pattern: "^web".into(),
            case_insensitive: true
        }
    );
    let main = &c.log_formats["main"];
    assert_eq!(
        (main.template.as_str(), main.escape),
        ("$remote_addr $status", LogEscape::Json)
    );
    let routes = &c.virtual_servers[0].routes;
    assert!(routes[0].access_log.is_empty());
    assert_eq!(routes[1].access_log[0].path, "/var/log/a.log");
}

#[test]
fn health_check_attaches_to_the_location_upstream() {
    let c = translate_str(&http(
        "upstream u { server 10.0.0.1; }
         server { location / { proxy_pass http://u; proxy_connect_timeout 1s; health_check interval=2s fails=3 passes=2 uri=/healthz; } }",
    ))
    .unwrap();
    let hc = c.upstreams["u"].health_check.as_ref().unwrap();
    assert_eq!(
        hc.kind,
        CheckKind::Http {
            path: "/healthz".into()
        }
    );
    assert_eq!(
        (hc.interval, hc.timeout, hc.fails, hc.passes),
        (Duration::from_secs(2), Duration::from_secs(1), 3, 2)
    );
}

#[test]
fn mistakes_are_refused_with_their_line() {
    let cases: &[(&str, &str)] = &[
        (
            "http { server { location / { proxy_pass http://a; gzip_static on; } } }",
            "unsupported directive \"gzip_static\" in /etc/nginx/nginx.conf:1",
        ),
        ("worker_processes many; http { }", "invalid value \"many\""),
        (
            "load_module x.so; http { }",
            "dynamic modules cannot be loaded",
        ),
        ("events { }", "no \"http\" block"),
        ("http { } http { }", "\"http\" directive is duplicate"),
        (
            "http {\n upstream u { server 10.0.0.1; }\n upstream u { server 10.0.0.2; }\n}",
            "duplicate upstream \"u\" (first in /etc/nginx/nginx.conf:2) in /etc/nginx/nginx.conf:3",
        ),
        (
            "http { upstream u { } }",
            "no servers are inside upstream \"u\"",
        ),
        (
            "http { upstream u { ip_hash; least_conn; server a; } }",
            "load balancing method redefined",
        ),
        (
            "http { upstream u { server a weight=x; } }",
            "invalid parameter \"weight=x\"",
        ),
        (
            "http { upstream u { server a slow_start=10s; } }",
            "invalid parameter \"slow_start=10s\"",
        ),
        (
            "http { upstream u { server unix:/tmp/s; } }",
            "unix sockets are not supported",
        ),
        (
            "http { server { listen 443 ssl; } }",
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
        ),
        (
            "http { server { location / { } } }",
            "location has neither \"proxy_pass\" nor \"return\"",
        ),
        (
            "http { server { location / { location /x { return 200; } } } }",
            "nested locations are not supported",
        ),
        (
            "http { server { location @x { return 200; } } }",
            "named locations are not supported",
        ),
        (
            "http { server { location / { proxy_pass https://a; if ($http_x = \"1\") { proxy_pass http://b; } } } }",
            "a pinned \"proxy_pass\" must use the scheme of the location's",
        ),
        (
            "http { server { location / { proxy_pass http://$b; } } }",
            "variables in \"proxy_pass http://$b\" are not supported",
        ),
        (
            "http { server { location / { proxy_pass http://a; proxy_read_timeout 1x; } } }",
            "invalid value \"1x\"",
        ),
        (
            "http { server { location / { proxy_pass http://a; if ($request_method != POST) { return 405; } } } }",
            "only `if ($VARIABLE = \"value\")",
        ),
        (
            "http { server { location / { proxy_pass http://a; if ($http_app = a) { return 200; } } } }",
            "only \"proxy_pass\" is supported inside \"if\"",
        ),
        (
            "http { server { if ($http_app = a) { proxy_pass http://a; } } }",
            "\"if\" is only supported inside \"location\"",
        ),
        (
            "http { server { location / { return 1000; } } }",
            "invalid return code \"1000\"",
        ),
        (
            "http { server { location / { proxy_pass http://a; access_log /x nope; } } }",
            "unknown log format \"nope\"",
        ),
        (
            "http { server { location / { proxy_pass http://a; proxy_redirect http://a /; } } }",
            "only \"proxy_redirect off\" and \"default\"",
        ),
        (
            "http { map $a $b { default x; } map $c $b { } }",
            "duplicate \"b\" variable",
        ),
        (
            "http { server { location / { proxy_pass http://a; health_check interval=0; } } }",
            "invalid parameter \"interval=0\"",
        ),
        (
            "http { upstream u { server 10.0.0.1; } server { location /a { proxy_pass http://u; health_check; } location /b { proxy_pass http://u; health_check fails=2; } } }",
            "conflicting \"health_check\" for upstream \"u\"",
        ),
        (
            "http { server { location / { proxy_pass http://a; } location / { return 200; } } }",
            "duplicate location \"/\"",
        ),
        (
            "http { server { listen example.com:80; } }",
            "use an IP address",
        ),
    ];
    for (text, expected) in cases {
        let got = err(text);
        assert!(
            got.contains(expected),
            "for {text}:\n  got: {got}\n want: {expected}"
        );
    }
}

fn render_server(weight: u32, max_fails: u32, backup: bool, down: bool, i: usize) -> String {
    let mut s = format!(
        "server 10.0.{}.{}:{} weight={weight} max_fails={max_fails}",
        i / 200,
        i % 200 + 1,
        8000 + i
    );
    if backup {
        s.push_str(" backup");
    }
    if down {
        s.push_str(" down");
    }
    s + ";"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::prop_cases(128)))]

    /// Generated upstreams and locations translate to exactly what they say.
    #[test]
    fn generated_configs_translate_as_written(
        servers in prop::collection::vec((1u32..100, 0u32..5, any::<bool>(), any::<bool>()), 1..8),
        balance in 0usize..3,
        prefixes in prop::collection::btree_set("/[a-z]{1,8}/", 1..5),
        read_timeout in 1u64..600,
        tries in 0u32..5,
    ) {
        let method = ["", "least_conn;", "ip_hash;"][balance];
        // ip_hash does not take backup servers.
        let servers: Vec<_> = servers.into_iter().map(|(w, f, b, d)| (w, f, b && balance != 2, d)).collect();
        let lines: Vec<String> = servers.iter().enumerate().map(|(i, (w, f, b, d))| render_server(*w, *f, *b, *d, i)).collect();
        let locations: Vec<String> = prefixes.iter().map(|p| format!("location {p} {{ proxy_pass http://pool; }}")).collect();
        let text = format!(
            "http {{ upstream pool {{ {method} {} }} server {{ listen 8080; proxy_read_timeout {read_timeout}s; proxy_next_upstream_tries {tries}; {} }} }}",
            lines.join(" "),
            locations.join(" ")
        );
        let c = translate_str(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let pool = &c.upstreams["pool"];
        prop_assert_eq!(&pool.balance, &[Balance::RoundRobin, Balance::LeastConn, Balance::IpHash][balance]);
        prop_assert_eq!(pool.servers.len(), servers.len());
        for (got, (w, f, b, d)) in pool.servers.iter().zip(&servers) {
            prop_assert_eq!((got.weight, got.max_fails, got.backup, got.down), (*w, *f, *b, *d));
        }
        let routes = &c.virtual_servers[0].routes;
        prop_assert_eq!(routes.len(), prefixes.len());
        for (route, prefix) in routes.iter().zip(&prefixes) {
            prop_assert_eq!(&route.path, &PathMatch::Prefix(prefix.clone()));
            prop_assert_eq!(route.proxy.read_timeout, Duration::from_secs(read_timeout));
            prop_assert_eq!(route.proxy.next_upstream_tries, tries);
        }
        let env = crate::runtime::CompileEnv {
            dns: &crate::upstream::resolve::Offline::default(),
            discovered: None,
            sinks: &crate::observe::access_log::Sinks::offline(),
            previous: None,
        };
        crate::runtime::Runtime::compile(&c, &env).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    /// Whatever the input, translation answers Ok or Err: it never panics.
    #[test]
    fn translation_never_panics(text in "[ -~\\n{};$\"']{0,300}") {
        let _ = translate_str(&text);
    }
}

#[test]
fn pinlb_admin_takes_an_address_and_an_optional_token() {
    let c = translate_str("pinlb_admin 127.0.0.1:9911 token=abc; http { }").unwrap();
    assert_eq!(c.admin, Some("127.0.0.1:9911".parse().unwrap()));
    assert_eq!(c.admin_token.as_deref(), Some("abc"));
    let plain = translate_str("pinlb_admin 127.0.0.1:9911; http { }").unwrap();
    assert_eq!(plain.admin_token, None);
    for bad in [
        "pinlb_admin off token=abc;",
        "pinlb_admin 127.0.0.1:1 secret=abc;",
    ] {
        let msg = err(&format!("{bad} http {{ }}"));
        assert!(msg.contains("invalid parameter"), "{bad}: {msg}");
    }
}

#[test]
fn one_address_twice_is_two_servers_as_in_nginx() {
    let c = translate_str(&http(
        "upstream u { server app1:80; server app1:80 weight=2; server APP1:80; }",
    ))
    .unwrap();
    let names: Vec<&str> = c.upstreams["u"]
        .servers
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["app1:80", "app1:80#2", "APP1:80#3"]);
    assert_eq!(c.upstreams["u"].servers[1].weight, 2);
}
